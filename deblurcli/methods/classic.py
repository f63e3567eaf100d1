"""The classical method: an edge-based defocus map and a spatially varying sparse-prior deconvolution, no weights.

It is the floor every learned method is measured against and the default that works offline. Two stages:

1. **Defocus map** (after Zhuo & Sim 2011, gradient ratio). Re-blurring an edge with a known Gaussian
   ``SIGMA0`` lowers its peak gradient by a ratio ``R`` that falls as the edge's own blur grows. Zhuo & Sim
   assume a Gaussian edge (``sigma = sigma0 / sqrt(R^2 - 1)``); lens blur is a disc, whose flat-topped edge
   profile re-blurs very differently, so we invert a table of ``R`` measured on ideal disc-blurred steps
   with the same discrete operators (no sigma-to-radius rule of thumb such as ``r = 2 sigma`` is needed).
   The sparse estimates at edge pixels are spread over the tile by a robust, confidence-weighted
   normalized convolution and snapped to the photo's edges by a guided filter, all within
   ``receptive_field`` pixels so a tile's map matches the full frame's.
2. **Deconvolution** (``methods.deconvolve``): a bank of disc PSFs under a sparse-gradient prior in linear
   light, blended per pixel by the map, with guards against halos, JPEG ripples and clipped highlights. The
   Wiener filter used before rang 51/255 deep next to a step edge and lost SSIM from a 4 px radius on; see
   ``benchmarks/classic_astronaut.py``.

The map is clamped to ``[0, MAX_RADIUS]`` px and reported as ``"defocus"`` (disc blur radius in pixels, full
resolution). It errs low for wide blur (crowded edges interfere), which is the safe side: deconvolving with
too large a disc rings, too small a disc merely under-sharpens.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.engine.color import linear_to_srgb, srgb_to_linear
from deblurcli.methods.deconvolve import CLIP_LEVEL, MAX_RADIUS, deconvolve_bank, disc_kernel
from deblurcli.methods.defocus_map import gaussian, gradients, guided, interp, ridges
from deblurcli.methods.spec import MethodSpec, Outputs

#: Gaussian re-blur of the gradient-ratio estimator; large enough that R stays measurable for wide blur
SIGMA0 = 3.0
#: minimum peak gradient (linear luminance per px) for an edge to vote; below it noise dominates the ratio
EDGE_THRESHOLD = 0.004
#: Gaussian widths (px) and weights of the multi-scale spreading of edge estimates
SPREAD_SIGMAS: tuple[float, ...] = (3.0, 8.0, 16.0)
SPREAD_WEIGHTS: tuple[float, ...] = (1.0, 0.3, 0.1)
#: edge estimates this far (px) from the first dense map lose most of their vote in the second pass
OUTLIER_PX = 1.0
#: guided-filter window radius (px) and regulariser (grey sRGB^2) for the edge-aware final map
GUIDE_RADIUS = 8
GUIDE_EPS = 1e-3
_LUMA = (0.2126, 0.7152, 0.0722)


@functools.lru_cache(maxsize=1)
def _ratio_table() -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ratio R(r) of an ideal step edge blurred by our disc of radius r, for r on a fine grid.

    A disc's edge profile is far from Gaussian (re-blurring barely lowers its flat-topped peak), so the
    closed form ``sigma0 / sqrt(R^2 - 1)`` would misjudge disc blur by a factor of two; instead we measure R
    with the very same discrete operators the estimator uses and invert the table. R falls monotonically.
    """
    radii = torch.arange(0.5, MAX_RADIUS + 0.26, 0.25, dtype=torch.float64)
    n = 8 * int(MAX_RADIUS + 4 * SIGMA0)
    step = torch.zeros(1, 1, 1, n, dtype=torch.float64)
    step[..., n // 2 :] = 1.0
    ratios = []
    for r in radii.tolist():
        lsf = disc_kernel(r, dtype=torch.float64).sum(0)
        k = lsf.numel() // 2
        edge = F.conv2d(F.pad(step, (k, k, 0, 0), mode="replicate"), lsf.view(1, 1, 1, -1))
        peak = gradients(edge)[0].abs().amax()
        peak0 = gradients(gaussian(edge, SIGMA0))[0].abs().amax()
        ratios.append(float(peak / peak0))
    radii[0] = 0.0  # a disc of radius 0.5 is a delta: the sharpest measurable edge means no blur
    return radii, torch.tensor(ratios, dtype=torch.float64)


def _radius_from_ratio(ratio: torch.Tensor) -> torch.Tensor:
    """Invert the disc ratio table by linear interpolation; ratios beyond its ends clamp to its radii."""
    radii, ratios = _ratio_table()
    return interp(ratio, ratios.flip(0), radii.flip(0))  # ratios fall with blur: read the table backwards


def _edge_estimates(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse blur radius at edge pixels and its confidence (zero off edges).

    Edges are thin ridges of the gradient magnitude (non-maximum suppression along the quantised gradient
    direction), because the ratio formula holds at an edge's centre, not on its flanks.
    """
    gx, gy = gradients(luma)
    mag = torch.sqrt(gx * gx + gy * gy)
    rx, ry = gradients(gaussian(luma, SIGMA0))
    mag0 = torch.sqrt(rx * rx + ry * ry)

    edge = ridges(mag, gx, gy) & (mag > EDGE_THRESHOLD)

    radius = _radius_from_ratio(mag / mag0.clamp_min(1e-12))
    confidence = torch.where(edge, mag * mag, torch.zeros_like(mag))
    return torch.where(edge, radius, torch.zeros_like(radius)), confidence


def _normalized_blur(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """Multi-scale normalized convolution: dense evidence nearby wins, wider scales fill the gaps."""
    acc_num = torch.zeros_like(num)
    acc_den = torch.zeros_like(den)
    for sigma, weight in zip(SPREAD_SIGMAS, SPREAD_WEIGHTS, strict=True):
        acc_num += weight * gaussian(num, sigma)
        acc_den += weight * gaussian(den, sigma)
    return acc_num / acc_den.clamp_min(1e-20)


def _propagate(values: torch.Tensor, confidence: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Spread sparse edge values over the tile, robustly and edge-aware.

    A confidence-weighted normalized convolution gives a first dense map; edge samples far from it (texture
    crowding, noise, highlights) are then down-weighted and the map recomputed, an iteratively reweighted
    mean that behaves like a local median. A guided filter finally snaps the map to the photo's own edges,
    where depth (and so blur) usually changes. Pixels with no evidence in reach get radius 0: leave them be.
    """
    dense = _normalized_blur(values * confidence, confidence)
    agree = torch.exp(-0.5 * ((values - dense) / OUTLIER_PX) ** 2)
    robust = confidence * agree
    dense = _normalized_blur(values * robust, robust)
    return guided(guide, dense, GUIDE_RADIUS, GUIDE_EPS)


def estimate_defocus(srgb: torch.Tensor) -> torch.Tensor:
    """Blur radius map (1, 1, H, W) in px for an sRGB tile (1, 3, H, W) in [0, 1]."""
    lin = srgb_to_linear(srgb)
    weights = torch.tensor(_LUMA, dtype=lin.dtype, device=lin.device).view(1, 3, 1, 1)
    luma = (lin * weights).sum(1, keepdim=True)
    values, confidence = _edge_estimates(luma)
    grey = linear_to_srgb(luma)
    return _propagate(values, confidence, grey).clamp(0.0, MAX_RADIUS)


def run_classic(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """sRGB tile in, deblurred sRGB and the defocus map out; ``model`` is unused (no weights)."""
    del model
    srgb = x.float().clamp(0.0, 1.0)
    radius = estimate_defocus(srgb)
    clipped = (srgb.amax(dim=1, keepdim=True) >= CLIP_LEVEL).to(srgb.dtype)
    lin = deconvolve_bank(srgb_to_linear(srgb), radius, clipped)
    image = linear_to_srgb(lin)
    return {"image": image.to(x.dtype), "defocus": radius.to(x.dtype)}


SPEC = MethodSpec(
    name="classic",
    summary="no weights: edge-based defocus map + disc-PSF sparse-prior deconvolution in linear light",
    cls=None,
    run=run_classic,
    multiple_of=1,
    receptive_field=64,
    maps=("defocus",),
    map_units={"defocus": "blur radius, px"},
    # What --tile auto picks for a 24 MP photo within 2 GB (choose_tile): 967 px, 35 tiles; 1280x720 is one tile.
    default_tile=967,
    # Peak RSS growth per input pixel, measured on real photos (tile_speed.py --memory feeds random noise, which
    # the map reads as sharp, so only the radius 0-1 discs run): a photo disc-blurred by 6 px, 605 B at 512x512,
    # 248 at 768, 267 at 1107, 294 at 1304; unblurred, 303 at 1107. The map alone is 106 B at 1107.
    bytes_per_pixel=610,
    # Seconds per tile MP relative to the fastest edge: 1.68 s/MP at 256 px, 1.49 at 512, 1.53 at 768, 1.59 at 1024
    # (python benchmarks/tile_speed.py --edges 256,512,768,1024 --repeat 2: fp32, 2 threads, edges interleaved
    # in one process, quiet 2-core machine; random input, so mostly the radius 0-1 discs are solved).
    tile_speed=((256, 1.13), (512, 1.0), (768, 1.03), (1024, 1.07)),
    supports_half=False,
)
