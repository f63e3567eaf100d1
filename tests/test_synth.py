"""Physics and plumbing of the synthetic defocus generator (training.synth), on small images."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from training.synth.params import LensParams, PsfParams, coc_px
from training.synth.psf import view_kernels
from training.synth.render import render_scene
from training.synth.sample import SynthConfig, make_sample, render_batch
from training.synth.sensor import poisson
from training.synth.sources import suspect_blocks

PLAIN = PsfParams(
    edge_softness=0.05,
    rim=0.0,
    blades=0,
    blade_angle=0.0,
    cat_eye=0.0,
    chroma_px=0.0,
    frame_x=0.0,
    frame_y=0.0,
    dp_split_softness=0.1,
)
FANCY = dataclasses.replace(PLAIN, rim=0.5, blades=7, blade_angle=0.3, cat_eye=0.6, frame_x=0.9, frame_y=-0.7)


def _astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return skdata.astronaut().astype(np.float32).transpose(2, 0, 1) / 255.0


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.95, size=(3, h, w)).astype(np.float32)


def test_zero_coc_leaves_pixels_unchanged() -> None:
    img = _astronaut()[:, 100:164, 200:264]
    out = render_scene(img, np.zeros((64, 64), np.float32), FANCY, n_layers=12)
    np.testing.assert_allclose(out.left, img, atol=1e-5)
    np.testing.assert_allclose(out.right, img, atol=1e-5)
    assert np.all(out.disparity == 0.0)


def test_coc_grows_with_distance_from_focus_and_changes_sign() -> None:
    lens = LensParams(focal_mm=50.0, f_number=2.0, focus_m=3.0, pixel_pitch_mm=0.01)
    near = coc_px(np.array([0.5, 1.0, 2.0, 2.9, 3.0]), lens)
    far = coc_px(np.array([3.0, 3.1, 5.0, 20.0, 1000.0]), lens)
    assert abs(near[-1]) < 1e-6
    assert np.all(np.diff(np.abs(near)) < 0) and np.all(near[:-1] < 0)
    assert np.all(np.diff(far) > 0) and np.all(far[1:] > 0)
    # wider aperture, longer lens -> more blur at the same depth
    wide = dataclasses.replace(lens, f_number=1.4)
    assert abs(coc_px(np.array([10.0]), wide)[0]) > abs(coc_px(np.array([10.0]), lens)[0])
    # and the rendered kernel really spreads more: second moment grows with |CoC|
    spreads = []
    for c in (1.0, 4.0, 9.0, 16.0):
        k = view_kernels(c, PLAIN).center[1]
        ax = np.arange(k.shape[0]) - k.shape[0] // 2
        spreads.append(float((k * (ax[:, None] ** 2 + ax[None, :] ** 2)).sum()))
    assert np.all(np.diff(spreads) > 0)


@pytest.mark.parametrize(
    "psf", [PLAIN, FANCY, dataclasses.replace(FANCY, chroma_px=1.3)], ids=["plain", "fancy", "chroma"]
)
@pytest.mark.parametrize("coc", [-17.0, -4.2, -0.1, 0.0, 0.3, 0.6, 2.5, 11.0])
def test_every_psf_sums_to_one(psf: PsfParams, coc: float) -> None:
    k = view_kernels(coc, psf)
    for kern in (k.left, k.right, k.center):
        assert kern.min() >= 0.0
        np.testing.assert_allclose(kern.sum(axis=(1, 2)), 1.0, atol=1e-5)


def _shift_x(a: np.ndarray, b: np.ndarray, max_shift: int = 10) -> int:
    """Integer displacement d of a relative to b along x: a(x) ~ b(x - d)."""
    errs = [
        np.mean((a[:, 20:-20] - np.roll(b, s, axis=1)[:, 20:-20]) ** 2)
        for s in range(-max_shift, max_shift + 1)
    ]
    return int(np.argmin(errs)) - max_shift


def test_dual_pixel_disparity_changes_sign_across_focal_plane() -> None:
    img = _astronaut()[:, 150:246, 150:246]
    for coc in (-12.0, 12.0):
        out = render_scene(img, np.full((96, 96), coc, np.float32), FANCY, n_layers=4)
        # the left view is displaced by +disparity relative to the right one
        shift = _shift_x(out.left.mean(axis=0), out.right.mean(axis=0))
        assert np.sign(shift) == np.sign(coc) and abs(shift) >= 2
        assert np.all(np.sign(out.disparity) == np.sign(coc))
        assert abs(abs(float(out.disparity.mean())) - abs(shift)) < 1.5
    out = render_scene(img, np.full((96, 96), 12.0, np.float32), PLAIN)
    np.testing.assert_allclose(out.center, 0.5 * (out.left + out.right), atol=1e-6)


def _square_scene(fg_coc: float, bg_coc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, lo, hi = 96, 32, 64
    inside = np.zeros((n, n), bool)
    inside[lo:hi, lo:hi] = True
    img = np.full((3, n, n), 0.1, np.float32)
    img[:, inside] = 0.9
    coc = np.where(inside, fg_coc, bg_coc).astype(np.float32)
    return img, coc, inside


def test_sharp_foreground_over_blurred_background_has_no_halo() -> None:
    img, coc, inside = _square_scene(fg_coc=0.0, bg_coc=-14.0 + 28.0)  # background behind focus
    out = render_scene(img, coc, PLAIN, n_layers=8)
    for view in (out.left, out.right):
        np.testing.assert_allclose(view[:, inside], 0.9, atol=1e-5)  # subject untouched
        # nothing of the bright subject leaks into the blurred background, and no dark rim either
        np.testing.assert_allclose(view[:, ~inside], 0.1, atol=1e-4)
    # a single whole-image convolution (what "no halo" rules out) would leak the subject outwards
    naive = render_scene(img, np.full_like(coc, 14.0), PLAIN, n_layers=1)
    assert naive.left[:, 30, 48].min() > 0.3


def test_blurred_foreground_spreads_only_within_its_kernel() -> None:
    img, coc, inside = _square_scene(fg_coc=-12.0, bg_coc=0.0)
    bg = _texture(96, 96)
    img = np.where(inside[None], img, bg)
    out = render_scene(img, coc, PLAIN, n_layers=8)
    reach = int(np.ceil(6.0 * (1 + PLAIN.edge_softness))) + 1
    ys, xs = np.mgrid[:96, :96]
    dist = np.maximum(
        np.maximum(32 - ys, ys - 63), np.maximum(32 - xs, xs - 63)
    )  # Chebyshev distance to square
    far_bg = dist > reach
    np.testing.assert_allclose(out.left[:, far_bg], img[:, far_bg], atol=1e-4)
    deep_inside = dist < -reach
    np.testing.assert_allclose(out.left[:, deep_inside], 0.9, atol=1e-4)
    ring = (dist > 0) & (dist <= 3)  # the blurred subject does cover the background just outside its edge
    assert float(np.abs(out.center[:, ring] - img[:, ring]).mean()) > 0.05


def test_make_sample_is_deterministic_per_seed() -> None:
    cfg = SynthConfig(size=64, max_coc=12.0, n_layers=6, jpeg_prob=0.5)
    crop = _astronaut()[:, : cfg.source_size, : cfg.source_size].copy()
    a, b, c = make_sample(crop, 5, cfg), make_sample(crop, 5, cfg), make_sample(crop, 6, cfg)
    for name in ("blurred", "sharp", "left", "right", "coc", "disparity"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.params == b.params and a.params != c.params
    assert not np.array_equal(a.blurred, c.blurred)
    assert a.blurred.shape == (3, 64, 64) and a.coc.shape == (64, 64)
    assert np.abs(a.coc).max() <= 12.0


def test_a_batch_renders_each_sample_as_alone() -> None:
    """make_sample is render_batch of one: a sample depends on its crop and seed, not on its batch mates."""
    cfg = SynthConfig(size=48, max_coc=10.0, n_layers=6, jpeg_prob=0.0)
    s = cfg.source_size
    img = _astronaut()
    crops = [img[:, 30 * i : 30 * i + s, 200 : 200 + s].copy() for i in range(3)]
    seeds = [11, 12, 13]
    batch = render_batch(torch.from_numpy(np.stack(crops)), seeds, cfg, chunk=3)  # as on a GPU: one FFT batch
    for b, (crop, seed) in enumerate(zip(crops, seeds, strict=True)):
        one = make_sample(crop, seed, cfg)
        assert batch.params[b] == one.params
        for name in ("sharp", "coc", "disparity", "depth"):
            np.testing.assert_allclose(getattr(batch, name)[b].numpy(), getattr(one, name), atol=1e-4, rtol=0)
        for name in ("blurred", "left", "right"):  # FFT rounding may tip a rare photon count by one
            diff = np.abs(getattr(batch, name)[b].numpy() - getattr(one, name))
            assert float(np.mean(diff > 1e-4)) < 0.005 and float(diff.max()) < 0.05
    jpeg_cfg = dataclasses.replace(cfg, jpeg_prob=1.0)
    skipped = render_batch(torch.from_numpy(np.stack(crops[:1])), seeds[:1], jpeg_cfg, jpeg=False)
    assert skipped.params[0].sensor.jpeg_quality is None
    assert make_sample(crops[0], seeds[0], jpeg_cfg).params.sensor.jpeg_quality is not None
    with pytest.raises(ValueError, match="B seeds"):
        render_batch(torch.from_numpy(np.stack(crops)), seeds[:2], cfg)


def test_shot_noise_is_poisson_and_moves_only_where_the_light_moves() -> None:
    g = torch.Generator().manual_seed(0)
    for lam in (0.4, 3.0, 15.0, 60.0):
        x = poisson(torch.full((200_000,), lam), g).double()
        assert abs(float(x.mean()) - lam) < 0.01 * lam + 0.01
        assert abs(float(x.var()) - lam) < 0.03 * lam + 0.1  # the rounded Gaussian above 16 adds 1/12
        assert bool((x == x.round()).all()) and float(x.min()) >= 0.0
    small = poisson(torch.full((200_000,), 0.4), g)
    assert abs(float((small == 0).double().mean()) - np.exp(-0.4)) < 0.01  # discrete at low light
    rate = torch.rand(5000, generator=g) * 40.0
    nudged = rate.clone()
    nudged[7] += 1e-3
    a = poisson(rate, torch.Generator().manual_seed(1))
    b = poisson(nudged, torch.Generator().manual_seed(1))
    assert int((a != b).sum()) <= 1


def test_sharpness_mask_flags_real_blur() -> None:
    rgb = (_astronaut().transpose(1, 2, 0) * 255).astype(np.uint8)
    box = np.ones(9) / 9
    blurred = rgb.astype(np.float32)
    for axis in (0, 1):
        blurred = np.apply_along_axis(lambda v: np.convolve(v, box, mode="same"), axis, blurred)
    sharp_frac = suspect_blocks(rgb).mean()
    blur_frac = suspect_blocks(blurred.astype(np.uint8)).mean()
    assert sharp_frac < 0.3 and blur_frac > 0.6


def test_cli_writes_dpdd_and_ded_layout(tmp_path: Path) -> None:
    skimage = pytest.importorskip("skimage")
    from typer.testing import CliRunner

    from deblurcli.cli.data import app
    from training.data.datasets import read_image

    src = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    args = [
        "synth",
        "--src",
        str(src),
        "-n",
        "3",
        "--size",
        "48",
        "--seed",
        "3",
        "--val-frac",
        "0.34",
        "--test-frac",
        "0.34",
        "--bits",
        "16",
    ]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    root = tmp_path / "a"
    for split in ("train", "val", "test"):
        for sub in ("c/source", "c/target", "l/source", "r/source", "c/coc", "c/disparity"):
            files = sorted((root / f"{split}_{sub}").glob("*.png"))
            assert len(files) == 1, (split, sub)
        ded = root / "ded" / split
        assert len(list((ded / "filtered" / "synth").glob("defocus_filterd_*.png"))) == 1
        assert len(list((ded / "image" / "synth").glob("image_*.png"))) == 1
    meta = json.loads((root / "samples.json").read_text())
    assert [s["split"] for s in meta["samples"]] == ["train", "val", "test"]
    assert set(meta["samples"][0]["params"]) == {"seed", "lens", "psf", "sensor", "n_layers"}
    target = read_image(root / "train_c" / "target" / "00000.png")
    assert target.shape == (3, 48, 48)
    assert np.any((target * 65535).round() % 257 != 0)  # truly 16-bit, not 8-bit scaled up
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert again.exit_code == 0
    for rel in ("val_c/source/00001.png", "test_l/source/00002.png", "train_c/coc/00000.png"):
        assert (root / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    bad = CliRunner().invoke(app, ["synth", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert bad.exit_code == 7


def test_live_data_renders_what_data_synth_writes(tmp_path: Path) -> None:
    """``live:`` is the same renderer: item i equals sample i of a written set (16-bit PNG quantisation)."""
    skimage = pytest.importorskip("skimage")
    from typer.testing import CliRunner

    from deblurcli.cli.data import app
    from training.data.datasets import read_image
    from training.engine.datasets import open_data
    from training.synth.live import LiveSynth

    src = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    args = ["synth", "--src", str(src), "-n", "2", "--size", "48", "--seed", "5", "--bits", "16"]
    args += ["--val-frac", "0", "--test-frac", "0", "--out", str(tmp_path / "set")]
    assert CliRunner().invoke(app, args).exit_code == 0
    live = LiveSynth.from_folders([src], config=SynthConfig(size=48), seed=5)
    for i in range(2):
        item = live[i]
        written = read_image(tmp_path / "set" / "train_c" / "source" / f"{i:05d}.png")
        assert np.abs(item["blur"].numpy() - written).max() <= 0.5 / 65535 + 1e-6
        assert item["defocus"].shape == (1, 48, 48) and float(item["defocus"].min()) >= 0.0
    assert len(open_data(f"live:{src}", keys=("blur", "sharp", "defocus"))) > 1000


def test_pack_photos_downscales_to_the_renderers_size_and_keeps_the_budget(tmp_path: Path) -> None:
    from PIL import Image

    from training.pack_photos import pack

    big = tmp_path / "src" / "big.png"
    big.parent.mkdir()
    Image.fromarray((_texture(1200, 1800).transpose(1, 2, 0) * 255).astype(np.uint8)).save(big)
    Image.new("L", (600, 600)).save(tmp_path / "src" / "grey.png")
    files = pack([tmp_path / "src"], tmp_path / "out", max_bytes=50 * 2**20)
    assert [f.name for f in files] == ["big.jpg"]
    with Image.open(files[0]) as im:
        assert min(im.size) == 1024 and im.mode == "RGB"
    assert pack([tmp_path / "src"], tmp_path / "tiny", max_bytes=1000) == []
