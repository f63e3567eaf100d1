"""Turning a method name and an optional weights file into something the tiler can call.

Weights come from, in order: ``--weights FILE`` (any format the method's converter reads) or ``--weights ID``
(a manifest id, such as weights imported with ``defocus models import FILE --as ID``), the per-user
cache (downloaded on first use unless offline), or, for tests only, random initialisation behind an explicit
switch so that no user ever gets a silently untrained network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblurcli.engine.device import inference_memory_format
from deblurcli.engine.tiling import TileFn
from deblurcli.errors import WeightsError, WeightsMissingError
from deblurcli.methods.registry import get_method
from deblurcli.methods.spec import MethodSpec
from deblurcli.zoo.cache import sha256_file
from deblurcli.zoo.state import load_strict, read_metadata


@dataclass
class LoadedMethod:
    """A method ready to run: its spec, its network (None for weight-free methods) and where it runs."""

    spec: MethodSpec
    module: nn.Module | None
    device: torch.device
    dtype: torch.dtype
    weights_id: str | None = None
    weights_sha256: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    #: one line to show the user when the run differs from what was asked (e.g. bf16 fell back to fp32)
    notice: str | None = None

    def tile_fn(self) -> TileFn:
        """A function for ``run_tiled``: CPU float32 tile in, CPU float32 outputs out."""
        spec, module, device, dtype = self.spec, self.module, self.device, self.dtype

        def run(tile: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.inference_mode():
                x = tile.to(device=device, dtype=dtype)
                outs = spec.run(module, x)
                return {k: v.to("cpu", torch.float32) for k, v in outs.items()}

        return run

    def provenance(self) -> dict[str, str]:
        """What a written file records about how it was made."""
        info = {"method": self.spec.name, "precision": str(self.dtype).removeprefix("torch.")}
        if self.weights_id:
            info["weights"] = self.weights_id
        if self.weights_sha256:
            info["weights_sha256"] = self.weights_sha256
        return info


def load_method(
    name: str,
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    weights: Path | None = None,
    offline: bool = False,
    cache_dir: Path | None = None,
    random_weights_for_testing: bool = False,
    download_progress: Callable[[int, int | None], None] | None = None,
) -> LoadedMethod:
    """Build the method ``name`` with its weights, on ``device`` in ``dtype``, in eval mode.

    Raises:
        UnknownMethodError: no such method.
        WeightsMissingError: weights are needed, not cached, and cannot be fetched.
        WeightsError: the weights file does not fit the architecture.
    """
    spec = get_method(name)
    if spec.cls is None:
        if weights is not None:
            raise WeightsError(f"method {name!r} uses no learned weights; drop --weights")
        return LoadedMethod(spec=spec, module=None, device=device, dtype=dtype)

    hparams: dict[str, Any] = dict(spec.hparams)
    weights_id: str | None = None
    if weights is None and not random_weights_for_testing:
        if not spec.weights:
            raise WeightsMissingError(f"method {name!r} has no published weights; pass --weights FILE")
        from deblurcli.zoo.resolve import resolve_weights  # the zoo pulls in huggingface_hub: load lazily

        weights_id = spec.weights[0]
        weights = resolve_weights(weights_id, offline=offline, cache_dir=cache_dir, progress=download_progress)
    elif weights is not None and not weights.exists():  # not a file: maybe an id, e.g. your own imported weights
        from deblurcli.zoo.resolve import weights_by_id

        weights, weights_id = weights_by_id(
            weights, method=name, offline=offline, cache_dir=cache_dir, progress=download_progress
        )

    state: dict[str, torch.Tensor] | None = None
    sha: str | None = None
    if weights is not None:
        meta = read_metadata(weights)
        if meta.get("method") not in (None, name):
            raise WeightsError(f"{weights.name} holds weights for {meta['method']!r}, not {name!r}")
        weights_id = weights_id or meta.get("id") or weights.name
        assert spec.convert is not None, f"method {name} has a network but no converter"
        state = spec.convert(weights)
        if "hparams" in meta:
            hparams.update(meta["hparams"])
        elif spec.infer_hparams is not None:
            hparams.update(spec.infer_hparams(state))
        sha = meta.get("source_sha256") or sha256_file(weights)

    module = spec.cls(**hparams)
    if state is not None:
        load_strict(module, state, source=str(weights))
    module.eval().requires_grad_(False)
    # The layout changes strides only: state_dict() keys and shapes stay those of the checkpoint.
    module.to(device=device, dtype=dtype, memory_format=inference_memory_format(device))
    return LoadedMethod(
        spec=spec,
        module=module,
        device=device,
        dtype=dtype,
        weights_id=weights_id or ("random-for-testing" if random_weights_for_testing else None),
        weights_sha256=sha,
        hparams=hparams,
    )
