"""KPAC's recipe (Son et al., ICCV 2021). The authors released no training code; what their repository's
``config.py`` and ``model.py`` show is used: Adam (beta1 0.9) at 1e-4, batch 8, an L1 image loss, and a
VGG-19 builder returning conv4_4 features (so an optional perceptual term on conv4_4, off by default).
Iterations and crop are not recorded for the single-image model; 200k steps on 384 px crops (the default
crop of the authors' ``utils``) are our choice. The network works in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor, nn

from deblurcli.archs.kpac import KPAC
from deblurcli.errors import WeightsMissingError
from training.losses import VGGFeatureLoss, default_hed_path
from training.recipes.base import Batch, Losses, Objective, Recipe

#: torchvision ``vgg19().features`` index of conv4_4 (pre-activation)
CONV4_4 = 25


class KPACObjective(Objective):
    def __init__(self, net: KPAC, *, vgg: VGGFeatureLoss | None, perceptual: float) -> None:
        super().__init__(net)
        self.vgg, self.perceptual = vgg, perceptual

    def forward(self, batch: Batch) -> Losses:
        out = self.net(batch["blur"] * 2.0 - 1.0)
        l1 = (out - (batch["sharp"] * 2.0 - 1.0)).abs().mean()
        if self.vgg is None:
            return {"loss": l1, "l1": l1.detach()}
        feat = self.vgg(((out + 1.0) * 0.5).clamp(0.0, 1.0), batch["sharp"])
        return {"loss": l1 + self.perceptual * feat, "l1": l1.detach(), "vgg": feat.detach()}


@dataclass(frozen=True, kw_only=True)
class KPACRecipe(Recipe):
    """KPAC; ``levels`` 2 is the released single-image model (1.58M), 3 the 2.06M one.

    Attributes:
        perceptual: weight of the conv4_4 VGG feature term (0 = L1 only).
        vgg_weights: backbone file for the perceptual term (see ``training/losses.py``).
    """

    name: ClassVar[str] = "kpac"
    method: ClassVar[str] = "kpac"

    iterations: int = 200_000
    batch: int = 8
    crop: int = 384
    lr: float = 1e-4
    levels: int = 2
    perceptual: float = 0.0
    vgg_weights: str = ""

    @property
    def multiple_of(self) -> int:  # type: ignore[override]
        return 2**self.levels

    def build_net(self) -> nn.Module:
        return KPAC(levels=self.levels, dual_pixel=False)

    def net_hparams(self) -> dict[str, Any]:
        return {"levels": self.levels, "dual_pixel": False}

    def objective(self, net: nn.Module) -> Objective:
        if not isinstance(net, KPAC):
            raise TypeError("the KPAC recipe trains a KPAC")
        vgg = None
        if self.perceptual > 0:
            path = Path(self.vgg_weights).expanduser() if self.vgg_weights else default_hed_path()
            if path is None:
                raise WeightsMissingError("the perceptual term needs --vgg-weights (a VGG-19 file)")
            vgg = VGGFeatureLoss(weights=path, layers=(CONV4_4,))
        return KPACObjective(net, vgg=vgg, perceptual=self.perceptual)

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return (net(blur * 2.0 - 1.0) + 1.0) * 0.5
