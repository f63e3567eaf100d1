"""The batch behind ``defocus deblur``: one loaded method, many photos, a failure never stops the rest.

Kept apart from ``deblur.py`` because it imports torch, which ``--help`` must not pay for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deblurcli.engine.device import auto_tile, pick_device, pick_dtype, set_cpu_threads
from deblurcli.errors import DefocusError, UsageError
from deblurcli.inputs import expand_inputs
from deblurcli.io.decode import SUPPORTED_EXTENSIONS, decode
from deblurcli.methods.loader import LoadedMethod, load_method
from deblurcli.methods.registry import get_method
from deblurcli.pipeline import (
    DeblurOptions,
    FileResult,
    TileProgress,
    deblur_file,
    output_path,
    resolve_format,
)


@dataclass(frozen=True)
class BatchRequest:
    """Everything the command line said, already type-checked by typer."""

    inputs: list[str]
    output_dir: Path | None
    method: str
    weights: Path | None
    recursive: bool
    strength: float
    bokeh: str
    bokeh_threshold: float | None
    mask: Path | None
    fmt: str | None
    bit_depth: int | None
    quality: int
    maps: bool
    overwrite: bool
    tile: str | None
    overlap: int | None
    device: str
    precision: str
    threads: int | None
    max_pixels: int
    offline: bool
    cache_dir: Path | None
    quiet: bool
    random_weights_for_testing: bool


def run_batch(req: BatchRequest, console: Console) -> tuple[list[FileResult], int]:
    """Process every input; returns the per-file results and the exit code (0 all done, 1 some failed).

    Raises:
        DefocusError: for problems that concern the whole batch (no inputs, unusable device, no weights).
    """
    found = expand_inputs(req.inputs, extensions=SUPPORTED_EXTENSIONS, recursive=req.recursive)
    results = [FileResult(source=m, status="failed", reason="no such file or matching photo") for m in found.missing]
    if not found.photos and not results:
        raise UsageError("no photos found in the given inputs")
    if req.output_dir is not None:
        req.output_dir.mkdir(parents=True, exist_ok=True)

    spec = get_method(req.method)
    set_cpu_threads(req.threads)
    device = pick_device(req.device)
    dtype = pick_dtype(req.precision, device, supports_half=spec.supports_half)
    tile: int | None = None
    if req.tile == "auto":
        tile = auto_tile(
            bytes_per_pixel=spec.bytes_per_pixel, dtype=dtype, device=device, multiple_of=spec.multiple_of
        )
    elif req.tile is not None:
        tile = int(req.tile)
    opts = DeblurOptions(
        tile=tile,
        overlap=req.overlap,
        strength=req.strength,
        bokeh=req.bokeh,
        bokeh_threshold=req.bokeh_threshold,
        mask=req.mask,
        fmt=req.fmt,
        bit_depth=req.bit_depth,
        quality=req.quality,
        maps=req.maps,
        max_pixels=req.max_pixels,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=req.quiet,
        transient=False,
    ) as progress:
        files_task = progress.add_task("photos", total=len(found.photos))
        tiles_task = progress.add_task("tiles", total=None, visible=False)

        def on_download(done: int, total: int | None) -> None:
            progress.update(tiles_task, description="weights", completed=done, total=total, visible=True)

        method = load_method(
            req.method,
            device=device,
            dtype=dtype,
            weights=req.weights,
            offline=req.offline,
            cache_dir=req.cache_dir,
            random_weights_for_testing=req.random_weights_for_testing,
            download_progress=on_download,
        )

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles_task, description="tiles", completed=done, total=total, visible=True)

        for src in found.photos:
            progress.update(files_task, description=f"[bold]{src.name}")
            results.append(_one(src, req, method, opts, on_tile))
            progress.advance(files_task)
        progress.update(files_task, description="photos")

    for r in results:
        if r.status == "failed" and not req.quiet:
            console.print(f"[red]failed[/] {r.source}: {r.reason}", soft_wrap=True)
    if not req.quiet:
        ok = sum(r.status == "ok" for r in results)
        skipped = sum(r.status == "skipped" for r in results)
        failed = sum(r.status == "failed" for r in results)
        console.print(f"{ok} deblurred, {skipped} skipped, {failed} failed")
    code = 1 if any(r.status == "failed" for r in results) else 0
    return results, code


def _one(
    src: Path, req: BatchRequest, method: LoadedMethod, opts: DeblurOptions, on_tile: TileProgress
) -> FileResult:
    """One photo; every user-facing error becomes a failed result with a one-line reason."""
    try:
        photo = decode(src, max_pixels=opts.max_pixels)
        fmt, depth = resolve_format(photo, opts)
        dst = output_path(src, req.output_dir, fmt)
        if dst.resolve() == src.resolve():
            return FileResult(source=str(src), status="failed", reason="output would replace the input")
        if dst.exists() and not req.overwrite:
            return FileResult(source=str(src), output=str(dst), status="skipped", reason="output exists")
        return deblur_file(src, dst, method, opts, fmt=fmt, bit_depth=depth, photo=photo, progress=on_tile)
    except DefocusError as err:
        return FileResult(source=str(src), status="failed", reason=str(err))
    except MemoryError:
        return FileResult(source=str(src), status="failed", reason="out of memory; try a smaller --tile")
