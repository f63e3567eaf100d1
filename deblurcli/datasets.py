"""Find and pair the files of each dataset layout; every mismatch is a DataError naming the culprit.

One module for ``defocus bench`` and the training loaders, so that both agree on what a layout holds. Only
paths are handled here; decoding goes through ``deblurcli.io`` (a 16-bit DPDD PNG is read as 16-bit), and
``deblurcli`` never imports ``training``. Layout facts come from the authors' loaders as summarised in
shared/research (ifan.md section 5, drbnet_ye_kpac.md "Dataset layouts expected" and "DED dataset"):

* ``dpdd``: ``{split}_c/{source,target}`` and the dual-pixel views ``{split}_{l,r}/source``, paired by sorted
  order; the synthetic generator writes this layout too, plus ``{split}_c/{coc,disparity}`` maps.
* ``realdof``: ``source/`` (or ``input/``) and ``target/``, paired by sorted order (stems may differ).
* ``lfdof``: ``input/<scene>_ap*.png`` each paired with ``ground_truth/<scene>.png`` (or ``target/``).
* ``ded``: ``image/<scene>/image_<N>.*`` with ``sharp/<scene>/*_<N>.*`` and ``filtered/<scene>/...``.
* ``cuhk``, ``pixeldp``: inputs (and dual-pixel views) without ground truth; ``paired``: two folders by stem.

An entry is a dict from role (``input``, ``target``, ``left``, ``right``, ``defocus``, ``coc``,
``disparity``) to file; ``find_pairs`` gives the benchmark's narrower view, ``Pair`` (input, target, name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deblurcli.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LAYOUTS = ("auto", "realdof", "dpdd", "lfdof", "ded")  # the layouts with ground truth, which bench can score

Entry = dict[str, Path]


@dataclass(frozen=True)
class Pair:
    """One test image: the blurred input, its sharp ground truth, and a short name for reports."""

    name: str
    source: Path
    target: Path


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"missing folder: {folder}")
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _first_dir(root: Path, names: tuple[str, ...]) -> Path:
    found = _find_dir(root, names)
    if found is None:
        raise DataError(f"{root} has none of the folders {', '.join(names)}")
    return found


def zip_sorted(folders: dict[str, Path]) -> list[Entry]:
    """Pair files by sorted order (DPDD's blurred and sharp stems differ); counts must agree."""
    lists = {role: list_images(folder) for role, folder in folders.items()}
    counts = {role: len(files) for role, files in lists.items()}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{folders[r]}: {n}" for r, n in counts.items())
        raise DataError(f"file counts do not match ({detail}), so pairs cannot be matched by order")
    if not next(iter(counts.values())):
        raise DataError(f"no images in {next(iter(folders.values()))}")
    return [dict(zip(lists, files, strict=True)) for files in zip(*lists.values(), strict=True)]


def dpdd(root: Path, split: str, *, dual: bool, maps: bool) -> list[Entry]:
    """``{split}_c/{source,target}``, ``{split}_{l,r}/source``; synth adds ``{split}_c/{coc,disparity}``."""
    folders = {"input": root / f"{split}_c" / "source", "target": root / f"{split}_c" / "target"}
    if dual:
        folders |= {"left": root / f"{split}_l" / "source", "right": root / f"{split}_r" / "source"}
    if maps:
        folders |= {"coc": root / f"{split}_c" / "coc", "disparity": root / f"{split}_c" / "disparity"}
    return zip_sorted(folders)


def lfdof(root: Path) -> list[Entry]:
    """Several defocused inputs ``<scene>_ap<...>.png`` per all-in-focus ``<scene>.png``."""
    inputs = list_images(_first_dir(root, ("input", "source")))
    gt_dir = _first_dir(root, ("ground_truth", "target", "gt"))
    targets = {p.stem: p for p in list_images(gt_dir)}
    entries = []
    for path in inputs:
        scene = path.stem.split("_ap")[0]
        if scene not in targets:
            raise DataError(f"no ground truth {scene}.* in {gt_dir} for {path.name}")
        entries.append({"input": path, "target": targets[scene]})
    if not entries:
        raise DataError(f"no images in {root}")
    return entries


def realdof(root: Path) -> list[Entry]:
    """``source`` (DRBNet) or ``input`` (LaKDNet) against ``target``, paired by sorted order."""
    return zip_sorted({"input": _first_dir(root, ("source", "input")), "target": root / "target"})


_DED_INDEX = re.compile(r"_(\d+)$")


def _by_scene_index(folder: Path) -> dict[tuple[str, int], Path]:
    out = {}
    for p in list_images(folder, recursive=True):
        m = _DED_INDEX.search(p.stem)
        if m:
            out[(p.parent.name, int(m.group(1)))] = p
    return out


def ded(root: Path) -> list[Entry]:
    """``image/<scene>/image_N``, ``sharp/<scene>/*_N``, ``filtered/<scene>/defocus_filterd_N.png``.

    The released DED test split has inputs only, so ``sharp`` and ``filtered`` may be absent as folders;
    when a folder exists, every input must have its file in it. Entries come in (scene, N) order.
    """
    images = _by_scene_index(root / "image")
    if not images:
        raise DataError(f"no image_<N> files under {root / 'image'}")
    extra = {
        role: _by_scene_index(root / name)
        for role, name in (("target", "sharp"), ("defocus", "filtered"))
        if (root / name).is_dir()
    }
    entries = []
    for key in sorted(images):
        entry = {"input": images[key]}
        for role, found in extra.items():
            if key not in found:
                raise DataError(f"{images[key]} has no matching {role} file (scene {key[0]}, index {key[1]})")
            entry[role] = found[key]
        entries.append(entry)
    return entries


def cuhk(root: Path) -> list[Entry]:
    """Every image under the folder (CUHK blur-detection set); no ground truth."""
    files = list_images(root, recursive=True)
    if not files:
        raise DataError(f"no images under {root}")
    return [{"input": p} for p in files]


def pixeldp(root: Path) -> list[Entry]:
    """``test_{c,l,r}/source``: real dual-pixel captures without ground truth."""
    return zip_sorted(
        {
            "input": root / "test_c" / "source",
            "left": root / "test_l" / "source",
            "right": root / "test_r" / "source",
        }
    )


def paired(inputs: Path, targets: Path) -> list[Entry]:
    """Any two folders whose files share stems."""
    a = {p.stem: p for p in list_images(inputs)}
    b = {p.stem: p for p in list_images(targets)}
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise DataError(
            f"unpaired files: {len(only_a)} only in {inputs} (e.g. {only_a[:3]}), "
            f"{len(only_b)} only in {targets} (e.g. {only_b[:3]})"
        )
    if not a:
        raise DataError(f"no images in {inputs}")
    return [{"input": a[s], "target": b[s]} for s in sorted(a)]


# --- the benchmark's view: auto-detected layouts with ground truth, as (name, source, target) ----------------


def detect_layout(root: Path, *, split: str = "test") -> str:
    """Name the layout of ``root`` from its folder names, so ``defocus bench DIR`` needs no ``--layout``."""
    if (root / f"{split}_c" / "source").is_dir():
        return "dpdd"
    if (root / "image").is_dir() and (root / "sharp").is_dir():
        return "ded"
    if _find_dir(root, ("input",)) and _find_dir(root, ("ground_truth",)):
        return "lfdof"
    src = _find_dir(root, ("source", "input"))
    if src is not None and (root / "target").is_dir():
        return "lfdof" if any("_ap" in p.stem for p in list_images(src)[:20]) else "realdof"
    raise DataError(
        f"{root}: no known dataset layout (expected source|input + target, {split}_c/source + {split}_c/target, "
        "input + ground_truth, or image + sharp folders)"
    )


def find_pairs(root: Path, *, layout: str = "auto", split: str = "test", limit: int | None = None) -> list[Pair]:
    """All (input, ground truth) pairs of a dataset folder, in entry order, at most ``limit``.

    Raises:
        DataError: unknown layout, missing folders, no ground truth, or inputs and targets that do not match up.
    """
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    if layout == "auto":
        layout = detect_layout(root, split=split)
    if layout == "dpdd":
        entries = dpdd(root, split, dual=False, maps=False)
    elif layout == "realdof":
        entries = realdof(root)
    elif layout == "lfdof":
        entries = lfdof(root)
    elif layout == "ded":
        if not (root / "sharp").is_dir():
            raise DataError(f"{root}: no sharp/ folder, so there is no ground truth to score against")
        entries = ded(root)
    else:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    pairs = [_pair(entry, layout) for entry in entries]
    return pairs[:limit] if limit is not None else pairs


def _pair(entry: Entry, layout: str) -> Pair:
    """DED stems repeat across scenes (``image_1`` in each), so its names carry the scene."""
    source = entry["input"]
    name = f"{source.parent.name}_{source.stem}" if layout == "ded" else source.stem
    return Pair(name, source, entry["target"])
