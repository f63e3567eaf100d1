"""Defocus point-spread functions: the image of the aperture, scaled to the circle of confusion.

A kernel is rendered by supersampling an analytic aperture: a disc or regular polygon with a soft edge,
optionally a bright rim or centre (spherical aberration), clipped by a second, offset pupil towards the frame
corners (cat's eye / mechanical vignetting), and split into two halves for the dual-pixel views. Behind the
focal plane the light cone has crossed before reaching the sensor, so the aperture image is point-reflected;
evaluating everything in aperture coordinates ``sign(coc) * (x, y)`` makes polygons, cat's eyes and the
dual-pixel halves all swap sides across the focal plane with one rule. Lateral chromatic aberration is a
per-channel shift in image coordinates and does not flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.synth.params import PsfParams

SUPERSAMPLE = 4
MIN_RADIUS = 0.25  # px; below this the aperture is smaller than a subsample and the kernel is a point


@dataclass(frozen=True)
class ViewKernels:
    """Left and right dual-pixel kernels, each (3, k, k) float32 with every channel summing to 1.

    The centre (combined) view is exactly ``(left + right) / 2``: a dual-pixel sensor's normal image is the
    sum of its two photodiodes.
    """

    left: np.ndarray
    right: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.left + self.right)

    @property
    def disparity(self) -> float:
        """x-centroid of the left kernel minus that of the right one, in px (has the sign of the CoC)."""
        k = self.left.shape[-1]
        xs = np.arange(k, dtype=np.float64) - k // 2
        cl = float((self.left.sum(axis=1) * xs).sum(axis=1).mean())
        cr = float((self.right.sum(axis=1) * xs).sum(axis=1).mean())
        return cl - cr


def chroma_shifts(psf: PsfParams) -> np.ndarray:
    """Per-channel (dy, dx) shift in px: R moves outwards, B inwards, along the radius of the frame."""
    rel = np.array([psf.frame_y, psf.frame_x]) / math.sqrt(2.0)
    return np.stack([psf.chroma_px * rel, 0.0 * rel, -psf.chroma_px * rel]).astype(np.float64)


def kernel_halfsize(coc: float, psf: PsfParams) -> int:
    """Half width of the kernel grid that holds the aperture image, its soft edge and the chroma shift."""
    r = abs(coc) / 2.0
    return int(math.ceil(r * (1.0 + psf.edge_softness) + abs(psf.chroma_px) + 1.0))


def _ramp(t: np.ndarray) -> np.ndarray:
    """Smooth 0->1 step over t in [-0.5, 0.5]; C1-continuous so soft edges have no Mach bands."""
    u = np.clip(t + 0.5, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _aperture(u: np.ndarray, v: np.ndarray, r: float, psf: PsfParams, sign: float) -> np.ndarray:
    """Transmission of the (possibly polygonal, vignetted) aperture at aperture coordinates (u, v) in px."""
    soft = max(psf.edge_softness, 1e-3)
    dist = np.hypot(u, v)
    if psf.blades >= 3:
        sector = 2.0 * math.pi / psf.blades
        theta = np.mod(np.arctan2(v, u) - psf.blade_angle, sector) - sector / 2.0
        dist = dist * np.cos(theta) / math.cos(math.pi / psf.blades)
    rho = dist / r
    inside = _ramp((1.0 - rho) / soft)
    if psf.rim > 0.0:
        # Undercorrected spherical aberration: bright rims in front of focus, bright centres behind.
        inside = inside * (1.0 - sign * psf.rim * (2.0 * np.clip(rho, 0.0, 1.0) ** 2 - 1.0))
    corner = math.hypot(psf.frame_x, psf.frame_y) / math.sqrt(2.0)
    shift = psf.cat_eye * corner * r
    if shift > 0.0:
        # The vignetting pupil sits towards the frame centre; in aperture coordinates that is along -frame.
        norm = math.hypot(psf.frame_x, psf.frame_y)
        du, dv = -shift * psf.frame_x / norm, -shift * psf.frame_y / norm
        rho2 = np.hypot(u - du, v - dv) / r
        inside = inside * _ramp((1.0 - rho2) / soft)
    return inside


def _shifted_point(half: int, dy: float, dx: float) -> np.ndarray:
    """Bilinear point at a sub-pixel offset: the in-focus kernel when chroma shifts it."""
    k = np.zeros((2 * half + 1, 2 * half + 1))
    y0, x0 = math.floor(dy), math.floor(dx)
    fy, fx = dy - y0, dx - x0
    for oy, wy in ((0, 1.0 - fy), (1, fy)):
        for ox, wx in ((0, 1.0 - fx), (1, fx)):
            k[half + y0 + oy, half + x0 + ox] += wy * wx
    return k


def view_kernels(coc: float, psf: PsfParams, *, half: int | None = None) -> ViewKernels:
    """Render the left/right kernels of one signed CoC diameter (px) on a (2*half+1)^2 grid."""
    half = kernel_halfsize(coc, psf) if half is None else half
    r = abs(coc) / 2.0
    sign = 1.0 if coc >= 0 else -1.0
    shifts = chroma_shifts(psf)
    left = np.empty((3, 2 * half + 1, 2 * half + 1))
    right = np.empty_like(left)
    if r < MIN_RADIUS:
        for c in range(3):
            left[c] = right[c] = _shifted_point(half, *shifts[c])
        return ViewKernels(left.astype(np.float32), right.astype(np.float32))
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    grid = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    split = max(psf.dp_split_softness, 1e-3) * r
    for c in range(3):
        u = sign * (xs - shifts[c, 1])
        v = sign * (ys - shifts[c, 0])
        ap = _aperture(u, v, r, psf, sign)
        w_left = _ramp(u / split)  # the left photodiode sees the +u half of the aperture
        total = float(ap.sum())
        for out, weight in ((left, w_left), (right, 1.0 - w_left)):
            if total <= 0.0:  # aperture thinner than the subsample grid: a point
                out[c] = _shifted_point(half, *shifts[c])
                continue
            part = ap * weight
            if float(part.sum()) < 1e-3 * total:  # sub-pixel disc missing one half: both halves see it all
                part = ap
            k = part.reshape(2 * half + 1, SUPERSAMPLE, 2 * half + 1, SUPERSAMPLE).sum(axis=(1, 3))
            out[c] = k / k.sum()
    return ViewKernels(left.astype(np.float32), right.astype(np.float32))
