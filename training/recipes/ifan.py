"""IFAN's recipe (Lee et al., CVPR 2021), as the authors' training code runs it (research/ifan.md §5).

Loss: MSE(deblurred, sharp) + MSE(R warped to L by the disparity predicted from R, at 1/8) + MSE(sharp
reblurred by the RBN from IFAN's filters, blurry input at 1/8), all weights 1. RAdam 1e-4 with *decoupled*
weight decay 0.01, halved at 500k and 550k of 600k iterations, gradient norm clipped to 0.5 over all
parameters (RBN included). Batch 8, 256 px crops; augmentation noise (p .05), IFAN's greyscale (p .3) and a
0.7-1 downscale (p .5), no flips (a flip would swap the dual-pixel views' roles). Initialisation: Xavier
uniform (gain 1, zero bias) everywhere, then the filter predictor ``F`` again with gain 1.5.

Needs the dual-pixel views (``dpdd:`` or ``synth:`` data).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.archs.ifan import IFAN, IFANReblur, downsample8, warp_by_disparity
from training.engine.augment import Augment
from training.recipes.base import Batch, Losses, Objective, Recipe


def xavier_init(module: nn.Module, *, gain: float) -> None:
    """Xavier-uniform weights and zero biases for every (transposed) convolution under ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class IFANObjective(Objective):
    """IFAN plus its training-only reblurring net and the three MSE terms."""

    def __init__(self, net: IFAN, reblur: IFANReblur) -> None:
        super().__init__(net)
        self.reblur = reblur

    def forward(self, batch: Batch) -> Losses:
        net: IFAN = self.net  # type: ignore[assignment]
        blur, sharp, left, right = batch["blur"], batch["sharp"], batch["left"], batch["right"]
        views = torch.cat([right, left], dim=1) if net.dual_pixel else None
        out, _, filters = net.forward_with_filters(blur, views)
        deblur = F.mse_loss(out, sharp)
        # The disparity pass runs on R (the dual-pixel model: on cat[R, L]); R at 1/8, warped, should be L.
        disparity_r = net.estimate_disparity(views if views is not None else right)
        warp = F.mse_loss(warp_by_disparity(downsample8(right), disparity_r), downsample8(left))
        reblur = F.mse_loss(self.reblur(filters, sharp), downsample8(blur))
        total = deblur + warp + reblur
        return {"loss": total, "deblur": deblur.detach(), "warp": warp.detach(), "reblur": reblur.detach()}


@dataclass(frozen=True, kw_only=True)
class IFANRecipe(Recipe):
    """IFAN training; ``net_iterations`` is the IAC iteration count N (17 for the released model).

    Attributes:
        milestones: steps after which the rate is multiplied by ``gamma``.
        weight_decay: decoupled (AdamW-style) decay of RAdam.
        init_gain_filters: Xavier gain of the filter predictor ``F``.
    """

    name: ClassVar[str] = "ifan"
    method: ClassVar[str] = "ifan"
    keys: ClassVar[tuple[str, ...]] = ("blur", "sharp", "left", "right")
    schedule_points: ClassVar[tuple[str, ...]] = ("milestones",)

    iterations: int = 600_000
    batch: int = 8
    crop: int = 256
    lr: float = 1e-4
    milestones: tuple[int, ...] = (500_000, 550_000)
    gamma: float = 0.5
    weight_decay: float = 0.01
    clip_grad: float | None = 0.5
    net_iterations: int = 17
    dual_pixel: bool = False
    init_gain: float = 1.0
    init_gain_filters: float = 1.5

    def build_net(self) -> nn.Module:
        net = IFAN(iterations=self.net_iterations, dual_pixel=self.dual_pixel)
        xavier_init(net, gain=self.init_gain)
        xavier_init(net.F, gain=self.init_gain_filters)
        return net

    def net_hparams(self) -> dict[str, Any]:
        return {"iterations": self.net_iterations, "dual_pixel": self.dual_pixel}

    def objective(self, net: nn.Module) -> Objective:
        if not isinstance(net, IFAN):
            raise TypeError("the IFAN recipe trains an IFAN")
        reblur = IFANReblur(iterations=self.net_iterations)
        xavier_init(reblur, gain=self.init_gain)
        return IFANObjective(net, reblur)

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.RAdam(
            params,
            lr=self.lr,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=self.weight_decay,
            decoupled_weight_decay=True,
        )

    def lr_factor(self, step: int) -> float:
        # The authors' scheduler keeps 1e-4 "for iterations <= 500k": the drop applies after the milestone.
        return self.gamma ** sum(step >= m for m in self.milestones)

    def augment(self) -> Augment:
        return Augment(crop=self.crop, noise_p=0.05, gray_p=0.3, scale_p=0.5, scale_range=(0.7, 1.0))

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return net(blur)[0]
