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

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from training.synth.params import PsfParams

SUPERSAMPLE = 4
MIN_RADIUS = 0.25  # px; below this the aperture is smaller than a subsample and the kernel is a point


@dataclasses.dataclass(frozen=True)
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
        left, right = (torch.from_numpy(k).double()[None] for k in (self.left, self.right))
        return float(kernel_disparity(left, right)[0])


def kernel_disparity(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Per-kernel disparity (N,) of (N, 3, k, k) kernel stacks: x-centroid of left minus that of right."""
    k = left.shape[-1]
    xs = torch.arange(k, dtype=left.dtype, device=left.device) - k // 2
    cl = (left.sum(dim=-2) * xs).sum(dim=-1).mean(dim=-1)
    cr = (right.sum(dim=-2) * xs).sum(dim=-1).mean(dim=-1)
    return cl - cr


@dataclasses.dataclass(frozen=True)
class PsfStack:
    """The fields of N ``PsfParams`` as (N,) tensors on one device, so N kernels render in one pass."""

    edge_softness: torch.Tensor
    rim: torch.Tensor
    blades: torch.Tensor
    blade_angle: torch.Tensor
    cat_eye: torch.Tensor
    chroma_px: torch.Tensor
    frame_x: torch.Tensor
    frame_y: torch.Tensor
    dp_split_softness: torch.Tensor

    @classmethod
    def of(cls, psfs: Sequence[PsfParams], device: torch.device | str = "cpu") -> PsfStack:
        def col(name: str) -> torch.Tensor:
            return torch.tensor([float(getattr(p, name)) for p in psfs], dtype=torch.float32, device=device)

        return cls(
            edge_softness=col("edge_softness"),
            rim=col("rim"),
            blades=col("blades"),
            blade_angle=col("blade_angle"),
            cat_eye=col("cat_eye"),
            chroma_px=col("chroma_px"),
            frame_x=col("frame_x"),
            frame_y=col("frame_y"),
            dp_split_softness=col("dp_split_softness"),
        )

    def select(self, rows: Sequence[int]) -> PsfStack:
        """The lenses at ``rows``, in that order."""
        index = torch.tensor(list(rows), device=self.rim.device)
        return PsfStack(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


def chroma_shifts(psf: PsfStack) -> torch.Tensor:
    """Per-channel (dy, dx) shift in px, (N, 3, 2): R moves outwards, B inwards, along the frame radius."""
    rel = torch.stack([psf.frame_y, psf.frame_x], dim=-1) / math.sqrt(2.0)  # (N, 2)
    c = psf.chroma_px[:, None]
    return torch.stack([c * rel, 0.0 * rel, -c * rel], dim=1)


def kernel_halfsize(coc: float, psf: PsfParams) -> int:
    """Half width of the kernel grid that holds the aperture image, its soft edge and the chroma shift.

    A larger grid gives the same kernel (the aperture is exactly zero beyond it), which is what lets a batch
    share one grid size.
    """
    r = abs(coc) / 2.0
    return int(math.ceil(r * (1.0 + psf.edge_softness) + abs(psf.chroma_px) + 1.0))


def _ramp(t: torch.Tensor) -> torch.Tensor:
    """Smooth 0->1 step over t in [-0.5, 0.5]; C1-continuous so soft edges have no Mach bands."""
    u = (t + 0.5).clamp(0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _col(x: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, 1, 1), to broadcast against (N, 3, g, g) grids."""
    return x[:, None, None, None]


def _aperture(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor, psf: PsfStack, sign: torch.Tensor) -> torch.Tensor:
    """Transmission of the (possibly polygonal, vignetted) aperture at aperture coordinates (u, v) in px.

    ``u, v`` are (N, 3, g, g); ``r`` and ``sign`` are (N, 1, 1, 1). Options a lens lacks (blades, rim, cat's
    eye) are switched off per kernel with ``where`` so that one pass serves a whole batch of lenses.
    """
    soft = _col(psf.edge_softness.clamp_min(1e-3))
    dist = torch.hypot(u, v)
    blades = _col(psf.blades)
    polygon = blades >= 3
    n_sides = torch.where(polygon, blades, torch.full_like(blades, 3.0))
    sector = 2.0 * math.pi / n_sides
    theta = torch.remainder(torch.atan2(v, u) - _col(psf.blade_angle), sector) - sector / 2.0
    dist = torch.where(polygon, dist * torch.cos(theta) / torch.cos(math.pi / n_sides), dist)
    rho = dist / r
    inside = _ramp((1.0 - rho) / soft)
    # Undercorrected spherical aberration: bright rims in front of focus, bright centres behind (rim 0: x1).
    inside = inside * (1.0 - sign * _col(psf.rim) * (2.0 * rho.clamp(0.0, 1.0) ** 2 - 1.0))
    norm = torch.hypot(psf.frame_x, psf.frame_y)
    shift = _col(psf.cat_eye * norm / math.sqrt(2.0)) * r
    # The vignetting pupil sits towards the frame centre; in aperture coordinates that is along -frame.
    safe = _col(norm.clamp_min(1e-12))
    du, dv = -shift * _col(psf.frame_x) / safe, -shift * _col(psf.frame_y) / safe
    rho2 = torch.hypot(u - du, v - dv) / r
    return torch.where(shift > 0.0, inside * _ramp((1.0 - rho2) / soft), inside)


def _shifted_points(half: int, shifts: torch.Tensor) -> torch.Tensor:
    """Bilinear points at sub-pixel offsets ``shifts`` (N, 3, 2): the in-focus kernels, (N, 3, k, k)."""
    ax = torch.arange(-half, half + 1, dtype=shifts.dtype, device=shifts.device)
    wy = (1.0 - (ax - shifts[..., 0:1]).abs()).clamp_min(0.0)  # (N, 3, k)
    wx = (1.0 - (ax - shifts[..., 1:2]).abs()).clamp_min(0.0)
    return wy[..., :, None] * wx[..., None, :]


def kernel_stack(coc: torch.Tensor, psf: PsfStack, half: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right kernels (N, 3, 2*half+1, 2*half+1) of N signed CoC diameters (px), one lens each.

    ``half`` must be at least ``kernel_halfsize`` of every entry. Every kernel channel sums to 1; apertures
    below ``MIN_RADIUS`` (or thinner than the subsample grid) are bilinear points, and a sub-pixel disc that
    one half-aperture misses is seen whole by both halves.
    """
    dev, k = coc.device, 2 * half + 1
    r = _col(coc.abs() / 2.0)
    point = r < MIN_RADIUS
    r_safe = r.clamp_min(MIN_RADIUS)
    sign = _col(torch.where(coc >= 0, 1.0, -1.0).to(coc.dtype))
    shifts = chroma_shifts(psf)  # (N, 3, 2)
    sub = (torch.arange(SUPERSAMPLE, dtype=coc.dtype, device=dev) + 0.5) / SUPERSAMPLE - 0.5
    grid = (torch.arange(-half, half + 1, dtype=coc.dtype, device=dev)[:, None] + sub[None, :]).reshape(-1)
    xs = grid[None, None, None, :] - shifts[..., 1, None, None]
    ys = grid[None, None, :, None] - shifts[..., 0, None, None]
    u, v = sign * xs, sign * ys
    ap = _aperture(u, v, r_safe, psf, sign)
    w_left = _ramp(u / (_col(psf.dp_split_softness.clamp_min(1e-3)) * r_safe))  # left photodiode: +u half
    total = ap.sum(dim=(-2, -1), keepdim=True)
    points = _shifted_points(half, shifts)
    out = []
    for weight in (w_left, 1.0 - w_left):
        part = ap * weight
        part = torch.where(part.sum(dim=(-2, -1), keepdim=True) < 1e-3 * total, ap, part)
        kern = part.reshape(*part.shape[:2], k, SUPERSAMPLE, k, SUPERSAMPLE).sum(dim=(3, 5))
        kern = kern / kern.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
        out.append(torch.where(point | (total <= 0.0), points, kern))
    return out[0], out[1]


def view_kernels(coc: float, psf: PsfParams, *, half: int | None = None) -> ViewKernels:
    """The left/right kernels of one signed CoC diameter (px) on a (2*half+1)^2 grid (``kernel_stack`` of one)."""
    half = kernel_halfsize(coc, psf) if half is None else half
    left, right = kernel_stack(torch.tensor([coc], dtype=torch.float32), PsfStack.of([psf]), half)
    return ViewKernels(left[0].numpy(), right[0].numpy())
