"""The Python API: dtype and layout round trips, one code path with the CLI, a light ``import deblurcli``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

import deblurcli
from deblurcli.cli import app
from deblurcli.errors import UsageError
from deblurcli.methods.loader import LoadedMethod
from deblurcli.methods.spec import MethodSpec


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    from skimage import data

    small = Image.fromarray(data.astronaut()).resize((72, 56)).filter(ImageFilter.GaussianBlur(1.2))
    return np.asarray(small)


@pytest.fixture(scope="module")
def method() -> LoadedMethod:
    return deblurcli.load_method("classic", device="cpu")


@pytest.fixture(scope="module")
def affine() -> LoadedMethod:
    """A stand-in method with a known answer (0.8 x + 0.1), so conversions can be checked exactly and fast."""
    import torch

    spec = MethodSpec(name="affine", summary="test", cls=None, run=lambda _m, x: {"image": 0.8 * x + 0.1})
    return LoadedMethod(spec=spec, module=None, device=torch.device("cpu"), dtype=torch.float32)


def _layouts(rgb8: np.ndarray) -> dict[str, np.ndarray]:
    alpha = np.linspace(0, 255, rgb8.shape[1], dtype=np.uint8)[None, :].repeat(rgb8.shape[0], 0)
    grey = rgb8.mean(axis=2).round().astype(np.uint8)
    base = {
        "grey": grey,
        "grey1": grey[:, :, None],
        "grey+alpha": np.dstack([grey, alpha]),
        "rgb": rgb8,
        "rgba": np.dstack([rgb8, alpha]),
    }
    out: dict[str, np.ndarray] = {}
    for name, a in base.items():
        out[f"{name} uint8"] = a
        out[f"{name} uint16"] = a.astype(np.uint16) * 257 + 3  # not a multiple of 257: all 16 bits count
        out[f"{name} float32"] = a.astype(np.float32) / 255
    return out


def test_arrays_come_back_in_their_own_dtype_and_layout(rgb8: np.ndarray, affine: LoadedMethod) -> None:
    for name, image in _layouts(rgb8).items():
        same = deblurcli.deblur(image, affine, strength=0.0, bokeh="remove")
        assert same.dtype == image.dtype and same.shape == image.shape, name
        assert np.array_equal(same, image), name  # strength 0 is the input, bit for bit
        out = deblurcli.deblur(image, affine, bokeh="remove")
        assert out.dtype == image.dtype and out.shape == image.shape, name
        peak = {np.uint8: 255.0, np.uint16: 65535.0, np.float32: 1.0}[image.dtype.type]
        colour = slice(0, -1) if name.startswith(("grey+alpha", "rgba")) else slice(None)
        expected = np.clip(0.8 * image.astype(np.float64) / peak + 0.1, 0.0, 1.0) * peak
        if peak > 1:
            expected = np.round(expected)
        got = out if image.ndim == 2 else out[..., colour]
        want = expected if image.ndim == 2 else expected[..., colour]
        assert np.abs(got - want).max() <= (1e-6 if peak == 1 else 1.0), name  # float32 inside
        if colour.stop == -1:
            assert np.array_equal(out[..., -1], image[..., -1]), name  # alpha untouched


def test_pillow_images_keep_their_mode(rgb8: np.ndarray, affine: LoadedMethod) -> None:
    rgb = Image.fromarray(rgb8)
    rgb.info["icc_profile"] = b"fake icc"
    for image in (rgb, rgb.convert("L"), rgb.convert("RGBA"), rgb.convert("LA"), rgb.convert("P")):
        out = deblurcli.deblur(image, affine, bokeh="remove")
        assert isinstance(out, Image.Image) and out.size == image.size
        assert out.mode == (image.mode if image.mode != "P" else "RGB")
        assert out.info.get("icc_profile") == image.info.get("icc_profile")
    grey16 = Image.fromarray(rgb8[:, :, 1].astype(np.uint16) * 257)
    out16 = deblurcli.deblur(grey16, affine, strength=0.0, bokeh="remove")
    assert out16.mode == grey16.mode and np.array_equal(np.asarray(out16), np.asarray(grey16))


def test_cli_and_api_are_one_code_path(rgb8: np.ndarray, method: LoadedMethod, tmp_path: Path) -> None:
    Image.fromarray(rgb8).save(tmp_path / "p.png")
    args = ["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "cli"), "--bokeh", "remove", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    written = deblurcli.deblur_file(tmp_path / "p.png", tmp_path / "api", method=method, bokeh="remove")
    assert written == tmp_path / "api" / "p_deblurred.png"
    cli = np.asarray(Image.open(tmp_path / "cli" / "p_deblurred.png"))
    assert np.array_equal(np.asarray(Image.open(written)), cli)
    assert np.array_equal(deblurcli.deblur(rgb8, "classic", bokeh="remove", device="cpu"), cli)  # by name


def test_deblur_file_names_and_refuses_to_overwrite(rgb8: np.ndarray, affine: LoadedMethod, tmp_path: Path) -> None:
    Image.fromarray(rgb8).save(tmp_path / "p.png")
    beside = deblurcli.deblur_file(tmp_path / "p.png", method=affine, bokeh="remove")
    assert beside == tmp_path / "p_deblurred.png"
    with pytest.raises(UsageError, match="exists"):
        deblurcli.deblur_file(tmp_path / "p.png", method=affine)
    tiff = deblurcli.deblur_file(str(tmp_path / "p.png"), tmp_path / "x.tif", method=affine, bit_depth=16)
    import tifffile

    assert tifffile.imread(tiff).dtype == np.uint16
    with pytest.raises(UsageError, match="replace the input"):
        deblurcli.deblur_file(tmp_path / "p.png", tmp_path / "p.png", method=affine, overwrite=True)


def test_bad_arguments_are_usage_errors(rgb8: np.ndarray, affine: LoadedMethod) -> None:
    for kwargs in ({"strength": 1.5}, {"bokeh_threshold": -1.0}):
        with pytest.raises(UsageError):
            deblurcli.deblur(rgb8, affine, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="int32"):
        deblurcli.deblur(rgb8.astype(np.int32), affine)
    with pytest.raises(UsageError, match="shape"):
        deblurcli.deblur(np.zeros((4, 4, 5), np.uint8), affine)


def test_import_is_light_and_names_resolve_lazily() -> None:
    code = (
        "import sys, deblurcli\n"
        "assert 'torch' not in sys.modules, 'import deblurcli loaded torch'\n"
        "assert set(deblurcli.__all__) >= {'deblur', 'deblur_file', 'load_method'}\n"
        "assert callable(deblurcli.deblur) and 'torch' in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with pytest.raises(AttributeError):
        deblurcli.no_such_name  # noqa: B018
