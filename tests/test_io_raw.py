"""RAW through LibRaw, on Bayer DNGs written by the tests (no camera files can be shipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

rawpy = pytest.importorskip("rawpy")

from dng import write_dng  # noqa: E402

from deblurcli.errors import PhotoError, PhotoTooLargeError  # noqa: E402
from deblurcli.io.color import linear_to_srgb  # noqa: E402
from deblurcli.io.decode import decode  # noqa: E402
from deblurcli.io.encode import default_format, encode  # noqa: E402


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    # 256 px rather than 128: demosaicking a heavily downscaled photo is dominated by aliasing.
    return np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize(("pattern", "bits"), [("RGGB", 12), ("BGGR", 14), ("GRBG", 12), ("GBRG", 14)])
def test_dng_decodes_linear_16_bit(tmp_path: Path, rgb8: np.ndarray, pattern: str, bits: int) -> None:
    path = tmp_path / "shot.dng"
    mosaic = write_dng(path, rgb8, pattern=pattern, bits=bits)
    with rawpy.imread(str(path)) as raw:  # the test file itself is what we think it is
        assert np.array_equal(raw.raw_image_visible, mosaic)
    photo = decode(path)
    assert photo.kind == "raw" and photo.transfer == "linear" and photo.bit_depth == 16
    assert photo.pixels.shape == (256, 256, 3) and photo.pixels.dtype == np.float32 and photo.alpha is None
    assert _psnr(linear_to_srgb(photo.pixels), rgb8 / 255.0) > 30.0


def test_dng_exif_and_output_format(tmp_path: Path, rgb8: np.ndarray) -> None:
    write_dng(tmp_path / "shot.dng", rgb8)
    photo = decode(tmp_path / "shot.dng")
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[0x010F] == "TestCam" and exif[0x0110] == "Bayer-1"
    assert default_format(photo) == ("tiff", 16)
    encode(photo, tmp_path / "out.tif", fmt="tiff", bit_depth=16)
    back = decode(tmp_path / "out.tif")
    assert back.transfer == "srgb" and back.bit_depth == 16
    assert np.abs(back.pixels - linear_to_srgb(photo.pixels)).max() < 1e-4  # written sRGB-encoded


def test_dng_named_tif_still_goes_to_libraw(tmp_path: Path, rgb8: np.ndarray) -> None:
    write_dng(tmp_path / "renamed.tif", rgb8[:64, :64])
    assert decode(tmp_path / "renamed.tif").kind == "raw"


def test_raw_too_large_and_broken(tmp_path: Path, rgb8: np.ndarray) -> None:
    write_dng(tmp_path / "shot.dng", rgb8)
    with pytest.raises(PhotoTooLargeError):
        decode(tmp_path / "shot.dng", max_pixels=256 * 255)
    blob = (tmp_path / "shot.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(blob[:200])
    with pytest.raises(PhotoError):
        decode(tmp_path / "cut.dng")
    (tmp_path / "junk.nef").write_bytes(b"\x00garbage that no camera wrote" * 50)
    with pytest.raises(PhotoError):
        decode(tmp_path / "junk.nef")
