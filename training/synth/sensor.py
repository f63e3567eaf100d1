"""From scene light to file values: highlight recovery, sRGB transfer, Poisson-Gaussian noise and JPEG.

Blur happens in linear light (photons add, sRGB values do not), so photos are linearised first. Real scenes
are brighter than an 8-bit photo can say, which is what makes real bokeh balls glow; ``boost_highlights``
gives near-white pixels some of that energy back before blurring. Everything but JPEG runs on torch tensors
on the rendering device; JPEG goes through Pillow on the CPU (see ``sample.render_batch``).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image


def boost_highlights(linear: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Stretch linear values (B, 3, H, W) above 0.8 smoothly by up to ``gain`` (B,) per scene (1 = unchanged)."""
    t = ((linear.amax(dim=1, keepdim=True) - 0.8) / 0.2).clamp(0.0, 1.0)
    return linear * (1.0 + (gain[:, None, None, None] - 1.0) * t * t * (3.0 - 2.0 * t))


def dual_pixel_noise(
    left: torch.Tensor, right: torch.Tensor, generator: torch.Generator, *, shot: float, read: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Poisson-Gaussian noise on each half-pixel view of one scene, drawn from ``generator`` on their device.

    Each photodiode gets half the light, so its shot-noise scale is doubled and its read noise is sqrt(2)
    larger; the combined view (L + R) / 2 then has exactly variance ``shot * x + read**2``.
    """
    out = []
    for view in (left, right):
        scale = 2.0 * shot
        photons = torch.poisson(view.clamp_min(0.0) / scale, generator=generator)
        gauss = torch.randn(view.shape, generator=generator, device=view.device, dtype=view.dtype)
        out.append(photons * scale + gauss * (read * math.sqrt(2.0)))
    return out[0], out[1]


def jpeg_roundtrip(srgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode (3, h, w) sRGB floats as a camera JPEG would (8-bit, 4:2:0)."""
    u8 = np.round(np.clip(srgb, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling=2)
    buf.seek(0)
    return (np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1).copy()
