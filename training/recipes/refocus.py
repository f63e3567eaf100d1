"""Our own recipe, for ``--method refocus``: synthetic defocus, a weighted image loss, a map loss, EMA weights.

Choices and why:

* **Weighted L1 on the image.** Most pixels of a defocus scene are in focus; a plain mean lets the network
  win by copying its input. Each pixel's L1 is weighted by ``1 + blur_weight * min(r, r_max) / r_max`` (r the
  true blur radius), normalised to a mean of 1 per batch, so a 6 px blur counts several times an in-focus
  pixel without the loss scale depending on the scene.
* **Half the patches softened as a camera would** (``soften_p``; a Gaussian of sigma 0.3-1 px on input and
  target alike, ``Augment.soften_p``). The renderer's sources are photos shrunk 2-6x, crisper than any photo
  seen at 100 %; trained on them alone, the network read a sharp 512 px photo as blurred by about 2 px and
  sharpened it (scikit-image's astronaut: 36.7 dB from itself). Softened, its map reads 1.7 px there, the
  photo keeps 39.6 dB, and the held-out synthetic figures do not move (4000 steps; at 7000 the map crept back
  to 2.1 px: it slows the drift toward over-sharpening, it does not stop it; issue #10 note).
* **Optionally, in-focus pixels beside sharp edges weigh like blurred ones** (``edge_weight``, off): such
  pixels are where a deblurring network does harm (a darkened horizon), yet blur weighting ranks them lowest.
  An in-focus pixel within 4 px of a target step of ``EDGE_GRAD`` or more then weighs as a blur of
  ``edge_weight * R_MAX`` px. From scratch it damaged a sharp photo less and sharpened blur less; kept off.
* **Map loss.** L1 between the map head and the renderer's blur radius (px), weighted small: the map is a
  by-product (``--maps``, bokeh protection) and must not steal capacity from the image.
* **Cosine schedule with linear warm-up**, Adam. A small network trained from scratch tolerates a high peak
  rate; the warm-up avoids the early blow-ups seen with zero-initialised output convs.
* **EMA of the weights** (decay ramped up over the first steps) is what is validated and exported: it is
  markedly smoother than the raw weights after short CPU runs. It lives on the objective, so the training
  state saves and resumes it bit-exactly with everything else.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from deblurcli.archs.refocus import MULTIPLE_OF, Refocus
from training.engine.augment import Augment
from training.recipes.base import Batch, Losses, Objective, Recipe

#: blur radius (px) above which the image-loss weight stops growing
R_MAX = 6.0
#: grey-level step between neighbouring pixels ([0, 1] units) that counts as a full-strength sharp edge
EDGE_GRAD = 0.1


def sharp_edges(sharp: Tensor) -> Tensor:
    """Edge strength in [0, 1] of the target, spread over a 9x9 neighbourhood: ``(N, 1, H, W)``."""
    grey = sharp.mean(dim=1, keepdim=True)
    gx = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = F.pad((grey[..., 1:, :] - grey[..., :-1, :]).abs(), (0, 0, 0, 1))
    grad = torch.maximum(gx, gy)
    return (F.max_pool2d(grad, 9, stride=1, padding=4) / EDGE_GRAD).clamp(max=1.0)


class RefocusObjective(Objective):
    """Weighted image L1 + map L1; keeps an EMA copy of the network that ``export_net`` returns."""

    def __init__(
        self, net: Refocus, *, blur_weight: float, edge_weight: float, map_weight: float, ema_decay: float
    ) -> None:
        super().__init__(net)
        self.blur_weight, self.edge_weight = blur_weight, edge_weight
        self.map_weight, self.ema_decay = map_weight, ema_decay
        self.ema = copy.deepcopy(net)
        for p in self.ema.parameters():
            p.requires_grad_(False)

    @property
    def export_net(self) -> nn.Module:
        return self.ema

    def forward(self, batch: Batch) -> Losses:
        image, radius = self.net(batch["blur"])
        true = batch["defocus"]
        level = true.clamp(max=R_MAX) / R_MAX
        if self.edge_weight > 0:
            in_focus = (true < 1.0).to(level.dtype)
            level = torch.maximum(level, self.edge_weight * in_focus * sharp_edges(batch["sharp"]))
        weight = 1.0 + self.blur_weight * level
        weight = weight / weight.mean()
        l1 = ((image - batch["sharp"]).abs() * weight).mean()
        map_l1 = (radius - true).abs().mean()
        loss = l1 + self.map_weight * map_l1
        return {"loss": loss, "l1": l1.detach(), "map": map_l1.detach()}

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """EMA update after optimiser step ``step`` (1-based); the decay ramps up so early weights fade fast."""
        decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            e.copy_(b)


@dataclass(frozen=True, kw_only=True)
class RefocusRecipe(Recipe):
    """Defaults are for a GPU run; CPU runs override iterations, batch and crop on the command line.

    Attributes:
        width, enc_blocks, mid_blocks, dec_blocks: the architecture (see ``deblurcli.archs.refocus``).
        warmup: linear warm-up steps before the cosine decay.
        min_lr_factor: the cosine ends at ``lr * min_lr_factor``.
        blur_weight: extra image-loss weight of a pixel blurred by ``R_MAX`` px or more.
        edge_weight: in-focus pixels near sharp target edges weigh like a blur of ``edge_weight * R_MAX`` px.
        soften_p: share of training patches softened as a camera would (``Augment.soften_p``).
        map_weight: weight of the map L1 (px) against the image L1 ([0, 1] units).
        ema_decay: EMA decay of the exported weights.
    """

    name: ClassVar[str] = "refocus"
    method: ClassVar[str] = "refocus"
    keys: ClassVar[tuple[str, ...]] = ("blur", "sharp", "defocus")
    multiple_of: ClassVar[int] = MULTIPLE_OF

    iterations: int = 100_000
    batch: int = 16
    crop: int = 192
    lr: float = 1e-3
    clip_grad: float | None = 1.0
    width: int = 32
    enc_blocks: tuple[int, int] = (1, 1)
    mid_blocks: int = 3
    dec_blocks: tuple[int, int] = (1, 1)
    warmup: int = 200
    min_lr_factor: float = 0.01
    blur_weight: float = 3.0
    edge_weight: float = 0.0
    soften_p: float = 0.5
    map_weight: float = 0.01
    ema_decay: float = 0.999

    def build_net(self) -> nn.Module:
        return Refocus(**self.net_hparams())

    def net_hparams(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "enc_blocks": list(self.enc_blocks),  # lists: the record is JSON
            "mid_blocks": self.mid_blocks,
            "dec_blocks": list(self.dec_blocks),
        }

    def objective(self, net: nn.Module) -> Objective:
        if not isinstance(net, Refocus):
            raise TypeError("the refocus recipe trains a Refocus network")
        return RefocusObjective(
            net,
            blur_weight=self.blur_weight,
            edge_weight=self.edge_weight,
            map_weight=self.map_weight,
            ema_decay=self.ema_decay,
        )

    def optimizer(self, params: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, betas=(0.9, 0.99), weight_decay=1e-4)

    def lr_factor(self, step: int) -> float:
        warm = max(1, min(self.warmup, self.iterations // 10))
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, self.iterations - warm)
        return self.min_lr_factor + (1.0 - self.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * t))

    def augment(self) -> Augment:
        # The renderer already varies blur, noise and JPEG; flips and quarter turns are free extra data.
        return Augment(crop=self.crop, flips=True, rot90=True, soften_p=self.soften_p)

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return net(blur)[0]


@dataclass(frozen=True, kw_only=True)
class RefocusLargeRecipe(RefocusRecipe):
    """The larger variant, for a GPU: 8,983,440 parameters (width 64, 2-2-6-2-2 blocks), 256 px crops.

    Same objective, schedule and exported file format (``method`` stays ``refocus``, the file's ``hparams``
    carry the size), so ``defocus deblur --method refocus --weights final.safetensors`` loads it. It exists as
    a recipe of its own because the command line sets schedule and data, not the architecture. Capacity is
    not known to cure refocus's in-focus fault (issue #10): on the CPU, width 48 gained in blurred regions and
    darkened a sharp horizon more than width 32, so judge its weights with ``benchmarks/refocus_grid.py`` and
    ``benchmarks/colour_shift.py`` as well as the held-out PSNR.
    """

    name: ClassVar[str] = "refocus-large"

    width: int = 64
    enc_blocks: tuple[int, int] = (2, 2)
    mid_blocks: int = 6
    dec_blocks: tuple[int, int] = (2, 2)
    crop: int = 256
    batch: int = 32
