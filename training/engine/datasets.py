"""``--data KIND:DIR``: the dataset folders a recipe can train on, as datasets of full-size samples.

Every kind yields dicts of float32 (C, H, W) tensors with the keys of ``augment`` (``blur``, ``sharp`` and,
where the folder has them, ``left``/``right`` and ``defocus``, a blur-radius map in px). Files are paired by
sorted order within a split, as the authors' loaders do (DPDD's blurry and sharp names differ).

Kinds:
    dpdd:DIR   ``{split}_c/{source,target}``, ``{split}_{l,r}/source`` (DPDD as the IFAN authors lay it out).
    synth:DIR  the same layout written by ``defocus data synth``, plus ``{split}_c/coc`` (signed CoC
               diameter, 16-bit, ``(v - 32768) / 256`` px), from which ``defocus = |coc| / 2``.
    lfdof:DIR  ``{split}/{input,ground_truth}``; inputs ``<scene>_ap*.png`` share the GT ``<scene>.png``.
    ded:DIR    ``{split}/{image,sharp,filtered}/<scene>/``; the 8-bit map is kept in [0, 1) (``png / 256``,
               DID-ANet's convention) since DED does not say how it maps to pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deblurcli.errors import DataError, UsageError
from training.data.pngio import read_image, read_map

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: encoding of the synthetic CoC maps (see ``training/synth/writer.py``)
MAP_OFFSET, MAP_SCALE = 32768.0, 256.0

Loader = Callable[[Path], np.ndarray]


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"missing folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images in {folder}")
    return files


def _coc_to_radius(path: Path) -> np.ndarray:
    return (np.abs(read_map(path) - MAP_OFFSET) / (2.0 * MAP_SCALE))[None].astype(np.float32)


def _ded_map(path: Path) -> np.ndarray:
    return (read_map(path) / 256.0)[None].astype(np.float32)


class PairedFolders(Dataset[dict[str, torch.Tensor]]):
    """Parallel lists of files, one list per sample key, each read by its own loader."""

    def __init__(self, columns: dict[str, list[Path]], loaders: dict[str, Loader]) -> None:
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"unpaired dataset folders: {lengths}")
        self.columns, self.loaders = columns, loaders

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = {k: torch.from_numpy(self.loaders.get(k, read_image)(files[index]))
                  for k, files in self.columns.items()}
        shapes = {tuple(v.shape[-2:]) for v in sample.values()}
        if len(shapes) != 1:
            raise DataError(f"sample {index} has images of different sizes: {sorted(shapes)}")
        return sample


def _dpdd(root: Path, split: str, *, coc: bool) -> PairedFolders:
    cols = {"blur": _files(root / f"{split}_c" / "source"), "sharp": _files(root / f"{split}_c" / "target")}
    for key, side in (("left", "l"), ("right", "r")):
        if (root / f"{split}_{side}" / "source").is_dir():
            cols[key] = _files(root / f"{split}_{side}" / "source")
    loaders: dict[str, Loader] = {}
    if coc:
        cols["defocus"] = _files(root / f"{split}_c" / "coc")
        loaders["defocus"] = _coc_to_radius
    return PairedFolders(cols, loaders)


def _lfdof(root: Path, split: str) -> PairedFolders:
    inputs = _files(root / split / "input")
    gt_dir = root / split / "ground_truth"
    sharp = [gt_dir / (p.name.split("_ap")[0] + p.suffix) for p in inputs]
    missing = [p.name for p in sharp if not p.is_file()]
    if missing:
        raise DataError(f"LFDOF ground truth missing for {len(missing)} input(s), e.g. {missing[0]}")
    return PairedFolders({"blur": inputs, "sharp": sharp}, {})


def _ded(root: Path, split: str) -> PairedFolders:
    def walk(kind: str) -> list[Path]:
        base = root / split / kind
        if not base.is_dir():
            raise DataError(f"missing folder {base}")
        return [f for scene in sorted(d for d in base.iterdir() if d.is_dir()) for f in _files(scene)]

    return PairedFolders({"blur": walk("image"), "sharp": walk("sharp"), "defocus": walk("filtered")},
                         {"defocus": _ded_map})


def open_data(spec: str, *, split: str = "train") -> Dataset[dict[str, torch.Tensor]]:
    """The dataset named by ``KIND:DIR`` (see the module docstring) for ``split``.

    Raises:
        UsageError: unknown kind or malformed spec.
        DataError: folders missing, empty or unpaired.
    """
    kind, sep, where = spec.partition(":")
    if not sep or not where:
        raise UsageError(f"--data must look like KIND:DIR (dpdd, synth, lfdof, ded), got {spec!r}")
    root = Path(where).expanduser()
    if kind == "dpdd":
        return _dpdd(root, split, coc=False)
    if kind == "synth":
        return _dpdd(root, split, coc=True)
    if kind == "lfdof":
        return _lfdof(root, split)
    if kind == "ded":
        return _ded(root, split)
    raise UsageError(f"unknown data kind {kind!r}; choose dpdd, synth, lfdof or ded")


def validation_samples(spec: str, *, limit: int, crop: int = 0) -> list[dict[str, torch.Tensor]]:
    """Up to ``limit`` validation samples (the ``val`` split), optionally centre-cropped to ``crop`` px
    (a multiple of 8 keeps every network happy) to keep CPU validation short."""
    data = open_data(spec, split="val")
    out = []
    for i in range(min(limit, len(data))):  # type: ignore[arg-type]
        s = data[i]
        if crop:
            h, w = s["blur"].shape[-2:]
            y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            s = {k: v[:, y : y + crop, x : x + crop] for k, v in s.items()}
        out.append(s)
    return out
