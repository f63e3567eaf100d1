"""Metadata kept completely: EXIF, XMP, IPTC, ICC, PNG text and mtime survive decode -> encode, checked by exiv2.

Sources are written by real libraries (Pillow for pixels and EXIF, exiv2 for XMP and IPTC), results are read
back by exiv2 (through pyexiv2), Pillow and tifffile, never by our own parsers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image, ImageCms, PngImagePlugin
from skimage import data
from typer.testing import CliRunner

from deblurcli.cli import app
from deblurcli.errors import EncodeError
from deblurcli.io.decode import decode
from deblurcli.io.encode import EXTENSIONS, encode
from deblurcli.io.png import png_bytes

PROVENANCE = {"method": "classic", "tile": "512"}
IPTC = {"Iptc.Application2.Keywords": ["harbour", "sunset"], "Iptc.Application2.Caption": "Boats at dusk, Malmö"}
XMP = {"Xmp.dc.subject": ["harbour", "sunset"], "Xmp.xmp.Rating": "4", "Xmp.tiff.Orientation": "6",
       "Xmp.exif.PixelXDimension": "6000", "Xmp.exif.PixelYDimension": "4000"}  # fmt: skip
OLD_MTIME = 1_000_000_000.0  # 2001-09-09


def _read(path: Path) -> tuple[dict, dict, dict]:
    image = pyexiv2.Image(str(path))
    try:
        return image.read_exif(), image.read_xmp(), image.read_iptc()
    finally:
        image.close()


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    return np.asarray(Image.fromarray(data.astronaut()).resize((96, 64)))


@pytest.fixture
def camera_jpeg(tmp_path: Path, rgb8: np.ndarray) -> Path:
    """A camera-like JPEG: rotated by EXIF, stale pixel dimensions, the user's caption, XMP and IPTC."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112], exif[0x010E] = "Canon", "EOS R5", 6, "Boats at dusk"
    exif[0x8769] = {0xA002: 6000, 0xA003: 4000, 0x8827: 200, 0x9003: "2024:05:06 20:01:02"}
    path = tmp_path / "IMG_0001.jpg"
    Image.fromarray(rgb8).save(path, exif=exif.tobytes(), quality=95)
    image = pyexiv2.Image(str(path))
    image.modify_iptc(IPTC)
    image.modify_xmp(XMP)
    image.close()
    os.utime(path, (OLD_MTIME, OLD_MTIME))
    return path


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_exif_xmp_iptc_kept_and_fixed(tmp_path: Path, camera_jpeg: Path, fmt: str) -> None:
    photo = decode(camera_jpeg)
    assert photo.pixels.shape[:2] == (96, 64)  # rotated upright
    out = tmp_path / f"out{EXTENSIONS[fmt]}"
    encode(photo, out, fmt=fmt, bit_depth=8, provenance=PROVENANCE)
    exif, xmp, iptc = _read(out)
    assert iptc == IPTC
    assert xmp["Xmp.dc.subject"] == ["harbour", "sunset"] and xmp["Xmp.xmp.Rating"] == "4"
    assert xmp["Xmp.tiff.Orientation"] == "1"  # stale fields made true
    assert (xmp["Xmp.exif.PixelXDimension"], xmp["Xmp.exif.PixelYDimension"]) == ("64", "96")
    assert exif["Exif.Image.Orientation"] == "1"
    assert (exif["Exif.Photo.PixelXDimension"], exif["Exif.Photo.PixelYDimension"]) == ("64", "96")
    assert exif["Exif.Image.ImageDescription"] == "Boats at dusk"
    assert exif["Exif.Image.Model"] == "EOS R5" and exif["Exif.Photo.ISOSpeedRatings"] == "200"
    assert xmp["Xmp.defocus.method"] == "classic" and xmp["Xmp.defocus.source"] == "IMG_0001.jpg"
    assert len(xmp["Xmp.defocus.source_sha256"]) == 64
    assert os.stat(out).st_mtime == OLD_MTIME
    with Image.open(out) as im:  # still a valid image of the right size for an independent decoder
        assert im.size == (64, 96)
    if fmt == "tiff":
        with tifffile.TiffFile(out) as tif:
            assert tif.pages.first.tags["ExifTag"].value["ISOSpeedRatings"] == 200


@pytest.mark.parametrize("fmt", ["webp", "avif", "heif"])
def test_iptc_goes_into_xmp_where_the_format_has_no_iptc(tmp_path: Path, camera_jpeg: Path, fmt: str) -> None:
    out = tmp_path / f"out{EXTENSIONS[fmt]}"
    encode(decode(camera_jpeg), out, fmt=fmt, bit_depth=8, provenance=PROVENANCE)
    exif, xmp, _ = _read(out)
    assert xmp["Xmp.dc.subject"] == ["harbour", "sunset"]
    assert "Malmö" in str(xmp["Xmp.dc.description"])
    assert exif["Exif.Image.Model"] == "EOS R5" and exif["Exif.Image.ImageDescription"] == "Boats at dusk"
    assert xmp["Xmp.defocus.method"] == "classic"


def test_tiff_source_xmp_iptc_and_history_appended(tmp_path: Path, rgb8: np.ndarray) -> None:
    src = tmp_path / "scan.tif"
    tifffile.imwrite(src, rgb8, photometric="rgb", metadata=None)
    image = pyexiv2.Image(str(src))
    image.modify_iptc(IPTC)
    image.modify_xmp({"Xmp.xmpMM.History": 'type="Seq"', "Xmp.xmpMM.History[1]": 'type="Struct"',
                      "Xmp.xmpMM.History[1]/stEvt:action": "saved"})  # fmt: skip
    image.close()
    out = tmp_path / "out.tif"
    encode(decode(src), out, fmt="tiff", bit_depth=16, provenance=PROVENANCE, keep_mtime=False)
    _, xmp, iptc = _read(out)
    assert iptc == IPTC
    assert xmp["Xmp.xmpMM.History[1]/stEvt:action"] == "saved"  # earlier history kept, ours appended
    assert xmp["Xmp.xmpMM.History[2]/stEvt:action"] == "derived"
    assert tifffile.imread(out).dtype == np.uint16


def test_large_xmp_kept_in_tiff_and_refused_whole_by_jpeg(tmp_path: Path, rgb8: np.ndarray) -> None:
    """XMP over a JPEG segment's 64 KB (long edit histories) stays whole in TIFF; JPEG fails the photo in
    one line rather than dropping it silently."""
    src = tmp_path / "edited.tif"
    tifffile.imwrite(src, rgb8, photometric="rgb", metadata=None)
    image = pyexiv2.Image(str(src))
    image.modify_xmp({"Xmp.dc.description": "notes " * 20_000})
    image.close()
    photo = decode(src)
    encode(photo, tmp_path / "out.tif", fmt="tiff", bit_depth=8, provenance=PROVENANCE)
    _, xmp, _ = _read(tmp_path / "out.tif")
    assert len(str(xmp["Xmp.dc.description"])) >= 120_000 and xmp["Xmp.defocus.method"] == "classic"
    with pytest.raises(EncodeError, match="metadata.*--format tiff"):
        encode(photo, tmp_path / "out.jpg", fmt="jpeg", bit_depth=8, provenance=PROVENANCE)
    assert not (tmp_path / "out.jpg").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "edited.tif", "out.tif"
    ]


def test_png_text_chunks_kept_8_and_16_bit(tmp_path: Path, rgb8: np.ndarray) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Harbour")
    info.add_itxt("Author", "Zoë Ångström")
    info.add_text("Comment", "long " * 200, zip=True)
    Image.fromarray(rgb8).save(tmp_path / "a8.png", pnginfo=info)
    text16 = {"Title": "Harbour", "Author": "Zoë Ångström"}
    (tmp_path / "a16.png").write_bytes(png_bytes(rgb8.astype(np.uint16) * 257, text=text16))
    for name, expected in (("a8.png", {**text16, "Comment": "long " * 200}), ("a16.png", text16)):
        photo = decode(tmp_path / name)
        out = tmp_path / f"out_{name}"
        encode(photo, out, fmt="png", bit_depth=photo.bit_depth, provenance=PROVENANCE)
        with Image.open(out) as im:
            im.load()
            assert {k: im.text[k] for k in expected} == expected
            assert im.text["Software"].startswith("defocus ")
            assert "XML:com.adobe.xmp" in im.text  # provenance, written by exiv2


def test_raw_output_embeds_srgb_profile(tmp_path: Path, rgb8: np.ndarray) -> None:
    from dng import write_dng

    write_dng(tmp_path / "shot.dng", rgb8)
    photo = decode(tmp_path / "shot.dng")
    assert photo.icc is None and photo.transfer == "linear"
    encode(photo, tmp_path / "out.tif", fmt="tiff", bit_depth=16)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        icc = bytes(tif.pages.first.tags["InterColorProfile"].value)
    profile = ImageCms.ImageCmsProfile(__import__("io").BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


def test_exif_untouched_without_provenance_and_mtime_optional(tmp_path: Path, camera_jpeg: Path) -> None:
    photo = decode(camera_jpeg)
    encode(photo, tmp_path / "a.jpg", fmt="jpeg", bit_depth=8, keep_mtime=False)
    assert abs(os.stat(tmp_path / "a.jpg").st_mtime - OLD_MTIME) > 1e6
    exif, xmp, _ = _read(tmp_path / "a.jpg")
    assert "Exif.Image.Software" not in exif and "Xmp.defocus.method" not in xmp


def test_cli_result_carries_everything(tmp_path: Path, camera_jpeg: Path) -> None:
    """The whole pipeline (classic method) keeps what encode keeps."""
    result = CliRunner().invoke(app, ["deblur", str(camera_jpeg), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "IMG_0001_deblurred.jpg"
    exif, xmp, iptc = _read(out)
    assert iptc == IPTC and exif["Exif.Image.ImageDescription"] == "Boats at dusk"
    assert xmp["Xmp.defocus.method"] == "classic" and "Xmp.defocus.weights" not in xmp
    assert os.stat(out).st_mtime == OLD_MTIME
