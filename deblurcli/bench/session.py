"""One ``defocus bench`` run: find pairs, load each method once, score, report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deblurcli import __version__
from deblurcli.bench.published import published_for
from deblurcli.bench.report import rich_table, write_reports
from deblurcli.bench.run import MethodSummary, bench_method, score_input
from deblurcli.bench.sheet import ContactSheet
from deblurcli.datasets import detect_layout, find_pairs
from deblurcli.engine.device import pick_device, pick_dtype, set_cpu_threads
from deblurcli.errors import DefocusError, UsageError
from deblurcli.methods.loader import load_method
from deblurcli.methods.registry import get_method
from deblurcli.pipeline import DeblurOptions

LPIPS_IDS = ("alexnet-imagenet", "lpips-alex-v0.1")


@dataclass(frozen=True)
class BenchRequest:
    dataset: Path
    methods: list[str]
    layout: str
    split: str
    limit: int | None
    out: Path
    weights: dict[str, Path]
    device: str
    precision: str
    threads: int | None
    tile: int | None
    overlap: int | None
    save_outputs: bool
    sheet: bool
    compare_published: bool
    lpips: bool | None
    offline: bool
    cache_dir: Path | None
    random_weights_for_testing: bool


def _lpips(req: BenchRequest, device: torch.device) -> tuple[Callable[[torch.Tensor, torch.Tensor], float] | None, str]:
    """LPIPS from the real AlexNet + v0.1 heads, or None with the reason (never a substitute backbone).

    ``req.lpips`` None (the default) uses the weights only if they are cached: a benchmark never starts a
    250 MB download nobody asked for. True (``--lpips``) fetches them unless offline; False skips LPIPS.
    """
    if req.lpips is False:
        return None, "LPIPS not computed (--no-lpips)."
    from deblurcli.bench.lpips import load_lpips
    from deblurcli.errors import WeightsMissingError
    from deblurcli.zoo.resolve import resolve_file

    offline = req.offline or req.lpips is None
    try:
        alexnet, heads = (resolve_file(i, offline=offline, cache_dir=req.cache_dir) for i in LPIPS_IDS)
        model = load_lpips(alexnet, heads).to(device)
    except WeightsMissingError:
        pulls = " and ".join(f"`defocus models pull {i}`" for i in LPIPS_IDS)
        ask = "" if req.lpips else " (or pass --lpips to download them)"
        return None, f"LPIPS skipped: weights not cached; {pulls}{ask}."
    except DefocusError as err:
        return None, f"LPIPS skipped: its AlexNet/LPIPS weights are not usable ({err})."

    def score(a: torch.Tensor, b: torch.Tensor) -> float:
        with torch.inference_mode():
            return float(model(a[None].to(device), b[None].to(device))[0])

    return score, "LPIPS v0.1, AlexNet backbone (official weights)."


def run_bench(req: BenchRequest, console: Console) -> tuple[Path, Table]:
    """Run the benchmark and write its reports; returns the path of ``bench.json`` and the results table.

    Progress and notes go to ``console`` (stderr); the table is the result, printed by the caller.
    """
    if not req.methods:
        raise UsageError("--methods names no method")
    for name in req.methods:
        get_method(name)
    pairs = find_pairs(req.dataset, layout=req.layout, split=req.split, limit=req.limit)
    kind = detect_layout(req.dataset, split=req.split) if req.layout == "auto" else req.layout
    if (req.dataset / "samples.json").is_file():
        kind = "synthetic"  # our generator writes the DPDD layout; no paper reports numbers on it
    set_cpu_threads(req.threads)
    device = pick_device(req.device)
    lpips, lpips_note = _lpips(req, device)
    notes = [
        f"{len(pairs)} pairs from {req.dataset} ({kind} layout); metrics on clipped float outputs in [0, 1].",
        "Time per image after one warm-up run; peak memory is "
        + ("CUDA max allocated." if device.type == "cuda" else "the process's peak RSS (reset per method)."),
        lpips_note,
    ]
    sheet = ContactSheet() if req.sheet else None
    summaries: list[MethodSummary] = [
        score_input(pairs, max_pixels=DeblurOptions().max_pixels, lpips=lpips, sheet=sheet)
    ]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        for name in req.methods:
            spec = get_method(name)
            dtype = pick_dtype(req.precision, device, supports_half=spec.supports_half)
            method = load_method(
                name, device=device, dtype=dtype, weights=req.weights.get(name), offline=req.offline,
                cache_dir=req.cache_dir, random_weights_for_testing=req.random_weights_for_testing,
            )
            if method.weights_id == "random-for-testing":
                notes.append(f"{name}: RANDOM weights (test switch); its scores mean nothing.")
            task = progress.add_task(name, total=len(pairs))
            opts = DeblurOptions(tile=req.tile, overlap=req.overlap)
            save = req.out / "outputs" / name if req.save_outputs else None
            summaries.append(
                bench_method(method, pairs, opts, save_dir=save, lpips=lpips, sheet=sheet,
                             on_image=lambda _n, t=task: progress.advance(t))
            )
            del method
    published = published_for(kind) if req.compare_published else []
    title = f"defocus bench: {req.dataset.name}"
    table = rich_table(summaries, published, title)
    meta = {"tool": f"defocus {__version__}", "dataset": str(req.dataset), "layout": kind, "device": str(device),
            "precision": req.precision, "torch": torch.__version__}
    files = write_reports(req.out, summaries, published, title=title, notes=notes, meta=meta)
    if sheet is not None:
        files += sheet.save(req.out / "sheet.png")
    for note in notes:
        console.print(f"[dim]{note}[/]")
    console.print(f"reports: {', '.join(str(f) for f in files)}")
    return req.out / "bench.json", table
