"""IFAN as a ``--method``: the run adapter, the spec and the checkpoint converters.

Checkpoints we read:

* the authors' ``IFAN*.pytorch`` files: a raw state dict of their DataParallel-wrapped training model, keys
  ``module.Network.*`` (the deblurring net) and ``module.reblurNet.*`` (the training-only reblurring net);
* the safetensors mirror published with ifan-rs (``IFAN.safetensors``): the same ``module.Network.*`` keys;
* our own safetensors: unprefixed keys.

Everything is read with ``weights_only`` / safetensors, never by unpickling code, and prefixes are stripped
rather than matched loosely: any leftover key surfaces in ``load_strict`` with its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblurcli.archs.ifan import IFAN
from deblurcli.errors import WeightsError
from deblurcli.methods.spec import MethodSpec, Outputs, StateDict
from deblurcli.zoo.state import read_tensors, unwrap

#: prefixes of the deblurring net in the released files (DataParallel ``module.`` + attribute ``Network``)
NETWORK_PREFIXES = ("module.Network.", "Network.")
#: prefixes of the training-only reblurring net; returned as ``reblurNet.*`` when kept
REBLUR_PREFIXES = ("module.reblurNet.", "reblurNet.")
REBLUR_KEY = "reblurNet."


def run_ifan(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """sRGB [0, 1] in, unclipped image and 1/8-scale disparity out; IFAN takes the same convention natively."""
    if model is None:
        raise WeightsError("ifan needs its network")
    image, disparity = model(x)
    return {"image": image, "disparity": disparity}


def canonical_state(raw: Mapping[str, Any], *, source: str, keep_reblur: bool = False) -> StateDict:
    """Our key layout from any of the known checkpoint layouts, as contiguous float32 tensors.

    Raises:
        WeightsError: a value is not a tensor, or the file holds no deblurring weights at all.
    """
    state = unwrap(raw, "state_dict", "model", "network", "params")
    out: StateDict = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: key {key} is not a tensor ({type(value).__name__})")
        reblur = next((p for p in REBLUR_PREFIXES if key.startswith(p)), None)
        if reblur is not None:
            if keep_reblur:
                out[REBLUR_KEY + key[len(reblur):]] = value.float().contiguous()
            continue
        net = next((p for p in NETWORK_PREFIXES if key.startswith(p)), "")
        out[key[len(net):]] = value.float().contiguous()
    if not any(not k.startswith(REBLUR_KEY) for k in out):
        raise WeightsError(f"{source}: no IFAN deblurring weights found")
    return out


def convert_ifan_checkpoint(path: Path, *, keep_reblur: bool = False) -> StateDict:
    """Read an official ``.pytorch``, the ifan-rs safetensors or our own file into our key layout.

    The reblurring net's keys are dropped unless ``keep_reblur`` (training resumes from the released
    weights); then they come back as ``reblurNet.*`` and ``split_reblur`` separates them.
    """
    return canonical_state(read_tensors(path), source=path.name, keep_reblur=keep_reblur)


def split_reblur(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, StateDict]:
    """(deblurring net state, reblurring net state), both without prefix, for ``IFAN`` and ``IFANReblur``."""
    net = {k: v for k, v in state.items() if not k.startswith(REBLUR_KEY)}
    reblur = {k[len(REBLUR_KEY):]: v for k, v in state.items() if k.startswith(REBLUR_KEY)}
    return net, reblur


def infer_hparams(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The ``IFAN`` keyword arguments a state dict was made for, read off its shapes.

    The released variants differ only in the 1x1 filter head (N x 896 outputs) and, for the dual-pixel
    model, the first filter-encoder conv (6 inputs): a user handing us ``IFAN_8.pytorch`` should not have to
    know that.

    Raises:
        WeightsError: the two tell-tale tensors are missing or have impossible shapes.
    """
    head, first = state.get("F.3.weight"), state.get("kconv1_1.0.weight")
    if head is None or first is None:
        raise WeightsError("not an IFAN state dict: missing F.3.weight or kconv1_1.0.weight")
    iterations, rest = divmod(int(head.shape[0]), 896)
    if rest or iterations < 1 or first.dim() != 4 or int(first.shape[1]) not in (3, 6):
        raise WeightsError(
            f"not an IFAN state dict: F.3.weight {tuple(head.shape)}, kconv1_1.0.weight {tuple(first.shape)}"
        )
    return {"iterations": iterations, "dual_pixel": int(first.shape[1]) == 6}


SPEC = MethodSpec(
    name="ifan",
    summary="IFAN (CVPR 2021): iterative filter adaptive network, DPDD-trained; also reports disparity",
    cls=IFAN,
    run=run_ifan,
    multiple_of=8,
    # The theoretical half-width is ~528 px (filter path 278, IAC 17 px at 1/8 = 136, decoder ~114). With
    # the reference key-seeded weights, the gradient of one output pixel (512^2 input) keeps 99.8 % of its
    # mass within 128 px and 99.999 % within 192: the overlap that makes tiles agree in practice.
    receptive_field=192,
    maps=("disparity",),
    map_units={"disparity": "px at 1/8 scale"},
    hparams={"iterations": 17, "dual_pixel": False},
    weights=("ifan",),
    convert=convert_ifan_checkpoint,
    infer_hparams=infer_hparams,
    # What --tile auto picks for a 24 MP photo within 2 GB end to end (choose_tile); 1280x720 gets 832.
    default_tile=760,
    # Peak RSS growth per input pixel, fp32 CPU: 957 B at 1280x720, 1177 at 512x512 (benchmarks/tile_speed.py
    # --memory, fresh process); the larger figure, as --tile auto runs tiles of 500-800 px.
    bytes_per_pixel=1180,
    # Seconds per tile MP relative to the fastest edge: 4.22 s/MP at 256 px, 5.60 at 512, 6.76 at 768, 7.23 at 1024
    # (python benchmarks/tile_speed.py --edges 256,512,768,1024 --repeat 2: fp32, 2 threads, edges interleaved
    # in one process, quiet 2-core machine). Smaller tiles run faster per pixel (caches).
    tile_speed=((256, 1.0), (512, 1.33), (768, 1.60), (1024, 1.71)),
    # Not verified on the released weights; with the seeded weights fp16 gives 40 dB and bf16 37 dB
    # against fp32 (max errors 0.10 / 0.22), as 17 IAC iterations amplify rounding.
    supports_half=False,
)
