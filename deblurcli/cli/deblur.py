"""``defocus deblur``: parse options, run the pipeline per photo, report. No image logic lives here."""

from __future__ import annotations

import json
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from deblurcli.cli.common import fail, stderr_console
from deblurcli.errors import DefocusError, UsageError
from deblurcli.methods.names import DEFAULT_METHOD, METHOD_NAMES
from deblurcli.naming import DEFAULT_SUFFIX, DEFAULT_TEMPLATE, TEMPLATE_FIELDS

Method = Enum("Method", {n: n for n in METHOD_NAMES}, type=str)  # type: ignore[misc]


class Format(StrEnum):
    jpeg = "jpeg"
    png = "png"
    tiff = "tiff"
    webp = "webp"
    avif = "avif"
    heif = "heif"


class Bokeh(StrEnum):
    keep = "keep"
    remove = "remove"


class BitDepth(StrEnum):
    b8 = "8"
    b16 = "16"
    b32 = "32"


class Precision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


_FIELDS = ", ".join("{" + k + "}" for k in TEMPLATE_FIELDS)


def _tile(value: str | None) -> str | None:
    if value is None or value == "auto" or (value.isdigit() and int(value) >= 16):
        return value
    raise typer.BadParameter("use 'auto' or a tile edge in pixels (at least 16)")


def deblur(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Photos, folders or glob patterns; '-' reads one photo from stdin.",
            show_default=False,
        ),
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            "--out",
            metavar="DIR",
            help="Write results here, keeping the inputs' folder tree; '-' writes the one result to stdout "
            "(default: beside each input).",
        ),
    ] = None,
    method: Annotated[Method, typer.Option("--method", "-m", help="Deblurring method.")] = Method[DEFAULT_METHOD],
    weights: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Use this checkpoint file instead of the cached one (any official format)."),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also take hidden files and folders in scans.")] = False,
    suffix: Annotated[str, typer.Option(help="Text added to each result's name.")] = DEFAULT_SUFFIX,
    name: Annotated[
        str, typer.Option("--name", metavar="TEMPLATE", help=f"Result file name; fields {_FIELDS}.")
    ] = DEFAULT_TEMPLATE,
    strength: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Blend with the input: 0 = unchanged, 1 = fully deblurred.")
    ] = 1.0,
    bokeh: Annotated[
        Bokeh,
        typer.Option(help="keep: correct blur up to --bokeh-threshold, leave larger (intended) blur; remove: all."),
    ] = Bokeh.keep,
    bokeh_threshold: Annotated[
        float | None,
        typer.Option(min=0.1, metavar="PX", help="Blur radius kept from (default: 3 px, more above 2000 px)."),
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, metavar="FILE", help="White = correct, black = keep; overrides the map."
        ),
    ] = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", help="Output format (default: the input's family; RAW -> TIFF).")
    ] = None,
    bit_depth: Annotated[
        BitDepth | None, typer.Option("--bit-depth", help="Bits per sample; 32 = float TIFF (default: as the input).")
    ] = None,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality.")] = 95,
    maps: Annotated[
        bool,
        typer.Option(
            "--maps",
            help="Also write the method's maps, and the bokeh weight and the blur radius it came from "
            "(16-bit TIFF + colour PNG preview).",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs (inputs are never replaced).")] = False,
    tile: Annotated[
        str | None,
        typer.Option(
            callback=_tile,
            metavar="INTEGER|auto",
            help="Tile edge in px, or 'auto' from free memory (default: per method).",
        ),
    ] = None,
    overlap: Annotated[int | None, typer.Option(min=0, help="Tile context in px (default: per method).")] = None,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    devices: Annotated[
        str | None,
        typer.Option(
            metavar="LIST",
            help="Share the photos among these devices, one worker each, e.g. cuda:0,cuda:1 (same results).",
        ),
    ] = None,
    prefetch: Annotated[
        int,
        typer.Option(
            min=0,
            max=8,
            help="Photos decoded ahead while one runs, written behind on another thread; each waiting photo "
            "holds about 12 MB per megapixel (0: one step at a time).",
        ),
    ] = 1,
    precision: Annotated[
        Precision, typer.Option(help="Arithmetic precision (methods that run in fp32 only ignore it).")
    ] = Precision.fp32,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: all cores).")] = None,
    max_megapixels: Annotated[
        float, typer.Option(min=1e-6, help="Refuse photos larger than this (each MP needs about 65 MB of memory).")
    ] = 120.0,  # deblurcli.io.decode.DEFAULT_MAX_PIXELS, not imported here to keep --help light
    offline: Annotated[bool, typer.Option(help="Never download; fail if weights are not cached.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Weights cache (default: $DEFOCUS_CACHE or per user).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr (failures are still listed).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list each skipped file and why.")] = False,
    random_weights_for_testing: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Deblur photos: JPEG, PNG, TIFF, HEIC, WebP, AVIF and camera RAW, written as <stem>_deblurred.<ext>."""
    from deblurcli.cli.deblur_run import STDOUT, BatchRequest, run_batch
    from deblurcli.engine.shard import parse_devices

    depth = int(bit_depth.value) if bit_depth is not None else None
    if fmt in (Format.jpeg, Format.webp, Format.avif, Format.heif) and depth not in (None, 8):
        fail(UsageError(f"{fmt.value.upper()} output is 8-bit only; use --format tiff or png for 16-bit output"))
    if fmt is Format.png and depth == 32:
        fail(UsageError("PNG holds 8 or 16 bits; use --format tiff for 32-bit float output"))
    if as_json and output_dir == STDOUT:
        fail(UsageError("--json and -o - both want standard output; choose one"))
    try:
        device_list = parse_devices(devices) if devices is not None else ()
    except DefocusError as err:
        fail(err)
    request = BatchRequest(
        inputs=inputs,
        output_dir=output_dir,
        method=method.value,
        weights=weights,
        recursive=recursive,
        strength=strength,
        bokeh=bokeh.value,
        bokeh_threshold=bokeh_threshold,
        mask=mask,
        fmt=fmt.value if fmt else None,
        bit_depth=depth,
        quality=quality,
        maps=maps,
        overwrite=overwrite,
        tile=tile,
        overlap=overlap,
        device=device,
        precision=precision.value,
        threads=threads,
        max_pixels=int(max_megapixels * 1_000_000),
        offline=offline,
        cache_dir=cache_dir,
        quiet=quiet,
        random_weights_for_testing=random_weights_for_testing,
        suffix=suffix,
        name=name,
        hidden=hidden,
        verbose=verbose,
        devices=device_list,
        prefetch=prefetch,
    )
    try:
        results, code = run_batch(request, stderr_console())
    except DefocusError as err:
        fail(err)
    if as_json:
        summary: dict[str, Any] = {
            "method": request.method,
            "files": [r.__dict__ for r in results],
            "ok": sum(r.status == "ok" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "failed": sum(r.status == "failed" for r in results),
            "exit_code": code,
        }
        typer.echo(json.dumps(summary, indent=2))
    raise typer.Exit(code)
