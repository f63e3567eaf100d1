"""From scene light to file values: highlight recovery, sRGB transfer, Poisson-Gaussian noise and JPEG.

Blur happens in linear light (photons add, sRGB values do not), so photos are linearised first. Real scenes
are brighter than an 8-bit photo can say, which is what makes real bokeh balls glow; ``boost_highlights``
gives near-white pixels some of that energy back before blurring.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from deblurcli.io import color


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding of values clipped to [0, 1]."""
    return color.srgb_to_linear(np.clip(x, 0.0, 1.0))


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding, clipping to [0, 1] first as a sensor would."""
    return color.linear_to_srgb(np.clip(x, 0.0, 1.0))


def boost_highlights(linear: np.ndarray, gain: float) -> np.ndarray:
    """Stretch linear values above 0.8 smoothly by up to ``gain`` (1 = unchanged)."""
    if gain <= 1.0:
        return linear
    t = np.clip((linear.max(axis=0, keepdims=True) - 0.8) / 0.2, 0.0, 1.0)
    return (linear * (1.0 + (gain - 1.0) * t * t * (3.0 - 2.0 * t))).astype(np.float32)


def dual_pixel_noise(
    left: np.ndarray, right: np.ndarray, rng: np.random.Generator, *, shot: float, read: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-Gaussian noise on each half-pixel view.

    Each photodiode gets half the light, so its shot-noise scale is doubled and its read noise is sqrt(2)
    larger; the combined view (L + R) / 2 then has exactly variance ``shot * x + read**2``.
    """
    out = []
    for view in (left, right):
        scale = 2.0 * shot
        photons = rng.poisson(np.clip(view, 0.0, None) / scale).astype(np.float32)
        noisy = photons * scale + rng.normal(0.0, read * np.sqrt(2.0), size=view.shape).astype(np.float32)
        out.append(noisy.astype(np.float32))
    return out[0], out[1]


def jpeg_roundtrip(srgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode (3, h, w) sRGB floats as a camera JPEG would (8-bit, 4:2:0)."""
    u8 = np.round(np.clip(srgb, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling=2)
    buf.seek(0)
    return (np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1).copy()
