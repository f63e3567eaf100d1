"""``defocus data``: training-data tools. ``training`` is imported inside the command so that the rest of
the CLI neither needs nor loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deblurcli.cli.common import fail, stderr_console
from deblurcli.errors import DefocusError, UsageError

app = typer.Typer(name="data", help="Prepare training data.", no_args_is_help=True, add_completion=False)


@app.callback()
def _data() -> None:
    """Prepare training data."""


@app.command()
def synth(
    src: Annotated[
        list[Path], typer.Option("--src", metavar="DIR", help="Folder (or file) of sharp photos; repeatable.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", "--out", metavar="DIR", help="Output folder (DPDD layout + ded/ + samples.json)."
        ),
    ],
    n: Annotated[int, typer.Option("--count", "-n", "--n", min=1, help="Number of samples.")] = 100,
    size: Annotated[int, typer.Option(min=16, help="Edge of each square sample in px.")] = 256,
    seed: Annotated[int, typer.Option(help="Base seed; sample i depends only on (seed, i).")] = 0,
    val_frac: Annotated[float, typer.Option(min=0.0, max=0.9, help="Fraction of samples for val_.")] = 0.1,
    test_frac: Annotated[float, typer.Option(min=0.0, max=0.9, help="Fraction of samples for test_.")] = 0.1,
    bits: Annotated[int, typer.Option(help="PNG bit depth: 8, or 16 as DPDD stores its lossless data.")] = 8,
    max_coc: Annotated[float, typer.Option(min=0.0, help="Largest CoC diameter in px.")] = 24.0,
    layers: Annotated[int, typer.Option(min=1, max=64, help="Depth layers used for compositing.")] = 12,
    threads: Annotated[
        int, typer.Option(min=1, help="Torch threads; 1 is fastest for these small FFTs on a busy machine.")
    ] = 1,
    jpeg_prob: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of JPEG-compressed inputs.")
    ] = 0.2,
) -> None:
    """Render synthetic defocus (blurred, sharp, dual-pixel views, CoC maps) from sharp photos."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from training.synth.sample import SynthConfig
    from training.synth.sources import PhotoPool, find_photos
    from training.synth.writer import write_dataset

    torch.set_num_threads(threads)
    console = stderr_console()
    try:
        if bits not in (8, 16):
            raise UsageError("--bits must be 8 or 16")
        if val_frac + test_frac >= 1.0:
            raise UsageError("--val-frac + --test-frac must be below 1")
        config = SynthConfig(size=size, max_coc=max_coc, n_layers=layers, jpeg_prob=jpeg_prob)
        photos = find_photos(src)
        with console.status(f"scanning {len(photos)} photos for sharp regions"):
            pool = PhotoPool(photos, config.source_size)
        columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("synth", total=n)
            meta = write_dataset(
                pool,
                out,
                n=n,
                seed=seed,
                config=config,
                val_frac=val_frac,
                test_frac=test_frac,
                bits=bits,
                on_sample=lambda i: progress.update(task, completed=i),
            )
    except DefocusError as err:
        fail(err)
    counts = ", ".join(f"{k} {v}" for k, v in meta["counts"].items())
    console.print(f"wrote {n} samples to {out} ({counts}; split by {meta['split_by']})")
