"""Validation PSNR, computed the way the papers evaluate: on the clipped float output, over all pixels.

Images are padded to the network's size multiple (reflect, as the inference engine does) and cropped back,
so validation sees whole photos of any size rather than training-sized patches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.engine.augment import Sample
from training.recipes.base import Recipe


def psnr(output: Tensor, target: Tensor) -> float:
    """10 log10(1 / MSE) for images in [0, 1]; capped at 100 dB for identical images."""
    mse = float(torch.mean((output.double() - target.double()) ** 2))
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def pad_to(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.no_grad()
def evaluate(
    recipe: Recipe,
    net: nn.Module,
    samples: Sequence[Sample],
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[object]],
) -> float:
    """Mean PSNR of ``net`` over ``samples`` (dicts with ``blur`` and ``sharp``); keeps the net's mode."""
    was_training = net.training
    net.eval()
    scores = []
    try:
        for s in samples:
            blur = s["blur"][None].to(device)
            h, w = blur.shape[-2:]
            with autocast():
                out = recipe.predict(net, pad_to(blur, recipe.multiple_of))
            out = out[..., :h, :w].float().clamp(0.0, 1.0).cpu()
            scores.append(psnr(out[0], s["sharp"].float()))
    finally:
        net.train(was_training)
    return sum(scores) / len(scores)
