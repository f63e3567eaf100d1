"""Where to correct: a per-pixel weight in [0, 1] from a defocus map, so that intended bokeh is left alone.

A photo's blur has two causes that look alike to a deblurring method: focus that missed the subject by a few
pixels of blur radius, and background blur the photographer wanted (tens of pixels at f/1.4). The weight is 1
where the map says "small blur" (up to ``threshold``), 0 where it says "large blur" (from ``threshold * (1 +
FADE)`` up) and a smoothstep between, so nothing flips between corrected and untouched on a single pixel.

Maps are noisy, come per tile and sometimes at 1/8 scale, so the weight is formed on a coarse grid (at most
``GRID_EDGE`` px on the long side), smoothed there (three box passes, close to a Gaussian) so that tile seams
and speckle vanish, and brought back to full size by a guided filter (He et al.'s fast variant: the linear
coefficients are fitted on the coarse grid and applied to the full-resolution grey image). That keeps a change
of weight on the photo's own edges, where depth changes, instead of a blurry halo across the subject outline;
where the photo has no edge, the weight changes no faster than the smoothing allows.

Pure numpy functions on (H, W) float arrays; resampling is Pillow's (mode ``F``), box filters are running sums.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

#: default threshold (blur radius, px) for photos up to ``REFERENCE_EDGE`` px on the long side; larger photos
#: scale it linearly, since the same missed focus spans more pixels on a denser sensor
BASE_THRESHOLD_PX = 3.0
REFERENCE_EDGE = 2000
#: the weight falls from 1 at the threshold to 0 at ``threshold * (1 + FADE)``. 0.35, not the 0.5 it was: once
#: ``classic`` deconvolved harder (issue #11), a fade to 1.5 times let 44.8 dB of change into the kept blur of
#: the tuning scenes (22-43 of the held-out set); 0.35 gives 46.7 dB there for 1.4 points of keep/remove ratio
FADE = 0.35
#: long side of the coarse grid on which the weight is smoothed
GRID_EDGE = 512
#: smoothing radius as a fraction of the long side (full-resolution px), and its floor on the coarse grid
SMOOTH_FRACTION = 1 / 150
SMOOTH_MIN_CELLS = 2
#: guided-filter window (coarse cells) and regulariser (grey sRGB^2): large enough that texture inside one
#: depth layer does not print into the weight, small enough that a subject outline still steers it
GUIDE_CELLS = 4
GUIDE_EPS = 4e-3
#: weights this close to 0 or 1 are snapped (by a linear stretch, so no step appears): kept bokeh stays
#: bit-exact and the subject gets the full correction
SNAP = 0.01
#: IFAN's map is the left-right dual-pixel disparity at 1/8 scale; the two half-discs of a disc PSF of radius R
#: have centroids 4R/(3 pi) either side of the centre, so a full-resolution disparity d means R = 3 pi d / 8,
#: and a 1/8-scale disparity d8 = d / 8 means R = 3 pi |d8|
DISPARITY8_TO_RADIUS = 3.0 * math.pi


def default_threshold(height: int, width: int) -> float:
    """Default ``--bokeh-threshold`` (blur radius, px) for a photo of this size."""
    return BASE_THRESHOLD_PX * max(1.0, max(height, width) / REFERENCE_EDGE)


def radius_from_map(name: str, values: np.ndarray) -> np.ndarray:
    """A method map in its own units -> blur radius in full-resolution px (same grid as ``values``).

    Raises:
        KeyError: the map is neither ``defocus`` (blur radius already) nor ``disparity`` (IFAN, 1/8 scale).
    """
    if name == "defocus":
        return np.abs(values).astype(np.float32)
    if name == "disparity":
        return (np.abs(values) * DISPARITY8_TO_RADIUS).astype(np.float32)
    raise KeyError(name)


def weight_from_radius(radius: np.ndarray, threshold: float) -> np.ndarray:
    """1 up to ``threshold``, 0 from ``threshold * (1 + FADE)``, a smoothstep between."""
    t = np.clip((radius - threshold) / (threshold * FADE), 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def resize(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resampling of a float map (antialiased when shrinking), by Pillow."""
    if values.shape == (height, width):
        return values.astype(np.float32, copy=False)
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def box(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window with edge replication, by running sums: cost independent of ``radius``."""
    if radius <= 0:
        return values
    out = values.astype(np.float64)
    n = 2 * radius + 1
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        sums = np.cumsum(padded, axis=axis)
        zero = np.zeros_like(np.take(sums, [0], axis=axis))
        sums = np.concatenate([zero, sums], axis=axis)
        length = sums.shape[axis]
        out = (np.take(sums, range(n, length), axis=axis) - np.take(sums, range(0, length - n), axis=axis)) / n
    return out.astype(np.float32)


def smooth(values: np.ndarray, radius: int) -> np.ndarray:
    """Three box passes: a near-Gaussian of sigma ~ radius, so no corner of a box shows in the weight."""
    for _ in range(3):
        values = box(values, radius)
    return values


def guided_upsample(
    coarse: np.ndarray, guide_coarse: np.ndarray, guide: np.ndarray, *, radius: int, eps: float
) -> np.ndarray:
    """Fast guided filter: fit ``coarse ~ a * guide + b`` per window on the coarse grid, apply at full size."""
    mean_g, mean_s = box(guide_coarse, radius), box(coarse, radius)
    cov = box(guide_coarse * coarse, radius) - mean_g * mean_s
    var = box(guide_coarse * guide_coarse, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    height, width = guide.shape
    out = resize(box(a, radius), height, width) * guide  # then in place: each full-size temporary is 4 B/px
    out += resize(box(b, radius), height, width)
    return out


def grid_shape(height: int, width: int) -> tuple[int, int]:
    """The coarse grid: the photo shrunk to at most ``GRID_EDGE`` px on its long side (never enlarged)."""
    scale = min(1.0, GRID_EDGE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def correction_weight(radius: np.ndarray, guide: np.ndarray, threshold: float) -> np.ndarray:
    """Full-size weight (H, W) in [0, 1] from a blur-radius map on any grid and the photo's grey (H, W) guide."""
    height, width = guide.shape
    gh, gw = grid_shape(height, width)
    coarse = resize(weight_from_radius(radius, threshold), gh, gw)
    cell = max(height, width) / max(gh, gw)
    coarse = smooth(coarse, max(SMOOTH_MIN_CELLS, round(max(height, width) * SMOOTH_FRACTION / cell)))
    guide_coarse = resize(guide, gh, gw)
    weight = guided_upsample(coarse, guide_coarse, guide, radius=GUIDE_CELLS, eps=GUIDE_EPS)
    weight -= SNAP
    weight /= 1.0 - 2.0 * SNAP
    return np.clip(weight, 0.0, 1.0, out=weight)
