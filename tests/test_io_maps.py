"""Maps (16-bit TIFF with recoverable values + colour preview) and the atomic write they rely on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from deblurcli.io import maps
from deblurcli.io.atomic import atomic_output
from deblurcli.io.color import srgb_to_linear
from deblurcli.io.maps import colormap_lut, read_map, write_map


def _disparity() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    return (x - 20.0) * 0.37 + np.sin(y / 5.0) * 3.0  # signed, not in [0, 1]


def test_values_recoverable_from_tiff(tmp_path: Path) -> None:
    values = _disparity()
    write_map(
        values, tmp_path / "d.tif", tmp_path / "d.png", unit="px disparity", provenance={"method": "dmsft"}
    )
    back, record = read_map(tmp_path / "d.tif")
    span = float(values.max() - values.min())
    assert np.abs(back - values).max() <= span / 65535 * 0.51 + 1e-6
    assert record["unit"] == "px disparity" and record["method"] == "dmsft"
    with tifffile.TiffFile(tmp_path / "d.tif") as tif:
        page = tif.pages.first
        assert page.dtype == np.uint16 and page.compression == 8 and page.software.startswith("defocus")
        samples = page.asarray()
    assert samples.min() == 0 and samples.max() == 65535  # full range used


def test_preview_is_8_bit_colour_and_ordered(tmp_path: Path) -> None:
    values = np.tile(np.linspace(0.0, 10.0, 64, dtype=np.float32), (8, 1))
    write_map(values, tmp_path / "r.tif", tmp_path / "r.png", unit="px", provenance=None)
    with Image.open(tmp_path / "r.png") as im:
        assert im.mode == "RGB" and im.size == (64, 8)
        assert json.loads(im.text["Description"])["max"] == pytest.approx(10.0)
        row = np.asarray(im)[0].astype(np.float32) / 255
    luminance = srgb_to_linear(row) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert np.all(np.diff(luminance) >= -1e-6) and luminance[-1] > 5 * luminance[0]


def test_colormap_is_perceptually_monotone() -> None:
    lut = colormap_lut().astype(np.float32) / 255
    luminance = srgb_to_linear(lut) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert lut.shape == (256, 3) and np.all(np.diff(luminance) >= 0)  # flat steps only from 8-bit rounding
    assert luminance[-1] - luminance[0] > 0.7 and np.count_nonzero(np.diff(luminance) == 0) < 8


def test_constant_and_non_finite_maps(tmp_path: Path) -> None:
    values = np.full((8, 8), 2.5, np.float32)
    values[0, 0] = np.nan
    write_map(values, tmp_path / "c.tif", tmp_path / "c.png", unit="px", provenance=None)
    back, record = read_map(tmp_path / "c.tif")
    assert record["min"] == record["max"] == 2.5 and np.all(back == 2.5)


def test_failed_map_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def boom(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("injected")

    monkeypatch.setattr(maps, "png_bytes", boom)
    with pytest.raises(RuntimeError):
        write_map(_disparity(), tmp_path / "d.tif", tmp_path / "d.png", unit="px", provenance=None)
    assert [p.name for p in tmp_path.iterdir()] == ["d.tif"]  # the finished TIFF stays, no temp, no PNG


def test_atomic_output_names_and_cleanup(tmp_path: Path) -> None:
    target = tmp_path / "photo.txt"  # not an image: only naming and cleanup are tested here
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".photo.") and tmp.name.endswith(".tmp.txt")
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done" and len(list(tmp_path.iterdir())) == 1
    for exc in (ValueError, KeyboardInterrupt):
        with pytest.raises(exc), atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise exc()
        assert target.read_bytes() == b"done" and len(list(tmp_path.iterdir())) == 1
