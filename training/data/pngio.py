"""8- and 16-bit PNG reading and writing with Pillow and numpy.

Pillow writes and reads 8-bit RGB and 16-bit greyscale PNGs, but silently truncates 16-bit RGB (48-bit) PNGs
to 8 bits, which is how DPDD ships its lossless data. So 16-bit RGB is written here by hand (IHDR + zlib
IDAT with the 'Up' filter, which numpy can apply in one step), and read back by a small decoder that
undoes all five PNG filters. Filters 0-2 are vectorised; 3 and 4 (Average, Paeth) are sequential along a
row and run as a per-pixel loop, which takes seconds on a 1680x1120 image: acceptable for data
preparation, not for a training loop (convert such files once).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from deblurcli.errors import DataError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_png(path: Path, img: np.ndarray) -> None:
    """Write uint8 (h, w[, 3]) with Pillow, or uint16 (h, w, 3) / (h, w) as a 16-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.dtype == np.uint8 or (img.dtype == np.uint16 and img.ndim == 2):
        Image.fromarray(img).save(path, compress_level=1)
        return
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"write_png takes uint8 or uint16 (h, w, 3), got {img.dtype} {img.shape}")
    h, w, _ = img.shape
    rows = np.ascontiguousarray(img, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]  # 'Up' filter: uint8 arithmetic wraps modulo 256 as PNG requires
    raw = np.concatenate([np.full((h, 1), 2, dtype=np.uint8), up], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    data = _SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 3)) + _chunk(b"IEND", b"")
    path.write_bytes(data)


def _png_header(data: bytes) -> tuple[int, int, int, int, int]:
    if not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR":
        raise DataError("not a PNG file")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


def _unfilter_row(ftype: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if ftype == 0:
        return row
    if ftype == 2:
        return row + prev
    if ftype == 1:
        return row.reshape(-1, bpp).cumsum(axis=0, dtype=np.uint64).astype(np.uint8).reshape(-1)
    out = [int(v) for v in row]
    up = [int(v) for v in prev]
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = up[i]
        if ftype == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 0xFF
    return np.array(out, dtype=np.uint8)


def _read_png16_rgb(data: bytes, w: int, h: int) -> np.ndarray:
    idat = bytearray()
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8).reshape(h, 1 + w * 6)
    prev = np.zeros(w * 6, dtype=np.uint8)
    rows = np.empty((h, w * 6), dtype=np.uint8)
    for y in range(h):
        prev = rows[y] = _unfilter_row(int(raw[y, 0]), raw[y, 1:], prev, 6)
    return rows.view(">u2").reshape(h, w, 3).astype(np.uint16)


def read_image(path: Path) -> np.ndarray:
    """Float32 (3, h, w) in [0, 1] from an 8- or 16-bit PNG/JPEG/...; greyscale becomes 3 equal channels."""
    try:
        head = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from err
    if head.startswith(_SIGNATURE):
        w, h, depth, ctype, interlace = _png_header(head)
        if depth == 16 and ctype == 2:
            if interlace:
                raise DataError(f"{path}: interlaced 16-bit PNG is not supported")
            return (_read_png16_rgb(head, w, h).astype(np.float32) / 65535.0).transpose(2, 0, 1).copy()
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                return np.repeat(arr[None], 3, axis=0)
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except OSError as err:
        raise DataError(f"cannot decode {path}: {err}") from err
    return arr.transpose(2, 0, 1).copy()


def read_map(path: Path) -> np.ndarray:
    """Single-channel map as stored (uint8 or uint16 values, float32 (h, w)); no scaling applied."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "I;16", "I;16B", "I"):
                im = im.convert("L")
            return np.asarray(im).astype(np.float32)
    except OSError as err:
        raise DataError(f"cannot decode {path}: {err}") from err
