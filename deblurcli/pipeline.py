"""One photo through the whole data path: decode -> colour -> tensor -> tiled run -> back -> encode.

Each step is a call into its own module; this file only decides the order and what travels between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from deblurcli import __version__
from deblurcli.engine.tiling import count_tiles, run_tiled
from deblurcli.errors import UsageError
from deblurcli.io import color
from deblurcli.io.decode import DEFAULT_MAX_PIXELS, decode
from deblurcli.io.encode import EXTENSIONS, default_format, encode
from deblurcli.io.maps import write_map
from deblurcli.io.photo import Photo
from deblurcli.methods.loader import LoadedMethod
from deblurcli.weighting import WEIGHT_MAP, WEIGHT_UNIT, Mask, correction_weight

TileProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class DeblurOptions:
    """What the user chose; ``None`` means the method's or the input format's default."""

    tile: int | None = None
    overlap: int | None = None
    strength: float = 1.0
    fmt: str | None = None
    bit_depth: int | None = None
    quality: int = 95
    maps: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: ``remove`` corrects the whole frame (what the papers measure, and so what ``defocus bench`` runs);
    #: ``keep`` leaves blur above ``bokeh_threshold`` px alone. The CLI and ``deblurcli.deblur`` default to keep.
    bokeh: str = "remove"
    bokeh_threshold: float | None = None
    mask: Mask | None = None


@dataclass
class FileResult:
    """What happened to one input, for the summary table and ``--json``."""

    source: str
    output: str | None = None
    status: str = "ok"  # ok | skipped | failed
    reason: str | None = None
    seconds: float = 0.0
    width: int = 0
    height: int = 0
    tiles: int = 0
    maps: list[str] = field(default_factory=list)
    precision: str | None = None  # the one actually used (bf16 may have fallen back to float32)


def output_path(src: Path, out_dir: Path | None, fmt: str) -> Path:
    """``<stem>_deblurred.<ext>`` beside the input, or in ``out_dir``."""
    folder = out_dir if out_dir is not None else src.parent
    return folder / f"{src.stem}_deblurred{EXTENSIONS[fmt]}"


def to_model_input(photo: Photo) -> torch.Tensor:
    """Decoded pixels as the (1, 3, H, W) sRGB [0, 1] tensor the published models were trained on.

    RAW arrives linear and is sRGB-encoded here; float TIFFs are clipped because no model saw values above 1;
    grey photos are replicated to three channels and reduced back after the run.
    """
    pixels = np.clip(photo.pixels, 0.0, 1.0)
    if photo.transfer == "linear":
        pixels = color.linear_to_srgb(pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float()


def from_model_output(
    image: torch.Tensor,
    model_input: torch.Tensor,
    photo: Photo,
    strength: float,
    weight: np.ndarray | None = None,
) -> Photo:
    """Undo ``to_model_input``: blend by ``strength`` times the per-pixel ``weight``, clip, back to grey / linear
    as the source was. Grey is reduced before the blend, so where the blend factor is 0 an sRGB input comes
    back bit for bit."""
    if photo.pixels.shape[2] == 1:
        image, model_input = image.mean(dim=1, keepdim=True), model_input[:, :1]
    if weight is not None:
        out = model_input + strength * torch.from_numpy(weight)[None, None] * (image - model_input)
    else:
        out = model_input + strength * (image - model_input) if strength < 1.0 else image
    pixels = out[0].clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    if photo.transfer == "linear":
        pixels = color.srgb_to_linear(pixels)
    return replace(photo, pixels=np.ascontiguousarray(pixels, dtype=np.float32))


def deblur_photo(
    photo: Photo,
    method: LoadedMethod,
    opts: DeblurOptions,
    *,
    progress: TileProgress | None = None,
) -> tuple[Photo, dict[str, np.ndarray], dict[str, str]]:
    """Deblur a decoded photo; returns the result photo, the method's maps and the provenance record."""
    spec = method.spec
    tile = opts.tile if opts.tile is not None else spec.default_tile
    overlap = opts.overlap if opts.overlap is not None else spec.receptive_field
    x = to_model_input(photo)

    def weigh(maps: dict[str, np.ndarray]) -> tuple[np.ndarray | None, dict[str, str]]:
        return correction_weight(
            x, maps, mode=opts.bokeh, threshold=opts.bokeh_threshold, mask=opts.mask, max_pixels=opts.max_pixels
        )

    early = opts.mask is not None or opts.bokeh != "keep"  # needs no map; bad masks and modes fail before the run
    weight, bokeh_record = weigh({}) if early else (None, {})
    outputs = run_tiled(
        method.tile_fn(),
        x,
        tile=tile,
        overlap=overlap,
        multiple_of=spec.multiple_of,
        receptive_field=min(spec.receptive_field, overlap),
        progress=progress,
    )
    image = outputs.pop("image")
    maps = {name: value[0, 0].numpy() for name, value in outputs.items()}
    if not early:
        weight, bokeh_record = weigh(maps)
    result = from_model_output(image, x, photo, opts.strength, weight)
    if weight is not None:
        maps[WEIGHT_MAP] = weight
    provenance = {
        "software": f"defocus {__version__}",
        **method.provenance(),
        "tile": str(tile),
        "overlap": str(overlap),
        "strength": f"{opts.strength:g}",
        **bokeh_record,
    }
    return result, maps, provenance


#: output formats that hold 8 bits per sample only
EIGHT_BIT_FORMATS = ("jpeg", "webp", "avif", "heif")


def resolve_format(photo: Photo, opts: DeblurOptions) -> tuple[str, int]:
    """Output format and bit depth: the input's family unless overridden, checked for consistency."""
    fmt, depth = default_format(photo)
    if opts.fmt is not None:
        fmt = opts.fmt
        if opts.bit_depth is None:
            depth = 8 if fmt in EIGHT_BIT_FORMATS else min(depth, 16) if fmt == "png" else depth
    if opts.bit_depth is not None:
        depth = opts.bit_depth
    if fmt in EIGHT_BIT_FORMATS and depth != 8:
        raise UsageError(f"{fmt.upper()} output is 8-bit only; use --format tiff or png for 16-bit output")
    if fmt == "png" and depth not in (8, 16):
        raise UsageError("PNG output is 8- or 16-bit")
    return fmt, depth


def deblur_file(
    src: Path,
    dst: Path,
    method: LoadedMethod,
    opts: DeblurOptions,
    *,
    fmt: str,
    bit_depth: int,
    photo: Photo | None = None,
    progress: TileProgress | None = None,
) -> FileResult:
    """Decode (unless given), deblur and write one photo atomically, plus its maps when asked."""
    started = time.perf_counter()
    if photo is None:
        photo = decode(src, max_pixels=opts.max_pixels)
    height, width = photo.pixels.shape[:2]
    tile = opts.tile if opts.tile is not None else method.spec.default_tile
    overlap = opts.overlap if opts.overlap is not None else method.spec.receptive_field
    tiles = count_tiles(height, width, tile=tile, overlap=overlap, multiple_of=method.spec.multiple_of)
    result, maps, provenance = deblur_photo(photo, method, opts, progress=progress)
    encode(result, dst, fmt=fmt, bit_depth=bit_depth, quality=opts.quality, provenance=provenance)
    written: list[str] = []
    if opts.maps:
        for name, values in maps.items():
            base = dst.with_name(f"{dst.stem}_{name}")
            unit = WEIGHT_UNIT if name == WEIGHT_MAP else method.spec.map_units.get(name, "")
            write_map(values, base.with_suffix(".tif"), base.with_suffix(".png"), unit=unit, provenance=provenance)
            written += [str(base.with_suffix(".tif")), str(base.with_suffix(".png"))]
    return FileResult(
        source=str(src),
        output=str(dst),
        seconds=round(time.perf_counter() - started, 3),
        width=width,
        height=height,
        tiles=tiles,
        maps=written,
        precision=provenance["precision"],
    )
