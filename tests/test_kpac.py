"""KPAC: parameter counts of the three released variants, the TensorFlow checkpoint reader (order, layouts,
no pickled code), and TF arithmetic (SAME padding, conv and deconv layouts) checked against numpy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deblurcli.archs.kpac import KPAC, SameConv2d, same_padding
from deblurcli.errors import UsageError, WeightsError
from deblurcli.methods.kpac import (
    SPEC,
    convert_kpac,
    convert_kpac_npz,
    infer_kpac_hparams,
    kpac_variables,
    run_kpac,
    tf_to_torch,
)
from deblurcli.zoo.state import load_strict

SHARED = Path(__file__).resolve().parents[2] / "shared"
VARIANTS = {
    "single_2level": ({"levels": 2, "dual_pixel": False}, 1_578_277),
    "single_3level": ({"levels": 3, "dual_pixel": False}, 2_057_893),
    "dual": ({"levels": 3, "dual_pixel": True}, 2_061_493),
}


def _tf_variables(variant: str) -> list[tuple[str, list[int]]]:
    path = SHARED / "reference" / "kpac_variables.json"
    if not path.is_file():
        pytest.skip(f"shared reference data absent: {path}")
    return [(name, shape) for name, shape in json.loads(path.read_text())[variant]["params_in_order"]]


def _fake_arrays(variant: str, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 0.04, shape).astype(np.float32) for _, shape in _tf_variables(variant)]


def _save_like_tensorlayer(path: Path, arrays: list[np.ndarray]) -> Path:
    """``tl.files.save_npz``: one object array ``params`` holding every variable in order."""
    params = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        params[i] = a
    np.savez(path, params=params)
    return path


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


def _np_conv(x: np.ndarray, w: np.ndarray, *, stride: int, pads: tuple[int, int, int, int]) -> np.ndarray:
    """TF-layout cross-correlation: x (N,H,W,C), w [kh,kw,in,out], pads (top, bottom, left, right)."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = w.shape[:2]
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
            out += patch @ w[i, j]
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parameter_counts(variant: str) -> None:
    hparams, count = VARIANTS[variant]
    model = KPAC(**hparams)
    assert sum(p.numel() for p in model.parameters()) == count
    assert len(model.state_dict()) == len(kpac_variables(**hparams))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variable_order_names_and_shapes_match_tf(variant: str) -> None:
    hparams, _ = VARIANTS[variant]
    state = KPAC(**hparams).state_dict()
    ours = []
    for tf_name, key in kpac_variables(**hparams):
        shape = list(state[key].shape)
        ours.append((tf_name, [shape[i] for i in (2, 3, 1, 0)] if len(shape) == 4 else shape))
    assert ours == _tf_variables(variant)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fake_npz_converts_and_loads_strictly(tmp_path: Path, variant: str) -> None:
    hparams, _ = VARIANTS[variant]
    arrays = _fake_arrays(variant)
    path = _save_like_tensorlayer(tmp_path / f"{variant}.npz", arrays)
    assert infer_kpac_hparams(path) == hparams
    model = KPAC(**hparams)
    load_strict(model, convert_kpac(path), source=path.name)
    # the shared atrous kernel sits at index 12 after six (or eight) encoder layers
    index = next(i for i, (tf, _) in enumerate(kpac_variables(**hparams)) if tf == "deblur_net/dc1/0/filter")
    assert torch.equal(model.blocks[0].kernel, torch.from_numpy(arrays[index].transpose(3, 2, 0, 1)))
    # positional arr_N files hold the same thing
    positional = tmp_path / "positional.npz"
    np.savez(positional, *arrays)
    again = convert_kpac_npz(positional, **hparams)
    assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())


def test_npz_errors_name_the_variable(tmp_path: Path) -> None:
    arrays = _fake_arrays("single_2level")
    arrays[4] = arrays[4][:, :, :, :40]  # deblur_net/deblur/c2/W_conv2d
    path = _save_like_tensorlayer(tmp_path / "bad.npz", arrays)
    with pytest.raises(WeightsError, match="deblur_net/deblur/c2/W_conv2d"):
        convert_kpac_npz(path, levels=2, dual_pixel=False)
    short = _save_like_tensorlayer(tmp_path / "short.npz", _fake_arrays("single_2level")[:-2])
    with pytest.raises(WeightsError, match="56 arrays"):
        convert_kpac_npz(short, levels=2, dual_pixel=False)


class _Payload:
    """Pickles as a call to ``os.getcwd``: any callable outside numpy must be refused, not run."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (os.getcwd, ())


def test_npz_with_pickled_code_is_refused(tmp_path: Path) -> None:
    params = np.empty(2, dtype=object)
    params[0], params[1] = np.zeros(3, np.float32), _Payload()
    path = tmp_path / "evil.npz"
    np.savez(path, params=params)
    with pytest.raises(WeightsError, match="refusing"):
        convert_kpac(path)


def test_same_padding_of_stride_two_conv_is_zero_before_one_after() -> None:
    assert same_padding(16, kernel=3, stride=2) == (0, 1)
    assert same_padding(15, kernel=3, stride=2) == (1, 1)
    assert same_padding(16, kernel=5, stride=1, dilation=2) == (4, 4)
    torch.manual_seed(0)
    conv = SameConv2d(4, 5, 3, stride=2)
    x = torch.randn(1, 4, 8, 10)
    w_tf = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
    expected = _np_conv(_nhwc(x), w_tf, stride=2, pads=(0, 1, 0, 1)) + conv.bias.detach().numpy()
    got = _nhwc(conv(x).detach())
    assert got.shape == (1, 4, 5, 5)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with torch.no_grad():  # PyTorch's usual symmetric padding 1 gives another result
        assert float((F.conv2d(x, conv.weight, conv.bias, 2, 1) - conv(x)).abs().max()) > 1e-3


def test_converted_tf_conv_equals_numpy_reference(tmp_path: Path) -> None:
    """c0 (5x5, 3->48) loaded from a TF-layout array computes the TF convolution (proves the transpose)."""
    arrays = _fake_arrays("single_2level", seed=3)
    model = KPAC()
    load_strict(model, convert_kpac(_save_like_tensorlayer(tmp_path / "k.npz", arrays)), source="k")
    x = torch.randn(1, 3, 9, 12, generator=torch.Generator().manual_seed(4))
    expected = _np_conv(_nhwc(x), arrays[0].astype(np.float64), stride=1, pads=(2, 2, 2, 2)) + arrays[1]
    np.testing.assert_allclose(_nhwc(model.c0(x).detach()), expected, atol=1e-5)


def test_converted_tf_deconv_equals_numpy_reference() -> None:
    """A TF ``conv2d_transpose`` (4x4, stride 2, SAME; filter [kh,kw,out,in]) computed by scattering."""
    rng = np.random.default_rng(5)
    w_tf = rng.normal(size=(4, 4, 3, 5)).astype(np.float32)  # 5 -> 3 channels
    x = rng.normal(size=(1, 4, 6, 5)).astype(np.float32)  # NHWC
    full = np.zeros((1, 2 * 4 + 2, 2 * 6 + 2, 3))
    for y in range(4):
        for xx in range(6):
            full[0, 2 * y : 2 * y + 4, 2 * xx : 2 * xx + 4] += np.einsum("ijoc,c->ijo", w_tf, x[0, y, xx])
    expected = full[:, 1 : 1 + 8, 1 : 1 + 12]  # SAME: output 2H, the odd pad of the forward conv is 1/1
    deconv = torch.nn.ConvTranspose2d(5, 3, 4, 2, 1, bias=False)
    deconv.weight.data.copy_(tf_to_torch(w_tf))
    got = _nhwc(deconv(torch.from_numpy(x).permute(0, 3, 1, 2)).detach())
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_scale_attention_map_k_weighs_only_branch_k() -> None:
    """Saturate the attentions so only the dilation-3 branch passes; the block must equal a hand-made
    ``fuse(cat[0, 0, lrelu(conv_rate3), 0, 0])`` (TF upsamples the 5 maps 48x along channels: blockwise)."""
    torch.manual_seed(0)
    block = KPAC().blocks[0]
    with torch.no_grad():
        last, (_, shape_out) = block.scale_att[-1], block.shape_att
        last.weight.zero_()
        last.bias.copy_(torch.tensor([-30.0, -30.0, 30.0, -30.0, -30.0]))
        shape_out.weight.zero_()
        shape_out.bias.fill_(30.0)
        x = torch.randn(1, 96, 12, 10)
        branch = F.leaky_relu(F.conv2d(x, block.kernel, None, 1, 6, 3), 0.2)
        zeros = torch.zeros_like(branch)
        expected = F.leaky_relu(block.fuse(torch.cat([zeros, zeros, branch, zeros, zeros], 1)), 0.2)
        assert torch.allclose(block(x), expected, atol=1e-5)


@pytest.mark.parametrize("hparams", [{"levels": 2}, {"levels": 3, "dual_pixel": True}])
def test_forward_backward_small(hparams: dict[str, object]) -> None:
    torch.manual_seed(0)
    model = KPAC(**hparams)  # type: ignore[arg-type]
    x = torch.rand(1, 3, 32, 24) * 2 - 1
    views = torch.rand(1, 6, 32, 24) * 2 - 1 if hparams.get("dual_pixel") else None
    out = model(x, views)
    assert out.shape == x.shape
    out.square().mean().backward()
    for name in (
        "c0.weight",
        "blocks.0.kernel",
        "blocks.1.scale_att.4.weight",
        "blocks.0.shape_att.0.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_odd_size_runs_after_padding_and_is_refused_before() -> None:
    model = KPAC(levels=3).eval()
    x = torch.rand(1, 3, 37, 45)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(x)
    m = SPEC.multiple_of
    padded = F.pad(x, (0, -45 % m, 0, -37 % m), mode="reflect")
    with torch.no_grad():
        out = run_kpac(model, padded)["image"][..., :37, :45]
    assert out.shape == (1, 3, 37, 45) and torch.isfinite(out).all()


def test_zero_network_is_identity_and_dual_needs_views() -> None:
    """With all weights zero the residual vanishes: the adapter must give back its input exactly."""
    model = KPAC().eval()
    for p in model.parameters():
        p.data.zero_()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(run_kpac(model, x)["image"], x, atol=1e-6)
    with pytest.raises(UsageError):
        run_kpac(KPAC(levels=3, dual_pixel=True), x)
    assert SPEC.hparams == {"levels": 2, "dual_pixel": False} and SPEC.weights == ("kpac-2level",)
