"""Occlusion-aware layered defocus rendering in linear light.

The scene is cut into a few depth layers by signed CoC. Each layer's premultiplied colour and its alpha are
blurred with that layer's kernel (FFT convolution) and composited back to front with 'over'. Blurring colour
and coverage together is what prevents halos: a layer's blur only spreads that layer's own light, so a sharp
subject never bleeds into the blurred background behind it, and a blurred foreground spreads over the
background by at most its own kernel radius. Pixels between two layer CoCs are split between the two layers
with tent weights, and the accumulated colour is divided by the accumulated coverage at the end, which fixes
both the split pixels and the holes a front layer leaves in the layer behind it (no dark rims).

``render_views`` does this for a batch of scenes at once on any torch device (each scene with its own lens
and layers); ``render_scene`` is the same call for one numpy scene.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from training.synth.params import PsfParams
from training.synth.psf import PsfStack, kernel_disparity, kernel_halfsize, kernel_stack


@dataclass(frozen=True)
class Rendered:
    """Linear-light views (3, h, w) float32 plus per-pixel maps (h, w) float32."""

    left: np.ndarray
    right: np.ndarray
    coc: np.ndarray
    disparity: np.ndarray
    layer_cocs: tuple[float, ...]

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.left + self.right)


def _signed_sqrt(x: float) -> float:
    return math.copysign(math.sqrt(abs(x)), x)


def layer_cocs(lo: float, hi: float, n_layers: int) -> np.ndarray:
    """Layer CoCs (ascending) for a CoC map spanning [lo, hi]: at most ``n_layers``, about one per px of range.

    Layers are spaced evenly in signed sqrt(CoC) so that small blurs, where one pixel of CoC is clearly
    visible, get finer steps than large ones. The extremes of the map are always exact layer values.
    """
    if hi - lo < 1e-6:
        return np.array([lo])
    n = max(2, min(n_layers, int(math.ceil(hi - lo)) + 1))
    t = np.linspace(_signed_sqrt(lo), _signed_sqrt(hi), n)
    return np.sign(t) * t**2


def _layer_position(coc: torch.Tensor, layers: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the lower of the two layers it is split between (B, H, W) and its tent weight on the upper.

    The weight of layer i is ``(1 - frac)`` where ``idx == i`` plus ``frac`` where ``idx + 1 == i``: weights
    sum to 1 and are a pointwise function of the CoC, so they can be formed one layer at a time.
    """
    dev = coc.device
    t_lo = torch.tensor([_signed_sqrt(float(c[0])) for c in layers], device=dev)[:, None, None]
    t_hi = torch.tensor([_signed_sqrt(float(c[-1])) for c in layers], device=dev)[:, None, None]
    n = torch.tensor([len(c) for c in layers], device=dev)[:, None, None]
    flat = n < 2
    span = torch.where(flat, 1.0, t_hi - t_lo)
    pos = (torch.sign(coc) * coc.abs().sqrt() - t_lo) / span * (n - 1).clamp_min(1)
    idx = torch.minimum(pos.floor().clamp_min(0), (n - 2).clamp_min(0)).long()
    frac = torch.where(flat, 0.0, pos - idx)
    return idx, frac


def render_views(
    linear: torch.Tensor,
    coc: torch.Tensor,
    psfs: Sequence[PsfParams],
    layers: Sequence[np.ndarray],
    *,
    pad: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left and right views (B, 3, H, W) and the disparity map (B, H, W) of B linear-light scenes.

    ``linear`` is (B, 3, H, W) and ``coc`` (B, H, W) signed CoC diameters in px, both on the rendering device;
    scene b uses lens ``psfs[b]`` and the layer CoCs ``layers[b]`` (``layer_cocs`` of its map). ``pad``
    reflects the borders before the (circular) FFT, for callers without a margin of context around the crop.
    Scenes with fewer layers than others get empty (zero-coverage) layers, which leave the composite
    exactly unchanged.
    """
    dev, (b, _, h, w) = linear.device, linear.shape
    idx, frac = _layer_position(coc, layers)
    img = linear.float()
    if pad:
        img = F.pad(img, (pad,) * 4, mode="reflect")
        idx = F.pad(idx[:, None].float(), (pad,) * 4, mode="reflect")[:, 0].long()
        frac = F.pad(frac[:, None], (pad,) * 4, mode="reflect")[:, 0]
    shape = (img.shape[-2], img.shape[-1])
    stack = PsfStack.of(psfs, dev)
    acc_col = torch.zeros((b, 2, 3, *shape), device=dev)
    acc_alpha = torch.zeros((b, 2, 3, *shape), device=dev)
    disparity = torch.zeros((b, *shape), device=dev)
    n_max = max(len(c) for c in layers)
    # Which layers hold any pixel, for the whole batch at once (one device sync): empty ones are skipped.
    mass = torch.zeros((b, n_max + 1), device=dev)
    mass.scatter_add_(1, idx.flatten(1), (1.0 - frac).flatten(1))
    mass.scatter_add_(1, idx.flatten(1) + 1, frac.flatten(1))
    occupied = (mass > 0).cpu().tolist()
    for i in range(n_max - 1, -1, -1):  # far (large signed CoC) to near
        has = [len(c) > i and occupied[j][i] for j, c in enumerate(layers)]
        rows = [j for j, ok in enumerate(has) if ok]
        if not rows:
            continue
        # Only the scenes that have pixels on this layer pay for its FFTs.
        sel = slice(None) if len(rows) == b else torch.tensor(rows, device=dev)
        cocs = [float(layers[j][i]) for j in rows]
        half = max(kernel_halfsize(c, psfs[j]) for c, j in zip(cocs, rows, strict=True))
        left, right = kernel_stack(torch.tensor(cocs, device=dev), stack.select(rows), half)
        a = torch.where(idx[sel] == i, 1.0 - frac[sel], 0.0) + torch.where(idx[sel] + 1 == i, frac[sel], 0.0)
        spec = torch.fft.rfft2(torch.cat([img[sel] * a[:, None], a[:, None]], dim=1))  # (n, 4, H, W//2+1)
        k = 2 * half + 1
        canvas = torch.zeros((len(rows), 2, 3, *shape), device=dev)
        canvas[..., :k, :k] = torch.stack([left, right], dim=1)
        kf = torch.fft.rfft2(torch.roll(canvas, shifts=(-half, -half), dims=(-2, -1)))
        col = torch.fft.irfft2(spec[:, None, :3] * kf, s=shape)
        cov = torch.fft.irfft2(spec[:, None, 3:4] * kf, s=shape).clamp_(0.0, 1.0)
        disp = kernel_disparity(left, right)[:, None, None] * a
        if isinstance(sel, slice):
            keep = 1.0 - cov
            acc_col.mul_(keep).add_(col)
            acc_alpha.mul_(keep).add_(cov)
            disparity += disp
        else:
            keep = 1.0 - cov
            acc_col.index_copy_(0, sel, col + keep * acc_col[sel])
            acc_alpha.index_copy_(0, sel, cov + keep * acc_alpha[sel])
            disparity.index_add_(0, sel, disp)
    views = (acc_col / acc_alpha.clamp_min(1e-6)).clamp_min_(0.0)
    if pad:
        views = views[..., pad : pad + h, pad : pad + w]
        disparity = disparity[:, pad : pad + h, pad : pad + w]
    return views[:, 0], views[:, 1], disparity


def render_scene(
    linear: np.ndarray, coc: np.ndarray, psf: PsfParams, *, n_layers: int = 12, pad: bool = True
) -> Rendered:
    """Render dual-pixel defocused views of a linear-light image (3, h, w) with a signed CoC map (h, w).

    ``pad`` reflects the borders by the largest kernel radius before the (circular) FFT; callers that
    already cut their input with a margin at least that wide and crop it afterwards can skip it.
    """
    coc = coc.astype(np.float32)
    cocs = layer_cocs(float(coc.min()), float(coc.max()), n_layers)
    half = max(kernel_halfsize(float(c), psf) for c in cocs) if pad else 0
    img = torch.from_numpy(np.ascontiguousarray(linear, dtype=np.float32))[None]
    left, right, disparity = render_views(img, torch.from_numpy(coc)[None], [psf], [cocs], pad=half)
    return Rendered(
        left=left[0].numpy(),
        right=right[0].numpy(),
        coc=coc,
        disparity=disparity[0].numpy(),
        layer_cocs=tuple(float(c) for c in cocs),
    )
