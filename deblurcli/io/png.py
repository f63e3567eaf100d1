"""PNG pixels through imagecodecs (libpng); only the container work no library offers stays here.

Pillow reduces 16-bit colour PNGs to 8 bits on reading and refuses to write them, yet DPDD and our synthetic
sets ship 16-bit RGB and the CLI promises 16-bit output. imagecodecs reads and writes them exactly (libpng),
and ten times faster than the numpy unfilter this module used to hold. What remains ours:

* ``read_header``: the IHDR size check before anything is decompressed (the pixel limit);
* ``png_bytes``: libpng's stream from imagecodecs with our eXIf, iCCP and text chunks spliced in after
  IHDR, because imagecodecs writes pixels only and Pillow cannot write 16-bit colour at all;
* ``read_chunks``/``text_chunks``: the metadata chunks of a 16-bit file, read without decoding its pixels
  twice (Pillow would decode them, to 8 bits, just to reach the text after IDAT);
* a tRNS colour key turned into alpha, which libpng leaves to the application.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deblurcli.errors import PhotoError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (grey, RGB, grey+alpha, RGBA)
_LIBPNG_FILTERS = {0: 8, 1: 16, 2: 32, 3: 64, 4: 128}  # PNG row filter -> libpng's PNG_FILTER_* flag
# Chunks that carry metadata we handle ourselves (XMP and exiv2's raw profiles go through exiv2), so they are
# not copied as plain text.
NOT_TEXT = ("XML:com.adobe.xmp", "Raw profile type exif", "Raw profile type iptc", "Raw profile type xmp")


class Header(NamedTuple):
    """The IHDR fields the decoder needs; read from the first 33 bytes, before any pixel is touched."""

    width: int
    height: int
    depth: int
    ctype: int
    interlace: int


# --- writing --------------------------------------------------------------------------------------


def chunk(kind: bytes, body: bytes) -> bytes:
    """One chunk: length, type, body and the CRC over type + body."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(
    samples: np.ndarray,
    *,
    exif: bytes | None = None,
    icc: bytes | None = None,
    text: Mapping[str, str] | None = None,
    filters: int = 4,
    level: int = 6,
) -> bytes:
    """A complete PNG of (H, W, C) uint8/uint16 samples, C in 1..4 (grey, grey+alpha, RGB, RGBA).

    ``filters`` is the row filter (0-4) for every row; Paeth suits photographs best. ``level`` is the zlib
    level: bulk data preparation trades file size for speed with a low one. Text that Latin-1 cannot hold
    goes to iTXt (UTF-8), the rest to tEXt, as the PNG specification recommends.
    """
    import imagecodecs

    channels = samples.shape[2] if samples.ndim == 3 else 1
    stream = imagecodecs.png_encode(
        samples if channels > 1 else samples.reshape(samples.shape[:2]),
        level=level,
        filter=_LIBPNG_FILTERS[int(filters)],
    )
    extra = []
    if icc:
        extra.append(chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        extra.append(chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    for key, value in (text or {}).items():
        name = key.encode("latin-1", "replace")[:79]
        try:
            extra.append(chunk(b"tEXt", name + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:
            extra.append(chunk(b"iTXt", name + b"\0\0\0\0\0" + value.encode("utf-8")))
    ihdr_end = len(SIGNATURE) + 25  # IHDR is always first and 13 bytes long
    return stream[:ihdr_end] + b"".join(extra) + stream[ihdr_end:]


def write_png(path: Path, samples: np.ndarray, *, filters: int = 4, level: int = 6) -> None:
    """Write (H, W) or (H, W, C) uint8/uint16 samples to ``path`` (the folder must exist; not atomic).

    For data tools; photos the user asked for go through ``deblurcli.io.encode``, which writes atomically.
    """
    if samples.dtype not in (np.uint8, np.uint16) or samples.ndim not in (2, 3):
        raise ValueError(f"write_png takes uint8 or uint16 (h, w[, c]) samples, got {samples.dtype} {samples.shape}")
    if samples.ndim == 2:
        samples = samples[:, :, None]
    Path(path).write_bytes(png_bytes(np.ascontiguousarray(samples), filters=filters, level=level))


# --- reading --------------------------------------------------------------------------------------


def read_header(head: bytes) -> Header:
    """IHDR from the first 33 bytes of a file, or PhotoError if they are not a PNG header."""
    if len(head) < 33 or not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
        raise PhotoError("corrupt or truncated PNG: no header")
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return Header(width, height, depth, ctype, interlace)


def read_chunks(blob: bytes) -> dict[bytes, list[bytes]]:
    """All chunks by type, CRC-checked; a missing IEND means the file was cut short."""
    chunks: dict[bytes, list[bytes]] = {}
    pos = 8
    while pos + 12 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        ctype = blob[pos + 4 : pos + 8]
        body = blob[pos + 8 : pos + 8 + length]
        crc = blob[pos + 8 + length : pos + 12 + length]
        if len(crc) < 4:
            break
        if struct.unpack(">I", crc)[0] != zlib.crc32(ctype + body):
            raise PhotoError(f"corrupt PNG: bad checksum in {ctype.decode('latin-1')} chunk")
        if ctype == b"IEND":
            return chunks
        chunks.setdefault(ctype, []).append(body)
        pos += 12 + length
    raise PhotoError("truncated PNG: file ends before its last chunk")


def text_chunks(chunks: Mapping[bytes, list[bytes]], *, limit: int = 1 << 20) -> dict[str, str]:
    """tEXt, zTXt and iTXt as a dict, without XMP and raw profiles; damaged or oversized entries are skipped.

    ``limit`` caps each decompressed value, so a compressed text chunk cannot be a memory bomb.
    """
    text: dict[str, str] = {}
    for kind in (b"tEXt", b"zTXt", b"iTXt"):
        for body in chunks.get(kind, []):
            key, _, rest = body.partition(b"\0")
            try:
                if kind == b"tEXt":
                    value = rest.decode("latin-1")
                elif kind == b"zTXt":
                    value = _inflate(rest[1:], limit).decode("latin-1")
                else:
                    compressed, payload = rest[0], rest[2:].split(b"\0", 2)[2]
                    value = (_inflate(payload, limit) if compressed else payload).decode("utf-8")
            except (IndexError, ValueError, zlib.error):
                continue
            name = key.decode("latin-1")
            if name not in NOT_TEXT:
                text[name] = value
    return text


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk over the size limit")
    return out


def icc_profile(chunks: Mapping[bytes, list[bytes]]) -> bytes | None:
    """The decompressed iCCP profile, or None if absent or damaged."""
    if b"iCCP" not in chunks:
        return None
    try:
        return _inflate(chunks[b"iCCP"][0].split(b"\0", 1)[1][1:], 64 << 20) or None
    except (IndexError, ValueError, zlib.error):
        return None


def read16(header: Header, blob: bytes) -> tuple[np.ndarray, dict[bytes, list[bytes]]]:
    """(H, W, C) uint16 samples of a 16-bit PNG file's bytes, and its chunks (for eXIf, iCCP, text, ...).

    A tRNS colour key becomes an extra alpha channel, so callers see grey+alpha or RGBA as usual.
    """
    import imagecodecs

    channels = CHANNELS.get(header.ctype)
    if header.depth != 16 or channels is None or header.width == 0 or header.height == 0:
        raise PhotoError("corrupt PNG: invalid header")
    chunks = read_chunks(blob)
    try:
        array = imagecodecs.png_decode(blob)
    except Exception as err:  # imagecodecs.PngError, with libpng's own words
        reason = str(err).strip().splitlines()
        raise PhotoError(f"corrupt or truncated PNG: {reason[0] if reason else type(err).__name__}") from None
    array = array.reshape(header.height, header.width, channels).astype(np.uint16, copy=False)
    trns = chunks.get(b"tRNS")
    if trns and channels in (1, 3) and len(trns[0]) >= 2 * channels:
        key = np.frombuffer(trns[0][: 2 * channels], ">u2").astype(np.uint16)
        alpha = np.where(np.all(array == key, axis=2), 0, 65535).astype(np.uint16)
        array = np.concatenate([array, alpha[:, :, None]], axis=2)
    return array, chunks
