"""The classical method: an edge-based defocus map and a spatially varying Wiener deconvolution, no weights.

It is the floor every learned method is measured against and the default that works offline. Two stages:

1. **Defocus map** (after Zhuo & Sim 2011, gradient ratio). Re-blurring an edge with a known Gaussian
   ``SIGMA0`` lowers its peak gradient by a ratio ``R`` that falls as the edge's own blur grows. Zhuo & Sim
   assume a Gaussian edge (``sigma = sigma0 / sqrt(R^2 - 1)``); lens blur is a disc, whose flat-topped edge
   profile re-blurs very differently, so we invert a table of ``R`` measured on ideal disc-blurred steps
   with the same discrete operators (no sigma-to-radius rule of thumb such as ``r = 2 sigma`` is needed).
   The sparse estimates at edge pixels are spread over the tile by a robust, confidence-weighted
   normalized convolution and snapped to the photo's edges by a guided filter, all within
   ``receptive_field`` pixels so a tile's map matches the full frame's.
2. **Deconvolution** in linear light, where lens blur is a convolution. The tile is deconvolved with a bank of
   disc PSFs (radii ``RADII``) by a gradient-regularised Wiener (Tikhonov) filter in the Fourier domain, after
   reflect padding with a taper to the mean so the periodic FFT sees no border jump. Each pixel takes the
   linear interpolation of the two bank results nearest its map radius.

The map is clamped to ``[0, MAX_RADIUS]`` px and reported as ``"defocus"`` (disc blur radius in pixels, full
resolution). It errs low for wide blur (crowded edges interfere), which is the safe side: deconvolving with
too large a disc rings, too small a disc merely under-sharpens.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.engine.color import linear_to_srgb, srgb_to_linear
from deblurcli.methods.defocus_map import gaussian, gradients, guided, interp, reflect_pad, ridges
from deblurcli.methods.spec import MethodSpec, Outputs

#: radii of the deconvolution bank, px; the map is clamped to the last one
RADII: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
MAX_RADIUS = RADII[-1]
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
#: Tikhonov weight on the gradient energy of the estimate; trades ringing and noise against sharpness
REGULARISATION = 0.04
#: padding around the tile before the FFT, px; beyond the widest PSF and the inverse filter's ringing
FFT_PAD = 32

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


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n, a size the FFT handles quickly."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def disc_kernel(radius: float, *, dtype: torch.dtype = torch.float32, supersample: int = 8) -> torch.Tensor:
    """Anti-aliased uniform disc PSF of ``radius`` px, odd square, summing to 1 (a delta for radius 0)."""
    if radius <= 0.5:  # such a disc lies inside the centre pixel
        return torch.ones(1, 1, dtype=dtype)
    k = math.ceil(radius - 0.5)
    n = (2 * k + 1) * supersample
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample - (k + 0.5)
    inside = (t.view(-1, 1) ** 2 + t.view(1, -1) ** 2 <= radius**2).to(torch.float64)
    cover = F.avg_pool2d(inside[None, None], supersample)[0, 0]
    return (cover / cover.sum()).to(dtype)


def _otf(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Real-FFT transfer function of a centred kernel on a grid of ``shape`` (centre moved to the origin)."""
    k = kernel.shape[-1] // 2
    grid = torch.zeros(shape, dtype=kernel.dtype, device=kernel.device)
    grid[: kernel.shape[0], : kernel.shape[1]] = kernel
    return torch.fft.rfft2(torch.roll(grid, shifts=(-k, -k), dims=(0, 1)))


def _taper_pad(x: torch.Tensor, shape: tuple[int, int], pad: int) -> torch.Tensor:
    """Reflect-pad to ``shape``, fading the outer band to the tile mean so the FFT's wrap-around is smooth."""
    h, w = x.shape[-2:]
    hh, ww = shape
    out = reflect_pad(x, pad, hh - h - pad, pad, ww - w - pad)
    band = max(1, pad // 2)

    def ramp(n: int, lo: int, hi: int) -> torch.Tensor:
        i = torch.arange(n, dtype=x.dtype, device=x.device)
        dist = torch.minimum(i - (lo - band), (hi - 1 + band) - i).clamp(0, band) / band
        return 0.5 - 0.5 * torch.cos(math.pi * dist)

    win = ramp(hh, pad, pad + h).view(-1, 1) * ramp(ww, pad, pad + w).view(1, -1)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return mean + (out - mean) * win


def _hat(position: torch.Tensor, k: int) -> torch.Tensor:
    """Interpolation weight of bank entry ``k`` per pixel: 1 at ``RADII[k]``, 0 at its neighbours."""
    weight = torch.ones_like(position)
    if k > 0:
        weight = torch.minimum(weight, ((position - RADII[k - 1]) / (RADII[k] - RADII[k - 1])).clamp(0, 1))
    if k + 1 < len(RADII):
        weight = torch.minimum(weight, ((RADII[k + 1] - position) / (RADII[k + 1] - RADII[k])).clamp(0, 1))
    return weight


def deconvolve_bank(lin: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Deconvolve linear-light ``lin`` (1, C, H, W) with every disc in ``RADII`` and blend them by ``radius``.

    The Tikhonov filter ``conj(K) / (|K|^2 + lambda |grad|^2)`` is the Wiener filter for a 1/f^2 image
    spectrum: it inverts the disc where its transfer function is strong and smooths where the disc has zeros.
    """
    h, w = lin.shape[-2:]
    shape = (_fast_len(h + 2 * FFT_PAD), _fast_len(w + 2 * FFT_PAD))
    spectrum = torch.fft.rfft2(_taper_pad(lin, shape, FFT_PAD))
    fy = torch.fft.fftfreq(shape[0], device=lin.device, dtype=lin.dtype).view(-1, 1)
    fx = torch.fft.rfftfreq(shape[1], device=lin.device, dtype=lin.dtype).view(1, -1)
    grad2 = (2 * torch.sin(math.pi * fy)) ** 2 + (2 * torch.sin(math.pi * fx)) ** 2

    position = radius.clamp(RADII[0], RADII[-1])
    out = torch.zeros_like(lin)
    for k, r in enumerate(RADII):
        weight = _hat(position, k)
        if not bool((weight > 0).any()):
            continue
        if r == 0:
            layer = lin
        else:
            otf = _otf(disc_kernel(r, dtype=lin.dtype).to(lin.device), shape)
            filt = otf.conj() / (otf.abs() ** 2 + REGULARISATION * grad2)
            full = torch.fft.irfft2(spectrum * filt, s=shape)
            layer = full[..., FFT_PAD : FFT_PAD + h, FFT_PAD : FFT_PAD + w]
        out = out + weight * layer
    return out


def run_classic(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """sRGB tile in, deblurred sRGB and the defocus map out; ``model`` is unused (no weights)."""
    del model
    srgb = x.float().clamp(0.0, 1.0)
    radius = estimate_defocus(srgb)
    lin = deconvolve_bank(srgb_to_linear(srgb), radius)
    image = linear_to_srgb(lin)
    return {"image": image.to(x.dtype), "defocus": radius.to(x.dtype)}


SPEC = MethodSpec(
    name="classic",
    summary="no weights: edge-based defocus map + disc-PSF Wiener deconvolution in linear light",
    cls=None,
    run=run_classic,
    multiple_of=1,
    receptive_field=64,
    maps=("defocus",),
    map_units={"defocus": "blur radius, px"},
    # What --tile auto picks for a 24 MP photo within 2 GB end to end (choose_tile): 1303 px, 20 tiles, 30.9 s,
    # 1.82 GiB (benchmarks/bigphoto.py); 1280x720 is one tile.
    default_tile=1304,
    # Peak RSS growth per input pixel: 294 B at 512x512, 212 at 1024x1024 (benchmarks/tile_speed.py --memory).
    bytes_per_pixel=400,
    # Seconds per tile MP relative to the fastest edge: 0.99 s/MP at 256 px, 0.88 at 512, 0.84 at 768, 0.86 at 1024
    # (python benchmarks/tile_speed.py --edges 256,512,768,1024 --repeat 2: fp32, 2 threads, edges interleaved
    # in one process, quiet 2-core machine; after the map's Gaussians became depthwise row convolutions).
    tile_speed=((256, 1.18), (512, 1.05), (768, 1.0), (1024, 1.03)),
    supports_half=False,
)
