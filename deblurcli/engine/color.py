"""The sRGB transfer curve on torch tensors, for code that runs on the method's device.

``deblurcli.io.color`` is the numpy twin used by the decoder and encoder; both follow IEC 61966-2-1 exactly.
These clamp to [0, 1] first: their callers (deconvolution, augmentation) can overshoot, and the curve is only
defined there.
"""

from __future__ import annotations

import torch


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Decode sRGB to linear light."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Encode linear light to sRGB (the power is taken on values above the knee only, so it stays finite)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
