"""DRBNet: exact layout of the released checkpoints, exact arithmetic against the authors' code, and the
checkpoint reader (bare ``.pth``, the released zip, our safetensors)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deblurcli.archs.drbnet import DRBNet, apply_dynamic_kernel
from deblurcli.archs.reference import key_seeded_state
from deblurcli.errors import UsageError, WeightsError
from deblurcli.methods.drbnet import SPEC, convert_drbnet_checkpoint, run_drbnet
from deblurcli.zoo.state import load_strict, save_ours

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"


def _reference_shapes(name: str) -> dict[str, list[int]]:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"shared reference data absent: {path}")
    return json.loads(path.read_text())


@pytest.mark.parametrize(("dual", "count"), [(False, 11_689_616), (True, 11_690_480)])
def test_parameter_count(dual: bool, count: int) -> None:
    assert sum(p.numel() for p in DRBNet(dual_pixel=dual).parameters()) == count


@pytest.mark.parametrize(
    ("dual", "name"), [(False, "drbnet_state_dict.json"), (True, "drbnet_dual_state_dict.json")]
)
def test_keys_and_shapes_match_release_in_order(dual: bool, name: str) -> None:
    ref = _reference_shapes(name)
    ours = [(k, list(v.shape)) for k, v in DRBNet(dual_pixel=dual).state_dict().items()]
    assert ours == list(ref.items())


def test_matches_authors_outputs_and_heads() -> None:
    """Output and the four head maps equal the authors' implementation on the stored input (gain 0.7)."""
    shapes = _reference_shapes("drbnet_state_dict.json")
    data = np.load(REFERENCE / "drbnet_reference.npz")
    model = DRBNet().eval()
    load_strict(model, key_seeded_state(shapes, gain=0.7), source="key-seeded")
    with torch.no_grad():
        heads = model.forward_heads(torch.from_numpy(data["input"]))
        final = model(torch.from_numpy(data["input"]))
    for name in ("output", "kernel_d8", "residual_d8", "kernel_d1", "residual_d1"):
        expected = torch.from_numpy(data[name])
        assert heads[name].shape == expected.shape, name
        assert float((heads[name] - expected).abs().max()) < 1e-4, name
    assert torch.equal(final, heads["output"])
    # the heads are not trivially small: a wrong kernel layout would show
    assert float(heads["kernel_d1"].abs().max()) > 0.01


def test_dynamic_kernel_is_row_major_with_replicate_padding() -> None:
    image = torch.arange(2 * 6 * 7, dtype=torch.float32).reshape(1, 2, 6, 7)
    kernel = torch.zeros(1, 49, 6, 7)
    kernel[:, 0 * 7 + 6] = 1.0  # tap at row offset -3, column offset +3
    out = apply_dynamic_kernel(image, kernel)
    rows = (torch.arange(6) - 3).clamp(0, 5)
    cols = (torch.arange(7) + 3).clamp(0, 6)
    assert torch.equal(out, image[:, :, rows][:, :, :, cols])


def _write_pth(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


def test_converter_reads_pth_zip_and_safetensors(tmp_path: Path) -> None:
    single = key_seeded_state(_reference_shapes("drbnet_state_dict.json"), gain=0.7)
    dual = key_seeded_state(_reference_shapes("drbnet_dual_state_dict.json"), gain=0.7)
    pth = _write_pth(tmp_path / "single_image_defocus_deblurring.pth", single)
    dual_pth = _write_pth(tmp_path / "dual_images_defocus_deblurring.pth", dual)
    archive = tmp_path / "ckpts.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.write(pth, "ckpts/single/single_image_defocus_deblurring.pth")
        zf.write(dual_pth, "ckpts/dual/dual_images_defocus_deblurring.pth")

    probe = "upconv0_res.2.0.weight"
    for source in (pth, archive):
        model = DRBNet()
        load_strict(model, convert_drbnet_checkpoint(source), source=source.name)
        assert torch.equal(model.state_dict()[probe], single[probe])
    dual_model = DRBNet(dual_pixel=True)
    load_strict(dual_model, convert_drbnet_checkpoint(archive, dual_pixel=True), source="zip")
    assert dual_model.conv1_1[0].weight.shape[1] == 6

    ours = tmp_path / "drbnet.safetensors"
    save_ours(ours, single, {"method": "drbnet"})
    assert torch.equal(SPEC.convert(ours)[probe], single[probe])  # type: ignore[misc]


def test_converter_errors_name_the_bad_key(tmp_path: Path) -> None:
    state = {k: torch.zeros(v) for k, v in _reference_shapes("drbnet_state_dict.json").items()}
    state["upconv0_res.2.weight"] = state.pop("upconv0_res.2.0.weight")  # a kernel-head style name
    with pytest.raises(WeightsError, match=r"upconv0_res\.2\.0\.weight"):
        load_strict(
            DRBNet(), convert_drbnet_checkpoint(_write_pth(tmp_path / "bad.pth", state)), source="bad"
        )
    state = {k: torch.zeros(v) for k, v in _reference_shapes("drbnet_state_dict.json").items()}
    state["conv1_1.0.weight"] = torch.zeros(32, 6, 3, 3)  # dual weights offered to the single model
    with pytest.raises(WeightsError, match=r"conv1_1\.0\.weight"):
        load_strict(
            DRBNet(), convert_drbnet_checkpoint(_write_pth(tmp_path / "dual.pth", state)), source="dual"
        )


def test_zip_without_unambiguous_checkpoint_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/x.pth", b"0")
        zf.writestr("b/y.pth", b"0")
    with pytest.raises(WeightsError, match="which checkpoint"):
        convert_drbnet_checkpoint(archive)


def test_forward_backward_small() -> None:
    torch.manual_seed(0)
    model = DRBNet()
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    out = model.forward_heads(x)
    loss = (out["output"] - x).abs().mean() + out["kernel_d8"].square().mean()
    loss.backward()
    for name in ("conv1_1.0.weight", "img_d8_feature.0.0.weight", "upconv0_kernel.2.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@pytest.mark.parametrize(("h", "w"), [(64, 96), (72, 88)])
def test_run_adapter_shapes_and_range(h: int, w: int) -> None:
    """[0,1] in, [0,1] out, brightness carried through (the network itself works in [-1,1])."""
    model = DRBNet().eval()
    load_strict(
        model, key_seeded_state(_reference_shapes("drbnet_state_dict.json"), gain=0.7), source="seeded"
    )
    means = []
    for level in (0.1, 0.5, 0.9):
        with torch.no_grad():
            out = run_drbnet(model, torch.full((1, 3, h, w), level))
        assert set(out) == {"image"}
        assert out["image"].shape == (1, 3, h, w)
        assert float(out["image"].min()) >= 0.0 and float(out["image"].max()) <= 1.0
        means.append(float(out["image"].mean()))
    assert means[0] < 0.25 and 0.4 < means[1] < 0.6 and means[2] > 0.75


def test_size_and_mode_errors() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        DRBNet()(torch.zeros(1, 3, 60, 64))
    with pytest.raises(UsageError):
        run_drbnet(DRBNet(dual_pixel=True), torch.zeros(1, 3, 16, 16))
    assert SPEC.multiple_of % 8 == 0 and SPEC.cls is DRBNet and SPEC.hparams == {"dual_pixel": False}
