"""``--bokeh keep``: large blur is left alone, small blur corrected, masks override, no seams in the weight."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from typer.testing import CliRunner

import deblurcli
from deblurcli.cli import app
from deblurcli.engine import bokeh
from deblurcli.engine.color import linear_to_srgb, srgb_to_linear
from deblurcli.io.maps import read_map
from deblurcli.methods.classic import disc_kernel

#: background farther than this from the subject must be untouched; the band from ``EDGE_BAND_PX`` to here is
#: where the pyramid map hands over from the subject's outline to the soft background
MARGIN_PX = 8
#: the subject deeper than this inside its outline must get the full correction
DEEP_PX = 8


def _disc_blur(lin: torch.Tensor, radius: float) -> torch.Tensor:
    k = disc_kernel(radius)
    p = k.shape[-1] // 2
    return F.conv2d(F.pad(lin, (p, p, p, p), mode="reflect"), k.expand(3, 1, -1, -1), groups=3)


@pytest.fixture(scope="module")
def two_layer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A round subject blurred by a 2 px disc over a background blurred by 12 px, in linear light (uint8 sRGB).

    Returns the blurred photo, the sharp photo and the subject mask.
    """
    from skimage import data

    sharp = torch.from_numpy(data.astronaut()[100:356, 150:406].astype(np.float32) / 255).permute(2, 0, 1)[None]
    lin = srgb_to_linear(sharp)
    yy, xx = np.mgrid[:256, :256]
    subject = (yy - 128) ** 2 + (xx - 90) ** 2 < 60**2
    s = torch.from_numpy(subject.astype(np.float32))[None, None]
    blurred = linear_to_srgb(_disc_blur(lin, 2.0) * s + _disc_blur(lin, 12.0) * (1 - s)).clamp(0, 1)

    def to8(t: torch.Tensor) -> np.ndarray:
        return np.round(t[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)

    return to8(blurred), to8(sharp), subject


def _distance_outside(subject: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the subject, brute force over its boundary (small images)."""
    inner = subject.copy()
    for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        inner &= np.roll(subject, shift, axis)
    edge = subject & ~inner
    ys, xs = np.nonzero(edge)
    yy, xx = np.mgrid[: subject.shape[0], : subject.shape[1]]
    d = np.sqrt((yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2).min(axis=2)
    return np.where(subject, 0.0, d)


def test_keep_leaves_background_and_corrects_subject(two_layer: tuple[np.ndarray, ...]) -> None:
    blurred, sharp, subject = two_layer
    method = deblurcli.load_method("classic", device="cpu")
    keep = deblurcli.deblur(blurred, method, bokeh="keep").astype(np.int16)
    remove = deblurcli.deblur(blurred, method, bokeh="remove").astype(np.int16)
    src = blurred.astype(np.int16)
    far = _distance_outside(subject) > MARGIN_PX
    assert far.sum() > 10_000
    assert np.abs(keep - src)[far].max() <= 1  # untouched within 1/255
    assert np.abs(remove - src)[far].max() >= 10  # remove does sharpen the bokeh
    # the subject gets the full correction away from its outline (where the weight hands over to the
    # background), and as a whole it comes closer to the sharp photo than the input was
    deep = _distance_outside(~subject) > DEEP_PX
    assert deep.sum() > 5_000
    off = np.abs(keep - remove)[deep].max(axis=-1)
    assert np.mean(off <= 1) >= 0.995 and off.max() <= 8  # remove changes the subject by up to 29/255
    assert np.abs(keep - src)[subject].mean() >= 1.0

    def err(a: np.ndarray) -> float:
        return float(np.mean((a.astype(np.float64) - sharp)[subject] ** 2))

    assert err(keep) < err(src)


#: background this close to the subject may follow the subject's own edge (its 2 px blur and the weight's
#: transition along it); beyond it, "keep" must return the soft background as it was
EDGE_BAND_PX = 4


def test_keep_leaves_background_beside_the_subject(two_layer: tuple[np.ndarray, ...]) -> None:
    """The 4-8 px band of soft background around the subject: ``remove`` sharpens it, ``keep`` leaves it.

    The map hands over from the subject's sharp outline to the soft background within a few px, so this is
    where a halo of correction would show first."""
    blurred, _, subject = two_layer
    method = deblurcli.load_method("classic", device="cpu")
    keep = deblurcli.deblur(blurred, method, bokeh="keep").astype(np.int16)
    remove = deblurcli.deblur(blurred, method, bokeh="remove").astype(np.int16)
    src = blurred.astype(np.int16)
    distance = _distance_outside(subject)
    beside = (distance > EDGE_BAND_PX) & (distance <= MARGIN_PX)
    assert beside.sum() > 1_500  # a ring from 64 to 68 px around the disc centre: about 1,660 px
    assert np.abs(remove - src)[beside].max() >= 5  # there is something to protect (8/255 today)
    assert np.abs(keep - src)[beside].max() <= 1


def test_mask_file_overrides_the_map(tmp_path: Path) -> None:
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((96, 96)).filter(ImageFilter.GaussianBlur(1.5)))
    # a quarter-size mask: correct the left half only (it is resized, so a ramp appears at the middle)
    mask = np.zeros((48, 48), np.uint8)
    mask[:, :24] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    method = deblurcli.load_method("classic", device="cpu")
    masked = deblurcli.deblur(photo, method, mask=tmp_path / "mask.png").astype(np.int16)
    remove = deblurcli.deblur(photo, method, bokeh="remove").astype(np.int16)
    assert np.array_equal(masked[:, 52:], photo[:, 52:].astype(np.int16))
    assert np.abs(masked[:, :44] - remove[:, :44]).max() <= 1
    assert np.abs(remove[:, :44] - photo[:, :44]).mean() > 1.0
    # an in-memory mask does the same, whatever bokeh mode is asked for
    again = deblurcli.deblur(photo, method, bokeh="remove", mask=Image.open(tmp_path / "mask.png"))
    assert np.array_equal(again, masked.astype(np.uint8))


def test_step_in_the_map_leaves_no_seam() -> None:
    """A map that jumps from 2 px to 12 px where the photo has no edge (a tile seam, a noisy map) must give a
    weight that changes gradually: no step a viewer would see as a line."""
    rng = np.random.default_rng(3)
    guide = (0.5 + 0.03 * rng.standard_normal((200, 300))).astype(np.float32)  # grain, no edge at the step
    for scale in (1, 8):  # a full-resolution map, and IFAN's 1/8 grid
        radius = np.full((200 // scale, 300 // scale), 2.0, np.float32)
        radius[:, radius.shape[1] // 2 :] = 12.0
        weight = bokeh.correction_weight(radius, guide, threshold=3.0)
        assert weight[:, :120].min() == 1.0 and weight[:, 180:].max() == 0.0
        steepest = np.abs(np.diff(weight, axis=1)).max()
        assert steepest <= 0.2, steepest  # the 1 -> 0 change spreads over at least 5 px
        assert np.abs(np.diff(weight, axis=0)).max() <= 0.05  # the grain prints at most a 5 % ripple


def test_disparity_rule_matches_a_disc() -> None:
    """IFAN's 1/8-scale disparity to blur radius: the half-disc centroid rule, checked on our disc PSF."""
    for r in (6.0, 16.0):
        k = disc_kernel(r, dtype=torch.float64).numpy()
        column = k.sum(0)
        xs = np.arange(column.size) - column.size // 2
        half = np.where(xs > 0, column, 0.0) + np.where(xs == 0, column / 2, 0.0)  # the centre column is shared
        separation = 2 * (half * xs).sum() / half.sum()  # right minus left centroid, by symmetry
        radius = bokeh.radius_from_map("disparity", np.array([[separation / 8.0]]))[0, 0]
        assert radius == pytest.approx(r, rel=0.05)


def test_weight_map_and_provenance_from_the_cli(tmp_path: Path) -> None:
    from skimage import data

    Image.fromarray(data.astronaut()).resize((80, 64)).save(tmp_path / "p.png")
    mask = np.zeros((64, 80), np.uint8)
    mask[:, :40] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    runner = CliRunner()
    result = runner.invoke(app, ["deblur", str(tmp_path / "p.png"), "--maps", "--mask", str(tmp_path / "m.png"), "-q"])
    assert result.exit_code == 0, result.stderr
    weight, record = read_map(tmp_path / "p_deblurred_bokeh_weight.tif")
    assert weight[:, :38].min() == pytest.approx(1.0) and weight[:, 42:].max() == pytest.approx(0.0, abs=1e-6)
    assert record["bokeh"] == "mask"
    assert record["bokeh_mask_sha256"] == hashlib.sha256((tmp_path / "m.png").read_bytes()).hexdigest()
    assert (tmp_path / "p_deblurred_bokeh_weight.png").exists()

    result = runner.invoke(app, ["deblur", str(tmp_path / "p.png"), "--overwrite", "--bokeh-threshold", "4.5", "-q"])
    assert result.exit_code == 0, result.stderr
    import pyexiv2  # provenance lives in XMP (defocus: namespace) since the io branch

    image = pyexiv2.Image(str(tmp_path / "p_deblurred.png"))
    xmp = image.read_xmp()
    image.close()
    assert xmp["Xmp.defocus.bokeh"] == "keep" and xmp["Xmp.defocus.bokeh_threshold"] == "4.5"
    assert "defocus" in xmp["Xmp.defocus.bokeh_map"]


def test_radius_map_shows_what_keep_decided(tmp_path: Path, two_layer: tuple[np.ndarray, ...]) -> None:
    """``--maps`` with ``keep`` writes the blur radius the weight came from, full size, in px: it reads the 12 px
    background above the threshold and the 2 px subject below it, so a user can pick ``--bokeh-threshold``."""
    blurred, _, subject = two_layer
    Image.fromarray(blurred).save(tmp_path / "t.png")
    runner = CliRunner()
    result = runner.invoke(app, ["deblur", str(tmp_path / "t.png"), "--maps", "-q"])
    assert result.exit_code == 0, result.stderr
    radius, record = read_map(tmp_path / "t_deblurred_bokeh_radius.tif")
    weight, _ = read_map(tmp_path / "t_deblurred_bokeh_weight.tif")
    assert radius.shape == weight.shape == subject.shape
    assert "blur radius, px" in str(record["unit"]) and record["bokeh"] == "keep"
    threshold = float(str(record["bokeh_threshold"]))
    far = _distance_outside(subject) > MARGIN_PX
    deep = _distance_outside(~subject) > DEEP_PX
    assert np.median(radius[far]) > 2 * threshold and np.median(radius[deep]) < threshold
    assert (tmp_path / "t_deblurred_bokeh_radius.png").exists()
    out = tmp_path / "remove"
    args = ["deblur", str(tmp_path / "t.png"), "--maps", "--bokeh", "remove", "-o", str(out), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert not list(out.glob("*bokeh*")) and (out / "t_deblurred_defocus.tif").exists()


def test_bad_bokeh_options_are_usage_errors(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "p.png")
    runner = CliRunner()
    for args in (["--bokeh", "blur"], ["--bokeh-threshold", "0"], ["--mask", str(tmp_path / "none.png")]):
        result = runner.invoke(app, ["deblur", str(tmp_path / "p.png"), *args])
        assert result.exit_code == 2, (args, result.output)
    with pytest.raises(deblurcli.errors.UsageError):
        deblurcli.deblur(np.zeros((8, 8), np.uint8), bokeh="blur")  # type: ignore[arg-type]


def test_default_threshold_grows_with_the_photo() -> None:
    assert bokeh.default_threshold(384, 384) == 3.0
    assert bokeh.default_threshold(4000, 6000) == pytest.approx(9.0)
    w = bokeh.weight_from_radius(np.array([0.0, 3.0, 3.525, 4.05, 20.0]), 3.0)
    assert w.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])


def test_pyramid_estimate_keeps_the_smaller_of_two_scales(monkeypatch: pytest.MonkeyPatch) -> None:
    """An over-read at one scale is outvoted by a sharp reading at the other, whichever scale it is on; the
    result lies on the first reading's grid, and a 24 MP photo's first reading is capped at about 1 MP."""
    from deblurcli import weighting

    scales: list[float] = []

    def reading(x: torch.Tensor, scale: float) -> np.ndarray:
        scales.append(scale)
        h, w = round(x.shape[-2] / scale), round(x.shape[-1] / scale)
        left = np.full((h, w), 6.0 if len(scales) == 1 else 2.0, np.float32)
        left[:, w // 2 :] = 2.0 if len(scales) == 1 else 6.0
        return left

    monkeypatch.setattr(weighting, "_read_estimate", reading)
    radius = weighting.estimate_radius(torch.zeros(1, 3, 96, 120), 3.0)
    assert scales == [1.0, weighting.SECOND_LOOK] and radius.shape == (96, 120)
    assert radius.max() < 6.0 and np.allclose(radius[:, 4:56], 2.0) and np.allclose(radius[:, 64:-4], 2.0)
    scales.clear()
    assert weighting.estimate_radius(torch.zeros(1, 3, 4000, 6000), 9.0).shape == (816, 1225)
    assert scales == pytest.approx([24**0.5, 24**0.5 * weighting.SECOND_LOOK])


def test_pyramid_estimate_withholds_correction_only_past_its_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reading just above the threshold is within the estimator's scatter: still corrected in full. A reading
    past threshold + margin + fade is bokeh: untouched. The written radius map shows the estimate less its margin."""
    from deblurcli import weighting

    x = torch.full((1, 3, 64, 64), 0.5)
    for reading, expected in ((3.3, 1.0), (3.0 * (1 + weighting.ESTIMATE_MARGIN + bokeh.FADE) + 0.05, 0.0)):
        monkeypatch.setattr(weighting, "estimate_radius", lambda x, t, r=reading: np.full((64, 64), r, np.float32))
        weight, _, radius = weighting.correction_weight(x, {}, mode="keep", threshold=3.0, mask=None, max_pixels=10**8)
        assert weight is not None and radius is not None
        assert np.all(weight == expected), (reading, weight.min(), weight.max())
        assert np.allclose(radius, reading - 3.0 * weighting.ESTIMATE_MARGIN)
    assert bokeh.weight_from_radius(np.array([3.3]), 3.0)[0] < 0.9  # without the margin 3.3 px would be cut
