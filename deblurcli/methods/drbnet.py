"""``--method drbnet``: DRBNet (Ruan et al., CVPR 2022), single-image model trained on LFDOF then DPDD.

The authors publish one Google-Drive zip (``ckpts.zip``) holding ``ckpts/single/*.pth`` and
``ckpts/dual/*.pth``, each a bare state dict whose keys are exactly our parameter names. The converter reads
the zip or the ``.pth`` inside it (or our own safetensors) without ever running pickled code.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblurcli.archs.drbnet import DRBNet
from deblurcli.errors import UsageError, WeightsError
from deblurcli.methods.spec import MethodSpec, Outputs, StateDict
from deblurcli.zoo.state import float_state, read_tensors

#: largest member we extract from a zip (the real checkpoints are ~47 MB); guards against zip bombs
_MAX_MEMBER_BYTES = 1 << 30


def run_drbnet(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """Our sRGB [0, 1] -> the network's [-1, 1] -> back. The network clips to [-1, 1] itself."""
    if not isinstance(model, DRBNet):
        raise TypeError("run_drbnet needs a DRBNet")
    if model.dual_pixel:
        raise UsageError(
            "the dual-pixel DRBNet needs the two dual-pixel views, which this input does not have"
        )
    return {"image": (model(x * 2.0 - 1.0) + 1.0) * 0.5}


def _pick_member(names: list[str], *, dual_pixel: bool) -> str:
    """The ``.pth`` in a zip: the one under ``dual/`` or ``single/`` (per ``dual_pixel``), or the only one."""
    pths = [n for n in names if n.lower().endswith((".pth", ".pt")) and not n.endswith("/")]
    if len(pths) == 1:
        return pths[0]
    want = "dual" if dual_pixel else "single"
    chosen = [n for n in pths if want in n.lower()]
    if len(chosen) != 1:
        raise WeightsError(f"cannot tell which checkpoint to use among {pths or 'no .pth files'}")
    return chosen[0]


def _read_from_zip(path: Path, *, dual_pixel: bool) -> dict[str, object]:
    """Extract the chosen ``.pth`` to a private temp file under our own name, then read it safely."""
    with zipfile.ZipFile(path) as zf:
        member = zf.getinfo(_pick_member(zf.namelist(), dual_pixel=dual_pixel))
        if member.file_size > _MAX_MEMBER_BYTES:
            raise WeightsError(
                f"{path.name}: {member.filename} is implausibly large ({member.file_size} bytes)"
            )
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "checkpoint.pth"
            with zf.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            return read_tensors(target)


def _is_archive_of_checkpoints(path: Path) -> bool:
    """A zip of ``.pth`` files, as opposed to a ``.pth`` that is itself a zip (torch's own format)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return not any(n.endswith("data.pkl") for n in names) and any(
        n.lower().endswith((".pth", ".pt")) for n in names
    )


def convert_drbnet_checkpoint(path: Path, *, dual_pixel: bool = False) -> StateDict:
    """Read the released ``.pth``, the released ``ckpts.zip`` or our safetensors into our key layout.

    ``dual_pixel`` only chooses which model to take from the zip, which holds both.

    Raises:
        WeightsError: unreadable file, no unambiguous checkpoint in a zip, or non-tensor values.
    """
    try:
        obj = (
            _read_from_zip(path, dual_pixel=dual_pixel)
            if _is_archive_of_checkpoints(path)
            else read_tensors(path)
        )
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{path.name}: corrupt zip ({exc})") from exc
    return float_state(obj, source=path.name)


def infer_hparams(state: StateDict) -> dict[str, Any]:
    """The dual-pixel DRBNet takes the centre view plus both dual-pixel views: 6 input channels on conv1_1."""
    first = state.get("conv1_1.0.weight")
    if first is None or first.dim() != 4:
        raise WeightsError("not a DRBNet state dict: no conv1_1.0.weight")
    return {"dual_pixel": int(first.shape[1]) == 6}


SPEC = MethodSpec(
    name="drbnet",
    summary="DRBNet (CVPR 2022): coarse-to-fine dynamic residual blocks; good on real defocus, 11.7M params",
    cls=DRBNet,
    run=run_drbnet,
    # The image pyramid starts with 8x8 average pooling and the encoder downsamples three times.
    multiple_of=8,
    # The 1/8-scale path alone (conv4_4 and the DRB8 heads, ~13 3x3 convs) spans about +-100 px; its
    # effective reach is smaller, so 96 px of overlap hides tile seams.
    receptive_field=96,
    hparams={"dual_pixel": False},
    weights=("drbnet",),
    convert=convert_drbnet_checkpoint,
    infer_hparams=infer_hparams,
    # What --tile auto picks for a 24 MP photo within 2 GB end to end (choose_tile); 1280x720 gets 736.
    default_tile=560,
    # Peak RSS growth per input pixel, fp32 CPU inference, torch 2.13: 2065 B/px at 512x512, 1832 at 768x768
    # (ru_maxrss after minus before one forward under inference_mode, fresh process per size); re-measured
    # 2204 at 512 with benchmarks/tile_speed.py --memory.
    bytes_per_pixel=2200,
    # Seconds per tile MP relative to the fastest edge: 7.90 s/MP at 256 px, 10.72 at 512, 11.95 at 768, 12.67 at 1024
    # (python benchmarks/tile_speed.py --edges 256,512,768,1024 --repeat 2: fp32, 2 threads, edges interleaved
    # in one process, quiet 2-core machine). Smaller tiles run faster per pixel (caches).
    tile_speed=((256, 1.0), (512, 1.36), (768, 1.51), (1024, 1.60)),
)
