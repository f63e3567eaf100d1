"""IFAN: exact architecture (parameter counts, official keys), reference tensors, IAC, converters."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from deblurcli.archs.iac import filter_channels, iac, iac_step
from deblurcli.archs.ifan import IFAN, IFANReblur, downsample8, warp_by_disparity
from deblurcli.archs.reference import key_seeded_state
from deblurcli.errors import WeightsError
from deblurcli.methods.ifan import (
    SPEC,
    canonical_state,
    convert_ifan_checkpoint,
    infer_hparams,
    run_ifan,
    split_reblur,
)
from deblurcli.zoo.state import load_strict, save_ours

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "iac_memory.py"


def _reference(name: str) -> Path:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"shared reference data not available: {path}")
    return path


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _seeded_fill(module: torch.nn.Module, gain: float) -> None:
    """The reference README's key-seeded fill: every tensor from a generator seeded by crc32 of its key."""
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    module.load_state_dict(key_seeded_state(shapes, gain=gain), strict=True)


def _unfold_iac():  # the reference implementation lives in the benchmark, so there is one copy of it
    spec = importlib.util.spec_from_file_location("iac_memory", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.iac_unfold


# -- architecture ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("iterations", "net", "reblur"),
    [
        (8, 9_436_740, 9_632_040),
        (17, 10_476_996, 19_139_685),
        (26, 11_517_252, 28_235_709),
        (35, 12_557_508, 37_719_141),
        (44, 13_597_764, 47_008_869),
    ],
)
def test_parameter_counts_of_every_variant(iterations: int, net: int, reblur: int) -> None:
    with torch.device("meta"):
        assert _count(IFAN(iterations=iterations)) == net
        assert _count(IFANReblur(iterations=iterations)) == reblur


def test_dual_pixel_parameter_count_and_first_filter_conv() -> None:
    with torch.device("meta"):
        model = IFAN(dual_pixel=True)
    assert _count(model) == 10_477_860
    assert tuple(model.state_dict()["kconv1_1.0.weight"].shape) == (32, 6, 3, 3)


def test_state_dict_matches_official_keys_shapes_and_order() -> None:
    expected = json.loads(_reference("ifan_state_dict.json").read_text())
    with torch.device("meta"):
        state = IFAN().state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, v) for k, v in expected.items()]
    assert sum(v.numel() for v in state.values()) == 10_476_996


def test_matches_the_official_reference_tensors() -> None:
    data = np.load(_reference("ifan_reference.npz"))
    model = IFAN().eval()
    _seeded_fill(model, 1.0)
    x = torch.from_numpy(data["input"])
    with torch.no_grad():
        out, disparity = model(x)
        feats = model.encode(x)
        context, _ = model.filter_context(x)
        e_bs = iac(feats[-1], model.filters(context), iterations=17)
        lean = model.adaptive_filtering(feats[-1], context)

    def diff(t: torch.Tensor, name: str) -> float:
        return (t - torch.from_numpy(data[name])).abs().max().item()

    assert diff(out, "output_raw") < 1e-4
    assert diff(out.clamp(0, 1), "output") < 1e-4
    assert diff(disparity, "disparity") < 1e-4
    assert diff(feats[-1], "e_B") < 1e-4
    # IAC amplifies to std ~4 (peaks ~100): fp32 rounding alone moves it by ~5e-4 (float64 differs from the
    # stored tensor by 7e-4, the reference's own rounding), and an AVX-512 CPU's kernels round differently
    # again (1.0e-3 measured), so the bound is relative to the tensor's scale: 2e-5 of it, ~2e-3, where
    # filters off by 0.1 % move it by 1.7.
    scale = float(np.abs(data["iac_out"]).max())
    assert diff(e_bs, "iac_out") < 2e-5 * scale
    assert diff(lean, "iac_out") < 2e-5 * scale


def test_forward_backward_small_and_training_branches() -> None:
    torch.manual_seed(0)
    model, reblur = IFAN(iterations=2), IFANReblur(iterations=2, reblur_iterations=2)
    blurry, sharp = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    right, left = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    out, disparity, filters = model.forward_with_filters(blurry)
    assert out.shape == blurry.shape and disparity.shape == (1, 1, 4, 6)
    assert filters.shape == (1, 2 * 896, 4, 6)
    lean, _ = model(blurry)
    assert torch.allclose(lean, out, atol=1e-5)
    warped = warp_by_disparity(downsample8(right), model.estimate_disparity(right))
    reblurred = reblur(filters, sharp)
    assert reblurred.shape == (1, 3, 4, 6)
    loss = ((out - sharp) ** 2).mean() + ((warped - downsample8(left)) ** 2).mean()
    loss = loss + ((reblurred - downsample8(blurry)) ** 2).mean()
    loss.backward()
    head = model.F[3].weight.grad
    assert head is not None and torch.isfinite(head).all()
    # kernel2 rows (384..767) are read only by the reblurring loss, through the undetached filter tensor
    assert head[:384].abs().sum() > 0 and head[384:768].abs().sum() > 0
    assert all(p.grad is not None for p in reblur.parameters())
    assert model.DME[3].weight.grad.abs().sum() > 0


def test_dual_pixel_needs_views() -> None:
    model = IFAN(iterations=1, dual_pixel=True).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out, _ = model(x, torch.rand(1, 6, 16, 16))
    assert out.shape == x.shape
    with pytest.raises(ValueError):
        model(x)
    with pytest.raises(ValueError):
        IFAN(iterations=1)(x, torch.rand(1, 6, 16, 16))


# -- IAC ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("batch", "channels", "iterations", "size"), [(2, 4, 2, (5, 7)), (1, 128, 3, (8, 12))])
def test_view_iac_equals_unfold_iac(batch: int, channels: int, iterations: int, size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(batch, channels, *size, generator=gen)
    filters = torch.randn(batch, filter_channels(channels=channels, iterations=iterations), *size, generator=gen)
    assert torch.allclose(iac(feats, filters, iterations=iterations), _unfold_iac()(feats, filters,
                          iterations=iterations), atol=1e-5, rtol=1e-5)


def test_iac_reuses_kernel1_and_ignores_kernel2() -> None:
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(1, 4, 6, 6, generator=gen)
    filters = torch.randn(1, filter_channels(channels=4, iterations=2), 6, 6, generator=gen)
    changed = filters.clone()
    for i in range(2):
        changed[:, i * 24 + 12 : i * 24 + 24] = 5.0  # the kernel2 block of each iteration
    assert torch.equal(iac(feats, filters, iterations=2), iac(feats, changed, iterations=2))


def test_iac_step_replicate_pads_and_activates_as_told() -> None:
    feats = torch.full((1, 2, 4, 5), -3.0)
    taps = torch.full((1, 6, 4, 5), 0.5)  # vertical sum 1.5x, horizontal 1.5x again: 2.25x everywhere
    bias = torch.zeros(1, 2, 4, 5)
    assert torch.allclose(iac_step(feats, taps, bias, activate=False), torch.full_like(feats, -6.75))
    assert torch.allclose(iac_step(feats, taps, bias), torch.full_like(feats, -0.675))


def test_warp_by_disparity_shifts_horizontally() -> None:
    image = torch.arange(24.0).view(1, 1, 4, 6)
    assert torch.allclose(warp_by_disparity(image, torch.zeros(1, 1, 4, 6)), image)
    shifted = warp_by_disparity(image, torch.ones(1, 1, 4, 6))
    assert torch.allclose(shifted[..., :5], image[..., 1:]) and torch.all(shifted[..., 5] == 0)


# -- converters and spec --------------------------------------------------------------------------------------

def _official_checkpoint() -> dict[str, torch.Tensor]:
    keys = json.loads(_reference("ifan_checkpoint_keys.json").read_text())
    return {k: torch.full(tuple(v), float(i % 7)) for i, (k, v) in enumerate(keys.items())}


def test_official_checkpoint_loads_through_converter(tmp_path: Path) -> None:
    path = tmp_path / "IFAN.pytorch"
    torch.save(_official_checkpoint(), path)
    state = convert_ifan_checkpoint(path)
    assert len(state) == 158 and not any(k.startswith(("module.", "reblurNet.")) for k in state)
    assert infer_hparams(state) == {"iterations": 17, "dual_pixel": False}
    model = IFAN()
    load_strict(model, state, source=path.name)
    assert torch.equal(model.F[3].bias, state["F.3.bias"])

    net, rbn = split_reblur(convert_ifan_checkpoint(path, keep_reblur=True))
    assert len(net) == 158 and len(rbn) == 20
    load_strict(IFANReblur(), rbn, source=path.name)


def test_ifan_rs_and_own_safetensors_load(tmp_path: Path) -> None:
    official = {k: v for k, v in _official_checkpoint().items() if k.startswith("module.Network.")}
    mirror = tmp_path / "IFAN.safetensors"
    save_file(official, str(mirror))
    state = convert_ifan_checkpoint(mirror)
    ours = tmp_path / "ifan.safetensors"
    save_ours(ours, state, {"method": "ifan"})
    again = convert_ifan_checkpoint(ours)
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    load_strict(IFAN(), again, source=ours.name)


@pytest.mark.parametrize("fault", ["missing", "unexpected", "misshapen"])
def test_bad_checkpoint_names_the_key(fault: str) -> None:
    raw = {k: v for k, v in _official_checkpoint().items() if k.startswith("module.Network.")}
    key = "module.Network.DME.3.weight"
    if fault == "missing":
        del raw[key]
    elif fault == "unexpected":
        raw["module.Network.DME.4.weight"] = torch.zeros(1)
        key = "DME.4.weight"
    else:
        raw[key] = torch.zeros(1, 128, 5, 5)
    state = canonical_state(raw, source="bad.pytorch")
    with pytest.raises(WeightsError, match=key.removeprefix("module.Network.").replace(".", r"\.")):
        load_strict(IFAN(), state, source="bad.pytorch")


def test_converter_rejects_non_tensors_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="F.3.bias"):
        canonical_state({"module.Network.F.3.bias": 3}, source="x")
    with pytest.raises(WeightsError):
        canonical_state({"module.reblurNet.RBF.3.bias": torch.zeros(357)}, source="x")
    with pytest.raises(WeightsError):
        infer_hparams({"F.3.weight": torch.zeros(100, 128, 1, 1), "kconv1_1.0.weight": torch.zeros(32, 3, 3, 3)})


def test_run_adapter_and_spec() -> None:
    assert SPEC.multiple_of == 8 and SPEC.receptive_field % 8 == 0 and SPEC.maps == ("disparity",)
    model = SPEC.cls(**SPEC.hparams).eval()
    with torch.no_grad():
        outs = SPEC.run(model, torch.rand(1, 3, 16, 24))
    assert outs["image"].shape == (1, 3, 16, 24) and outs["disparity"].shape == (1, 1, 2, 3)
    with pytest.raises(WeightsError):
        run_ifan(None, torch.rand(1, 3, 8, 8))
