"""The contract every method fulfils, so that the engine, the CLI, the zoo and the benchmark treat them alike.

A method is a plain ``nn.Module`` (the architecture, with keyword-only hyperparameters) plus the facts that are
not the network's business: its size rule, which maps it reports, which weights it can load and how to
convert them, and a small ``run`` adapter that maps our one input convention onto the network's own.

Input convention for ``run``: a float tensor (1, 3, H, W) of sRGB-encoded values in [0, 1], H and W already
padded to ``multiple_of``. Output: ``{"image": (1, 3, H, W) in [0, 1] (not yet clipped)}`` plus one entry per
name in ``maps``, each (1, 1, H / s, W / s) for an integer ``s`` that divides ``multiple_of`` (IFAN's disparity
is at 1/8). Maps are in the method's own units (IFAN: disparity in pixels at 1/8 scale; DMSFT and classic:
defocus blur radius in pixels), documented on the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

Outputs = dict[str, torch.Tensor]
StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class MethodSpec:
    """Everything the rest of the tool needs to know about one ``--method``.

    Attributes:
        name: the ``--method`` value.
        summary: one line for ``--help`` and ``models list``.
        cls: the architecture class; built as ``cls(**hparams)``.
        hparams: default keyword arguments for ``cls`` (a weights record may override them).
        run: adapter from our input convention to the network and back (see module docstring).
        multiple_of: input height and width must be multiples of this (the engine reflect-pads).
        receptive_field: half-width in pixels of the context a output pixel depends on in practice; the
            default tile overlap.
        maps: names of the maps ``run`` returns besides ``"image"``, with their unit in ``map_units``.
        weights: manifest ids this method can load, default first; empty for methods without weights.
        convert: reads any official checkpoint file of this method and returns a state_dict in our key
            layout (strictly checked later by ``load_state_dict(strict=True)``).
        infer_hparams: reads the hyperparameters off a converted state dict's shapes, for official files
            that carry no metadata (``--weights IFAN_8.pytorch`` must not need ``iterations=8`` spelled out).
        default_tile: tile edge in pixels used when ``--tile`` is not given.
        bytes_per_pixel: peak working memory per input pixel at fp32, for ``--tile auto``.
        tile_speed: measured (tile edge px, seconds per tile megapixel relative to the fastest edge) pairs,
            for ``--tile auto`` (``deblurcli.engine.device.choose_tile``; benchmarks/tile_speed.py). Empty:
            speed taken as independent of the tile, so the largest tile that fits wins.
        supports_half: whether fp16/bf16 inference gives sane results.
    """

    name: str
    summary: str
    cls: Callable[..., nn.Module] | None
    run: Callable[[nn.Module | None, torch.Tensor], Outputs]
    multiple_of: int = 1
    receptive_field: int = 32
    maps: tuple[str, ...] = ()
    map_units: Mapping[str, str] = field(default_factory=dict)
    hparams: Mapping[str, Any] = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    convert: Callable[[Path], StateDict] | None = None
    infer_hparams: Callable[[StateDict], dict[str, Any]] | None = None
    default_tile: int = 512
    bytes_per_pixel: int = 4096
    tile_speed: tuple[tuple[int, float], ...] = ()
    supports_half: bool = True

    @property
    def needs_weights(self) -> bool:
        return self.cls is not None
