"""HEIC/HEIF, WebP and AVIF: files made by pillow-heif and Pillow decode with their EXIF and ICC, and a photo
comes back in its own format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from deblurcli.errors import PhotoError, PhotoTooLargeError
from deblurcli.io.decode import SUPPORTED_EXTENSIONS, decode
from deblurcli.io.encode import EXTENSIONS, default_format, encode


def _exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Apple", "iPhone 15", orientation
    exif[0x8769] = {0x8827: 64}
    return exif.tobytes()


def _save(path: Path, rgb8: np.ndarray, fmt: str, **options: object) -> None:
    if fmt == "heif":
        pillow_heif.from_pillow(Image.fromarray(rgb8)).save(path, **options)
    else:
        Image.fromarray(rgb8).save(path, format=fmt.upper(), **options)


@pytest.mark.parametrize(("fmt", "tolerance"), [("heif", 12), ("webp", 0), ("avif", 12)])
def test_decodes_with_exif_and_icc(tmp_path: Path, rgb8: np.ndarray, icc: bytes, fmt: str, tolerance: int) -> None:
    path = tmp_path / f"IMG_0001{EXTENSIONS[fmt]}"
    options: dict[str, object] = {"exif": _exif(), "icc_profile": icc, "quality": 95}
    if fmt == "webp":
        options["lossless"] = True
    _save(path, rgb8, fmt, **options)
    photo = decode(path)
    assert photo.kind == fmt and photo.bit_depth == 8 and photo.pixels.shape == (96, 128, 3)
    assert np.abs(photo.pixels * 255 - rgb8).mean() <= tolerance
    assert photo.icc == icc
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[0x0110] == "iPhone 15" and exif.get_ifd(0x8769)[0x8827] == 64
    assert default_format(photo) == (fmt, 8)


@pytest.mark.parametrize("fmt", ["heif", "webp", "avif"])
def test_round_trip_keeps_exif_icc_and_alpha(tmp_path: Path, rgb8: np.ndarray, icc: bytes, fmt: str) -> None:
    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 200, np.uint8)])
    _save(tmp_path / f"in{EXTENSIONS[fmt]}", rgba, fmt, exif=_exif(), icc_profile=icc, quality=95)
    photo = decode(tmp_path / f"in{EXTENSIONS[fmt]}")
    assert photo.alpha is not None and abs(float(photo.alpha.mean()) - 200 / 255) < 0.02
    encode(photo, tmp_path / f"out{EXTENSIONS[fmt]}", fmt=fmt, bit_depth=8)
    back = decode(tmp_path / f"out{EXTENSIONS[fmt]}")
    assert back.kind == fmt and back.icc == icc and back.alpha is not None
    assert np.abs(back.pixels - photo.pixels).mean() < 4 / 255
    with Image.open(tmp_path / f"out{EXTENSIONS[fmt]}") as im:  # an independent reader sees the EXIF
        assert im.getexif()[0x010F] == "Apple"


def test_sniffed_by_content_and_listed(tmp_path: Path, rgb8: np.ndarray) -> None:
    _save(tmp_path / "photo.jpg", rgb8, "heif", quality=90)  # a HEIC saved under a JPEG name
    assert decode(tmp_path / "photo.jpg").kind == "heif"
    assert {".heic", ".heif", ".webp", ".avif"} <= SUPPORTED_EXTENSIONS


@pytest.mark.parametrize("fmt", ["heif", "webp", "avif"])
def test_truncated_and_too_large(tmp_path: Path, rgb8: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"x{EXTENSIONS[fmt]}"
    _save(path, rgb8, fmt, quality=90)
    with pytest.raises(PhotoTooLargeError):
        decode(path, max_pixels=128 * 96 - 1)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert "\n" not in str(err.value) and "b'" not in str(err.value)
