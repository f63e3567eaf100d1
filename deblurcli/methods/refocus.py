"""``--method refocus``: our own network (``deblurcli.archs.refocus``), trained here on synthetic defocus.

Its weights are ours to redistribute, so they ship inside the package (fp16 safetensors, manifest source
``bundled``): the default method works offline on a first install. Files from ``defocus train --recipe
refocus`` (or any safetensors in our key layout) load with ``--weights``; the architecture's size is read
off the tensors' shapes when the file carries no metadata.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblurcli.archs.refocus import MULTIPLE_OF, Refocus
from deblurcli.errors import WeightsError
from deblurcli.methods.spec import MethodSpec, Outputs, StateDict
from deblurcli.zoo.state import float_state, read_tensors


def run_refocus(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """Our input convention is the network's own; the map is clamped at zero (a radius)."""
    if not isinstance(model, Refocus):
        raise TypeError("run_refocus needs a Refocus network")
    image, radius = model(x)
    return {"image": image, "defocus": radius.clamp(min=0.0)}


def convert_refocus(path: Path) -> StateDict:
    """Our safetensors, or a torch-saved state dict from training (``module.``/``net.`` prefixes dropped).

    Raises:
        WeightsError: unreadable file or entries that are not tensors.
    """
    return float_state(read_tensors(path), source=path.name, prefixes=("module.", "net."))


def _count(state: StateDict, stack: str) -> int:
    pattern = re.compile(rf"^{stack}\.(\d+)\.conv1\.weight$")
    return len({m.group(1) for k in state if (m := pattern.match(k))})


def infer_refocus_hparams(state: StateDict) -> dict[str, Any]:
    """Width and block counts from the keys and shapes (``head`` maps 12 channels to ``width``)."""
    head = state.get("head.weight")
    if head is None or head.dim() != 4:
        raise WeightsError("not a refocus state dict: no head.weight")
    return {
        "width": int(head.shape[0]),
        "enc_blocks": (_count(state, "enc1"), _count(state, "enc2")),
        "mid_blocks": _count(state, "mid"),
        "dec_blocks": (_count(state, "dec2"), _count(state, "dec1")),
    }


SPEC = MethodSpec(
    name="refocus",
    summary="refocus (ours): 1.2M-param U-Net at 1/2-1/8 scale, trained on synthetic defocus; bundled, with map",
    cls=Refocus,
    run=run_refocus,
    multiple_of=MULTIPLE_OF,
    # 6 convs at 1/8 scale (+-48 px), 4 at 1/4 (+-8), stride-2 convs and 1/2-scale convs: +-70 px in theory;
    # the tile benchmark shows 32 px of overlap already leaves seams far below one 16-bit step.
    receptive_field=48,
    maps=("defocus",),
    map_units={"defocus": "px (blur radius, full resolution)"},
    hparams={"width": 32, "enc_blocks": (1, 1), "mid_blocks": 3, "dec_blocks": (1, 1)},
    weights=("refocus",),
    convert=convert_refocus,
    infer_hparams=infer_refocus_hparams,
    # What --tile auto picks for a 24 MP photo within 2 GB end to end (choose_tile); 1280x720 gets 408.
    default_tile=752,
    # Peak RSS growth per input pixel, fp32 CPU: 308 B at 512x512, 235 at 1024x1024 (benchmarks/tile_speed.py
    # --memory, fresh process per size).
    bytes_per_pixel=320,
    # Seconds per tile MP relative to the fastest edge: 0.50 s/MP at 256 px, 0.56 at 512, 0.58 at 768, 0.73 at 1024
    # (python benchmarks/tile_speed.py --edges 256,512,768,1024 --repeat 2: fp32, 2 threads, edges interleaved
    # in one process, quiet 2-core machine). Smaller tiles run faster per pixel (caches).
    tile_speed=((256, 1.0), (512, 1.11), (768, 1.17), (1024, 1.47)),
)
