"""Expanding the command line's files, folders and globs into the list of photos to process."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

#: stems ending like this are our own outputs; folder scans skip them so a re-run does not deblur results
OUTPUT_MARKER = "_deblurred"


@dataclass(frozen=True)
class Inputs:
    """Photos to process, and command-line entries that matched nothing (reported as failures)."""

    photos: list[Path]
    missing: list[str]


def expand_inputs(args: list[str], *, extensions: frozenset[str], recursive: bool) -> Inputs:
    """Files are taken as given (even with an unknown extension, so the decoder can say why it fails);
    folders contribute the files whose extension we support; anything else is tried as a glob pattern.
    Order is preserved and duplicates removed."""
    seen: set[Path] = set()
    photos: list[Path] = []
    missing: list[str] = []

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            photos.append(path)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.glob("*")
            for p in sorted(found):
                if _is_candidate(p, extensions):
                    add(p)
        elif path.is_file():
            add(path)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=recursive))
            files = [m for m in matches if m.is_file() and _is_candidate(m, extensions)]
            if not files:
                missing.append(arg)
            for m in files:
                add(m)
        else:
            missing.append(arg)
    return Inputs(photos=photos, missing=missing)


def _is_candidate(path: Path, extensions: frozenset[str]) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in extensions
        and not path.name.startswith(".")
        and OUTPUT_MARKER not in path.stem
    )
