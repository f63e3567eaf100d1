"""The sRGB transfer curve, exact and piecewise (IEC 61966-2-1).

The published models were trained on sRGB-encoded photos, while RAW is decoded linear; these two functions are
the only place where the pipeline moves between the two, so both directions must be inverse to float
precision.
"""

from __future__ import annotations

import numpy as np

_THRESHOLD_LINEAR = 0.0031308
_THRESHOLD_ENCODED = 0.04045
_SLOPE = 12.92
_A = 0.055
_GAMMA = 2.4


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Encode linear light to sRGB as float32; negative inputs map to 0 to keep the power law defined."""
    x = np.maximum(np.asarray(values, dtype=np.float32), np.float32(0.0))
    curve = (1.0 + _A) * np.power(np.maximum(x, _THRESHOLD_LINEAR), 1.0 / _GAMMA, dtype=np.float32) - _A
    return np.where(x <= _THRESHOLD_LINEAR, x * _SLOPE, curve).astype(np.float32, copy=False)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Decode sRGB to linear light as float32; the exact inverse of ``linear_to_srgb``."""
    x = np.maximum(np.asarray(values, dtype=np.float32), np.float32(0.0))
    curve = np.power((np.maximum(x, _THRESHOLD_ENCODED) + _A) / (1.0 + _A), _GAMMA, dtype=np.float32)
    return np.where(x <= _THRESHOLD_ENCODED, x / _SLOPE, curve).astype(np.float32, copy=False)
