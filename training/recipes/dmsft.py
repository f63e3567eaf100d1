"""DMSFT's three-stage recipe (Ye, Suganuma, Okatani 2022, §3.4 and §4.1; following DID-ANet's training).

* Stage 1 (400 epochs): ``0.2 L_dme + 0.9 L_df``, the deblurring path fed the *ground-truth* map (so a
  still-random estimator cannot derail it); the estimator is trained alongside by L_dme.
* Stage 2 (200 epochs): the same loss, the deblurring path fed the *predicted* map (joint training).
* Stage 3 (400 epochs): ``0.9 L_df + 0.1 L_wd``, predicted map, with L_wd the defocus-weighted L2
  (``W = DM_gt / mean(DM_gt)``, per image; see ``training/losses.py``).

L_dme and L_df are L1 (Eq. 3, 4). Adam (0.9, 0.999) at 1e-4, batch 16, 256 px crops, random flips and
rotations (multiples of 90 degrees: the paper does not give angles, and right angles need no fill). Each
stage starts from the previous stage's export (``--init``).

Maps are in the units the network is built for (DED's ``png / 256``): train on ``ded:DIR`` (DED itself, or
the ``ded/<split>`` folders ``defocus data synth`` writes). ``synth:`` data gives maps in px of blur radius.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.archs.dmsft import DMSFT
from training.engine.augment import Augment
from training.losses import weighted_l2
from training.recipes.base import Batch, Losses, Objective, Recipe

#: the paper's loss weights
LAMBDA_DME, LAMBDA_DF, LAMBDA_WD = 0.2, 0.9, 0.1


class DMSFTObjective(Objective):
    """One of the three stage losses; ``stage`` picks which map feeds the deblurring path and the loss."""

    def __init__(self, net: DMSFT, *, stage: int) -> None:
        super().__init__(net)
        self.stage = stage

    def forward(self, batch: Batch) -> Losses:
        net: DMSFT = self.net  # type: ignore[assignment]
        blur, sharp, dm_gt = batch["blur"], batch["sharp"], batch["defocus"]
        if self.stage == 1:
            dm_pred = net.dme(blur)
            out = net.forward_with_map(blur, dm_gt)
        else:
            out, dm_pred = net(blur)
        l_df = F.l1_loss(out, sharp)
        if self.stage < 3:
            l_dme = F.l1_loss(dm_pred, dm_gt)
            total = LAMBDA_DME * l_dme + LAMBDA_DF * l_df
            return {"loss": total, "dme": l_dme.detach(), "df": l_df.detach()}
        l_wd = weighted_l2(out, sharp, dm_gt)
        total = LAMBDA_DF * l_df + LAMBDA_WD * l_wd
        return {"loss": total, "df": l_df.detach(), "wd": l_wd.detach()}


@dataclass(frozen=True, kw_only=True)
class DMSFTRecipe(Recipe):
    """DMSFT, stage 1, 2 or 3 (iterations follow from the epochs and the training set's size)."""

    name: ClassVar[str] = "dmsft"
    method: ClassVar[str] = "dmsft"
    keys: ClassVar[tuple[str, ...]] = ("blur", "sharp", "defocus")
    multiple_of: ClassVar[int] = 8  # the network takes any size; 8 keeps validation padding uniform
    stages: ClassVar[int] = 3

    epochs: int | None = 400
    iterations: int = 400  # placeholder until ``fit_to_data`` knows the dataset size
    batch: int = 16
    crop: int = 256
    lr: float = 1e-4

    @classmethod
    def stage_defaults(cls, stage: int) -> dict[str, Any]:
        return {"epochs": 200, "iterations": 200} if stage == 2 else {}

    def build_net(self) -> nn.Module:
        return DMSFT()

    def objective(self, net: nn.Module) -> Objective:
        if not isinstance(net, DMSFT):
            raise TypeError("the DMSFT recipe trains a DMSFT")
        return DMSFTObjective(net, stage=self.stage)

    def augment(self) -> Augment:
        return Augment(crop=self.crop, flips=True, rot90=True)

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return net(blur)[0]
