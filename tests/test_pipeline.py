"""The data path's whole-photo buffers: the model input is a view where it can be, and nothing the caller owns
is ever written (a 24 MP photo's peak memory is a handful of these buffers, so each copy saved counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deblurcli.io.photo import Photo
from deblurcli.methods.loader import LoadedMethod
from deblurcli.methods.spec import MethodSpec
from deblurcli.pipeline import DeblurOptions, deblur_file, deblur_photo, map_names, to_model_input
from deblurcli.weighting import grey_guide


def _photo(pixels: np.ndarray, transfer: str = "srgb") -> Photo:
    return Photo(
        pixels=pixels, alpha=None, transfer=transfer, bit_depth=8, kind="png", exif=None, icc=None, source=Path("p")
    )


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(3).random((40, 56, 3), dtype=np.float32)


def _in_place_method() -> LoadedMethod:
    """A method that scribbles over its input tile and returns it: it must not reach the caller's photo."""
    spec = MethodSpec(name="scribble", summary="test", cls=None, run=lambda _m, x: {"image": x.mul_(0.5).add_(0.25)})
    return LoadedMethod(spec=spec, module=None, device=torch.device("cpu"), dtype=torch.float32)


def test_in_range_srgb_pixels_are_viewed_not_copied(pixels: np.ndarray) -> None:
    x = to_model_input(_photo(pixels))
    assert x.shape == (1, 3, 40, 56) and x.dtype == torch.float32
    assert np.shares_memory(x.numpy(), pixels)
    assert np.array_equal(x[0].permute(1, 2, 0).numpy(), pixels)


def test_out_of_range_grey_and_linear_pixels_are_converted_on_a_copy(pixels: np.ndarray) -> None:
    wild = pixels * 1.6 - 0.3
    before = wild.copy()
    x = to_model_input(_photo(wild))
    assert not np.shares_memory(x.numpy(), wild) and np.array_equal(wild, before)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert np.array_equal(x[0].permute(1, 2, 0).numpy(), np.clip(wild, 0.0, 1.0))

    grey = pixels[:, :, :1].copy()
    x = to_model_input(_photo(grey))
    assert x.shape == (1, 3, 40, 56) and torch.equal(x[:, 0], x[:, 2])

    linear = pixels.copy()
    x = to_model_input(_photo(linear, "linear"))
    assert np.array_equal(linear, pixels) and not np.shares_memory(x.numpy(), linear)
    assert float((x[0].permute(1, 2, 0).numpy() - pixels).min()) >= 0.0  # sRGB encoding lifts every value


@pytest.mark.parametrize("tile", [None, 32])
@pytest.mark.parametrize("bokeh", ["remove", "keep"])
def test_a_method_writing_its_input_cannot_reach_the_photo(pixels: np.ndarray, tile: int | None, bokeh: str) -> None:
    photo = _photo(pixels)
    before = pixels.copy()
    opts = DeblurOptions(tile=tile, overlap=8, bokeh=bokeh)
    result, _maps, _record = deblur_photo(photo, _in_place_method(), opts)
    assert np.array_equal(photo.pixels, before)
    if bokeh == "remove":
        assert np.allclose(result.pixels, 0.5 * before + 0.25, atol=1e-6)
    assert not np.shares_memory(result.pixels, pixels)


def test_grey_guide_is_the_clamped_luma(pixels: np.ndarray) -> None:
    x = torch.from_numpy(pixels * 1.6 - 0.3).permute(2, 0, 1)[None]
    luma = torch.tensor((0.2126, 0.7152, 0.0722)).view(1, 3, 1, 1)
    expected = (x.clamp(0.0, 1.0) * luma).sum(1)[0].numpy()
    got = grey_guide(x)
    assert got.dtype == np.float32 and got.shape == (40, 56)
    assert np.abs(got - expected).max() <= 1e-7


def _mapping_method() -> LoadedMethod:
    """Returns its input and a constant blur-radius map at half scale, as a method with its own map does."""
    spec = MethodSpec(
        name="mapper",
        summary="test",
        cls=None,
        run=lambda _m, x: {"image": x.clone(), "defocus": torch.full((1, 1, x.shape[-2] // 2, x.shape[-1] // 2), 1.0)},
        multiple_of=2,
        maps=("defocus",),
        map_units={"defocus": "px"},
    )
    return LoadedMethod(spec=spec, module=None, device=torch.device("cpu"), dtype=torch.float32)


@pytest.mark.parametrize("bokeh", ["remove", "keep"])
@pytest.mark.parametrize("masked", [False, True])
def test_maps_written_are_the_ones_a_batch_plans_for(
    tmp_path: Path, pixels: np.ndarray, bokeh: str, masked: bool
) -> None:
    """A batch checks ``map_names`` for clashes before it runs; the run must write exactly those maps."""
    method = _mapping_method()
    mask = np.ones((40, 56), np.float32) if masked else None
    opts = DeblurOptions(maps=True, bokeh=bokeh, mask=mask)
    dst = tmp_path / "p_deblurred.tif"
    result = deblur_file(tmp_path / "p.png", dst, method, opts, fmt="tiff", bit_depth=16, photo=_photo(pixels))
    written = {Path(f).name for f in result.maps}
    planned = map_names(method.spec, bokeh=bokeh, masked=masked)
    assert written == {f"p_deblurred_{name}.{ext}" for name in planned for ext in ("tif", "png")}
    assert ("bokeh_weight" in planned) == (masked or bokeh == "keep")
