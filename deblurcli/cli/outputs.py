"""Where each result goes, decided for the whole batch before any photo is touched.

Deciding up front is what lets a batch refuse, with one line per photo, two inputs that would land on the same
output (``IMG_1.dng`` beside ``IMG_1.tif``), an output that would replace an input, or a ``--bit-depth`` that
the output format cannot hold, instead of discovering it hours later or silently keeping one of two photos.
The format is predicted from the file name; the batch re-checks the real one after decoding.
"""

from __future__ import annotations

import os
import string
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from deblurcli.errors import OutputError, UsageError
from deblurcli.inputs import Candidate
from deblurcli.io.formats import DEPTHS, EXTENSIONS, SUFFIX_FORMATS

DEFAULT_SUFFIX = "_deblurred"
DEFAULT_TEMPLATE = "{stem}{suffix}.{ext}"
#: fields ``--name`` understands, with what they mean (shown in ``--help``)
TEMPLATE_FIELDS = {
    "stem": "input file name without extension",
    "suffix": "the --suffix text",
    "ext": "extension of the output format (jpg, png, tif)",
    "parent": "name of the input's folder",
    "method": "the --method",
}


@dataclass(frozen=True)
class Naming:
    """How result files are named and where they go (``folder`` ``None``: beside each input)."""

    folder: Path | None
    suffix: str = DEFAULT_SUFFIX
    template: str = DEFAULT_TEMPLATE
    method: str = "classic"

    def path(self, cand: Candidate, fmt: str) -> Path:
        folder = cand.path.parent if self.folder is None else self.folder / cand.subdir
        name = self.template.format(
            stem=cand.path.stem,
            suffix=self.suffix,
            ext=EXTENSIONS[fmt].lstrip("."),
            parent=cand.path.resolve().parent.name,
            method=self.method,
        )
        return folder / name


def check_naming(suffix: str, template: str) -> None:
    """Refuse a ``--suffix`` or ``--name`` that cannot give a plain file name, before anything runs."""
    if any(sep in suffix for sep in ("/", "\\", os.sep)):
        raise UsageError(f"--suffix {suffix!r}: must not contain a path separator")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise UsageError(f"--name {template!r}: {err}") from None
    for name, spec, conv in fields:
        if name not in TEMPLATE_FIELDS:
            known = ", ".join("{" + k + "}" for k in TEMPLATE_FIELDS)
            raise UsageError(f"--name {template!r}: unknown field {{{name}}}; use {known}")
        if spec or conv:
            raise UsageError(f"--name {template!r}: {{{name}}} takes no format specification")
    if "ext" not in {f for f, _, _ in fields}:
        raise UsageError(f"--name {template!r}: must contain {{ext}}, so that the name matches the format")
    sample = template.format(stem="IMG_0001", suffix=suffix, ext="jpg", parent="photos", method="classic")
    if any(sep in sample for sep in ("/", "\\", os.sep)) or sample.startswith("."):
        raise UsageError(f"--name {template!r}: must give a plain, visible file name (got {sample!r})")


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


def find_clashes(found: list[Candidate], naming: Naming, fmt: str | None) -> tuple[dict[Path, Path], dict[Path, str]]:
    """Planned output of every photo, and a one-line refusal for each photo that cannot be written.

    Refused: two or more photos with one output (all of them: which one "wins" would be an accident of the
    order), and a photo whose output is another input.
    """
    planned: dict[Path, Path] = {}
    by_output: dict[Path, list[Path]] = defaultdict(list)
    for cand in found:
        family = predicted_format(cand.path, fmt) or "tiff"
        dst = naming.path(cand, family)
        planned[cand.path] = dst
        by_output[_key(dst)].append(cand.path)
    inputs = {_key(c.path): c.path for c in found}
    refused: dict[Path, str] = {}
    for key, sources in by_output.items():
        if len(sources) > 1:
            for src in sources:
                others = ", ".join(str(o) for o in sources if o != src)
                refused[src] = f"same output {planned[src]} as {others}; use -o with a folder tree, or --name"
        if key in inputs and inputs[key] not in sources:
            for src in sources:
                refused[src] = f"output {planned[src]} would replace the input {inputs[key]}"
    return planned, refused


def _key(path: Path) -> Path:
    """Case-folded on case-insensitive systems, where ``A.jpg`` and ``a.jpg`` are one file."""
    resolved = path.resolve()
    return Path(os.path.normcase(resolved))
