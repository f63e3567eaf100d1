"""Decoding: every supported layout reads back exactly, orientation is applied, bad files fail cleanly."""

from __future__ import annotations

import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from deblurcli.errors import PhotoError, PhotoTooLargeError, UnsupportedFormatError
from deblurcli.io.decode import SUPPORTED_EXTENSIONS, decode
from deblurcli.io.png import png_bytes

# Adam7 passes: (x0, y0, dx, dy)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _as_int(pixels: np.ndarray, depth: int) -> np.ndarray:
    return np.round(pixels * (2**depth - 1)).astype(np.uint16)


def _rgb16(rgb8: np.ndarray) -> np.ndarray:
    """A 16-bit image whose low byte carries information, so reading only 8 bits would be caught."""
    ramp = np.arange(rgb8.shape[1], dtype=np.uint16)[None, :, None] * 3
    return rgb8.astype(np.uint16) * 256 + ramp


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_png8_modes(tmp_path: Path, rgb8: np.ndarray, mode: str) -> None:
    image = Image.fromarray(rgb8).convert(mode)
    if "A" in mode:
        image.putalpha(Image.fromarray(np.tile(np.arange(128, dtype=np.uint8) * 2, (96, 1))))
    image.save(tmp_path / "x.png")
    photo = decode(tmp_path / "x.png")
    expected = np.asarray(image).reshape(96, 128, -1)
    colour = 3 if mode.startswith("RGB") else 1
    assert photo.kind == "png" and photo.bit_depth == 8 and photo.transfer == "srgb"
    assert photo.pixels.dtype == np.float32 and photo.pixels.shape == (96, 128, colour)
    assert np.array_equal(_as_int(photo.pixels, 8), expected[:, :, :colour])
    if "A" in mode:
        assert np.array_equal(_as_int(photo.alpha, 8), expected[:, :, -1])
    else:
        assert photo.alpha is None


def test_palette_png_with_transparency(tmp_path: Path, rgb8: np.ndarray) -> None:
    image = Image.fromarray(rgb8).quantize(16)
    image.info["transparency"] = 0
    image.save(tmp_path / "p.png", transparency=0)
    photo = decode(tmp_path / "p.png")
    expected = np.asarray(image.convert("RGBA"))
    assert photo.pixels.shape == (96, 128, 3)
    assert np.array_equal(_as_int(photo.pixels, 8), expected[:, :, :3])
    assert np.array_equal(_as_int(photo.alpha, 8), expected[:, :, 3])
    assert photo.alpha.min() == 0.0 and photo.alpha.max() == 1.0


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("filters", [0, 1, 2, 3, 4])
def test_png16_every_filter(tmp_path: Path, rgb8: np.ndarray, channels: int, filters: int) -> None:
    """Files written by libpng (through imagecodecs) with each row filter, read back exactly."""
    base = _rgb16(rgb8)
    samples = {1: base[:, :, :1], 2: base[:, :, :2], 3: base, 4: np.dstack([base, base[:, :, :1]])}[channels]
    (tmp_path / "x.png").write_bytes(png_bytes(np.ascontiguousarray(samples), filters=filters))
    photo = decode(tmp_path / "x.png")
    assert photo.bit_depth == 16
    got = _as_int(photo.pixels, 16)
    if photo.alpha is not None:
        got = np.dstack([got, _as_int(photo.alpha, 16)])
    assert np.array_equal(got, samples)


def test_png16_adam7_interlaced(tmp_path: Path, rgb8: np.ndarray) -> None:
    samples = _rgb16(rgb8)[:37, :53]  # odd sizes leave some passes narrow
    raw = samples.astype(">u2").view(np.uint8).reshape(37, 53, 6)
    passes = []  # no library at hand writes interlaced 16-bit PNGs; unfiltered passes need no filter code
    for x0, y0, dx, dy in ADAM7:
        sub = raw[y0::dy, x0::dx]
        if sub.size:
            rows = sub.reshape(sub.shape[0], -1)
            passes.append(np.hstack([np.zeros((len(rows), 1), np.uint8), rows]).tobytes())
    png = bytearray(png_bytes(samples))
    ihdr_end = 8 + 8 + 13 + 4
    png[ihdr_end - 5] = 1  # interlace flag, then fix the IHDR checksum and replace IDAT
    png[ihdr_end - 4 : ihdr_end] = zlib.crc32(bytes(png[12 : ihdr_end - 4])).to_bytes(4, "big")
    idat = zlib.compress(b"".join(passes))
    chunk = len(idat).to_bytes(4, "big") + b"IDAT" + idat + zlib.crc32(b"IDAT" + idat).to_bytes(4, "big")
    iend = b"\0\0\0\0IEND" + zlib.crc32(b"IEND").to_bytes(4, "big")
    (tmp_path / "i.png").write_bytes(bytes(png[:ihdr_end]) + chunk + iend)
    assert np.array_equal(_as_int(decode(tmp_path / "i.png").pixels, 16), samples)


def test_jpeg_grey_and_colour(tmp_path: Path, rgb8: np.ndarray) -> None:
    Image.fromarray(rgb8).save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(rgb8).convert("L").save(tmp_path / "g.jpeg", quality=95)
    colour, grey = decode(tmp_path / "c.jpg"), decode(tmp_path / "g.jpeg")
    assert colour.kind == "jpeg" and colour.bit_depth == 8 and colour.pixels.shape == (96, 128, 3)
    assert grey.pixels.shape == (96, 128, 1)
    assert np.array_equal(_as_int(colour.pixels, 8), np.asarray(Image.open(tmp_path / "c.jpg")))
    assert np.abs(colour.pixels * 255 - rgb8).mean() < 4.0


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("planar", [False, True])
def test_tiff_depths_compressed(tmp_path: Path, rgb8: np.ndarray, dtype: str, planar: bool) -> None:
    samples = {"uint8": rgb8, "uint16": _rgb16(rgb8), "float32": rgb8.astype(np.float32) / 255 * 1.5}[dtype]
    stored = np.moveaxis(samples, -1, 0) if planar else samples
    tifffile.imwrite(
        tmp_path / "x.tif",
        stored,
        photometric="rgb",
        compression="zlib",
        planarconfig="separate" if planar else None,
    )
    photo = decode(tmp_path / "x.tif")
    assert photo.kind == "tiff" and photo.bit_depth == {"uint8": 8, "uint16": 16, "float32": 32}[dtype]
    if dtype == "float32":
        assert np.array_equal(photo.pixels, samples)  # float kept as stored, values above 1 included
    else:
        assert np.array_equal(_as_int(photo.pixels, photo.bit_depth), samples)


def test_tiff_alpha_grey_and_first_page(tmp_path: Path, rgb8: np.ndarray) -> None:
    alpha = np.tile(np.arange(128, dtype=np.uint8), (96, 1))
    with tifffile.TiffWriter(tmp_path / "m.tif") as tif:
        tif.write(np.dstack([rgb8, alpha]), photometric="rgb", extrasamples=[2], compression="zlib")
        tif.write(np.zeros((10, 10), np.uint8))
    photo = decode(tmp_path / "m.tif")
    assert photo.pixels.shape == (96, 128, 3)
    assert np.array_equal(_as_int(photo.alpha, 8), alpha)
    tifffile.imwrite(tmp_path / "g.tif", rgb8[:, :, 1], photometric="minisblack")
    assert np.array_equal(_as_int(decode(tmp_path / "g.tif").pixels[:, :, 0], 8), rgb8[:, :, 1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(tmp_path: Path, rgb8: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Maker"
    Image.fromarray(rgb8).save(tmp_path / "o.png", exif=exif.tobytes())
    photo = decode(tmp_path / "o.png")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    assert np.array_equal(_as_int(photo.pixels, 8), expected)
    back = Image.Exif()
    back.load(photo.exif)
    assert back[0x0112] == 1 and back[0x010F] == "Maker"


def test_supported_extensions() -> None:
    assert {".jpg", ".png", ".tif", ".tiff", ".dng", ".cr3", ".arw", ".nef", ".raf"} <= SUPPORTED_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_EXTENSIONS)


def test_content_beats_extension(tmp_path: Path, rgb8: np.ndarray) -> None:
    Image.fromarray(rgb8).save(tmp_path / "really_png.jpg", format="PNG")
    assert decode(tmp_path / "really_png.jpg").kind == "png"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_truncated_and_corrupt(tmp_path: Path, rgb8: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(rgb8).save(path, format=fmt)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert "\n" not in str(err.value)
    corrupt = bytearray(blob)
    corrupt[40:400] = bytes(360)
    path.write_bytes(bytes(corrupt))
    with pytest.raises(PhotoError):
        decode(path)


def test_empty_text_folder_missing_and_other_formats(tmp_path: Path, rgb8: np.ndarray) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello, this is not a picture\n")
    Image.fromarray(rgb8).save(tmp_path / "anim.gif")
    with pytest.raises(PhotoError, match="empty"):
        decode(tmp_path / "empty.jpg")
    with pytest.raises(PhotoError, match="not an image"):
        decode(tmp_path / "notes.png")
    with pytest.raises(PhotoError):
        decode(tmp_path)
    with pytest.raises(PhotoError):
        decode(tmp_path / "missing.png")
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        decode(tmp_path / "anim.gif")


def test_too_large_is_refused_before_decoding(tmp_path: Path, rgb8: np.ndarray, monkeypatch) -> None:
    Image.fromarray(rgb8).save(tmp_path / "x.jpg")
    tifffile.imwrite(tmp_path / "x.tif", rgb8, photometric="rgb")
    (tmp_path / "x.png").write_bytes(png_bytes(_rgb16(rgb8)))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", forbidden)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", forbidden)
    monkeypatch.setattr(imagecodecs, "png_decode", forbidden)
    for name in ("x.jpg", "x.tif", "x.png"):
        with pytest.raises(PhotoTooLargeError, match="MP"):
            decode(tmp_path / name, max_pixels=128 * 96 - 1)


def test_our_limit_replaces_pillows_bomb_guard(tmp_path: Path, rgb8: np.ndarray, monkeypatch) -> None:
    Image.fromarray(rgb8).save(tmp_path / "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would call this photo a bomb
    assert decode(tmp_path / "x.png").pixels.shape == (96, 128, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored afterwards
    header = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x0dIHDR" + (30000).to_bytes(4, "big") * 2 + b"\x08\x00\0\0\0"
    ihdr = header[12:]
    (tmp_path / "huge.png").write_bytes(header + zlib.crc32(ihdr).to_bytes(4, "big"))
    with pytest.raises(PhotoTooLargeError):
        decode(tmp_path / "huge.png")


def test_lzw_tiff_without_imagecodecs(tmp_path: Path, rgb8: np.ndarray) -> None:
    """LZW is common in photo-editor exports; 8-bit colour and 16-bit grey must read whatever is installed."""
    grey16 = _rgb16(rgb8)[:, :, 0]
    Image.fromarray(rgb8).save(tmp_path / "c.tif", compression="tiff_lzw")
    Image.fromarray(grey16).save(tmp_path / "g.tif", compression="tiff_lzw")
    colour, grey = decode(tmp_path / "c.tif"), decode(tmp_path / "g.tif")
    assert colour.kind == "tiff" and np.array_equal(_as_int(colour.pixels, 8), rgb8)
    assert grey.bit_depth == 16 and np.array_equal(_as_int(grey.pixels[:, :, 0], 16), grey16)
