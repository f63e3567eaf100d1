"""Our own PNG codec for 16-bit colour, which Pillow cannot read or write without losing the low byte.

Pillow reduces 16-bit colour PNGs to 8 bits on reading and refuses to write them, yet DPDD and our synthetic
sets ship 16-bit RGB and the CLI promises 16-bit output. So the whole PNG container lives here, once, for
``deblurcli.io.decode`` (16-bit files; 8-bit ones still go to Pillow), ``deblurcli.io.encode`` and
``deblurcli.io.maps`` (every PNG, one code path for all depths) and the training data tools.

Reading undoes all five row filters and Adam7 interlacing with numpy: Average and Paeth rows are undone
along anti-diagonals, so the Python loop runs width + height times rather than once per pixel.
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
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


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
    filters: int | np.ndarray = 4,
    level: int = 6,
) -> bytes:
    """A complete PNG of (H, W, C) uint8/uint16 samples, C in 1..4 (grey, grey+alpha, RGB, RGBA).

    ``filters`` is the row filter (0-4) for every row or one per row; Paeth suits photographs best.
    ``level`` is the zlib level: bulk data preparation trades file size for speed with a low one.
    Text goes to iTXt (UTF-8) for "Description" and to tEXt for the Latin-1 keywords.
    """
    height, width, channels = samples.shape
    depth = 16 if samples.dtype == np.uint16 else 8
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    data = samples.astype(">u2" if depth == 16 else np.uint8, copy=False).reshape(height, -1).view(np.uint8)
    parts = [SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0))]
    if icc:
        parts.append(chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        parts.append(chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    for key, value in (text or {}).items():
        if key == "Description":
            parts.append(chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
        else:
            parts.append(chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace")))
    row_filters = np.broadcast_to(np.asarray(filters, dtype=np.uint8), (height,))
    compressor = zlib.compressobj(level)
    idat = []
    step = max(1, (1 << 22) // max(1, data.shape[1]))  # about 4 MB of samples per block bounds the memory
    for y0 in range(0, height, step):
        prev = data[y0 - 1] if y0 > 0 else np.zeros(data.shape[1], np.uint8)
        block = png_filter(data[y0 : y0 + step], prev, channels * depth // 8, row_filters[y0 : y0 + step])
        idat.append(compressor.compress(block.tobytes()))
    idat.append(compressor.flush())
    parts += [chunk(b"IDAT", b"".join(idat)), chunk(b"IEND", b"")]
    return b"".join(parts)


def png_filter(rows: np.ndarray, prev: np.ndarray, bpp: int, filters: np.ndarray) -> np.ndarray:
    """Filter (h, stride) bytes given the row above the block; returns (h, 1 + stride) with filter bytes.

    A block with one filter computes only that predictor: Paeth, the costly one, is skipped unless used.
    """
    cur = rows.astype(np.int16)
    up = np.vstack([prev[None].astype(np.int16), cur[:-1]])
    left = np.zeros_like(cur)
    left[:, bpp:] = cur[:, :-bpp]
    uniform = int(filters[0]) if len(filters) and np.all(filters == filters[0]) else None
    if uniform in (0, 1, 2, 3):
        pred = (np.zeros_like(cur), left, up, (left + up) >> 1)[uniform]
    else:
        upleft = np.zeros_like(cur)
        upleft[:, bpp:] = up[:, :-bpp]
        pa, pb, pc = np.abs(up - upleft), np.abs(left - upleft), np.abs(left + up - 2 * upleft)
        pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        if uniform is None:
            f = filters[:, None]
            pred = np.select([f == 1, f == 2, f == 3, f == 4], [left, up, (left + up) >> 1, pred], 0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = filters
    out[:, 1:] = (cur - pred).astype(np.uint8)
    return out


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


def read16(header: Header, blob: bytes) -> tuple[np.ndarray, dict[bytes, list[bytes]]]:
    """(H, W, C) uint16 samples of a 16-bit PNG file's bytes, and its chunks (for eXIf, iCCP, ...).

    A tRNS colour key becomes an extra alpha channel, so callers see grey+alpha or RGBA as usual.
    """
    channels = CHANNELS.get(header.ctype)
    if header.depth != 16 or channels is None or header.width == 0 or header.height == 0:
        raise PhotoError("corrupt PNG: invalid header")
    width, height = header.width, header.height
    chunks = read_chunks(blob)
    try:
        data = np.frombuffer(zlib.decompress(b"".join(chunks.get(b"IDAT", []))), np.uint8)
    except zlib.error as err:
        reason = str(err).strip().splitlines()
        raise PhotoError(f"corrupt or truncated PNG: {reason[0] if reason else type(err).__name__}") from None
    raw = unfilter_image(data, width, height, channels * 2, header.interlace).view(">u2")
    array = raw.reshape(height, width, channels).astype(np.uint16)
    trns = chunks.get(b"tRNS")
    if trns and channels in (1, 3) and len(trns[0]) >= 2 * channels:
        key = np.frombuffer(trns[0][: 2 * channels], ">u2").astype(np.uint16)
        alpha = np.where(np.all(array == key, axis=2), 0, 65535).astype(np.uint16)
        array = np.concatenate([array, alpha[:, :, None]], axis=2)
    return array, chunks


def unfilter_image(data: np.ndarray, width: int, height: int, bpp: int, interlace: int) -> np.ndarray:
    """Undo PNG filtering (and Adam7 interlacing) into (height, width * bpp) bytes."""
    if not interlace:
        return unfilter(data, width, height, bpp)
    out = np.zeros((height, width * bpp), np.uint8)
    view = out.reshape(height, width, bpp)
    pos = 0
    for x0, y0, dx, dy in ADAM7:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w <= 0 or h <= 0:
            continue
        size = h * (w * bpp + 1)
        view[y0::dy, x0::dx] = unfilter(data[pos : pos + size], w, h, bpp).reshape(h, w, bpp)
        pos += size
    return out


def unfilter(data: np.ndarray, width: int, height: int, bpp: int) -> np.ndarray:
    """Reverse the five PNG row filters.

    Rows filtered with None/Sub/Up are undone a row at a time. Average and Paeth make every byte depend on its
    left neighbour, so those images are undone along anti-diagonals instead (all pixels with equal x + y only
    depend on earlier diagonals), which keeps the Python loop at width + height steps rather than per pixel.
    """
    stride = width * bpp
    if data.size < height * (stride + 1):
        raise PhotoError("truncated PNG: image data is shorter than the header says")
    rows = data[: height * (stride + 1)].reshape(height, stride + 1)
    filters, raw = rows[:, 0], rows[:, 1:].reshape(height, width, bpp)
    if filters.max(initial=0) > 4:
        raise PhotoError("corrupt PNG: unknown row filter")
    out = np.zeros((height + 1, width + 1, bpp), np.uint8)  # one zero row above and column to the left
    if filters.max(initial=0) <= 2:
        for y in range(height):
            line, f = raw[y], filters[y]
            if f == 1:
                line = line.cumsum(axis=0, dtype=np.uint8)
            elif f == 2:
                line = line + out[y, 1:]
            out[y + 1, 1:] = line
        return out[1:, 1:].reshape(height, stride)
    ft = filters.astype(np.int16)
    for d in range(width + height - 1):
        ys = np.arange(max(0, d - width + 1), min(height, d + 1))
        xs = d - ys
        a = out[ys + 1, xs].astype(np.int16)
        b = out[ys, xs + 1].astype(np.int16)
        c = out[ys, xs].astype(np.int16)
        f = ft[ys][:, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([f == 1, f == 2, f == 3, f == 4], [a, b, (a + b) >> 1, paeth], 0)
        out[ys + 1, xs + 1] = (raw[ys, xs] + pred).astype(np.uint8)
    return out[1:, 1:].reshape(height, stride)
