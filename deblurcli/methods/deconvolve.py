"""Non-blind deconvolution of defocus: a bank of disc PSFs under a sparse-gradient prior, blended per pixel.

``deconvolve_bank`` is the second stage of the ``classic`` method (``methods.classic`` estimates the radius
map). Lens blur is a convolution in linear light, so everything here works on linear RGB. Each disc radius in
``RADII`` is solved on the part of the tile whose radius touches it, and each pixel takes the linear
interpolation of the two results nearest its radius.

The solver minimises ``|k * x - y|^2 / 2 + REGULARISATION * sum w |grad x|^p`` (p = ``PRIOR_EXPONENT``) by
half-quadratic splitting with FFTs (Krishnan & Fergus 2009 style), after reflect padding with a taper to the
mean so the periodic FFT sees no border jump. A Wiener filter is the same problem with p = 2, and it spreads
the energy it cannot place into ripples next to edges; a sparse prior puts it into the edges instead. Three
guards keep a photo from getting worse: the prior weight ``w`` grows next to high-contrast edges (where JPEG
errors live), each result is clamped to the input's local range (a true edge fits inside it, a halo does not),
and pixels whose blur took in clipped light keep their input (the blur model does not hold there).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deblurcli.methods.defocus_map import box_mean, gaussian, reflect_pad

#: radii of the deconvolution bank, px; the map is clamped to the last one
RADII: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
MAX_RADIUS = RADII[-1]
#: weight of the sparse-gradient prior against the data term; trades noise against sharpness. Chosen on
#: disc-blurred lomiri-wallpapers photos and synthetic scenes rendered from them, not on the test photos
REGULARISATION = 0.005
#: exponent p of the prior sum |grad x|^p; natural images' gradient statistics are fit by p of about 0.5-0.8
PRIOR_EXPONENT = 0.6
#: half-quadratic splitting rounds and the growth of the coupling weight per round
SPLIT_ROUNDS = 7
SPLIT_GROWTH = 2.8
#: sRGB level at or above which a pixel counts as clipped: only full scale (255 of 255), because a soft
#: highlight that merely reaches 254 still obeys the blur model and deblurs well (at 0.99 the astronaut's
#: 254-level white suit, blurred linearly, was left alone: -0.4 dB)
CLIP_LEVEL = 254.5 / 255
#: padding around the tile before the FFT, px; beyond the widest PSF and the inverse filter's ringing
FFT_PAD = 32
#: context (px) around the pixels that use a disc when that disc is solved on a crop of the tile
CROP_MARGIN = 48
#: the prior is (1 + (c / EDGE_CONTRAST)^2) times stronger where the steepest gradient c (linear light per px)
#: within EDGE_REACH disc radii is high: a JPEG's block and mosquito errors sit next to strong edges, and an
#: unweighted prior sharpens them into ripples. Chosen by eye on the helmet highlight of JPEG copies of the
#: disc-blurred astronaut (the Quickstart example's photo, so this one is not held out); it moves the tuning
#: scores by at most 0.07 dB and costs 0.2 dB on the astronaut at r = 2
EDGE_CONTRAST = 0.2
EDGE_REACH = 2.0


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


def _differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Circular forward differences along x and y: the gradient operator the FFT solve diagonalises."""
    return torch.roll(x, -1, -1) - x, torch.roll(x, -1, -2) - x


def _differences_adjoint(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Adjoint of ``_differences`` (a negative divergence)."""
    return (torch.roll(gx, 1, -1) - gx) + (torch.roll(gy, 1, -2) - gy)


def _shrink(g: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Generalised shrinkage for the ``|g|^p`` prior: small gradients (noise, ringing) go to zero, edges stay.

    For p = 1 it is soft thresholding; below 1 it shrinks large gradients less, which keeps edges crisp.
    """
    scale = threshold ** (2 - PRIOR_EXPONENT) * g.abs().clamp_min(1e-12) ** (PRIOR_EXPONENT - 2)
    return g * (1 - scale).clamp_min(0)


def _sparse_deconvolve(
    padded: torch.Tensor, otf: torch.Tensor, grad2: torch.Tensor, strength: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """Minimise ``|k * x - y|^2 / 2 + REGULARISATION * sum strength |grad x|^p`` by half-quadratic splitting.

    Natural images have sparse gradients, so this prior removes the ringing a Wiener filter leaves next to edges
    (it is the Wiener solution for a Gaussian prior, which spreads energy into ripples instead). Each round
    alternates a per-pixel shrinkage of the gradients with one FFT solve of the quadratic problem, while the
    coupling ``rho`` grows so the split variables converge on the image's own gradients.
    """
    shape = padded.shape[-2:]
    power = otf.abs() ** 2
    solved = []
    for channel in padded.split(1, dim=1):  # one at a time: a third of the working set, same speed
        data = otf.conj() * torch.fft.rfft2(channel)
        x, rho = channel, REGULARISATION
        for _ in range(SPLIT_ROUNDS):
            gx, gy = _differences(x)
            threshold = REGULARISATION * strength / rho
            prior = torch.fft.rfft2(_differences_adjoint(_shrink(gx, threshold), _shrink(gy, threshold)))
            x = torch.fft.irfft2((data + rho * prior) / (power + rho * grad2), s=shape)
            rho *= SPLIT_GROWTH
        solved.append(x)
    return torch.cat(solved, dim=1)


def _running_max(x: torch.Tensor, reach: int, dim: int) -> torch.Tensor:
    """Max over a window of 2 reach + 1 along ``dim`` in O(log reach) whole-array steps (doubling windows)."""
    if reach <= 0:
        return x
    size = 2 * reach + 1
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [reach, reach]
    out = F.pad(x, pad, value=float("-inf"))
    n = out.shape[dim]
    width = 1
    while 2 * width <= size:  # out[i] = max over [i, i + width)
        out = torch.maximum(out.narrow(dim, 0, n - width), out.narrow(dim, width, n - width))
        n -= width
        width *= 2
    # two windows of ``width`` overlapping to cover ``size``
    return torch.maximum(out.narrow(dim, 0, x.shape[dim]), out.narrow(dim, size - width, x.shape[dim]))


def _grow(mask: torch.Tensor, reach: int) -> torch.Tensor:
    """Dilate by a (2 reach + 1) square: a square's max is separable into two running maxima."""
    return _running_max(_running_max(mask, reach, -1), reach, -2)


def _clip_zones(clipped: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the blur of a disc of ``radius`` took in clipped light, and where the output keeps the input.

    The first is the clipped pixels grown by the disc: the solver must not see them. The second covers them
    and fades out over twice that reach beyond, because the solver's output next to the filled zone is sharpened
    against the fill, not against the photo.
    """
    reach = math.ceil(radius) + 1
    zone = _grow(clipped, reach)
    return zone, torch.maximum(zone, box_mean(_grow(clipped, 2 * reach), reach))


def _highlight_fill(lin: torch.Tensor, clipped: torch.Tensor, radius: float) -> torch.Tensor:
    """A smooth guess of the scene around clipped light from what lies beyond the blur's reach of it.

    A clipped highlight has lost light the blur model needs; deconvolving it as it is makes the solver explain a
    flat plateau with ripples tens of pixels wide. Inside each disc's zone the solver sees this fill instead: a
    normalized Gaussian convolution, computed at quarter size because only its low frequencies matter.
    """
    h, w = lin.shape[-2:]
    outside = 1 - _clip_zones(clipped, radius)[0]
    sigma = max(1.0, (2.0 * radius + 2.0) / 4)
    num = gaussian(F.avg_pool2d(lin * outside, 4, ceil_mode=True), sigma)
    den = gaussian(F.avg_pool2d(outside, 4, ceil_mode=True), sigma).clamp_min(1e-6)
    return F.interpolate(num / den, scale_factor=4.0, mode="bilinear", align_corners=False)[..., :h, :w]


def _strength(padded: torch.Tensor, radius: float) -> torch.Tensor:
    """Per-pixel multiplier of the prior: stronger within a disc's reach of high-contrast edges."""
    gx, gy = _differences(padded)
    contrast = torch.sqrt(gx * gx + gy * gy).amax(dim=1, keepdim=True)
    near = _grow(contrast, math.ceil(EDGE_REACH * radius) + 1)
    return 1.0 + (near / EDGE_CONTRAST) ** 2


def _deconvolve(
    lin: torch.Tensor, radius: float, clipped: torch.Tensor | None, fill: torch.Tensor | None
) -> torch.Tensor:
    """Deconvolve ``lin`` with one disc; near clipped light the solver sees ``fill`` and the output keeps ``lin``."""
    h, w = lin.shape[-2:]
    shape = (_fast_len(h + 2 * FFT_PAD), _fast_len(w + 2 * FFT_PAD))
    fy = torch.fft.fftfreq(shape[0], device=lin.device, dtype=lin.dtype).view(-1, 1)
    fx = torch.fft.rfftfreq(shape[1], device=lin.device, dtype=lin.dtype).view(1, -1)
    grad2 = (2 * torch.sin(math.pi * fy)) ** 2 + (2 * torch.sin(math.pi * fx)) ** 2
    otf = _otf(disc_kernel(radius, dtype=lin.dtype).to(lin.device), shape)
    inner = (..., slice(FFT_PAD, FFT_PAD + h), slice(FFT_PAD, FFT_PAD + w))
    if clipped is None or fill is None or not bool(clipped.any()):
        padded = _taper_pad(lin, shape, FFT_PAD)
        return _sparse_deconvolve(padded, otf, grad2, _strength(padded, radius))[inner]
    zone, keep = _clip_zones(clipped, radius)
    padded = _taper_pad(torch.lerp(lin, fill, zone), shape, FFT_PAD)
    solved = _sparse_deconvolve(padded, otf, grad2, _strength(padded, radius))[inner]
    return torch.lerp(solved, lin, keep)


def _within_local_range(x: torch.Tensor, reference: torch.Tensor, reach: int) -> torch.Tensor:
    """Clamp ``x`` to the min..max of ``reference`` within ``reach`` px.

    Blur only averages, so the sharp scene's values near a pixel span at least the blurred ones within a disc's
    reach, and a true edge fits inside that range; what overshoots it is ringing (a halo) or amplified noise.
    """
    return torch.minimum(torch.maximum(x, -_grow(-reference, reach)), _grow(reference, reach))


def _support(weight: torch.Tensor, margin: int) -> tuple[slice, slice] | None:
    """Bounding box of the pixels with weight, grown by ``margin`` and clipped to the tile; None if empty."""
    rows = torch.nonzero(weight.amax(dim=-1).flatten() > 0).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(weight.amax(dim=-2).flatten() > 0).flatten()
    h, w = weight.shape[-2:]
    y0, y1 = max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin)
    x0, x1 = max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin)
    return slice(y0, y1), slice(x0, x1)


def deconvolve_bank(lin: torch.Tensor, radius: torch.Tensor, clipped: torch.Tensor | None = None) -> torch.Tensor:
    """Deconvolve linear-light ``lin`` (1, C, H, W) with every disc in ``RADII`` and blend them by ``radius``.

    Each disc is solved only on the box around the pixels whose radius touches it, with ``CROP_MARGIN`` px of
    context, so a tile with a few blurred objects costs a few small solves. ``clipped`` (1, 1, H, W), 1 where the
    photo is saturated: pixels whose blur took in clipped light keep their input, and the solver never sees them.
    """
    position = radius.clamp(RADII[0], RADII[-1])
    if clipped is not None and not bool(clipped.any()):
        clipped = None
    fill = None if clipped is None else _highlight_fill(lin, clipped, float(position.max()))
    out = torch.zeros_like(lin)
    for k, r in enumerate(RADII):
        weight = _hat(position, k)
        box = _support(weight, CROP_MARGIN)
        if box is None:
            continue
        if r == 0:
            out = out + weight * lin
            continue
        at = (..., *box)
        near = None if clipped is None else clipped[at]
        layer = _deconvolve(lin[at], r, near, None if fill is None else fill[at])
        out[at] += weight[at] * _within_local_range(layer, lin[at], math.ceil(r))
    return out
