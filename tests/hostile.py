"""Hostile and damaged photos made from real ones, shared by the decoder tests and ``benchmarks/fuzz_inputs.py``.

Each maker returns the bytes of a file whose header lies (sizes, tiles, strips), whose data is cut short or
overwritten, or which is not what its name says. They start from files written by Pillow, tifffile and the
DNG writer in ``tests/dng.py``, and change only what the hostile case needs, so the rest still parses.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def patch_tiff_tags(blob: bytes, values: dict[int, int]) -> bytes:
    """Overwrite the (single, in-entry SHORT or LONG) values of tags in IFD0 of a classic little-endian TIFF."""
    out = bytearray(blob)
    (ifd,) = struct.unpack_from("<I", out, 4)
    (count,) = struct.unpack_from("<H", out, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind, n = struct.unpack_from("<HHI", out, entry)
        if tag in values and n == 1:
            struct.pack_into("<H" if kind == 3 else "<I", out, entry + 8, values[tag])
    return bytes(out)


def png_claiming(width: int, height: int, depth: int = 8, ctype: int = 2) -> bytes:
    """A PNG header claiming any size, followed by a small valid-looking IDAT and IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)
    idat = zlib.compress(bytes(1 << 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_claiming(rgb8: np.ndarray, width: int, height: int) -> bytes:
    """A real JPEG whose SOF marker claims another size."""
    buffer = io.BytesIO()
    Image.fromarray(rgb8).save(buffer, format="JPEG")
    out = bytearray(buffer.getvalue())
    sof = out.find(b"\xff\xc0")
    struct.pack_into(">HH", out, sof + 5, height, width)
    return bytes(out)


def tiff_bytes(array: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, metadata=None, **kwargs)
    return buffer.getvalue()


def hostile_files(rgb8: np.ndarray, dng: Path | None = None) -> dict[str, bytes]:
    """name -> bytes of files every decoder must refuse cheaply (each with a one-line reason)."""
    small = rgb8[:64, :64]
    tiled = tiff_bytes(small, photometric="rgb", tile=(16, 16))
    grey1 = tiff_bytes(np.zeros((64, 64), bool), compression="zlib")
    files = {
        "png_100k_square.png": png_claiming(100_000, 100_000),
        "png_16bit_huge.png": png_claiming(60_000, 60_000, depth=16),
        "jpeg_65k_square.jpg": jpeg_claiming(small, 65_000, 65_000),
        "tiff_100k_square.tif": patch_tiff_tags(tiff_bytes(small, photometric="rgb"), {256: 100_000, 257: 100_000}),
        "tiff_absurd_tiles.tif": patch_tiff_tags(tiled, {322: 65_536, 323: 65_536}),
        "tiff_1bit_bomb.tif": patch_tiff_tags(grey1, {256: 40_000, 257: 40_000}),
        "tiff_strips_past_eof.tif": patch_tiff_tags(tiff_bytes(small, photometric="rgb"), {279: 1 << 30}),
        "tiff_many_samples.tif": patch_tiff_tags(tiff_bytes(small[:, :, 0]), {277: 60_000}),
    }
    if dng is not None:
        blob = dng.read_bytes()
        files["dng_impossible_size.dng"] = patch_tiff_tags(blob, {256: 200_000, 257: 200_000})
        files["dng_truncated.dng"] = blob[: len(blob) // 2]
    return files


def damaged_variants(blob: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Ways a real file gets damaged: cut short, zeroed ranges, random bytes, flipped bits, header lost."""
    n = len(blob)
    variants: list[tuple[str, bytes]] = []
    for frac in (0.02, 0.1, 0.5, 0.9, 0.999):
        variants.append((f"cut{int(frac * 1000)}", blob[: max(1, int(n * frac))]))
    for k in range(3):
        start, length = int(rng.integers(0, max(1, n - 64))), int(rng.integers(16, 4096))
        zeroed = bytearray(blob)
        zeroed[start : start + length] = bytes(len(zeroed[start : start + length]))
        variants.append((f"zero{k}", bytes(zeroed)))
    for k in range(3):
        flipped = bytearray(blob)
        for pos in rng.integers(0, n, size=int(rng.integers(1, 64))):
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
        variants.append((f"flip{k}", bytes(flipped)))
    variants.append(("headonly", blob[:64]))
    variants.append(("noise", rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
    return variants


MAKERS: dict[str, Callable[[np.ndarray], bytes]] = {
    "jpg": lambda a: _saved(a, "JPEG"),
    "png": lambda a: _saved(a, "PNG"),
    "webp": lambda a: _saved(a, "WEBP"),
    "avif": lambda a: _saved(a, "AVIF"),
    "tif": lambda a: tiff_bytes(a, photometric="rgb", compression="zlib"),
}


def _saved(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()
