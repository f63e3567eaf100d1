"""What every recipe provides, so that one loop trains all four methods.

A recipe is a frozen dataclass holding the published numbers as defaults (iterations, batch, crop,
learning rate and schedule, clipping) plus methods that build what the loop needs: the network, the
*objective* (an ``nn.Module`` whose ``forward(batch)`` returns the losses, so DDP can wrap loss and network
together and every parameter that gets a gradient is reached through one forward), the optimiser, the
learning-rate factor at a step, the augmentation, and the inference adapter used for validation.

The learning rate is a pure function of the step, so a resumed run needs no scheduler object to restore.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from deblurcli.errors import UsageError
from deblurcli.zoo.state import load_strict, read_tensors
from training.engine.augment import Augment

Batch = dict[str, Tensor]
Losses = dict[str, Tensor]


class Objective(nn.Module):
    """Network plus loss. ``forward(batch)`` returns ``{"loss": total, <part>: detached value, ...}``.

    Only ``net`` is exported; anything else registered here (IFAN's reblurring net, a frozen VGG) exists for
    training alone.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Batch) -> Losses:  # pragma: no cover - every recipe overrides it
        raise NotImplementedError

    @property
    def export_net(self) -> nn.Module:
        """The network that is validated and exported (a recipe keeping an EMA copy returns that)."""
        return self.net

    def after_step(self, step: int) -> None:
        """Called after optimiser step ``step`` (1-based); state kept here must live in modules/buffers
        of the objective so the training state saves and resumes it."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Published training settings of one method and stage.

    Attributes:
        stage: which stage of a multi-stage recipe (1-based); each stage has its own published defaults.
        iterations: optimiser steps in this stage.
        batch: global batch (over all processes and accumulation steps).
        crop: training patch edge in px.
        lr: peak learning rate.
        clip_grad: max global gradient norm, or None.
        seed: seeds initialisation, data order and augmentation.
        epochs: for recipes published in epochs: the stage length in passes over the training set;
            ``fit_to_data`` turns it into ``iterations`` once the dataset size is known.
    """

    name: ClassVar[str]
    #: the ``--method`` the exported weights are for
    method: ClassVar[str]
    #: sample entries the objective reads
    keys: ClassVar[tuple[str, ...]] = ("blur", "sharp")
    #: input sizes the network accepts are multiples of this
    multiple_of: ClassVar[int] = 8
    #: integer fields that are step counts inside the schedule; scaled with ``with_iterations``
    schedule_points: ClassVar[tuple[str, ...]] = ()
    stages: ClassVar[int] = 1

    stage: int = 1
    iterations: int = 1
    batch: int = 8
    crop: int = 256
    lr: float = 1e-4
    clip_grad: float | None = None
    seed: int = 0
    epochs: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.stage <= self.stages:
            raise UsageError(f"recipe {self.name} has stage(s) 1..{self.stages}, not {self.stage}")
        if self.iterations < 1 or self.batch < 1 or self.crop < self.multiple_of:
            raise UsageError(
                f"{self.name}: iterations and batch must be positive and crop >= {self.multiple_of}"
            )
        if self.crop % self.multiple_of:
            raise UsageError(f"{self.name}: --crop must be a multiple of {self.multiple_of}")

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def for_stage(cls, stage: int = 1, **overrides: Any) -> Recipe:
        """The published recipe of ``stage``, with ``overrides`` (e.g. from the command line) applied."""
        return cls(**{**cls.stage_defaults(stage), "stage": stage, **overrides})

    @classmethod
    def stage_defaults(cls, stage: int) -> dict[str, Any]:
        """Field values that differ between stages; single-stage recipes have none."""
        return {}

    def with_iterations(self, iterations: int) -> Recipe:
        """The same recipe over ``iterations`` steps, its schedule points moved proportionally (a 300-step
        smoke run of IFAN still halves the rate at 5/6 and 11/12 of the way)."""
        ratio = iterations / self.iterations
        scaled = {f: _scale(getattr(self, f), ratio) for f in self.schedule_points}
        return dataclasses.replace(self, iterations=iterations, **scaled)

    def fit_to_data(self, n_items: int) -> Recipe:
        """Iterations from the published epochs for ``n_items`` training samples (if published in epochs)."""
        if self.epochs is None:
            return self
        return self.with_iterations(max(1, math.ceil(self.epochs * n_items / self.batch)))

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.name, **dataclasses.asdict(self)}

    # -- what the loop calls ----------------------------------------------------------------------------

    def build_net(self) -> nn.Module:
        raise NotImplementedError

    def net_hparams(self) -> dict[str, Any]:
        """Keyword arguments of the exported architecture (recorded in the weights' metadata)."""
        return {}

    def objective(self, net: nn.Module) -> Objective:
        raise NotImplementedError

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.999))

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` for the update made at ``step`` (0-based)."""
        return 1.0

    def augment(self) -> Augment:
        return Augment(crop=self.crop)

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        """Unclipped deblurred image for ``blur`` in [0, 1], sized in multiples of ``multiple_of``."""
        raise NotImplementedError

    def load_init(self, net: nn.Module, path: Path) -> None:
        """Start from earlier weights (the previous stage's export, or any file in our key layout)."""
        load_strict(net, read_tensors(path), source=str(path))


def _scale(value: Any, ratio: float) -> Any:
    if isinstance(value, tuple):
        return tuple(_scale(v, ratio) for v in value)
    return max(1, round(value * ratio))


def recipe_from_dict(registry: Mapping[str, type[Recipe]], data: Mapping[str, Any]) -> Recipe:
    """Rebuild a recipe saved with ``to_dict`` (JSON turned its tuples into lists)."""
    fields = dict(data)
    cls = registry.get(str(fields.pop("recipe", "")))
    if cls is None:
        raise UsageError(f"unknown recipe in saved run: {data.get('recipe')!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k in known})
