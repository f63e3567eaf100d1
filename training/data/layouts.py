"""Find and pair the files of each dataset layout; every mismatch is a DataError naming the culprit.

An entry is a dict from role (``input``, ``target``, ``left``, ``right``, ``defocus``, ``coc``,
``disparity``) to file. Layout facts come from the authors' loaders as summarised in shared/research
(ifan.md section 5, drbnet_ye_kpac.md "Dataset layouts" and "DED dataset").
"""

from __future__ import annotations

import re
from pathlib import Path

from deblurcli.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

Entry = dict[str, Path]


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"missing folder: {folder}")
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _first_dir(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DataError(f"{root} has none of the folders {', '.join(names)}")


def zip_sorted(folders: dict[str, Path]) -> list[Entry]:
    """Pair files by sorted order (DPDD's blurred and sharp stems differ); counts must agree."""
    lists = {role: list_images(folder) for role, folder in folders.items()}
    counts = {role: len(files) for role, files in lists.items()}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{folders[r]}: {n}" for r, n in counts.items())
        raise DataError(f"file counts do not match ({detail})")
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
    when a folder exists, every input must have its file in it.
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
