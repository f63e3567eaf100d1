"""Tiled inference as a pure function: any photo size on any memory budget, without visible seams.

How it works, and why:

* The photo is partitioned into *cores* that tile it exactly. Each core is run with ``overlap`` pixels of
  context on every side that has image there, so a network whose receptive field ``r`` is at most ``overlap``
  sees the same input around every core pixel as it would on the full frame.
* Neighbouring results are cross-faded with a raised-cosine window centred on the boundary between two
  cores. The band's half-width is ``overlap - receptive_field`` (at most ``overlap // 2``), so the fade only
  ever mixes pixels that both tiles computed with full context: for ``overlap >= r`` the tiled result equals
  the full-frame result up to float rounding, and for deep networks whose true receptive field exceeds the
  overlap the fade hides the small differences.
* Window weights depend only on a core's own boundaries, so any partition into cores gives weights that sum
  to one (the raised-cosine ramps on either side of a boundary are complementary, and a core split into a
  sub-grid keeps its outer ramps). No weight sum is stored or divided by: that saves 4 bytes per photo pixel
  per output, a tenth of the pipeline's whole-photo memory. It also makes the out-of-memory fallback simple:
  the failing core and every core still queued are split for a halved tile, and the run continues where
  it stopped, keeping what is done.
* Core counts are chosen first and sizes second (balanced tiles): a 1200 px side with a 1024 px tile gives two
  600 px cores, never 1024 + 176.
* The grid spends as little area as the tile allows. A tile at the photo border needs context on its inner
  side only, so its core may be ``overlap`` wider than an inner one; the fewest tiles per axis that fit then
  follow from ``n * (tile - 2 * overlap) + 2 * overlap >= length`` (one tile when ``length <= tile``), and the
  axis is split so that all tiles, context included, have the same size. Along an axis the tiles then cost
  ``length + 2 * overlap * (n - 1)`` pixels, the least any grid of at most ``tile`` px can spend, so the area
  fed to the method (``tiling_overhead``) is minimal for the given largest tile.
* Tile origins sit on multiples of ``multiple_of``, so a network that downsamples sees the same sampling grid
  as on the full frame, and its lower-resolution maps (IFAN's 1/8 disparity) land on exact map pixels. Only
  tiles at the bottom/right border are padded (reflect) to the size rule, and the padding is cropped away.
  Shifting those tiles inward instead would save under ``multiple_of`` px per axis but put them off the
  sampling grid, so they would no longer equal the full-frame run (which is padded the same way).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deblurcli.errors import UsageError

TileFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
Progress = Callable[[int, int], None]


class TileTooSmallError(UsageError):
    """The tile cannot shrink further after running out of memory (or was given too small)."""


@dataclass(frozen=True)
class Core:
    """A rectangle of the photo whose result comes from one tile: rows [y0, y1), columns [x0, x1)."""

    y0: int
    y1: int
    x0: int
    x1: int


def split_axis(length: int, core_max: int, multiple_of: int, overlap: int = 0) -> list[tuple[int, int]]:
    """Partition ``[0, length)`` into cores whose tiles (core plus ``overlap`` of context on each inner side)
    are at most ``core_max + 2 * overlap`` long, with the fewest tiles and all tiles of one size.

    The count comes first and the sizes follow, so no thin last interval appears; border cores are ``overlap``
    wider than inner ones because their tiles have context on one side only (module docstring). Boundaries are
    multiples of ``multiple_of`` (the last one is ``length`` itself); ``overlap`` is rounded up to it.
    """
    m = max(1, multiple_of)
    units = math.ceil(length / m)
    ctx = math.ceil(max(0, overlap) / m)
    tile_units = max(1, core_max // m) + 2 * ctx
    if units <= tile_units:
        return [(0, length)]
    count = math.ceil((units - 2 * ctx) / (tile_units - 2 * ctx))
    # Lay the tiles end to end ("unrolled": each inner boundary's 2 * ctx of shared context counted twice),
    # cut that length into ``count`` near-equal tiles, and map each cut back to its core boundary.
    unrolled = units + 2 * ctx * (count - 1)
    cuts = [i * unrolled // count - 2 * ctx * i + ctx for i in range(1, count)]
    bounds = [0, *(min(length, c * m) for c in cuts), length]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def plan_cores(height: int, width: int, *, core_max: int, multiple_of: int, overlap: int = 0) -> list[Core]:
    """Row-major cores covering a ``height`` x ``width`` region (``split_axis`` on each axis)."""
    rows = split_axis(height, core_max, multiple_of, overlap)
    cols = split_axis(width, core_max, multiple_of, overlap)
    return [Core(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols]


def tile_box(core: Core, height: int, width: int, overlap: int) -> tuple[int, int, int, int]:
    """The rows and columns ``(y0, y1, x0, x1)`` fed to the method for ``core``: its context, clipped."""
    return (
        max(0, core.y0 - overlap),
        min(height, core.y1 + overlap),
        max(0, core.x0 - overlap),
        min(width, core.x1 + overlap),
    )


def _split_core(core: Core, *, core_max: int, multiple_of: int) -> list[Core]:
    """Re-partition one core for a smaller tile, keeping its outer boundaries."""
    sub = plan_cores(core.y1 - core.y0, core.x1 - core.x0, core_max=core_max, multiple_of=multiple_of)
    return [Core(core.y0 + c.y0, core.y0 + c.y1, core.x0 + c.x0, core.x0 + c.x1) for c in sub]


def _ramp_weights(n: int, start: int, lo: float, hi: float, full: int, band: float) -> torch.Tensor:
    """1-D window over output positions ``start .. start + n`` (in output pixels) for a core [lo, hi).

    ``step(pos - lo) - step(pos - hi)``, where ``step`` rises from 0 to 1 as a raised cosine across a band of
    half-width ``band`` centred on each inner core boundary (boundaries at 0 and ``full`` are photo borders and
    get no fade). Written as a difference of steps, the windows of neighbouring cores telescope to exactly one
    however narrow the cores are, so the blend needs no stored weight sum (module docstring).
    """
    pos = torch.arange(start, start + n, dtype=torch.float64) + 0.5

    def step(edge: float) -> torch.Tensor:
        if edge <= 0:
            return torch.ones_like(pos)
        if edge >= full:
            return torch.zeros_like(pos)
        if band <= 0:
            return (pos >= edge).to(torch.float64)
        return 0.5 + 0.5 * torch.sin(0.5 * math.pi * ((pos - edge) / band).clamp(-1.0, 1.0))

    return (step(lo) - step(hi)).to(torch.float32)


def _pad_to_multiple(x: torch.Tensor, multiple_of: int) -> torch.Tensor:
    """Pad bottom/right up to the size rule: reflect where the tile is large enough, replicate otherwise."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple_of, (-w) % multiple_of
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS OOM and for CPU allocation failures, which torch reports as RuntimeError."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in msg or "can't allocate memory" in msg or "defaultcpuallocator" in msg
    )


def run_tiled(
    fn: TileFn,
    image: torch.Tensor,
    *,
    tile: int | None,
    overlap: int,
    multiple_of: int = 1,
    receptive_field: int = 0,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``fn`` over ``image`` in overlapping tiles and assemble every output it returns.

    Args:
        fn: maps a (1, C, h, w) tile, h and w multiples of ``multiple_of``, to a dict of (1, C', h/s, w/s)
            tensors, one integer scale ``s`` per output dividing ``multiple_of``. Called on CPU tensors; it
            moves them to its device itself.
        image: (1, C, H, W) float tensor, any H and W.
        tile: edge of the largest tile fed to ``fn`` (context included); ``None`` runs the whole frame.
        overlap: context in pixels on each inner side of a tile (rounded up to ``multiple_of``).
        multiple_of: the network's size rule.
        receptive_field: how far the network looks in practice; widens the seam-free zone (module docstring).
        progress: called with (tiles done, tiles planned) after each tile; the total grows after an OOM split.

    Returns:
        Every output of ``fn`` at full photo size (maps at H/s, W/s rounded up), float32 on the CPU.

    Raises:
        TileTooSmallError: ``tile`` leaves no room beside the context, or memory ran out at the smallest tile.
    """
    _, _, height, width = image.shape
    m = max(1, multiple_of)
    rows, cols, overlap = _plan(height, width, tile, overlap, m)
    queue = [Core(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols]
    if tile is None or tile >= max(height, width) + 2 * overlap:
        tile = (math.ceil(max(height, width) / m) + 2 * overlap // m) * m
    tile = tile // m * m
    band = float(max(0, min(overlap - receptive_field, overlap // 2)))

    outputs: dict[str, torch.Tensor] = {}
    scales: dict[str, int] = {}
    done = 0
    while queue:
        core = queue[0]
        ty0, ty1, tx0, tx1 = tile_box(core, height, width, overlap)
        # a contiguous copy: ``image`` may be a channel-last view of the caller's decoded photo, which a method
        # writing its input must not reach, and methods expect the plain layout
        patch = _pad_to_multiple(image[:, :, ty0:ty1, tx0:tx1], m).contiguous()
        try:
            result = fn(patch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            del exc
            tile = tile // 2 // m * m
            if tile - 2 * overlap < m:
                raise TileTooSmallError(
                    "out of memory even at the smallest tile; lower --overlap, use --precision fp16 or the CPU"
                ) from None
            core_max = tile - 2 * overlap
            queue = [c for q in queue for c in _split_core(q, core_max=core_max, multiple_of=m)]
            if progress is not None:
                progress(done, done + len(queue))
            continue
        queue.pop(0)
        for name, value in result.items():
            s = scales.setdefault(name, patch.shape[-1] // value.shape[-1])
            if value.shape[-1] * s != patch.shape[-1] or value.shape[-2] * s != patch.shape[-2]:
                raise ValueError(f"output {name!r} of shape {tuple(value.shape)} is not 1/{s} of the tile")
            if name not in outputs:
                shape = (1, value.shape[1], math.ceil(height / s), math.ceil(width / s))
                outputs[name] = torch.zeros(shape, dtype=torch.float32)
            out = outputs[name]
            oy0, ox0 = ty0 // s, tx0 // s
            oh, ow = min(value.shape[-2], out.shape[-2] - oy0), min(value.shape[-1], out.shape[-1] - ox0)
            wy = _ramp_weights(oh, oy0, core.y0 / s, core.y1 / s, height / s, band / s)
            wx = _ramp_weights(ow, ox0, core.x0 / s, core.x1 / s, width / s, band / s)
            w2 = (wy[:, None] * wx[None, :])[None, None]
            piece = value[:, :, :oh, :ow].detach().to("cpu", torch.float32)
            out[:, :, oy0 : oy0 + oh, ox0 : ox0 + ow].add_(piece * w2)
        done += 1
        if progress is not None:
            progress(done, done + len(queue))
    return outputs


@dataclass(frozen=True)
class TilingOverhead:
    """What a tiled run costs over a whole-frame one, before any OOM split.

    Attributes:
        tiles: tiles planned.
        area_ratio: sum of the tile areas fed to the method (context and size-rule padding included) over the
            photo area; 1.0 for a whole-frame run of a photo that meets the size rule. Compute time is about
            proportional to it.
        largest: edge of the largest tile, the one that sets the memory peak.
    """

    tiles: int
    area_ratio: float
    largest: int


Span = tuple[int, int]


def _plan(
    height: int, width: int, tile: int | None, overlap: int, multiple_of: int
) -> tuple[list[Span], list[Span], int]:
    """Row and column core spans ``run_tiled`` starts from (its cores are their product) and the overlap it
    uses (rounded up to the size rule)."""
    m = max(1, multiple_of)
    overlap = math.ceil(max(0, overlap) / m) * m
    if tile is None or tile >= max(height, width) + 2 * overlap:
        return [(0, height)], [(0, width)], overlap
    core_max = tile // m * m - 2 * overlap
    if core_max < m:
        raise TileTooSmallError(f"tile {tile} px leaves no room beside {overlap} px of overlap on each side")
    return split_axis(height, core_max, m, overlap), split_axis(width, core_max, m, overlap), overlap


def tiling_overhead(height: int, width: int, *, tile: int | None, overlap: int, multiple_of: int = 1) -> TilingOverhead:
    """Tile count and area overhead of ``run_tiled``'s plan for a ``height`` x ``width`` photo (pure, cheap).

    Raises:
        TileTooSmallError: ``tile`` leaves no room beside the context.
    """
    m = max(1, multiple_of)
    rows, cols, overlap = _plan(height, width, tile, overlap, m)

    def extents(spans: list[Span], length: int) -> list[int]:
        """Each tile's length along one axis: context clipped at the photo, padded to the size rule."""
        return [math.ceil((min(length, b + overlap) - max(0, a - overlap)) / m) * m for a, b in spans]

    heights, widths = extents(rows, height), extents(cols, width)
    return TilingOverhead(
        tiles=len(rows) * len(cols),
        area_ratio=sum(heights) * sum(widths) / (height * width),
        largest=max(*heights, *widths),
    )


def count_tiles(height: int, width: int, *, tile: int | None, overlap: int, multiple_of: int = 1) -> int:
    """How many tiles ``run_tiled`` plans before any OOM split (for progress bars and logs)."""
    rows, cols, _ = _plan(height, width, tile, overlap, multiple_of)
    return len(rows) * len(cols)
