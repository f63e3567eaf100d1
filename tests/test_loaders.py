"""Dataset readers and PNG I/O on tiny fixture trees built by the tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from deblurcli.errors import DataError
from deblurcli.io import png
from deblurcli.io.png import SIGNATURE as _SIGNATURE
from deblurcli.io.png import chunk as _chunk
from training.data import CUHK, DED, DPDD, LFDOF, PairedFolder, PixelDP, RealDOF
from training.data.datasets import read_image


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    png.write_png(path, arr)


def _img(seed: int, h: int = 24, w: int = 32, bits: int = 8) -> np.ndarray:
    peak = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.random.default_rng(seed).integers(0, peak + 1, size=(h, w, 3)).astype(dtype)


def _put(path: Path, seed: int, **kw: int) -> np.ndarray:
    arr = _img(seed, **kw)
    write_png(path, arr)
    return arr


def _dpdd(root: Path, n: int = 3, bits: int = 8, split: str = "train") -> list[np.ndarray]:
    targets = []
    for i in range(n):
        _put(root / f"{split}_c" / "source" / f"{i}_blur.png", i, bits=bits)
        targets.append(_put(root / f"{split}_c" / "target" / f"{i}_sharp.png", 100 + i, bits=bits))
        _put(root / f"{split}_l" / "source" / f"{i}_L.png", 200 + i, bits=bits)
        _put(root / f"{split}_r" / "source" / f"{i}_R.png", 300 + i, bits=bits)
    return targets


@pytest.mark.parametrize("bits", [8, 16])
def test_dpdd_pairs_by_sorted_order(tmp_path: Path, bits: int) -> None:
    targets = _dpdd(tmp_path, bits=bits)
    ds = DPDD(tmp_path, "train")
    assert len(ds) == 3
    item = ds[1]
    assert set(item) == {"name", "input", "target", "left", "right"}
    assert item["input"].dtype == torch.float32 and item["input"].shape == (3, 24, 32)
    peak = 255.0 if bits == 8 else 65535.0
    expected = torch.from_numpy(targets[1].transpose(2, 0, 1).astype(np.float32) / peak)
    torch.testing.assert_close(item["target"], expected, rtol=0, atol=1e-7)
    assert len(DPDD(tmp_path, "train", dual=False)[0]) == 3


def test_dpdd_errors(tmp_path: Path) -> None:
    _dpdd(tmp_path)
    (tmp_path / "train_l" / "source" / "2_L.png").unlink()
    with pytest.raises(DataError, match="counts do not match"):
        DPDD(tmp_path, "train")
    with pytest.raises(DataError, match="missing folder"):
        DPDD(tmp_path, "val")
    assert len(DPDD(tmp_path, "train", dual=False)) == 3
    _put(tmp_path / "train_c" / "target" / "0_sharp.png", 5, h=20)
    with pytest.raises(DataError, match="is \\(20, 32\\)"):
        DPDD(tmp_path, "train", dual=False)[0]


def test_png16_reader_undoes_every_filter(tmp_path: Path) -> None:
    img = _img(7, h=5, w=6, bits=16)
    rows = img.astype(">u2").view(np.uint8).reshape(5, 36).astype(int)

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

    raw = b""
    for y in range(5):  # row y uses filter type y: None, Sub, Up, Average, Paeth
        prev = rows[y - 1] if y else np.zeros(36, int)
        out = []
        for i, v in enumerate(rows[y]):
            a, b, c = (rows[y][i - 6] if i >= 6 else 0), prev[i], (prev[i - 6] if i >= 6 else 0)
            out.append((v - [0, a, b, (a + b) // 2, paeth(a, b, c)][y]) & 0xFF)
        raw += bytes([y, *out])
    ihdr = struct.pack(">IIBBBBB", 6, 5, 16, 2, 0, 0, 0)
    path = tmp_path / "f.png"
    path.write_bytes(
        _SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    )
    np.testing.assert_array_equal(
        np.round(read_image(path) * 65535).astype(np.uint16), img.transpose(2, 0, 1)
    )


def test_lfdof_maps_apertures_to_scene(tmp_path: Path) -> None:
    gt_a = _put(tmp_path / "ground_truth" / "IMG_1.png", 1)
    _put(tmp_path / "ground_truth" / "IMG_2.png", 2)
    for name in ("IMG_1_ap1.png", "IMG_1_ap7.png", "IMG_2_ap3.png"):
        _put(tmp_path / "input" / name, 9)
    ds = LFDOF(tmp_path)
    assert len(ds) == 3
    assert ds.entries[1]["target"].name == "IMG_1.png"
    torch.testing.assert_close(ds[1]["target"], torch.from_numpy(gt_a.transpose(2, 0, 1) / 255.0).float())
    _put(tmp_path / "input" / "IMG_3_ap1.png", 9)
    with pytest.raises(DataError, match="IMG_3"):
        LFDOF(tmp_path)


def test_realdof_and_paired_folder(tmp_path: Path) -> None:
    for i in range(2):
        _put(tmp_path / "rd" / "source" / f"{i}.png", i)
        _put(tmp_path / "rd" / "target" / f"{i}.png", i + 10)
    assert len(RealDOF(tmp_path / "rd")) == 2
    _put(tmp_path / "rd" / "target" / "extra.png", 3)
    with pytest.raises(DataError, match="counts"):
        RealDOF(tmp_path / "rd")
    with pytest.raises(DataError, match="extra"):
        PairedFolder(tmp_path / "rd" / "source", tmp_path / "rd" / "target")
    (tmp_path / "rd" / "target" / "extra.png").unlink()
    ds = PairedFolder(tmp_path / "rd" / "source", tmp_path / "rd" / "target")
    assert [e["input"].stem for e in ds.entries] == ["0", "1"] and "target" in ds[0]


def test_ded_reads_maps_and_allows_missing_ground_truth(tmp_path: Path) -> None:
    for i in (1, 2):
        _put(tmp_path / "image" / "s1" / f"image_{i}.png", i)
        _put(tmp_path / "sharp" / "s1" / f"s1_{i}.png", i + 5)
        dm = np.full((24, 32), 64 * i, np.uint8)
        write_png(tmp_path / "filtered" / "s1" / f"defocus_filterd_{i}.png", dm)
    ds = DED(tmp_path)
    item = ds[1]
    assert item["defocus"].shape == (1, 24, 32)
    assert float(item["defocus"].max()) == pytest.approx(128 / 256)
    (tmp_path / "filtered" / "s1" / "defocus_filterd_2.png").unlink()
    with pytest.raises(DataError, match="defocus"):
        DED(tmp_path)
    only = tmp_path / "test_only"
    _put(only / "image" / "s9" / "image_3.png", 1)
    assert set(DED(only)[0]) == {"name", "input"}


def test_cuhk_and_pixeldp_have_no_ground_truth(tmp_path: Path) -> None:
    _put(tmp_path / "cuhk" / "a" / "x.jpg", 1)
    _put(tmp_path / "cuhk" / "b.png", 2)
    assert len(CUHK(tmp_path / "cuhk")) == 2 and "target" not in CUHK(tmp_path / "cuhk")[0]
    for v in "clr":
        _put(tmp_path / "pdp" / f"test_{v}" / "source" / "0.png", 1)
    assert set(PixelDP(tmp_path / "pdp")[0]) == {"name", "input", "left", "right"}
    with pytest.raises(DataError):
        CUHK(tmp_path / "empty")


def test_synthetic_maps_round_trip(tmp_path: Path) -> None:
    skdata = pytest.importorskip("skimage.data")
    from training.synth.sample import SynthConfig, make_sample
    from training.synth.writer import write_sample

    cfg = SynthConfig(size=32, max_coc=10.0, n_layers=4)
    s = cfg.source_size
    crop = skdata.astronaut()[:s, :s].transpose(2, 0, 1).astype(np.float32) / 255.0
    sample = make_sample(crop, 11, cfg)
    write_sample(tmp_path, "train", 0, sample, bits=16, max_coc=cfg.max_coc)
    item = DPDD(tmp_path, maps=True)[0]
    np.testing.assert_allclose(item["coc"][0].numpy(), sample.coc, atol=1 / 512 + 1e-5)
    np.testing.assert_allclose(item["disparity"][0].numpy(), sample.disparity, atol=1 / 512 + 1e-5)
    np.testing.assert_allclose(item["left"].numpy(), sample.left, atol=1 / 65535)
    ded = DED(tmp_path / "ded" / "train")[0]
    expected = np.round(np.clip(np.abs(sample.coc) / 10.0, 0, 1) * 255) / 256
    np.testing.assert_allclose(ded["defocus"][0].numpy(), expected, atol=1e-6)
