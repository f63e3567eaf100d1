"""Random crops and the published augmentations, drawn from a per-sample seed (see ``sampling``).

A training sample is a dict of float32 (C, H, W) tensors sharing H and W: ``blur`` (the network input, sRGB
in [0, 1]), ``sharp`` (its target), optionally ``left``/``right`` (dual-pixel views) and ``defocus`` (a
1-channel blur-radius map in pixels). Geometric operations act on every entry alike; photometric ones act
on the images only, and noise only on what the camera saw (never on the target). Rescaling a photo rescales
its blur, so ``defocus`` is multiplied by the scale factor too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from deblurcli.engine.color import linear_to_srgb
from deblurcli.errors import DataError
from deblurcli.methods.defocus_map import gaussian

Sample = dict[str, torch.Tensor]
#: entries that are photographs (greyscale conversion applies), and those the sensor noise applies to
IMAGE_KEYS = ("blur", "sharp", "left", "right")
NOISY_KEYS = ("blur", "left", "right")


@dataclass(frozen=True, kw_only=True)
class Augment:
    """What a recipe asks for; the defaults do nothing but crop.

    Attributes:
        crop: square patch edge in px (0 keeps the whole image, for validation).
        flips: random horizontal and vertical flips (p = 0.5 each).
        rot90: random rotation by a multiple of 90 degrees.
        noise_p, noise_sigma: probability and uniform sigma range of additive Gaussian noise.
        gray_p: probability of IFAN's greyscale conversion (luma on sRGB values, then the sRGB curve).
        scale_p, scale_range: probability and uniform range of a downscale applied before cropping.
        soften_p, soften_sigma: probability and uniform sigma range (px) of a Gaussian blur applied to input
            and target alike. It stands for a camera's own softness (lens, demosaicing), which the renderer's
            downscaled sources lack: without it a network reads every photo seen at 100 % as defocused.
            Small Gaussians commute with the defocus blur, so the pair stays a valid one; ``defocus`` is kept.
    """

    crop: int = 256
    flips: bool = False
    rot90: bool = False
    noise_p: float = 0.0
    noise_sigma: tuple[float, float] = (0.001, 0.005**0.5)
    gray_p: float = 0.0
    scale_p: float = 0.0
    scale_range: tuple[float, float] = (0.7, 1.0)
    soften_p: float = 0.0
    soften_sigma: tuple[float, float] = (0.3, 1.0)


def ifan_gray(image: torch.Tensor) -> torch.Tensor:
    """IFAN's greyscale: Rec.709 luma computed on sRGB values, then sRGB-encoded again (it brightens)."""
    w = torch.tensor([0.2126, 0.7152, 0.07228], dtype=image.dtype, device=image.device).view(3, 1, 1)
    return linear_to_srgb((image * w).sum(0, keepdim=True)).expand(3, -1, -1).clone()


def _rescale(sample: Sample, s: float) -> Sample:
    h, w = next(iter(sample.values())).shape[-2:]
    size = (max(1, round(h * s)), max(1, round(w * s)))
    out = {}
    for k, v in sample.items():
        r = F.interpolate(v[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        out[k] = r * s if k == "defocus" else r
    return out


def apply(sample: Mapping[str, torch.Tensor], aug: Augment, seed: int) -> Sample:
    """One augmented patch; the same ``(sample, aug, seed)`` always gives the same bits.

    Raises:
        DataError: the image is smaller than the crop.
    """
    rng = np.random.default_rng(seed)
    # Every draw happens whether or not it is used, so that one option never shifts another's randomness.
    noisy, sigma = rng.random() < aug.noise_p, rng.uniform(*aug.noise_sigma)
    gray = rng.random() < aug.gray_p
    scaled, s = rng.random() < aug.scale_p, rng.uniform(*aug.scale_range)
    fy, fx, quarter = rng.random() < 0.5, rng.random() < 0.5, int(rng.integers(4))
    # softening draws from a stream of its own, so that adding it moved no crop or noise of earlier runs
    soft_rng = np.random.default_rng((seed, 1))
    soft, soft_sigma = soft_rng.random() < aug.soften_p, soft_rng.uniform(*aug.soften_sigma)
    out: Sample = {k: v.float() for k, v in sample.items()}
    h, w = out["blur"].shape[-2:]
    if scaled:
        # Never shrink below the crop: on full-size photos this never binds, on small ones it keeps the patch.
        s = max(float(s), aug.crop / min(h, w)) if aug.crop else float(s)
        if s < 1.0:
            out = _rescale(out, s)
            h, w = out["blur"].shape[-2:]
    if aug.crop:
        if h < aug.crop or w < aug.crop:
            raise DataError(f"a {w}x{h} training image is smaller than the {aug.crop}px crop; lower --crop")
        y, x = int(rng.integers(h - aug.crop + 1)), int(rng.integers(w - aug.crop + 1))
        out = {k: v[:, y : y + aug.crop, x : x + aug.crop] for k, v in out.items()}
    if soft:
        out = {k: gaussian(v[None], float(soft_sigma))[0] if k in IMAGE_KEYS else v for k, v in out.items()}
    if gray:
        out = {k: ifan_gray(v) if k in IMAGE_KEYS else v for k, v in out.items()}
    if noisy:
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        # drawn on the CPU whatever the device, so that a patch has the same bits wherever it is augmented
        noise = (torch.randn(out["blur"].shape, generator=g) * float(sigma)).to(out["blur"].device)
        out = {k: (v + noise).clamp(0.0, 1.0) if k in NOISY_KEYS else v for k, v in out.items()}
    dual = "left" in out or "right" in out
    if aug.flips:
        dims = [d for d, on in ((-2, fy), (-1, fx)) if on]
        if dims:
            out = {k: v.flip(dims) for k, v in out.items()}
        if fx and dual:
            # mirrored left-right, the left half-aperture view becomes the right one
            out["left"], out["right"] = out["right"], out["left"]
    if aug.rot90 and quarter:
        if dual:
            raise DataError("90-degree rotations would turn dual-pixel disparity vertical; disable rot90 for DP data")
        out = {k: v.rot90(quarter, (-2, -1)) for k, v in out.items()}
    return {k: v.contiguous() for k, v in out.items()}


def require_keys(raw: Mapping[str, torch.Tensor], keys: tuple[str, ...], index: int) -> None:
    """Raises DataError if sample ``index`` lacks an entry the recipe needs."""
    missing = [k for k in keys if k not in raw]
    if missing:
        raise DataError(f"training sample {index} lacks {', '.join(missing)} (this recipe needs them)")


@runtime_checkable
class BatchSource(Protocol):
    """A dataset that makes whole micro-batches itself, on the training device (e.g. live synthetic data).

    ``batches`` gets the sampler's stream of ``(index, seed)`` pairs and must yield, for each consecutive
    group of ``micro`` pairs, what ``Patches`` + a DataLoader would: the stacked ``apply(base[index], aug,
    seed)`` patches, so that a batch stays a pure function of the stream position and resume stays bit-exact.
    The loop uses it instead of a DataLoader; ``workers`` is the loop's ``--workers``.
    """

    def __len__(self) -> int: ...

    def batches(
        self,
        stream: Iterable[tuple[int, int]],
        micro: int,
        *,
        aug: Augment,
        keys: tuple[str, ...],
        device: torch.device,
        workers: int = 0,
    ) -> Iterator[Sample]: ...


class Patches(Dataset[Sample]):
    """A dataset of full samples seen through ``apply``: indexed by the sampler's ``(index, seed)`` pairs."""

    def __init__(self, base: Dataset[Any], aug: Augment, *, keys: tuple[str, ...]) -> None:
        self.base, self.aug, self.keys = base, aug, keys

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Sample:
        index, seed = item
        raw = self.base[index]
        require_keys(raw, self.keys, index)
        return apply({k: raw[k] for k in self.keys}, self.aug, seed)
