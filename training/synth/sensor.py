"""From scene light to file values: highlight recovery, sRGB transfer, Poisson-Gaussian noise and JPEG.

Blur happens in linear light (photons add, sRGB values do not), so photos are linearised first. Real scenes
are brighter than an 8-bit photo can say, which is what makes real bokeh balls glow; ``boost_highlights``
gives near-white pixels some of that energy back before blurring. Everything but JPEG runs on torch tensors
on the rendering device; JPEG goes through Pillow on the CPU (see ``sample.render_batch``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def boost_highlights(linear: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Stretch linear values (B, 3, H, W) above 0.8 smoothly by up to ``gain`` (B,) per scene (1 = unchanged)."""
    t = ((linear.amax(dim=1, keepdim=True) - 0.8) / 0.2).clamp(0.0, 1.0)
    return linear * (1.0 + (gain[:, None, None, None] - 1.0) * t * t * (3.0 - 2.0 * t))


#: below this mean photon count shot noise is drawn exactly (inverse CDF); above it, as a rounded Gaussian
POISSON_EXACT_BELOW = 16.0
_POISSON_TERMS = 64  # P(X > 64 | mean 16) < 1e-18


def poisson(rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson draws of mean ``rate`` from exactly two random numbers per element (see ``poisson_from``)."""
    u, z = _poisson_draws(rate.shape, generator, rate.device, rate.dtype)
    return poisson_from(rate, u, z)


def _poisson_draws(
    shape: torch.Size, generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return u, torch.randn(shape, generator=generator, device=device, dtype=dtype)


def poisson_from(rate: torch.Tensor, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Poisson counts of mean ``rate`` from one uniform ``u`` (float64) and one normal ``z`` per element.

    ``torch.poisson`` uses rejection sampling, so how many numbers it takes from the generator depends on the
    rates: a rounding-level change in one pixel (a batched FFT instead of a single one) then reshuffles the
    noise of every later pixel. Here counts below ``POISSON_EXACT_BELOW`` come from the inverse CDF of ``u``
    (exact), larger ones from ``round(rate + sqrt(rate) * z)``, whose error there is far below what any
    network sees; a sample's noise then moves only where its rates move.
    """
    out = (rate + rate.sqrt() * z).round().clamp_min(0.0)
    low = rate < POISSON_EXACT_BELOW
    lam = rate[low].double()
    if lam.numel():
        u_low = u[low]
        term = torch.exp(-lam)
        cdf = term.clone()
        count = torch.zeros_like(lam)
        for k in range(1, _POISSON_TERMS + 1):
            beyond = u_low > cdf  # the draw lies beyond P(X <= k - 1): X >= k
            if k % 8 == 0 and not bool(beyond.any()):
                break
            count += beyond
            term = term * lam / k
            cdf = cdf + term
        out[low] = count.to(out.dtype)
    return out


def dual_pixel_noise(
    left: torch.Tensor,
    right: torch.Tensor,
    generators: Sequence[torch.Generator],
    *,
    shot: Sequence[float],
    read: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Poisson-Gaussian noise on the half-pixel views (B, 3, h, w) of B scenes; scene b draws from its generator.

    Each photodiode gets half the light, so its shot-noise scale is doubled and its read noise is sqrt(2)
    larger; the combined view (L + R) / 2 then has exactly variance ``shot * x + read**2``. The random numbers
    are drawn per scene (a fixed count each, so a scene's noise is a function of its own generator alone);
    the arithmetic runs on the whole batch.
    """
    dev, dtype = left.device, left.dtype
    per_view: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[], []]
    for g in generators:
        for v, view in enumerate((left, right)):  # per scene: left (u, z, read), then right
            u, z = _poisson_draws(view.shape[1:], g, dev, dtype)
            per_view[v].append((u, z, torch.randn(view.shape[1:], generator=g, device=dev, dtype=dtype)))
    scale = 2.0 * torch.tensor(list(shot), dtype=dtype, device=dev)[:, None, None, None]
    read_std = math.sqrt(2.0) * torch.tensor(list(read), dtype=dtype, device=dev)[:, None, None, None]
    out = []
    for view, draws in zip((left, right), per_view, strict=True):
        u, z, gauss = (torch.stack(t) for t in zip(*draws, strict=True))
        photons = poisson_from(view.clamp_min(0.0) / scale, u, z)
        out.append(photons * scale + gauss * read_std)
    return out[0], out[1]


def jpeg_roundtrip(srgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode (3, h, w) sRGB floats as a camera JPEG would (8-bit, 4:2:0)."""
    u8 = np.round(np.clip(srgb, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling=2)
    buf.seek(0)
    return (np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1).copy()
