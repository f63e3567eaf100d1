"""DMSFT: DID-ANet's map estimator key for key, the SFT modulation, and the model's contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deblurcli.archs.didanet_dme import DidanetDME
from deblurcli.archs.dmsft import DMSFT, SFTLayer
from deblurcli.errors import WeightsError
from deblurcli.methods.dmsft import (
    RADIUS_PX_PER_UNIT,
    SPEC,
    convert_didanet_checkpoint,
    convert_dmsft_checkpoint,
    load_didanet_dme,
    run_dmsft,
)
from deblurcli.zoo.state import load_strict, save_ours

SHARED = Path(__file__).resolve().parents[2] / "shared"
DIDANET_DME_PARAMS = 334_721
DMSFT_PARAMS = 5_284_899


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def didanet_layout() -> dict[str, list[int]]:
    path = SHARED / "reference" / "didanet_state_dict.json"
    if not path.is_file():
        pytest.skip("shared/reference is not available")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def model() -> DMSFT:
    torch.manual_seed(0)
    return DMSFT()


def _dme_keys(layout: dict[str, list[int]]) -> dict[str, list[int]]:
    return {k: v for k, v in layout.items() if k.split(".")[0].endswith("a")}


def test_dme_has_didanet_keys_and_shapes(didanet_layout: dict[str, list[int]], model: DMSFT) -> None:
    ref = _dme_keys(didanet_layout)
    assert sum(math.prod(s) for s in ref.values()) == DIDANET_DME_PARAMS
    ours = {k: list(v.shape) for k, v in DidanetDME().state_dict().items()}
    assert list(ours.items()) == list(ref.items())  # identical names, shapes and order
    # Inside DMSFT the rule is: DID-ANet key k -> "dme." + k.
    full = model.state_dict()
    assert {k: list(full["dme." + k].shape) for k in ref} == ref
    assert _count(model.dme) == DIDANET_DME_PARAMS


def test_parameter_counts(model: DMSFT) -> None:
    assert _count(model) == DMSFT_PARAMS
    assert _count(model.cond) == 39_648
    assert _count(model.body_sft) == 10_593
    assert len(model.body) == 15
    assert _count(SPEC.cls(**SPEC.hparams)) == DMSFT_PARAMS


def _fake_didanet(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {k: torch.randn(tuple(s), generator=g) * 0.05 for k, s in layout.items()}


def _save_pth_tar(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """The layout of DID-ANet's ``model_best.pth.tar``: a dict with a DataParallel state dict inside."""
    wrapped = {"module." + k: v for k, v in state.items()}
    torch.save({"epoch": 200, "arch": "DeBlur", "state_dict": wrapped, "best_EPE": 0.01}, path)
    return path


def _reference_dme(x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    """DID-ANet's DME written out with functional convs: bare convs, 4 plain residual blocks, linear out."""

    def conv(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.conv2d(t, w[name + ".weight"], w[name + ".bias"], padding=1)

    y = conv(x, "conv01a")
    for i in range(1, 5):
        y = y + conv(F.relu(conv(y, f"convRes0{i}a.0")), f"convRes0{i}a.2")
    return conv(conv(y, "conv02a"), "conv03a")


def test_didanet_checkpoint_initialises_dme(didanet_layout: dict[str, list[int]], tmp_path: Path) -> None:
    fake = _fake_didanet(didanet_layout)
    path = _save_pth_tar(tmp_path / "model_best.pth.tar", fake)
    net = DMSFT(blocks=1)
    head_before = net.head.weight.detach().clone()
    load_didanet_dme(net, path)
    assert torch.equal(net.dme.conv03a.weight, fake["conv03a.weight"])
    assert torch.equal(net.head.weight, head_before)  # the deblurring half (DID-ANet "*b") is not touched
    x = torch.rand(1, 3, 10, 13)
    with torch.no_grad():
        assert torch.allclose(net.dme(x), _reference_dme(x, fake), atol=1e-5)
    assert set(convert_didanet_checkpoint(path)) == set(_dme_keys(didanet_layout))


def test_didanet_bad_keys_are_named(didanet_layout: dict[str, list[int]], tmp_path: Path) -> None:
    fake = _fake_didanet(_dme_keys(didanet_layout))
    renamed = dict(fake)
    renamed["conv02x.weight"] = renamed.pop("conv02a.weight")
    path = _save_pth_tar(tmp_path / "renamed.pth.tar", renamed)
    with pytest.raises(WeightsError, match=r"conv02a\.weight") as info:
        load_didanet_dme(DMSFT(blocks=1), path)
    assert "conv02x.weight" in str(info.value)

    misshapen = dict(fake)
    misshapen["conv03a.weight"] = torch.zeros(2, 64, 3, 3)
    path = _save_pth_tar(tmp_path / "misshapen.pth.tar", misshapen)
    with pytest.raises(WeightsError, match=r"conv03a\.weight"):
        load_didanet_dme(DMSFT(blocks=1), path)


def test_convert_dmsft_roundtrip_and_refuses_didanet(
    didanet_layout: dict[str, list[int]], tmp_path: Path
) -> None:
    net = DMSFT(blocks=1)
    save_ours(tmp_path / "dmsft.safetensors", net.state_dict(), {"method": "dmsft"})
    other = DMSFT(blocks=1)
    load_strict(other, convert_dmsft_checkpoint(tmp_path / "dmsft.safetensors"), source="dmsft.safetensors")
    assert torch.equal(other.dme.conv01a.weight, net.dme.conv01a.weight)

    path = _save_pth_tar(tmp_path / "model_best.pth.tar", _fake_didanet(_dme_keys(didanet_layout)))
    with pytest.raises(WeightsError, match="DID-ANet"):
        convert_dmsft_checkpoint(path)


def test_sft_is_identity_at_init_and_parts_have_their_shapes() -> None:
    torch.manual_seed(1)
    sft = SFTLayer(channels=8, cond_channels=4)
    x, cond = torch.randn(2, 8, 5, 7), torch.randn(2, 4, 5, 7)
    assert torch.equal(sft(x, cond), x)
    with torch.no_grad():
        for p in sft.parameters():
            p.normal_()
    gamma_c, gamma_s, beta = sft.modulation(cond)
    assert gamma_c.shape == (2, 8, 1, 1)
    assert gamma_s.shape == (2, 1, 5, 7)
    assert beta.shape == (2, 8, 5, 7)
    assert torch.allclose(sft(x, cond), gamma_c.expand_as(x) * gamma_s.expand_as(x) * x + beta, atol=1e-5)


def test_sft_gamma_parts_act_as_channel_times_spatial() -> None:
    sft = SFTLayer(channels=3, cond_channels=4)
    with torch.no_grad():
        sft.gamma_channel.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
        sft.gamma_spatial.bias.fill_(0.5)
        sft.beta.bias.fill_(0.25)
    x, cond = torch.randn(1, 3, 4, 6), torch.randn(1, 4, 4, 6)
    expected = x * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) * 0.5 + 0.25
    assert torch.allclose(sft(x, cond), expected, atol=1e-6)


def test_sft_spatial_parts_are_local_and_channel_part_global() -> None:
    torch.manual_seed(2)
    sft = SFTLayer(channels=6, cond_channels=4)
    with torch.no_grad():
        for p in sft.parameters():
            p.normal_()
    cond = torch.randn(1, 4, 5, 5)
    bumped = cond.clone()
    bumped[..., 2, 3] += 1.0
    (gc0, gs0, b0), (gc1, gs1, b1) = sft.modulation(cond), sft.modulation(bumped)
    changed_s = (gs0 != gs1).flatten(1).any(0).view(5, 5)
    changed_b = (b0 != b1).any(1)[0]
    only_there = torch.zeros(5, 5, dtype=torch.bool)
    only_there[2, 3] = True
    assert torch.equal(changed_s, only_there)
    assert torch.equal(changed_b, only_there)
    assert not torch.allclose(gc0, gc1)  # gamma_c sees the whole image through global pooling


def test_forward_backward_and_map_paths(model: DMSFT) -> None:
    x = torch.rand(1, 3, 8, 6)
    image, dm = model(x)
    assert image.shape == x.shape and dm.shape == (1, 1, 8, 6)
    loss = (image - x).abs().mean() + 0.2 * dm.abs().mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # With identity SFTs the map cannot yet matter, but the modulation heads learn from the first step.
    assert grads["body.0.sft0.gamma_channel.weight"].abs().sum() > 0
    assert grads["body.0.sft0.beta.weight"].abs().sum() > 0
    assert grads["dme.conv01a.weight"].abs().sum() > 0
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        assert torch.allclose(model.forward_with_map(x, dm), image, atol=1e-6)


def test_untrained_model_ignores_the_map_trained_one_does_not(model: DMSFT) -> None:
    x = torch.rand(1, 3, 9, 8)
    flat, bumpy = torch.zeros(1, 1, 9, 8), torch.rand(1, 1, 9, 8)
    with torch.no_grad():
        assert torch.equal(model.forward_with_map(x, flat), model.forward_with_map(x, bumpy))
        net = DMSFT(blocks=2)
        net.body[0].sft0.beta.weight.normal_()
        assert not torch.allclose(net.forward_with_map(x, flat), net.forward_with_map(x, bumpy))


@pytest.mark.parametrize("shape", [(1, 3, 7, 11), (2, 3, 9, 5), (1, 3, 1, 3)])
def test_odd_sizes(shape: tuple[int, int, int, int]) -> None:
    net = DMSFT(blocks=2).eval()
    with torch.no_grad():
        image, dm = net(torch.rand(shape))
    assert image.shape == shape and dm.shape == (shape[0], 1, *shape[2:])


def test_forward_with_map_rejects_mismatched_map() -> None:
    with pytest.raises(ValueError, match="defocus map"):
        DMSFT(blocks=1).forward_with_map(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 4, 4))


def test_run_reports_non_negative_radius_map() -> None:
    net = DMSFT(blocks=1).eval()
    with torch.no_grad():
        net.dme.conv03a.bias.fill_(-0.05)  # push part of the raw map below zero
        x = torch.rand(1, 3, 8, 12)
        out = run_dmsft(net, x)
        raw = net(x)[1]
    assert set(out) == {"image", *SPEC.maps}
    assert out["image"].shape == x.shape and out["defocus"].shape == (1, 1, 8, 12)
    assert (raw < 0).any() and (out["defocus"] >= 0).all()
    assert torch.allclose(out["defocus"], raw.clamp(min=0) * RADIUS_PX_PER_UNIT)
    with pytest.raises(TypeError):
        run_dmsft(torch.nn.Identity(), x)


def test_spec() -> None:
    assert SPEC.name == "dmsft" and SPEC.cls is DMSFT and SPEC.multiple_of == 1
    assert SPEC.maps == ("defocus",) and "px" in SPEC.map_units["defocus"]
    assert SPEC.convert is convert_dmsft_checkpoint and SPEC.weights == ("dmsft",)
