"""EXIF, orientation and provenance: what survives a round trip through the pipeline, and in which form.

EXIF is carried as the blob ``PIL.Image.Exif.tobytes()`` writes, the form JPEG (APP1) and PNG (eXIf) embed
directly. TIFF has no slot for such a blob, so it is split there: the descriptive IFD0 strings go into the
main IFD and the Exif/GPS sub-IFDs are appended after the image and linked from IFD0 (``append_subifds``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin

from deblurcli import __version__

ORIENTATION = 0x0112
IMAGE_DESCRIPTION = 0x010E
SOFTWARE = 0x0131
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
INTEROP_IFD = 0xA005
ICC_TAG = 34675
SOFTWARE_NAME = f"defocus {__version__}"

# IFD0 tags of a TIFF that describe the shot rather than the pixel layout; everything else there (strips,
# sample format, tifffile's own shape description, ...) belongs to the file and must not be copied.
_TIFF_DESCRIPTIVE = (0x010F, 0x0110, ORIENTATION, 0x0132, 0x013B, 0x013C, 0x8298, EXIF_IFD, GPS_IFD)
# The string tags of IFD0 that tifffile can write back as plain ASCII extratags.
_ASCII_IFD0 = (0x010F, 0x0110, 0x0132, 0x013B, 0x013C, 0x8298)


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, ...) array, so that the result is displayed upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return pixels if op is None else np.ascontiguousarray(op(pixels))


def reset_orientation(exif: Image.Exif) -> tuple[bytes | None, int]:
    """The blob with Orientation set to 1 (pixels get rotated instead), and the orientation that was there.

    Out-of-range orientations are treated as 1, as viewers do.
    """
    if len(exif) == 0:
        return None, 1
    try:
        orientation = int(exif.get(ORIENTATION, 1))
    except (TypeError, ValueError):
        orientation = 1
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    return exif.tobytes(), orientation if 1 <= orientation <= 8 else 1


def exif_from_tiff(fp: BinaryIO) -> tuple[bytes | None, int]:
    """Descriptive IFD0 tags and the Exif/GPS sub-IFDs of a TIFF-structured file (TIFF, DNG, NEF, ...)."""
    fp.seek(0)
    source = Image.Exif()
    source.load_from_fp(fp)
    exif = Image.Exif()
    for tag in _TIFF_DESCRIPTIVE:
        if tag not in source:
            continue
        if tag in (EXIF_IFD, GPS_IFD):
            sub = {k: v for k, v in source.get_ifd(tag).items() if k != INTEROP_IFD}
            if sub:
                exif[tag] = sub
        else:
            exif[tag] = source[tag]
    return reset_orientation(exif)


def load_exif(blob: bytes | None) -> Image.Exif:
    """Parse a blob as written by ``Image.Exif.tobytes()`` (an empty Exif for None)."""
    exif = Image.Exif()
    if blob:
        exif.load(blob)
    return exif


def provenance_json(provenance: Mapping[str, str]) -> str:
    """Compact, key-sorted JSON: small enough for a tag, stable enough to diff between runs."""
    return json.dumps(dict(provenance), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def with_provenance(blob: bytes | None, provenance: Mapping[str, str] | None) -> bytes | None:
    """EXIF blob with ImageDescription (provenance JSON) and Software set, for JPEG output."""
    if provenance is None:
        return blob
    exif = load_exif(blob)
    for tag in (EXIF_IFD, GPS_IFD):
        if tag in exif:
            exif[tag] = exif.get_ifd(tag)
    exif[IMAGE_DESCRIPTION] = provenance_json(provenance)
    exif[SOFTWARE] = SOFTWARE_NAME
    return exif.tobytes()


def tiff_ascii_tags(blob: bytes | None) -> list[tuple[int, str, int, str, bool]]:
    """IFD0 strings of the EXIF blob (Make, Model, DateTime, Artist, ...) as tifffile extratags."""
    exif = load_exif(blob)
    tags = []
    for tag in _ASCII_IFD0:
        value = exif.get(tag)
        if isinstance(value, str) and value:
            tags.append((tag, "s", 0, value, True))
    return tags


def tiff_subifds(blob: bytes | None) -> dict[int, dict[int, object]]:
    """The Exif and GPS sub-IFDs of the blob, ready for ``append_subifds``."""
    exif = load_exif(blob)
    subs = {}
    for tag in (EXIF_IFD, GPS_IFD):
        if tag in exif:
            sub = {k: v for k, v in exif.get_ifd(tag).items() if k != INTEROP_IFD}
            if sub:
                subs[tag] = sub
    return subs


# tifffile refuses to write the Exif/GPS pointer tags itself, so the encoder writes an unused neighbouring
# code as a placeholder; one below the real code keeps IFD0's entries in ascending order after the rename.
SUBIFD_PLACEHOLDERS = {EXIF_IFD: EXIF_IFD - 1, GPS_IFD: GPS_IFD - 1}


def placeholder_tags(subifds: Mapping[int, object]) -> list[tuple[int, int, int, int, bool]]:
    """tifffile extratags (LONG, value 0) reserving IFD0 entries for ``append_subifds``."""
    return [(SUBIFD_PLACEHOLDERS[tag], 4, 1, 0, True) for tag in subifds]


def append_subifds(path: Path, subifds: Mapping[int, Mapping[int, object]]) -> None:
    """Append each sub-IFD to a classic TIFF and turn its placeholder entry in IFD0 into a pointer to it.

    Pillow serialises each IFD with offsets relative to where it will land in the file.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        order = tif.byteorder
        tags = tif.pages.first.tags
        entries = {
            tag: (tags[SUBIFD_PLACEHOLDERS[tag]].offset, tags[SUBIFD_PLACEHOLDERS[tag]].valueoffset)
            for tag in subifds
        }
    prefix = b"II" if order == "<" else b"MM"
    with open(path, "r+b") as fh:
        for tag, values in subifds.items():
            end = fh.seek(0, 2)
            if end % 2:
                fh.write(b"\0")
                end += 1
            ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=prefix)
            for key, value in values.items():
                ifd[key] = value
            fh.write(ifd.tobytes(end))
            entry, value_at = entries[tag]
            fh.seek(entry)
            fh.write(struct.pack(order + "HHI", tag, 4, 1))
            fh.seek(value_at)
            fh.write(struct.pack(order + "I", end))
