"""The four published recipes: their numbers, their loss terms, a few engine iterations each on tiny
synthetic data, and overfitting one fixed batch (the loss must fall by a stated factor in bounded steps)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from deblurcli.cli.train import RecipeName
from deblurcli.errors import WeightsError
from deblurcli.zoo.state import load_strict, read_metadata
from training.engine.loop import train
from training.losses import VGGFeatureLoss, defocus_weights, multiscale_l1, weighted_l2
from training.recipes import RECIPES, recipe_class
from training.recipes.base import Recipe


def scene(n: int, size: int, seed: int = 0) -> dict[str, Tensor]:
    """Smooth texture + fine noise as the sharp image; a box blur as the input; +-1 px shifted views."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(
        torch.rand(n, 3, size // 4, size // 4, generator=g), size=(size, size), mode="bilinear"
    )
    sharp = (coarse + 0.25 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)
    blur = F.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    return {
        "blur": blur,
        "sharp": sharp,
        "left": blur.roll(1, -1),
        "right": blur.roll(-1, -1),
        "defocus": torch.full((n, 1, size, size), 0.5),
    }


def items(n: int, size: int, seed: int = 0) -> list[dict[str, Tensor]]:
    b = scene(n, size, seed)
    return [{k: v[i] for k, v in b.items()} for i in range(n)]


# -- published numbers ------------------------------------------------------------------------------------


def test_ifan_recipe_is_the_authors() -> None:
    r = recipe_class("ifan").for_stage(1)
    assert (r.iterations, r.batch, r.crop, r.lr, r.clip_grad) == (600_000, 8, 256, 1e-4, 0.5)
    assert [r.lr_factor(s) for s in (0, 499_999, 500_000, 549_999, 550_000, 599_999)] == [
        1,
        1,
        0.5,
        0.5,
        0.25,
        0.25,
    ]
    short = r.with_iterations(600)
    assert short.milestones == (500, 550) and short.lr_factor(549) == 0.5
    opt = r.optimizer([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.RAdam)
    aug = r.augment()  # ifan.md section 5: noise p = 0.05 up to sqrt(0.005), greyscale p = 0.3, downscale p = 0.5
    assert (aug.crop, aug.noise_p, aug.gray_p, aug.scale_p, aug.scale_range) == (256, 0.05, 0.3, 0.5, (0.7, 1.0))
    assert aug.noise_sigma[1] == pytest.approx(0.0707, abs=1e-4) and not aug.flips and not aug.rot90
    group = opt.param_groups[0]
    assert group["weight_decay"] == 0.01 and group["decoupled_weight_decay"] is True


def test_drbnet_stages_and_linear_decay() -> None:
    cls = recipe_class("drbnet")
    one, two = cls.for_stage(1), cls.for_stage(2)
    assert (one.lr, one.epochs, one.batch, one.crop) == (1e-4, 200, 8, 320)
    assert (two.lr, two.epochs) == (1e-5, 100)
    fitted = one.fit_to_data(11_261)
    assert fitted.iterations == math.ceil(200 * 11_261 / 8)
    r = one.with_iterations(100)
    assert [r.lr_factor(s) for s in (0, 49, 50, 75, 99)] == pytest.approx([1, 1, 1, 0.5, 0.02])
    assert isinstance(r.optimizer([torch.nn.Parameter(torch.zeros(1))]), torch.optim.RAdam)
    assert r.optimizer([torch.nn.Parameter(torch.zeros(1))]).param_groups[0]["betas"] == (0.9, 0.99)


def test_dmsft_and_kpac_numbers() -> None:
    d = recipe_class("dmsft")
    assert [d.for_stage(s).epochs for s in (1, 2, 3)] == [400, 200, 400]
    assert (d.for_stage(1).batch, d.for_stage(1).crop, d.for_stage(1).lr) == (16, 256, 1e-4)
    assert d.for_stage(1).augment().flips and d.for_stage(1).augment().rot90
    k = recipe_class("kpac").for_stage(1)
    assert (k.batch, k.lr, k.perceptual) == (8, 1e-4, 0.0)
    assert isinstance(k.optimizer([torch.nn.Parameter(torch.zeros(1))]), torch.optim.Adam)


def test_ifan_initialisation_uses_gain_one_and_one_and_a_half_for_the_filter_predictor() -> None:
    torch.manual_seed(0)
    net = recipe_class("ifan").for_stage(1, net_iterations=8).build_net()

    def ratio(w: Tensor) -> float:  # std / (Xavier std at gain 1)
        fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
        return float(w.detach().std()) / math.sqrt(2.0 / (fan_in + fan_out))

    assert ratio(net.conv2_2[0].weight) == pytest.approx(1.0, rel=0.05)
    assert ratio(net.F[0][0].weight) == pytest.approx(1.5, rel=0.05)
    assert float(net.conv1_1[0].bias.detach().abs().max()) == 0.0


# -- loss terms -------------------------------------------------------------------------------------------


def test_vgg_layers_2_7_14_are_conv1_2_conv2_2_conv3_3() -> None:
    loss = VGGFeatureLoss(weights=None)
    picked = [loss.features[i] for i in loss.layers]
    assert [type(m).__name__ for m in picked] == ["Conv2d"] * 3
    assert [m.out_channels for m in picked] == [64, 128, 256]
    assert len(loss.features) == 15 and not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 32, 32)
    assert float(loss(x, x)) == 0.0 and float(loss(x, x.flip(-1))) > 0.0


def test_vgg_backbone_file_is_pluggable(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = VGGFeatureLoss(weights=None).features
    path = tmp_path / "vgg19.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = VGGFeatureLoss(weights=path)
    pairs = zip(source.parameters(), loaded.features.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    save_file({"classifier.0.weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="not a VGG"):
        VGGFeatureLoss(weights=tmp_path / "bad.safetensors")


def test_weighted_l2_and_multiscale_l1() -> None:
    dm = torch.rand(2, 1, 8, 8) + torch.tensor([0.0, 5.0]).view(2, 1, 1, 1)
    w = defocus_weights(dm)
    assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.ones(2))
    assert torch.equal(defocus_weights(torch.zeros(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    out, gt = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert float(weighted_l2(out, gt, torch.ones(1, 1, 8, 8))) == pytest.approx(1.0)
    target = torch.rand(1, 3, 16, 16)
    pyramid = [F.avg_pool2d(target, s) for s in (8, 4, 2)] + [target]
    assert float(multiscale_l1(pyramid, target)) == pytest.approx(0.0, abs=1e-7)


def test_drbnet_objective_sees_all_four_scales() -> None:
    r = recipe_class("drbnet").for_stage(1, crop=32)
    net = r.build_net()
    obj = r.objective(net)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    est = obj.pyramid(x)
    assert [tuple(e.shape[-2:]) for e in est] == [(4, 4), (8, 8), (16, 16), (32, 32)]
    assert torch.equal(est[-1], net(x))
    net(x)  # validation-style calls must not accumulate estimates
    assert obj._coarse is None


def test_refocus_large_is_the_gpu_variant_and_its_file_loads_as_refocus(tmp_path: Path) -> None:
    """The large recipe only changes size and batch: its export is a ``refocus`` file whose metadata
    builds the 8.98 M-parameter network."""
    recipe = recipe_class("refocus-large").for_stage(1, crop=16, batch=2).with_iterations(1)
    assert recipe.name == "refocus-large" and recipe.method == "refocus"
    assert sum(p.numel() for p in recipe.build_net().parameters()) == 8_983_440
    assert (recipe_class("refocus-large")().crop, recipe_class("refocus-large")().batch) == (256, 32)
    train(recipe, items(2, 24), out=tmp_path, device="cpu")
    meta = read_metadata(tmp_path / "final.safetensors")
    assert meta["method"] == "refocus" and meta["recipe"]["recipe"] == "refocus-large"
    spec = importlib.import_module("deblurcli.methods.refocus").SPEC
    net = spec.cls(**{**spec.hparams, **meta["hparams"]})
    load_strict(net, spec.convert(tmp_path / "final.safetensors"), source="export")
    assert sum(p.numel() for p in net.parameters()) == 8_983_440
    assert {r.value for r in RecipeName} == set(RECIPES)  # the CLI offers exactly the registered recipes


# -- through the engine, and overfitting ------------------------------------------------------------------

RUNS = [
    pytest.param("ifan", 1, {"net_iterations": 8}, id="ifan"),
    pytest.param("drbnet", 1, {}, id="drbnet"),
    pytest.param("dmsft", 1, {}, id="dmsft-stage1"),
    pytest.param("dmsft", 3, {}, id="dmsft-stage3"),
    pytest.param("kpac", 1, {}, id="kpac"),
    pytest.param("refocus", 1, {}, id="refocus"),
]


@pytest.mark.parametrize(("name", "stage", "extra"), RUNS)
def test_every_recipe_trains_and_exports_through_the_engine(
    tmp_path: Path, name: str, stage: int, extra: dict[str, int]
) -> None:
    recipe = recipe_class(name).for_stage(stage, crop=16, batch=2, **extra).with_iterations(2)
    result = train(recipe, items(3, 24), out=tmp_path, val=items(1, 24, seed=5), device="cpu", val_every=2)
    assert result.step == 2 and result.val_psnr is not None and math.isfinite(result.val_psnr)
    meta = read_metadata(tmp_path / "final.safetensors")
    assert meta["method"] == name and meta["recipe"]["stage"] == stage
    assert meta["hparams"] == recipe.net_hparams()
    # What `defocus deblur --method NAME --weights final.safetensors` does with the file:
    try:
        spec = importlib.import_module(f"deblurcli.methods.{name}").SPEC
    except ModuleNotFoundError:
        pytest.skip(f"deblurcli.methods.{name} is not there yet")
    hparams = {**spec.hparams, **meta["hparams"]}
    load_strict(spec.cls(**hparams), spec.convert(tmp_path / "final.safetensors"), source="export")


def overfit(recipe: Recipe, steps: int, size: int) -> tuple[float, float]:
    torch.manual_seed(0)
    obj = recipe.objective(recipe.build_net())
    params = [p for p in obj.parameters() if p.requires_grad]
    opt = recipe.optimizer(params)
    batch = scene(2, size)
    history = []
    for _ in range(steps):
        loss = obj(batch)["loss"]
        loss.backward()
        if recipe.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(params, recipe.clip_grad)
        opt.step()
        opt.zero_grad()
        history.append(float(loss.detach()))
    return history[0], min(history[-3:])


# (recipe, stage, overrides, steps, crop, factor by which the loss must fall)
OVERFIT = [
    pytest.param("kpac", 1, {}, 20, 32, 1.2, id="kpac"),
    pytest.param("dmsft", 1, {}, 20, 16, 1.5, id="dmsft-stage1"),
    pytest.param("drbnet", 1, {}, 25, 32, 1.3, id="drbnet"),
    pytest.param("ifan", 1, {"net_iterations": 8}, 25, 32, 1.5, id="ifan"),
    pytest.param("refocus", 1, {"warmup": 1}, 40, 32, 1.3, id="refocus"),
]


@pytest.mark.parametrize(("name", "stage", "extra", "steps", "size", "factor"), OVERFIT)
def test_recipe_overfits_a_fixed_batch(
    name: str, stage: int, extra: dict[str, int], steps: int, size: int, factor: float
) -> None:
    recipe = recipe_class(name).for_stage(stage, crop=size, batch=2, lr=1e-3, **extra)
    first, last = overfit(recipe, steps, size)
    assert last < first / factor, f"{name}: loss {first:.4g} -> {last:.4g}, expected a {factor}x fall"
