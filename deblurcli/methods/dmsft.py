"""``--method dmsft``: Ye, Suganuma, Okatani 2022, defocus map estimation + SFT-modulated deblurring.

No code or weights were published, so our weights come from our own training (``training/recipes/dmsft``);
the only foreign file we read is DID-ANet's released ``model_best.pth.tar``, whose map estimator Ye et al.
reuse and which initialises ours (``convert_didanet_checkpoint`` / ``load_didanet_dme``).

Map units. The network's map is in DED's ground-truth units (8-bit PNG / 256). DED's own encoding was never
released; our DED-style training maps (``training/synth/writer.py``) store ``255 * |CoC diameter| / 24 px``,
so one map unit is a blur *radius* of ``12 * 256 / 255`` px. ``run_dmsft`` reports the map in those px,
clamped at zero, at full resolution.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deblurcli.archs.didanet_dme import didanet_dme_state
from deblurcli.archs.dmsft import DMSFT
from deblurcli.errors import WeightsError
from deblurcli.methods.spec import MethodSpec, Outputs, StateDict
from deblurcli.zoo.state import float_state, load_strict, read_tensors

#: largest CoC diameter (px) that a DED-style map value of 255 stands for in our training data
DED_MAX_COC_PX = 24.0
#: blur radius in px per unit of the network's map (PNG value / 256): 255 <-> DED_MAX_COC_PX diameter
RADIUS_PX_PER_UNIT = DED_MAX_COC_PX / 2.0 * 256.0 / 255.0


def run_dmsft(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """Our input convention is the network's own ([0, 1] sRGB); only the map needs converting to px."""
    if not isinstance(model, DMSFT):
        raise TypeError("run_dmsft needs a DMSFT")
    image, defocus_map = model(x)
    return {"image": image, "defocus": defocus_map.clamp(min=0.0) * RADIUS_PX_PER_UNIT}


def _read_state(path: Path) -> StateDict:
    """Tensors of a checkpoint, unwrapped (``state_dict``/``params``) and without DataParallel prefixes."""
    return float_state(read_tensors(path), source=path.name)


def convert_dmsft_checkpoint(path: Path) -> StateDict:
    """Our safetensors (or a torch-saved state dict from our training) in our key layout.

    Raises:
        WeightsError: unreadable file, or a DID-ANet checkpoint (it holds only the map estimator we share,
            so it cannot run as DMSFT; training takes it through ``convert_didanet_checkpoint``).
    """
    state = _read_state(path)
    if "conv01a.weight" in state and "dme.conv01a.weight" not in state:
        raise WeightsError(
            f"{path.name}: this is a DID-ANet checkpoint; only its defocus-map estimator fits DMSFT, "
            "so it can initialise training (convert_didanet_checkpoint) but not run as --method dmsft"
        )
    return state


def convert_didanet_checkpoint(path: Path) -> StateDict:
    """DID-ANet's ``.pth.tar`` -> a state dict for ``DMSFT.dme`` (identical key names, ``*b`` keys dropped).

    Reads ``{"state_dict": ...}`` or a bare state dict, with or without ``module.`` prefixes, never running
    pickled code. Key-for-key checking is left to ``load_strict`` so that errors name the offending key.
    """
    return didanet_dme_state(_read_state(path))


def load_didanet_dme(model: DMSFT, path: Path) -> None:
    """Initialise ``model.dme`` from DID-ANet's released checkpoint, strictly.

    Raises:
        WeightsError: naming any missing, unexpected or misshapen key.
    """
    load_strict(model.dme, convert_didanet_checkpoint(path), source=path.name)


SPEC = MethodSpec(
    name="dmsft",
    summary="DMSFT (Ye et al. 2022): DID-ANet defocus map + SFT-modulated ResNet, with map; 5.3M params",
    cls=DMSFT,
    run=run_dmsft,
    # No layer changes resolution.
    multiple_of=1,
    # Image path: 33 3x3 convs (+-33 px); the map enters every block after 13 convs of its own, so the
    # first SFT sees +-13 px of map and 32 convs follow: +-46 px in theory. gamma_c pools globally.
    receptive_field=48,
    maps=("defocus",),
    map_units={"defocus": "px (blur radius, full resolution)"},
    hparams={
        "dme_channels": 64,
        "dme_blocks": 4,
        "channels": 128,
        "blocks": 15,
        "cond_channels": 32,
        "cond_hidden": 64,
        "full_scale_blocks": 4,
        "res_scale": 0.1,
    },
    weights=("dmsft",),
    convert=convert_dmsft_checkpoint,
    # Full-resolution 128-channel trunk, ~5.3 MMAC per pixel: 512 px tiles keep each step short on a CPU.
    default_tile=512,
    # Peak RSS growth per input pixel, fp32 CPU inference, torch 2.13: 4020 B/px at 256x256, 3453 at
    # 384x384, 3304 at 512x512 (ru_maxrss after minus before one run_dmsft under inference_mode, fresh
    # process per size).
    bytes_per_pixel=4096,
)
