"""Per-paper augmentations, drawn from a ``torch.Generator`` and applied identically to every view.

One frozen dataclass holds the knobs; the presets follow the papers' code as summarised in shared/research:

* IFAN (ifan.md section 5): noise p=0.05 with sigma ~ U(0.001, 0.0707), one field shared by C/L/R and not
  the target; grayscale p=0.3 with IFAN's quirk of applying the sRGB encoding curve to Y (it brightens);
  downscale p=0.5 by U(0.7, 1); one 256 crop for all views; no flips or rotations.
* DRBNet: the training code is unreleased; the paper lists noise, grayscale and scaling with a 320 crop, so
  IFAN's probabilities are reused (an assumption) without the OETF quirk.
* DMSFT (following DID-ANet's DED recipe): rotation U(-45, 45) deg with zero fill, h/v flips p=0.5, random
  RGB channel order, 256 crop.

Maps (``coc``, ``disparity``, ``defocus``) follow every geometric step but get no noise or grayscale; their
values are in pixels, so they are multiplied by the scale factor. A horizontal flip swaps ``left`` and
``right`` so that the disparity keeps its sign convention relative to the CoC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deblurcli.engine.color import linear_to_srgb
from deblurcli.errors import DataError

NOISY = ("input", "left", "right")
IMAGES = ("input", "left", "right", "target")
MAPS = ("coc", "disparity", "defocus")


@dataclass(frozen=True)
class Augment:
    crop: int = 256
    noise_p: float = 0.0
    noise_sigma: tuple[float, float] = (0.001, math.sqrt(0.005))
    gray_p: float = 0.0
    gray_oetf: bool = False
    scale_p: float = 0.0
    scale_range: tuple[float, float] = (0.7, 1.0)
    rotate_deg: float = 0.0
    hflip_p: float = 0.0
    vflip_p: float = 0.0
    permute_channels: bool = False


IFAN_AUG = Augment(crop=256, noise_p=0.05, gray_p=0.3, gray_oetf=True, scale_p=0.5)
DRBNET_AUG = Augment(crop=320, noise_p=0.05, gray_p=0.3, scale_p=0.5)
DMSFT_AUG = Augment(crop=256, rotate_deg=45.0, hflip_p=0.5, vflip_p=0.5, permute_channels=True)


def _u(gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    rad = math.radians(degrees)
    theta = torch.tensor([[math.cos(rad), -math.sin(rad), 0.0], [math.sin(rad), math.cos(rad), 0.0]])
    grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def apply_augment(
    sample: dict[str, torch.Tensor], aug: Augment, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Return a new dict; every random draw is taken once per sample, in a fixed order, from ``gen``."""
    out = {k: v for k, v in sample.items() if isinstance(v, torch.Tensor)}
    extras = {k: v for k, v in sample.items() if not isinstance(v, torch.Tensor)}
    if aug.noise_p and _u(gen) < aug.noise_p:
        sigma = _u(gen, *aug.noise_sigma)
        ref = out["input"]
        noise = torch.randn(ref.shape, generator=gen) * sigma
        for k in NOISY:
            if k in out:
                out[k] = (out[k] + noise).clamp(0.0, 1.0)
    if aug.gray_p and _u(gen) < aug.gray_p:
        for k in IMAGES:
            if k in out:
                y = 0.2126 * out[k][0] + 0.7152 * out[k][1] + 0.0722 * out[k][2]
                y = linear_to_srgb(y) if aug.gray_oetf else y
                out[k] = y.expand(3, -1, -1).clone()
    if aug.permute_channels:
        perm = torch.randperm(3, generator=gen)
        for k in IMAGES:
            if k in out:
                out[k] = out[k][perm]
    if aug.scale_p and _u(gen) < aug.scale_p:
        s = _u(gen, *aug.scale_range)
        h, w = out["input"].shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        for k, v in out.items():
            out[k] = F.interpolate(v[None], size=size, mode="area")[0] * (s if k in MAPS else 1.0)
    if aug.rotate_deg:
        angle = _u(gen, -aug.rotate_deg, aug.rotate_deg)
        out = {k: _rotate(v, angle) for k, v in out.items()}
    if aug.hflip_p and _u(gen) < aug.hflip_p:
        out = {k: v.flip(-1) for k, v in out.items()}
        if "left" in out and "right" in out:
            out["left"], out["right"] = out["right"], out["left"]
    if aug.vflip_p and _u(gen) < aug.vflip_p:
        out = {k: v.flip(-2) for k, v in out.items()}
    h, w = out["input"].shape[-2:]
    if h < aug.crop or w < aug.crop:
        raise DataError(f"image {w}x{h} is smaller than the {aug.crop}px training crop")
    y = int(torch.randint(0, h - aug.crop + 1, (), generator=gen))
    x = int(torch.randint(0, w - aug.crop + 1, (), generator=gen))
    out = {k: v[:, y : y + aug.crop, x : x + aug.crop].contiguous() for k, v in out.items()}
    return out | extras
