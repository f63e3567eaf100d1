"""``defocus bench``: parse options and hand over to ``deblurcli.bench``; torch is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deblurcli.cli.common import fail, stderr_console
from deblurcli.errors import DefocusError, UsageError
from deblurcli.methods.names import METHOD_NAMES


def _weights_map(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or name not in METHOD_NAMES:
            raise UsageError(f"--weights takes METHOD=FILE with METHOD one of {', '.join(METHOD_NAMES)}")
        out[name] = Path(path)
    return out


def bench(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (RealDOF, DPDD, LFDOF, DED or synthetic layout).")],
    methods: Annotated[str, typer.Option(help="Comma-separated methods to compare.")] = "classic",
    layout: Annotated[str, typer.Option(help="auto, realdof, dpdd, lfdof or ded.")] = "auto",
    split: Annotated[str, typer.Option(help="DPDD-layout split: train, val or test.")] = "test",
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N pairs.")] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", "--out", metavar="DIR", help="Folder for bench.md/.csv/.json and per_image.csv."
        ),
    ] = Path("bench-results"),
    weights: Annotated[list[str], typer.Option(help="METHOD=FILE: use this checkpoint for METHOD.")] = [],  # noqa: B006
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, fp16 or bf16.")] = "fp32",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    tile: Annotated[int | None, typer.Option(min=16, help="Tile edge in px (default: per method).")] = None,
    overlap: Annotated[int | None, typer.Option(min=0, help="Tile context in px (default: per method).")] = None,
    save_outputs: Annotated[bool, typer.Option(help="Also save each method's outputs as PNG.")] = False,
    sheet: Annotated[
        bool, typer.Option("--sheet", help="Also write sheet.png: input | each method | target, 1:1 crops.")
    ] = False,
    compare_published: Annotated[bool, typer.Option(help="Add the papers' own rows, labelled as published.")] = False,
    lpips: Annotated[
        bool | None,
        typer.Option(
            "--lpips/--no-lpips",
            help="LPIPS: default only if its weights are cached; --lpips downloads them if needed; --no-lpips skips.",
        ),
    ] = None,
    offline: Annotated[bool, typer.Option(help="Never download weights.")] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Weights cache folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout.")] = False,
    random_weights_for_testing: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Score methods on a paired dataset: PSNR, SSIM, MAE, LPIPS, time, memory, parameters and MACs."""
    from deblurcli.bench.session import BenchRequest, run_bench

    console = stderr_console()
    try:
        request = BenchRequest(
            dataset=dataset,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            layout=layout,
            split=split,
            limit=limit,
            out=out,
            weights=_weights_map(weights),
            device=device,
            precision=precision,
            threads=threads,
            tile=tile,
            overlap=overlap,
            save_outputs=save_outputs,
            sheet=sheet,
            compare_published=compare_published,
            lpips=lpips,
            offline=offline,
            cache_dir=cache_dir,
            random_weights_for_testing=random_weights_for_testing,
        )
        report, table = run_bench(request, console)
    except DefocusError as err:
        fail(err)
    if as_json:
        typer.echo(report.read_text(), nl=False)
    else:
        Console().print(table)
