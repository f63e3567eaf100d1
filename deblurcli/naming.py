"""What a result file is called: the one place that turns an input path into the result's and its maps' paths.

``defocus deblur`` (``--suffix``, ``--name``, ``-o``) and ``deblurcli.deblur_file`` both name results here, so
that the command line and a script write the same file for the same photo, and the batch's clash check sees
exactly the names the writer will use, maps included. The extension comes from the encoder's table
(``io.formats.EXTENSIONS``). Kept free of numpy and torch so that names are checked before anything heavy loads.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from deblurcli.errors import UsageError
from deblurcli.io.formats import EXTENSIONS
from deblurcli.methods.names import DEFAULT_METHOD

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
#: each map is written twice: the values as a TIFF, a colour preview as a PNG
MAP_EXTENSIONS = (".tif", ".png")


@dataclass(frozen=True)
class Naming:
    """How result files are named and where they go (``folder`` ``None``: beside each input)."""

    folder: Path | None = None
    suffix: str = DEFAULT_SUFFIX
    template: str = DEFAULT_TEMPLATE
    method: str = DEFAULT_METHOD

    def path(self, src: Path, fmt: str, subdir: Path = Path(".")) -> Path:
        """The result of ``src`` written as ``fmt``; ``subdir`` is where ``src`` sat below the folder the user
        named, rebuilt under ``folder`` so that two inputs called ``img.jpg`` keep apart."""
        folder = src.parent if self.folder is None else self.folder / subdir
        name = self.template.format(
            stem=src.stem,
            suffix=self.suffix,
            ext=EXTENSIONS[fmt].lstrip("."),
            parent=src.resolve().parent.name,
            method=self.method,
        )
        return folder / name


def map_paths(dst: Path, names: Iterable[str]) -> list[Path]:
    """The files the maps ``names`` of the result ``dst`` are written to: ``<dst stem>_<map>.tif`` and ``.png``
    beside it, in that order for each map."""
    return [dst.with_name(f"{dst.stem}_{name}{ext}") for name in names for ext in MAP_EXTENSIONS]


def check_naming(suffix: str, template: str) -> None:
    """Refuse a ``--suffix`` or ``--name`` that cannot give a plain file name, before anything runs.

    Raises:
        UsageError: a separator in the suffix; an unknown field, a format specification, no ``{ext}``, or a
            name that would be a path or hidden.
    """
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
