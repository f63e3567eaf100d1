"""``--data KIND:DIR``: the dataset layouts of ``training.data``, as samples with the engine's key names.

The readers of ``training.data`` find, pair and decode the files (roles ``input``, ``target``, ``left``,
``right``, ``coc``, ``defocus``); this module only renames them to the engine's keys (``blur``, ``sharp``,
``left``, ``right``, ``defocus``) and converts maps to the unit the recipes use, a blur *radius* in px.
Augmentation is left to the engine (``augment``), which seeds it by stream position for exact resume.

Kinds: ``dpdd:DIR`` and ``synth:DIR`` (the DPDD layout; synthetic sets add CoC maps, radius = |CoC| / 2),
with splits ``train``/``val``/``test``; ``lfdof:DIR``, ``ded:DIR`` and ``paired:INPUTS,TARGETS`` take the
folder as the split (name the validation folder with ``--val``); ``live:DIR[,DIR...]`` renders synthetic
defocus from the sharp photos under the folders on demand (``training.synth.live``; 256 px scenes, give
``--val`` a rendered set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from deblurcli.errors import UsageError
from training.data.datasets import DED, DPDD, LFDOF, FolderDataset, PairedFolder

KINDS = ("dpdd", "synth", "lfdof", "ded", "paired", "live")
SPLIT_KINDS = ("dpdd", "synth")
RENAME = {"input": "blur", "target": "sharp", "left": "left", "right": "right", "defocus": "defocus"}


class EngineView(Dataset[dict[str, torch.Tensor]]):
    """A ``training.data`` dataset with the engine's keys; synthetic signed CoC diameters become radii."""

    def __init__(self, base: FolderDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        raw: dict[str, Any] = self.base[index]
        out = {RENAME[k]: v for k, v in raw.items() if k in RENAME}
        if "coc" in raw:
            out["defocus"] = raw["coc"].abs() * 0.5
        return out


def open_data(
    spec: str, *, split: str = "train", keys: tuple[str, ...] = ("blur", "sharp")
) -> Dataset[dict[str, torch.Tensor]]:
    """The dataset named by ``spec`` (see module docstring); dual-pixel views are read only if ``keys`` asks.

    Raises:
        UsageError: unknown kind or malformed spec.
        DataError: folders missing, empty or unpaired.
    """
    kind, sep, where = spec.partition(":")
    if not sep or not where or kind not in KINDS:
        raise UsageError(f"--data must be KIND:DIR with KIND one of {', '.join(KINDS)}; got {spec!r}")
    dual = "left" in keys or "right" in keys
    if kind in SPLIT_KINDS:
        return EngineView(DPDD(Path(where).expanduser(), split, dual=dual, maps=kind == "synth"))
    if kind == "live":
        from training.synth.live import LiveSynth  # renders with torch FFTs: only when asked for
        from training.synth.sample import SynthConfig

        return LiveSynth.from_folders([Path(p).expanduser() for p in where.split(",")], config=SynthConfig())
    root = Path(where).expanduser()
    if kind == "lfdof":
        return EngineView(LFDOF(root))
    if kind == "ded":
        return EngineView(DED(root))
    inputs, comma, targets = where.partition(",")
    if not comma:
        raise UsageError("paired data is given as paired:INPUT_DIR,TARGET_DIR")
    return EngineView(PairedFolder(Path(inputs).expanduser(), Path(targets).expanduser()))


def default_val_spec(spec: str) -> str | None:
    """Datasets with splits validate on their own ``val`` split; the others need ``--val``."""
    return spec if spec.partition(":")[0] in SPLIT_KINDS else None


def validation_samples(
    spec: str, *, keys: tuple[str, ...], limit: int, crop: int = 0
) -> list[dict[str, torch.Tensor]]:
    """Up to ``limit`` validation samples, centre-cropped to ``crop`` px if given (short CPU validation).

    ``spec`` names the validation data; for split kinds its ``val`` split is used.
    """
    kind = spec.partition(":")[0]
    data = open_data(spec, split="val", keys=keys) if kind in SPLIT_KINDS else open_data(spec, keys=keys)
    out = []
    for i in range(min(limit, len(data))):
        s = data[i]
        if crop:
            h, w = s["blur"].shape[-2:]
            y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            s = {k: v[:, y : y + crop, x : x + crop] for k, v in s.items()}
        out.append(s)
    return out
