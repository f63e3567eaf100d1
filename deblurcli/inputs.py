"""Expanding the command line's files, folders and globs into the list of photos to process.

Each photo remembers the sub-folder it was found in, relative to the folder (or the fixed part of the glob)
named on the command line, so that ``-o`` can rebuild the input's tree: ``s/a/img.jpg`` and ``s/b/img.jpg``
become ``out/a/...`` and ``out/b/...`` instead of fighting over one name.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from deblurcli.io.atomic import TEMP_RE
from deblurcli.naming import DEFAULT_SUFFIX

#: stems ending like this are our own outputs; folder scans skip them so a re-run does not deblur results
OUTPUT_MARKER = DEFAULT_SUFFIX
#: the command-line name of standard input
STDIN = "-"


@dataclass(frozen=True)
class Candidate:
    """One photo to process; ``subdir`` is where it sits below the folder argument ("." for a plain file);
    ``label`` names it in reports when the path is not the user's (``-`` for standard input)."""

    path: Path
    subdir: Path = Path(".")
    label: str | None = None


@dataclass(frozen=True)
class Inputs:
    """Photos to process, and command-line entries that matched nothing (reported as failures)."""

    found: list[Candidate]
    missing: list[str]
    stdin: bool = False
    ignored_hidden: int = field(default=0)

    @property
    def photos(self) -> list[Path]:
        return [c.path for c in self.found]


def expand_inputs(
    args: list[str],
    *,
    extensions: frozenset[str],
    recursive: bool,
    hidden: bool = False,
    output_markers: tuple[str, ...] = (OUTPUT_MARKER,),
    exclude: Path | None = None,
) -> Inputs:
    """Files are taken as given (even with an unknown extension or a hidden name, so the decoder can say why it
    fails); folders and globs contribute the files whose extension we support, minus hidden files and folders
    (unless ``hidden``), our own outputs (stems containing one of ``output_markers``), our temporary files and
    anything below ``exclude`` (the output folder, when it lies inside an input folder). ``-`` stands for
    standard input and is only recorded. Order is preserved and duplicates removed."""
    seen: set[Path] = set()
    found: list[Candidate] = []
    missing: list[str] = []
    stdin = False
    skipped_hidden = 0
    excluded = exclude.resolve() if exclude is not None else None

    def add(path: Path, subdir: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(Candidate(path, subdir))

    def scan(base: Path, paths: list[Path]) -> int:
        nonlocal skipped_hidden
        matched = 0
        for p in paths:
            rel = p.relative_to(base) if p.is_relative_to(base) else Path(p.name)
            if not hidden and any(part.startswith(".") for part in rel.parts):
                skipped_hidden += 1
                continue
            if excluded is not None and p.resolve().is_relative_to(excluded):
                continue
            if _is_candidate(p, extensions, output_markers):
                matched += 1
                add(p, rel.parent)
        return matched

    for arg in args:
        if arg == STDIN:
            stdin = True
            continue
        path = Path(arg)
        if path.is_dir():
            scan(path, sorted(path.rglob("*") if recursive else path.glob("*")))
        elif path.is_file():
            add(path, Path("."))
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=recursive, include_hidden=hidden))
            if not scan(_fixed_prefix(arg), [m for m in matches if m.is_file()]):
                missing.append(arg)
        else:
            missing.append(arg)
    return Inputs(found=found, missing=missing, stdin=stdin, ignored_hidden=skipped_hidden)


def _fixed_prefix(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: ``shots/2024/**/*.jpg`` -> ``shots/2024``."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(os.curdir)


def _is_candidate(path: Path, extensions: frozenset[str], markers: tuple[str, ...]) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in extensions
        and TEMP_RE.match(path.name) is None
        and not any(m and m in path.stem for m in markers)
    )
