"""Encoding: round trips per format and depth, metadata kept, provenance written, failures leave nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image

from deblurcli.errors import EncodeError, UsageError
from deblurcli.io import color
from deblurcli.io import encode as encode_module
from deblurcli.io.decode import decode
from deblurcli.io.encode import EXTENSIONS, default_format, encode
from deblurcli.io.photo import Photo

PROVENANCE = {"method": "ifan", "weights": "sha256:abc", "tile": "512"}


@pytest.fixture(scope="module")
def exif() -> bytes:
    blob = Image.Exif()
    blob[0x010F] = "Canon"
    blob[0x0110] = "EOS Test"
    blob[0x0132] = "2024:01:02 03:04:05"
    blob[0x0112] = 1
    blob[0x8769] = {0x829A: 0.004, 0x8827: 400, 0x9003: "2024:01:02 03:04:05"}  # exposure, ISO, taken
    return blob.tobytes()


def _photo(pixels: np.ndarray, **kw: object) -> Photo:
    base = {"alpha": None, "transfer": "srgb", "bit_depth": 8, "kind": "png", "exif": None, "icc": None}
    return Photo(pixels=pixels.astype(np.float32), source=Path("in.png"), **{**base, **kw})


def _int(pixels: np.ndarray, depth: int) -> np.ndarray:
    return np.round(pixels * (2**depth - 1)).astype(np.int64)


@pytest.mark.parametrize(("fmt", "depth"), [("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16), ("tiff", 32)])
@pytest.mark.parametrize("layout", ["rgb", "grey", "rgba", "greya"])
def test_lossless_round_trip(tmp_path: Path, rgb8: np.ndarray, fmt: str, depth: int, layout: str) -> None:
    rng = np.random.default_rng(1)
    pixels = rgb8.astype(np.float32) / 255 + rng.uniform(0, 1 / 255, rgb8.shape).astype(np.float32)
    pixels = np.minimum(pixels, 1.0)
    pixels = pixels[:, :, :1] if layout.startswith("grey") else pixels
    alpha = rng.uniform(0, 1, pixels.shape[:2]).astype(np.float32) if layout.endswith("a") else None
    out = tmp_path / f"x{EXTENSIONS[fmt]}"
    encode(_photo(pixels, alpha=alpha), out, fmt=fmt, bit_depth=depth)
    back = decode(out)
    assert back.bit_depth == depth and back.pixels.shape == pixels.shape
    if depth == 32:
        assert np.array_equal(back.pixels, pixels)
    else:
        assert np.array_equal(_int(back.pixels, depth), _int(pixels, depth))  # rounded, not truncated
    if alpha is None:
        assert back.alpha is None
    else:
        tol = 0 if depth == 32 else 0.5 / (2**depth - 1) + 1e-6
        assert np.abs(back.alpha - alpha).max() <= tol


def test_quantise_clips_and_rounds() -> None:
    photo = _photo(np.array([[[-0.2], [0.5], [1.7], [0.5 / 255 + 1e-4]]]))
    assert encode_module.quantise(photo, 8, keep_alpha=True).ravel().tolist() == [0, 128, 255, 1]


def test_jpeg_round_trip_and_16_bit_refused(tmp_path: Path, rgb8: np.ndarray) -> None:
    photo = _photo(rgb8 / 255.0, kind="jpeg", alpha=np.ones(rgb8.shape[:2], np.float32))
    encode(photo, tmp_path / "x.jpg", fmt="jpeg", bit_depth=8, quality=95)
    back = decode(tmp_path / "x.jpg")
    assert back.alpha is None and np.abs(back.pixels - photo.pixels).mean() < 2 / 255
    with pytest.raises(UsageError):
        encode(photo, tmp_path / "y.jpg", fmt="jpeg", bit_depth=16)
    with pytest.raises(UsageError):
        encode(photo, tmp_path / "y.gif", fmt="gif", bit_depth=8)
    assert not (tmp_path / "y.jpg").exists()


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_exif_and_icc_byte_for_byte(
    tmp_path: Path, rgb8: np.ndarray, exif: bytes, icc: bytes, fmt: str
) -> None:
    out = tmp_path / f"x{EXTENSIONS[fmt]}"
    encode(_photo(rgb8 / 255.0, exif=exif, icc=icc), out, fmt=fmt, bit_depth=8)
    back = decode(out)
    assert back.exif == exif
    assert back.icc == icc
    with Image.open(out) as im:
        assert im.info["icc_profile"] == icc


def test_tiff_keeps_icc_and_exif_tags(tmp_path: Path, rgb8: np.ndarray, exif: bytes, icc: bytes) -> None:
    encode(_photo(rgb8 / 255.0, exif=exif, icc=icc), tmp_path / "x.tif", fmt="tiff", bit_depth=16)
    back = decode(tmp_path / "x.tif")
    assert back.icc == icc
    parsed = Image.Exif()
    parsed.load(back.exif)
    assert (
        parsed[0x010F] == "Canon" and parsed[0x0110] == "EOS Test" and parsed[0x0132] == "2024:01:02 03:04:05"
    )
    sub = parsed.get_ifd(0x8769)
    assert float(sub[0x829A]) == pytest.approx(0.004) and sub[0x8827] == 400
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:  # an independent reader agrees
        page = tif.pages.first
        assert page.tags["Make"].value == "Canon"
        assert page.tags["ExifTag"].value["ISOSpeedRatings"] == 400
        assert page.compression == 8  # Adobe deflate


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff", "webp", "avif", "heif"])
def test_provenance_in_xmp_and_description_kept(tmp_path: Path, rgb8: np.ndarray, exif: bytes, fmt: str) -> None:
    """exiv2 (an independent reader) finds the provenance in XMP, the user's EXIF untouched beside it."""
    blob = Image.Exif()
    blob.load(exif)
    blob[0x010E] = "Sunset over the harbour"  # the user's own description
    out = tmp_path / f"x{EXTENSIONS[fmt]}"
    encode(_photo(rgb8 / 255.0, exif=blob.tobytes()), out, fmt=fmt, bit_depth=8, provenance=PROVENANCE)
    image = pyexiv2.Image(str(out))
    try:
        xmp, tags = image.read_xmp(), image.read_exif()
    finally:
        image.close()
    assert xmp["Xmp.defocus.method"] == "ifan" and xmp["Xmp.defocus.weights"] == "sha256:abc"
    assert xmp["Xmp.defocus.source"] == "in.png" and "Xmp.defocus.date" in xmp
    assert xmp["Xmp.xmpMM.History[1]/stEvt:softwareAgent"].startswith("defocus ")
    assert tags["Exif.Image.ImageDescription"] == "Sunset over the harbour"
    assert tags["Exif.Image.Make"] == "Canon" and tags["Exif.Photo.ISOSpeedRatings"] == "400"
    assert tags["Exif.Image.Software"].startswith("defocus ")


def test_orientation_written_back_as_one(tmp_path: Path, rgb8: np.ndarray) -> None:
    blob = Image.Exif()
    blob[0x0112] = 6
    Image.fromarray(rgb8).save(tmp_path / "in.jpg", exif=blob.tobytes(), quality=98)
    photo = decode(tmp_path / "in.jpg")
    assert photo.pixels.shape == (128, 96, 3)  # rotated 90 degrees clockwise
    assert np.abs(photo.pixels[:, :, 0] * 255 - np.rot90(rgb8[:, :, 0], -1)).mean() < 3
    encode(photo, tmp_path / "out.jpg", fmt="jpeg", bit_depth=8)
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.size == (96, 128) and im.getexif()[0x0112] == 1


def test_linear_result_is_written_srgb(tmp_path: Path, rgb8: np.ndarray) -> None:
    srgb = rgb8 / 255.0
    photo = _photo(color.srgb_to_linear(srgb), transfer="linear", kind="raw", bit_depth=16)
    assert default_format(photo) == ("tiff", 16)
    encode(photo, tmp_path / "x.tif", fmt="tiff", bit_depth=16)
    stored = tifffile.imread(tmp_path / "x.tif")
    assert np.abs(stored / 65535.0 - srgb).max() < 1e-4


def test_default_format() -> None:
    pixels = np.zeros((2, 2, 3))
    assert default_format(_photo(pixels, kind="jpeg")) == ("jpeg", 8)
    assert default_format(_photo(pixels, kind="png", bit_depth=16)) == ("png", 16)
    assert default_format(_photo(pixels, kind="png", bit_depth=8)) == ("png", 8)
    assert default_format(_photo(pixels, kind="tiff", bit_depth=32)) == ("tiff", 32)
    assert default_format(_photo(pixels, kind="heif")) == ("heif", 8)
    assert default_format(_photo(pixels, kind="webp")) == ("webp", 8)
    assert default_format(_photo(pixels, kind="avif")) == ("avif", 8)
    assert default_format(_photo(pixels, kind="raw", bit_depth=16)) == ("tiff", 16)
    assert EXTENSIONS["heif"] == ".heic" and EXTENSIONS["tiff"] == ".tif"


def test_srgb_curve_is_exact_and_inverse() -> None:
    x = np.linspace(0.0, 1.0, 10001, dtype=np.float32)
    assert np.abs(color.srgb_to_linear(color.linear_to_srgb(x)) - x).max() < 2e-6
    assert color.linear_to_srgb(np.float32(0.5)) == pytest.approx(0.735356983, abs=1e-6)
    assert color.srgb_to_linear(np.float32(0.04045)) == pytest.approx(0.04045 / 12.92, abs=1e-9)
    assert color.linear_to_srgb(x).dtype == np.float32 and color.linear_to_srgb(
        np.float32(1.0)
    ) == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_no_file(tmp_path: Path, rgb8: np.ndarray, monkeypatch, fmt: str, exc: type) -> None:
    writer = {"jpeg": "_write_jpeg", "png": "_write_png", "tiff": "_write_tiff"}[fmt]

    def half_then_fail(tmp: Path, *args: object, **kwargs: object) -> None:
        tmp.write_bytes(b"partial")
        raise exc("injected")

    monkeypatch.setattr(encode_module, writer, half_then_fail)
    target = tmp_path / f"x{EXTENSIONS[fmt]}"
    target.write_bytes(b"previous result")
    with pytest.raises(exc):
        encode(_photo(rgb8 / 255.0), target, fmt=fmt, bit_depth=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.read_bytes() == b"previous result"


def test_os_error_becomes_encode_error(tmp_path: Path, rgb8: np.ndarray) -> None:
    with pytest.raises(EncodeError, match="cannot write"):
        encode(_photo(rgb8 / 255.0), tmp_path / "missing" / "x.png", fmt="png", bit_depth=8)


def test_alpha_layout_is_unassociated(tmp_path: Path, rgb8: np.ndarray) -> None:
    photo = _photo(rgb8 / 255.0, alpha=np.full(rgb8.shape[:2], 0.5, np.float32))
    encode(photo, tmp_path / "x.tif", fmt="tiff", bit_depth=16)
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        assert tif.pages.first.extrasamples == (2,)
    encode(replace(photo, pixels=photo.pixels[:, :, :1]), tmp_path / "x.png", fmt="png", bit_depth=16)
    header = (tmp_path / "x.png").read_bytes()[24:26]
    assert header == bytes([16, 4])  # IHDR: 16-bit, colour type 4 = grey + alpha
