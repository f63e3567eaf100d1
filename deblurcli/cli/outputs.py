"""Where each result goes, decided for the whole batch before any photo is touched.

Deciding up front is what lets a batch refuse, with one line per photo, two inputs that would land on the same
output (``IMG_1.dng`` beside ``IMG_1.tif``), an output that would replace an input, or a ``--bit-depth`` that
the output format cannot hold, instead of discovering it hours later or silently keeping one of two photos.
The format is predicted from the file name; the batch re-checks the real one after decoding. The names
themselves come from ``deblurcli.naming``, which the writer and the Python API use too.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path

from deblurcli.errors import OutputError, UsageError
from deblurcli.inputs import Candidate
from deblurcli.io.formats import DEPTHS, SUFFIX_FORMATS
from deblurcli.naming import Naming, map_paths


def predicted_format(path: Path, fmt: str | None) -> str | None:
    """The output format, from ``--format`` or the input's extension (RAW -> TIFF); ``None`` if unknown."""
    from deblurcli.io.decode import RAW_EXTENSIONS

    if fmt is not None:
        return fmt
    ext = path.suffix.lower()
    return "tiff" if ext in RAW_EXTENSIONS else SUFFIX_FORMATS.get(ext)


def check_bit_depth(found: list[Candidate], fmt: str | None, bit_depth: int | None) -> None:
    """One usage error, not one failure per photo, when ``--bit-depth`` does not fit the output format."""
    if bit_depth is None:
        return
    for cand in found:
        family = predicted_format(cand.path, fmt)
        if family is not None and bit_depth not in DEPTHS[family]:
            depths = " or ".join(str(d) for d in DEPTHS[family])
            hint = "" if fmt else "; add --format tiff" + (" or png" if bit_depth == 16 else "")
            raise UsageError(
                f"--bit-depth {bit_depth}: {cand.path.name} would be written as {family.upper()}, "
                f"which holds {depths}-bit only{hint}"
            )


def prepare_folder(folder: Path) -> None:
    """Create ``-o`` and prove it is writable, so that a typo fails once, before the method loads.

    Raises:
        UsageError: ``-o`` names an existing file.
        OutputError: the folder cannot be created or written.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {folder}: is a file; give a folder (or '-' for standard output)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".defocus-probe-"):
            pass
    except OSError as err:
        raise OutputError(f"-o {folder}: cannot write there ({err.strerror or err})") from None


def find_clashes(
    found: list[Candidate], naming: Naming, fmt: str | None, maps: tuple[str, ...] = ()
) -> tuple[dict[Path, Path], dict[Path, str]]:
    """Planned output of every photo, and a one-line refusal for each photo that cannot be written.

    Every file a photo would write counts: the result and, with ``--maps``, the maps ``maps`` beside it
    (``a.jpg`` and ``a.png`` give two results but one ``a_deblurred_defocus.tif``). Refused: two or more photos
    with one file among their outputs (all of them: which one "wins" would be an accident of the order), and a
    photo one of whose outputs is another input.
    """
    planned: dict[Path, Path] = {}
    by_output: dict[Path, dict[Path, Path]] = defaultdict(dict)  # output key -> source -> that source's path
    for cand in found:
        family = predicted_format(cand.path, fmt) or "tiff"
        dst = naming.path(cand.path, family, cand.subdir)
        planned[cand.path] = dst
        for path in (dst, *map_paths(dst, maps)):
            by_output[_key(path)].setdefault(cand.path, path)
    inputs = {_key(c.path): c.path for c in found}
    refused: dict[Path, str] = {}
    for key, sources in by_output.items():
        if len(sources) > 1:
            for src, path in sources.items():
                others = ", ".join(str(o) for o in sources if o != src)
                refused.setdefault(src, f"same output {path} as {others}; use -o with a folder tree, or --name")
        if key in inputs and inputs[key] not in sources:
            for src, path in sources.items():
                refused[src] = f"output {path} would replace the input {inputs[key]}"
    return planned, refused


def _key(path: Path) -> Path:
    """Case-folded on case-insensitive systems, where ``A.jpg`` and ``a.jpg`` are one file."""
    resolved = path.resolve()
    return Path(os.path.normcase(resolved))
