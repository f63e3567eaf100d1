"""EXIF, XMP, IPTC, orientation and provenance: what survives a round trip through the pipeline, and how.

EXIF is carried as the blob ``PIL.Image.Exif.tobytes()`` writes, the form JPEG (APP1), PNG (eXIf), WebP, AVIF
and HEIF embed directly; Pillow also reads it from every input format. XMP (as the stored packet) and IPTC
(as exiv2's records) are read and written with exiv2 through the ``pyexiv2`` wheel, a maintained library
that needs no system package, so that nothing here patches TIFF directories or XMP text by hand:

* TIFF gets its EXIF from exiv2 too (the blob is itself a TIFF structure, so exiv2 reads it as a carrier and
  copies it in, sub-IFDs and all);
* XMP is edited as an in-memory sidecar: the source packet is kept whole, stale fields (orientation, pixel
  dimensions) are fixed where present, and provenance is added in our own namespace plus an
  ``xmpMM:History`` event;
* IPTC-IIM is written where the format has a place for it (JPEG, TIFF, PNG); WebP, AVIF and HEIF have none,
  so there it goes into XMP by exiv2's standard IPTC-to-XMP mapping (IPTC Core).

The user's own ImageDescription is never touched; Software names this tool because it wrote the pixels.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from deblurcli import __version__
from deblurcli.errors import UsageError

ORIENTATION = 0x0112
IMAGE_DESCRIPTION = 0x010E
SOFTWARE = 0x0131
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
INTEROP_IFD = 0xA005
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
ICC_TAG = 34675
XMP_TAG = 700
SOFTWARE_NAME = f"defocus {__version__}"
XMP_NAMESPACE = "urn:defocus:provenance:1.0/"  # a URN: no web address pretends to host a schema
XMP_PREFIX = "defocus"

# IFD0 tags of a TIFF that describe the shot rather than the pixel layout; everything else there (strips,
# sample format, tifffile's own shape description, ...) belongs to the file and must not be copied.
_TIFF_DESCRIPTIVE = (
    0x010E, 0x010F, 0x0110, ORIENTATION, 0x0131, 0x0132, 0x013B, 0x013C, 0x8298, EXIF_IFD, GPS_IFD
)  # fmt: skip


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
        elif not (tag in (IMAGE_DESCRIPTION, 0x0131) and str(source[tag]).startswith(("{", "defocus"))):
            exif[tag] = source[tag]  # (our own old JSON description and Software are not the user's)
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


def output_exif(blob: bytes | None, width: int, height: int, *, stamp: bool) -> bytes | None:
    """The EXIF to write: pixel dimensions made true where the source stated them, Software when ``stamp``.

    Left byte for byte as it was when nothing needs changing.
    """
    exif = load_exif(blob)
    sub = exif.get_ifd(EXIF_IFD) if EXIF_IFD in exif else {}
    stale = any(tag in sub and sub[tag] != value for tag, value in ((PIXEL_X, width), (PIXEL_Y, height)))
    if not stale and not stamp:
        return blob
    for tag in (EXIF_IFD, GPS_IFD):
        if tag in exif:
            exif[tag] = exif.get_ifd(tag)  # materialise the sub-IFDs, or tobytes() would drop edits to them
    if stale:
        for tag, value in ((PIXEL_X, width), (PIXEL_Y, height)):
            if tag in sub:
                exif[EXIF_IFD][tag] = value
    if stamp:
        exif[SOFTWARE] = SOFTWARE_NAME
    return exif.tobytes()


@functools.lru_cache(maxsize=1)
def srgb_icc() -> bytes:
    """An sRGB ICC profile (littleCMS's, through Pillow) for outputs we encoded to sRGB ourselves (RAW)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@functools.lru_cache(maxsize=1)
def exiv2() -> Any:
    """pyexiv2, imported on first use (it loads libexiv2), with its log muted and our namespace registered."""
    import pyexiv2

    pyexiv2.set_log_level(4)  # exiv2 warns on stderr about odd maker notes; they are not the user's problem
    pyexiv2.registerNs(XMP_NAMESPACE, XMP_PREFIX)
    return pyexiv2


def read_xmp_iptc(path: Path) -> tuple[str | None, dict[str, str | list[str]] | None]:
    """The XMP packet and IPTC records of a file, or None for either; damaged metadata never costs the photo."""
    try:
        image = exiv2().Image(str(path))
    except Exception:  # exiv2 reports every problem as a RuntimeError
        return None, None
    try:
        xmp = _try(image.read_raw_xmp) or None
        iptc = _try(image.read_iptc) or None
    finally:
        image.close()
    return xmp, iptc


def _try(read: Any) -> Any:
    try:
        return read()
    except Exception:
        return None


def output_xmp(
    xmp: str | None,
    iptc: Mapping[str, str | list[str]] | None,
    *,
    width: int,
    height: int,
    provenance: Mapping[str, str] | None,
    iptc_into_xmp: bool,
) -> str | None:
    """The XMP packet to write: the source's, stale fields fixed, provenance added (None if there is none).

    Edited by exiv2 inside a one-pixel TIFF held in memory (its XMP sidecar mode does not update existing
    properties). A source packet exiv2 cannot parse is replaced, since writing it unchanged would carry
    stale orientation and dimensions.
    """
    if not xmp and provenance is None and not (iptc_into_xmp and iptc):
        return None
    pyexiv2 = exiv2()
    carrier_bytes = carrier()
    if xmp:
        with contextlib.suppress(Exception):
            first = pyexiv2.ImageData(carrier_bytes)
            try:
                first.modify_raw_xmp(xmp)
                carrier_bytes = bytes(first.get_bytes())
            finally:
                first.close()
    image = pyexiv2.ImageData(carrier_bytes)
    try:
        existing = _try(image.read_xmp) or {}
        changes: dict[str, object] = {}
        for key, value in (("Xmp.tiff.Orientation", 1), ("Xmp.tiff.ImageWidth", width),
                           ("Xmp.tiff.ImageLength", height), ("Xmp.exif.PixelXDimension", width),
                           ("Xmp.exif.PixelYDimension", height)):  # fmt: skip
            if key in existing:
                changes[key] = str(value)
        if iptc_into_xmp and iptc:
            with contextlib.suppress(Exception):  # a failed conversion loses that copy of IPTC, never the photo
                for key, value in pyexiv2.convert_iptc_to_xmp(dict(iptc)).items():
                    if existing.get(key) in (None, "", []):
                        changes[key] = value
        if provenance is not None:
            changes.update(_provenance_xmp(provenance, existing))
        if changes:
            image.modify_xmp(changes)
        return image.read_raw_xmp() or None
    finally:
        image.close()


@functools.lru_cache(maxsize=1)
def carrier() -> bytes:
    """A one-pixel TIFF: the smallest file in which exiv2 edits metadata in memory with no size limit
    (a JPEG segment would cap XMP and EXIF at 64 KB)."""
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((1, 1), np.uint8), metadata=None)
    return buffer.getvalue()


def provenance_date() -> str:
    """The time a provenance record carries: now (UTC), or ``SOURCE_DATE_EPOCH`` when it is set, the
    reproducible-builds convention, so that two runs over the same photo can write byte-identical files.

    Raises:
        UsageError: ``SOURCE_DATE_EPOCH`` is set but is not a whole number of seconds.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None or not epoch.strip():
        return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if not epoch.strip().isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {epoch!r}")
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).isoformat(timespec="seconds")


def _provenance_xmp(provenance: Mapping[str, str], existing: Mapping[str, object]) -> dict[str, object]:
    """``defocus:*`` properties for every provenance entry, plus one ``xmpMM:History`` event appended."""
    fields: dict[str, object] = {}
    for key, value in provenance.items():
        name = re.sub(r"[^A-Za-z0-9_]", "_", key)
        if not name[:1].isalpha():
            name = "x" + name
        fields[f"Xmp.{XMP_PREFIX}.{name}"] = str(value)
    when = provenance.get("date") or provenance_date()
    events = {int(m.group(1)) for k in existing if (m := re.match(r"Xmp\.xmpMM\.History\[(\d+)\]", k))}
    index = max(events, default=0) + 1
    if not events:
        fields["Xmp.xmpMM.History"] = 'type="Seq"'
    event = f"Xmp.xmpMM.History[{index}]"
    fields[event] = 'type="Struct"'
    fields[f"{event}/stEvt:action"] = "derived"
    fields[f"{event}/stEvt:when"] = when
    fields[f"{event}/stEvt:softwareAgent"] = SOFTWARE_NAME
    detail = f"deblurred with {provenance.get('method', 'defocus')}"
    if provenance.get("source"):
        detail += f" from {provenance['source']}"
    fields[f"{event}/stEvt:parameters"] = detail
    if "Xmp.xmp.CreatorTool" not in existing:
        fields["Xmp.xmp.CreatorTool"] = SOFTWARE_NAME
    return fields


def embed(
    path: Path,
    *,
    exif: bytes | None,
    xmp: str | None,
    iptc: Mapping[str, str | list[str]] | None,
) -> None:
    """Write EXIF (given only for TIFF), XMP and IPTC into an image file exiv2 can write (JPEG, PNG, TIFF).

    Raises:
        RuntimeError: exiv2 could not write; the encoder turns it into an ``EncodeError``.
    """
    if not (exif or xmp or iptc):
        return
    pyexiv2 = exiv2()
    image = pyexiv2.Image(str(path))
    try:
        if exif:
            carrier = pyexiv2.ImageData(exif.removeprefix(b"Exif\x00\x00"))
            try:
                carrier.copy_to_another_image(
                    image, exif=True, iptc=False, xmp=False, comment=False, icc=False, thumbnail=False
                )
            finally:
                carrier.close()
        if iptc:
            image.modify_iptc(dict(iptc))
        if xmp:
            image.modify_raw_xmp(xmp)
    finally:
        image.close()
