"""Our own network: exact sizes, the identity start, the map head, loading, and the recipe's loss and EMA."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from deblurcli.archs.refocus import Refocus, Up
from deblurcli.bench.macs import count_macs
from deblurcli.errors import WeightsError
from deblurcli.methods.refocus import SPEC, convert_refocus, infer_refocus_hparams, run_refocus
from deblurcli.zoo.state import load_strict
from training.recipes import recipe_class
from training.recipes.refocus import RefocusObjective

LARGE = {"width": 64, "enc_blocks": (2, 2), "mid_blocks": 6, "dec_blocks": (2, 2)}


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_are_exact() -> None:
    assert n_params(Refocus()) == 1_181_008
    assert n_params(Refocus(**SPEC.hparams)) == 1_181_008
    assert n_params(Refocus(width=48)) == 2_650_096
    assert n_params(Refocus(**LARGE)) == 8_983_440


def test_default_size_fits_the_cpu_budget_at_720p() -> None:
    macs = count_macs(lambda: Refocus(), lambda net, x: net(x), 720, 1280)
    assert macs == 33_944_371_200
    assert macs <= 40e9


def test_untrained_network_is_the_identity_and_the_map_is_full_size() -> None:
    torch.manual_seed(0)
    net = Refocus().eval()
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        image, radius = net(x)
    assert torch.equal(image, x)
    assert radius.shape == (2, 1, 40, 56)
    with torch.no_grad():
        out = run_refocus(net, x)
    assert set(out) == {"image", *SPEC.maps} and float(out["defocus"].min()) >= 0.0


def test_upsampling_cannot_print_a_grid() -> None:
    """Whatever its weights, ``Up`` turns a smooth coarse ramp into a smooth ramp: no 2x2 block pattern.

    The pixel-shuffle decoder it replaces gave each pixel of a block its own map of one coarse feature, and
    a trained network printed those blocks into smooth skies (``benchmarks/refocus_grid.py``)."""
    torch.manual_seed(0)
    up = Up(cin=16, cout=8)
    torch.nn.init.normal_(up.conv.weight)
    ramp = torch.linspace(0.0, 1.0, 12).view(1, 1, 1, 12).expand(1, 16, 12, 12) * torch.rand(1, 16, 1, 1)
    with torch.no_grad():
        out = up(ramp)[..., 2:-2, 2:-2]  # away from the replicated border
    assert out.shape[-1] == 20 and float(out.std()) > 0.1
    curvature = out[..., 2:] - 2 * out[..., 1:-1] + out[..., :-2]
    assert float(curvature.abs().max()) < 1e-5
    assert float((out[..., 1:, :] - out[..., :-1, :]).abs().max()) < 1e-5  # constant down the columns


def test_sizes_other_than_multiples_of_8_are_refused_by_the_network() -> None:
    with pytest.raises(RuntimeError):
        Refocus()(torch.rand(1, 3, 36, 36))


def test_hparams_are_read_off_a_state_dict_and_files_load_strictly(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = Refocus(**LARGE)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    converted = convert_refocus(tmp_path / "w.safetensors")
    hp = infer_refocus_hparams(converted)
    assert hp == LARGE
    other = Refocus(**hp)
    load_strict(other, converted, source="w")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(other(x)[1], net(x)[1])
    with pytest.raises(WeightsError, match="unexpected 28 key"):
        load_strict(Refocus(), converted, source="w")
    with pytest.raises(WeightsError, match="head.weight"):
        infer_refocus_hparams({"tail.weight": torch.zeros(12, 32, 3, 3)})


def test_image_loss_weighs_blurred_pixels_more_and_map_loss_is_in_px() -> None:
    torch.manual_seed(0)
    recipe = recipe_class("refocus").for_stage(1, crop=16, batch=2)
    obj = recipe.objective(recipe.build_net())
    assert isinstance(obj, RefocusObjective)
    sharp = torch.rand(1, 3, 16, 16)
    error = torch.zeros_like(sharp)
    error[..., :8] = 0.1  # the same error on the left (in focus) or the right (6 px blur) half
    radius = torch.zeros(1, 1, 16, 16)
    radius[..., 8:] = 6.0
    left = obj({"blur": sharp + error, "sharp": sharp, "defocus": radius})
    right = obj({"blur": sharp + error.flip(-1), "sharp": sharp, "defocus": radius})
    # identity network: the loss sees the input error; on blurred pixels it weighs (1 + 3) / 1 = 4x more
    assert float(right["l1"]) == pytest.approx(4.0 * float(left["l1"]), rel=1e-5)
    assert float(left["map"]) == pytest.approx(3.0, abs=0.5)


@pytest.mark.parametrize("edge_weight", [0.0, 1.0, 0.5])
def test_edge_weight_counts_in_focus_pixels_next_to_sharp_edges_like_blur(edge_weight: float) -> None:
    recipe = replace(recipe_class("refocus").for_stage(1, crop=32, batch=1), edge_weight=edge_weight)
    obj = recipe.objective(recipe.build_net())
    sharp = torch.full((1, 3, 32, 32), 0.2)
    sharp[..., 16:] = 0.6  # one strong vertical edge between columns 15 and 16; every pixel in focus
    radius = torch.zeros(1, 1, 32, 32)

    def loss_with_error_at(cols: slice) -> float:
        error = torch.zeros_like(sharp)
        error[..., cols] = 0.05
        return float(obj({"blur": sharp + error, "sharp": sharp, "defocus": radius})["l1"])

    near, far = loss_with_error_at(slice(12, 16)), loss_with_error_at(slice(0, 4))  # 0-3 px vs 12-15 px away
    # 1 + blur_weight * edge_weight (blur_weight 3) against 1, before the per-batch normalisation
    assert near / far == pytest.approx(1.0 + 3.0 * edge_weight, rel=1e-5)


def test_ema_follows_the_weights_with_a_ramped_decay() -> None:
    recipe = recipe_class("refocus").for_stage(1, crop=16, batch=2)
    obj = recipe.objective(recipe.build_net())
    assert isinstance(obj, RefocusObjective)
    assert obj.export_net is obj.ema and not any(p.requires_grad for p in obj.ema.parameters())
    p, e = obj.net.head.bias, obj.ema.head.bias
    with torch.no_grad():
        p.fill_(1.0)
        e.fill_(0.0)
    obj.after_step(1)  # decay min(0.999, 2 / 11)
    assert torch.allclose(e, torch.full_like(e, 1.0 - 2.0 / 11.0))


def test_learning_rate_warms_up_then_follows_a_cosine() -> None:
    r = recipe_class("refocus").for_stage(1, warmup=10, min_lr_factor=0.01).with_iterations(110)
    assert r.lr_factor(0) == pytest.approx(0.1) and r.lr_factor(9) == pytest.approx(1.0)
    assert r.lr_factor(60) == pytest.approx(0.01 + 0.99 * 0.5)
    assert r.lr_factor(109) == pytest.approx(0.01, abs=1e-3)
