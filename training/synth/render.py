"""Occlusion-aware layered defocus rendering in linear light.

The scene is cut into a few depth layers by signed CoC. Each layer's premultiplied colour and its alpha are
blurred with that layer's kernel (FFT convolution) and composited back to front with 'over'. Blurring colour
and coverage together is what prevents halos: a layer's blur only spreads that layer's own light, so a sharp
subject never bleeds into the blurred background behind it, and a blurred foreground spreads over the
background by at most its own kernel radius. Pixels between two layer CoCs are split between the two layers
with tent weights, and the accumulated colour is divided by the accumulated coverage at the end, which fixes
both the split pixels and the holes a front layer leaves in the layer behind it (no dark rims).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from training.synth.params import PsfParams
from training.synth.psf import ViewKernels, kernel_halfsize, view_kernels


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


def _signed_sqrt(x: np.ndarray | float) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


def layer_weights(coc: np.ndarray, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer CoCs (ascending) and per-pixel tent weights (n, h, w) that sum to 1.

    Layers are spaced evenly in signed sqrt(CoC) so that small blurs, where one pixel of CoC is clearly
    visible, get finer steps than large ones. The extremes of the map are always exact layer values.
    """
    lo, hi = float(coc.min()), float(coc.max())
    if hi - lo < 1e-6:
        return np.array([lo]), np.ones((1, *coc.shape), dtype=np.float32)
    n = max(2, min(n_layers, int(math.ceil(hi - lo)) + 1))
    t_lo, t_hi = float(_signed_sqrt(lo)), float(_signed_sqrt(hi))
    t_layers = np.linspace(t_lo, t_hi, n)
    pos = (_signed_sqrt(coc) - t_lo) / (t_hi - t_lo) * (n - 1)
    idx = np.clip(np.floor(pos).astype(np.int64), 0, n - 2)
    frac = (pos - idx).astype(np.float32)
    weights = np.zeros((n, *coc.shape), dtype=np.float32)
    np.put_along_axis(weights, idx[None], (1.0 - frac)[None], axis=0)
    np.put_along_axis(weights, idx[None] + 1, frac[None], axis=0)
    return np.sign(t_layers) * t_layers**2, weights


def _kernel_fft(kernel: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """rfft2 of (c, k, k) kernels centred at pixel (0, 0) of a canvas of ``shape``."""
    c, k, _ = kernel.shape
    canvas = torch.zeros((c, *shape))
    canvas[:, :k, :k] = torch.from_numpy(kernel)
    canvas = torch.roll(canvas, shifts=(-(k // 2), -(k // 2)), dims=(1, 2))
    return torch.fft.rfft2(canvas)


def render_scene(
    linear: np.ndarray, coc: np.ndarray, psf: PsfParams, *, n_layers: int = 12, pad: bool = True
) -> Rendered:
    """Render dual-pixel defocused views of a linear-light image (3, h, w) with a signed CoC map (h, w).

    ``pad`` reflects the borders by the largest kernel radius before the (circular) FFT; callers that
    already cut their input with a margin at least that wide and crop it afterwards can skip it.
    """
    cocs, weights = layer_weights(coc.astype(np.float32), n_layers)
    kernels: list[ViewKernels] = [view_kernels(float(c), psf) for c in cocs]
    half = max(kernel_halfsize(float(c), psf) for c in cocs) if pad else 0
    h, w = coc.shape
    img = torch.from_numpy(np.ascontiguousarray(linear, dtype=np.float32))
    alpha = torch.from_numpy(weights)
    if half:
        img = torch.nn.functional.pad(img[None], (half,) * 4, mode="reflect")[0]
        alpha = torch.nn.functional.pad(alpha[None], (half,) * 4, mode="reflect")[0]
    shape = (img.shape[1], img.shape[2])
    acc_col = torch.zeros((2, 3, *shape))
    acc_alpha = torch.zeros((2, 3, *shape))
    for i in range(len(cocs) - 1, -1, -1):  # far (large signed CoC) to near
        a = alpha[i]
        if not bool((a > 0).any()):
            continue
        spec = torch.fft.rfft2(torch.cat([img * a, a[None]], dim=0))  # (4, H, W//2+1)
        kf = torch.stack([_kernel_fft(kernels[i].left, shape), _kernel_fft(kernels[i].right, shape)])
        col = torch.fft.irfft2(spec[None, :3] * kf, s=shape)
        cov = torch.fft.irfft2(spec[None, 3:4] * kf, s=shape).clamp_(0.0, 1.0)
        acc_col = col + (1.0 - cov) * acc_col
        acc_alpha = cov + (1.0 - cov) * acc_alpha
    views = (acc_col / acc_alpha.clamp_min(1e-6)).clamp_min_(0.0)
    if half:
        views = views[:, :, half : half + h, half : half + w]
    disp_layers = np.array([k.disparity for k in kernels], dtype=np.float32)
    disparity = np.tensordot(disp_layers, weights, axes=1).astype(np.float32)
    out = views.numpy()
    return Rendered(
        left=np.ascontiguousarray(out[0]),
        right=np.ascontiguousarray(out[1]),
        coc=coc.astype(np.float32),
        disparity=disparity,
        layer_cocs=tuple(float(c) for c in cocs),
    )
