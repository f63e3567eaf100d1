"""Finding (blurred, sharp) pairs in the layouts the published test sets ship in.

Only paths are handled here; decoding goes through ``deblurcli.io``, so a 16-bit DPDD PNG is read as 16-bit.
Layouts (research/drbnet_ye_kpac.md, "Dataset layouts expected"):

* ``realdof``: ``source/`` (or ``input/``) and ``target/``, paired by sorted order (stems may differ).
* ``dpdd``: ``test_c/source`` and ``test_c/target`` (``--split`` picks train/val/test), sorted order. The
  synthetic generator writes this layout too.
* ``lfdof``: ``input/<scene>_ap*.png`` each paired with ``ground_truth/<scene>.png`` (or ``target/``).
* ``ded``: ``image/<scene>/image_<N>.*`` with ``sharp/<scene>/*_<N>.*``.
* ``paired``: any two folders named on the command line via ``--layout paired`` (``source``/``target``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deblurcli.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
LAYOUTS = ("auto", "realdof", "dpdd", "lfdof", "ded")


@dataclass(frozen=True)
class Pair:
    """One test image: the blurred input, its sharp ground truth, and a short name for reports."""

    name: str
    source: Path
    target: Path


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _by_order(sources: Path, targets: Path) -> list[Pair]:
    src, tgt = _images(sources), _images(targets)
    if len(src) != len(tgt):
        raise DataError(f"{sources} holds {len(src)} images but {targets} holds {len(tgt)}; pairs cannot be matched")
    if not src:
        raise DataError(f"{sources} holds no images")
    return [Pair(s.stem, s, t) for s, t in zip(src, tgt, strict=True)]


def _first_dir(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def detect_layout(root: Path, *, split: str = "test") -> str:
    """Name the layout of ``root`` from its folder names."""
    if (root / f"{split}_c" / "source").is_dir():
        return "dpdd"
    if (root / "image").is_dir() and (root / "sharp").is_dir():
        return "ded"
    if _first_dir(root, "input") and _first_dir(root, "ground_truth"):
        return "lfdof"
    if _first_dir(root, "source", "input") and (root / "target").is_dir():
        src = _first_dir(root, "source", "input")
        assert src is not None
        return "lfdof" if any("_ap" in p.stem for p in _images(src)[:20]) else "realdof"
    raise DataError(
        f"{root}: no known dataset layout (expected source|input + target, {split}_c/source + {split}_c/target, "
        "input + ground_truth, or image + sharp folders)"
    )


def find_pairs(root: Path, *, layout: str = "auto", split: str = "test", limit: int | None = None) -> list[Pair]:
    """All pairs of a dataset folder, sorted, at most ``limit``.

    Raises:
        DataError: unknown layout, missing folders, or inputs and targets that do not match up.
    """
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    if layout == "auto":
        layout = detect_layout(root, split=split)
    if layout == "dpdd":
        pairs = _by_order(root / f"{split}_c" / "source", root / f"{split}_c" / "target")
    elif layout == "realdof":
        src = _first_dir(root, "source", "input")
        if src is None or not (root / "target").is_dir():
            raise DataError(f"{root}: expected source/ (or input/) and target/ folders")
        pairs = _by_order(src, root / "target")
    elif layout == "lfdof":
        pairs = _lfdof(root)
    elif layout == "ded":
        pairs = _ded(root)
    else:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return pairs[:limit] if limit is not None else pairs


def _lfdof(root: Path) -> list[Pair]:
    src = _first_dir(root, "input", "source")
    gt = _first_dir(root, "ground_truth", "target")
    if src is None or gt is None:
        raise DataError(f"{root}: expected input/ and ground_truth/ (or target/) folders")
    targets = {p.stem: p for p in _images(gt)}
    pairs = []
    for s in _images(src):
        scene = s.stem.split("_ap")[0]
        if scene not in targets:
            raise DataError(f"{s.name}: no ground truth {scene}.* in {gt}")
        pairs.append(Pair(s.stem, s, targets[scene]))
    return pairs


def _ded(root: Path) -> list[Pair]:
    pairs = []
    for scene in sorted(p for p in (root / "image").iterdir() if p.is_dir()):
        sharp_dir = root / "sharp" / scene.name
        sharp = {_index(p): p for p in _images(sharp_dir)} if sharp_dir.is_dir() else {}
        for img in _images(scene):
            idx = _index(img)
            if idx not in sharp:
                raise DataError(f"{img}: no sharp image with index {idx} in {root / 'sharp' / scene.name}")
            pairs.append(Pair(f"{scene.name}_{img.stem}", img, sharp[idx]))
    if not pairs:
        raise DataError(f"{root}/image holds no scenes")
    return pairs


def _index(path: Path) -> str:
    match = re.search(r"_(\d+)$", path.stem)
    return match.group(1) if match else path.stem
