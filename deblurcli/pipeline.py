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
from deblurcli.engine.bokeh import resize as resize_map
from deblurcli.engine.device import choose_tile
from deblurcli.engine.tiling import count_tiles, run_tiled
from deblurcli.errors import UsageError
from deblurcli.io import color
from deblurcli.io.decode import DEFAULT_MAX_PIXELS, decode
from deblurcli.io.encode import default_format, encode
from deblurcli.io.maps import write_map
from deblurcli.io.photo import Photo
from deblurcli.methods.loader import LoadedMethod
from deblurcli.methods.spec import MethodSpec
from deblurcli.naming import map_paths
from deblurcli.weighting import MAP_UNITS, RADIUS_MAP, WEIGHT_MAP, Mask, correction_weight

TileProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class DeblurOptions:
    """What the user chose; ``None`` means the method's or the input format's default."""

    tile: int | None = None
    #: ``--tile auto``: bytes the run may plan for; the tile is then chosen per photo (``choose_tile``)
    tile_budget: int | None = None
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


def map_names(spec: MethodSpec, *, bokeh: str, masked: bool) -> tuple[str, ...]:
    """The maps ``deblur_file`` writes with ``maps=True``, known before the run so that a batch can check their
    names: the method's own, the correction weight whenever one is applied (a mask, or ``bokeh="keep"``), and
    with ``keep`` the blur radius the weight came from."""
    if masked:
        return (*spec.maps, WEIGHT_MAP)
    return (*spec.maps, WEIGHT_MAP, RADIUS_MAP) if bokeh != "remove" else spec.maps


def to_model_input(photo: Photo) -> torch.Tensor:
    """Decoded pixels as the (1, 3, H, W) sRGB [0, 1] tensor the published models were trained on.

    RAW arrives linear and is sRGB-encoded here; float TIFFs are clipped because no model saw values above 1;
    grey photos are replicated to three channels and reduced back after the run.

    An sRGB colour photo already in [0, 1] (every integer source) is not copied: the tensor is a channel-first
    view of ``photo.pixels``, which is only read. On a 24 MP photo a copy is 288 MB of the run's peak.
    """
    pixels = photo.pixels
    if pixels.size and not (pixels.min() >= 0.0 and pixels.max() <= 1.0):
        pixels = np.clip(pixels, 0.0, 1.0)
    if photo.transfer == "linear":
        pixels = color.linear_to_srgb(pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return torch.from_numpy(pixels.astype(np.float32, copy=False)).permute(2, 0, 1)[None]


def from_model_output(
    image: torch.Tensor,
    model_input: torch.Tensor,
    photo: Photo,
    strength: float,
    weight: np.ndarray | None = None,
) -> Photo:
    """Undo ``to_model_input``: blend by ``strength`` times the per-pixel ``weight``, clip, back to grey / linear
    as the source was. Grey is reduced before the blend, so where the blend factor is 0 an sRGB input comes
    back bit for bit. ``image`` is consumed (blended and clipped in place): whole-photo temporaries here set
    the run's peak memory on big photos (a 24 MP photo would otherwise pass 2 GB)."""
    if photo.pixels.shape[2] == 1:
        image, model_input = image.mean(dim=1, keepdim=True), model_input[:, :1]
    if weight is not None:
        out = image.sub_(model_input).mul_(torch.from_numpy(weight)[None, None]).mul_(strength).add_(model_input)
    else:
        out = image.sub_(model_input).mul_(strength).add_(model_input) if strength < 1.0 else image
    pixels = out[0].clamp_(0.0, 1.0).permute(1, 2, 0).numpy()
    if photo.transfer == "linear":
        pixels = color.srgb_to_linear(pixels)
    return replace(photo, pixels=np.ascontiguousarray(pixels, dtype=np.float32))


def tiling_for(method: LoadedMethod, opts: DeblurOptions, height: int, width: int) -> tuple[int, int]:
    """Tile edge and overlap for one photo: as given, ``--tile auto``'s pick for this size, or the method's."""
    spec = method.spec
    overlap = opts.overlap if opts.overlap is not None else spec.receptive_field
    if opts.tile is not None:
        return opts.tile, overlap
    if opts.tile_budget is None:
        return spec.default_tile, overlap
    tile = choose_tile(
        height,
        width,
        overlap=overlap,
        multiple_of=spec.multiple_of,
        bytes_per_pixel=spec.bytes_per_pixel,
        tile_speed=spec.tile_speed,
        budget_bytes=opts.tile_budget,
        half=method.dtype in (torch.float16, torch.bfloat16),
        shares_host_memory=method.device.type != "cuda",
    )
    return tile, overlap


def deblur_photo(
    photo: Photo,
    method: LoadedMethod,
    opts: DeblurOptions,
    *,
    progress: TileProgress | None = None,
    tiling: tuple[int, int] | None = None,
) -> tuple[Photo, dict[str, np.ndarray], dict[str, str]]:
    """Deblur a decoded photo; returns the result photo, the method's maps and the provenance record.

    ``tiling`` is the (tile, overlap) plan when the caller has made it already (``tiling_for``)."""
    spec = method.spec
    tile, overlap = tiling if tiling is not None else tiling_for(method, opts, *photo.pixels.shape[:2])
    x = to_model_input(photo)

    def weigh(maps: dict[str, np.ndarray]) -> tuple[np.ndarray | None, dict[str, str], np.ndarray | None]:
        return correction_weight(
            x, maps, mode=opts.bokeh, threshold=opts.bokeh_threshold, mask=opts.mask, max_pixels=opts.max_pixels
        )

    early = opts.mask is not None or opts.bokeh != "keep"  # needs no map; bad masks and modes fail before the run
    weight, bokeh_record, radius = weigh({}) if early else (None, {}, None)
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
        weight, bokeh_record, radius = weigh(maps)
    result = from_model_output(image, x, photo, opts.strength, weight)
    if weight is not None:
        maps[WEIGHT_MAP] = weight
    if radius is not None and opts.maps:  # resized only when it is written: 4 B/px more at full size
        maps[RADIUS_MAP] = resize_map(radius, *x.shape[-2:])
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


@dataclass
class Deblurred:
    """One photo between its run and its write. ``defocus deblur`` hands it to a writer thread so that the
    next photo runs while this one is encoded; ``deblur_file`` writes it at once. Either way the same two
    functions make the bytes."""

    photo: Photo
    maps: dict[str, np.ndarray]
    provenance: dict[str, str]
    width: int
    height: int
    tiles: int
    seconds: float


def run_file(
    photo: Photo, method: LoadedMethod, opts: DeblurOptions, *, progress: TileProgress | None = None
) -> Deblurred:
    """Deblur a decoded photo and keep what its write needs: the first half of :func:`deblur_file`. Maps are
    kept only when they are to be written, since a result may wait for the writer while the next photo runs."""
    started = time.perf_counter()
    height, width = photo.pixels.shape[:2]
    tile, overlap = tiling_for(method, opts, height, width)
    tiles = count_tiles(height, width, tile=tile, overlap=overlap, multiple_of=method.spec.multiple_of)
    result, maps, provenance = deblur_photo(photo, method, opts, progress=progress, tiling=(tile, overlap))
    seconds = time.perf_counter() - started
    return Deblurred(result, maps if opts.maps else {}, provenance, width, height, tiles, seconds)


def write_file(
    done: Deblurred, src: Path, dst: Path, method: LoadedMethod, opts: DeblurOptions, *, fmt: str, bit_depth: int
) -> FileResult:
    """Write a result atomically, plus its maps when asked: the second half of :func:`deblur_file`.
    ``seconds`` counts the run and the write, not the decode."""
    started = time.perf_counter()
    encode(done.photo, dst, fmt=fmt, bit_depth=bit_depth, quality=opts.quality, provenance=done.provenance)
    written: list[str] = []
    if opts.maps:
        for name, values in done.maps.items():
            tif, png = map_paths(dst, [name])
            unit = MAP_UNITS.get(name) or method.spec.map_units.get(name, "")
            write_map(values, tif, png, unit=unit, provenance=done.provenance)
            written += [str(tif), str(png)]
    return FileResult(
        source=str(src),
        output=str(dst),
        seconds=round(done.seconds + time.perf_counter() - started, 3),
        width=done.width,
        height=done.height,
        tiles=done.tiles,
        maps=written,
        precision=done.provenance["precision"],
    )


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
    if photo is None:
        photo = decode(src, max_pixels=opts.max_pixels)
    done = run_file(photo, method, opts, progress=progress)
    return write_file(done, src, dst, method, opts, fmt=fmt, bit_depth=bit_depth)
