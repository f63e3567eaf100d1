"""The optimised inference path (what ``load_method`` returns) against the plain network, and the guard that
keeps half precision from running emulated on a CPU that lacks it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from deblurcli import api
from deblurcli.archs.kpac import KPAC
from deblurcli.cli import app
from deblurcli.engine import device as device_mod
from deblurcli.engine.device import cpu_has_native, pick_dtype, resolve_precision
from deblurcli.errors import DeviceError
from deblurcli.methods.loader import load_method

CPU = torch.device("cpu")
NETWORKS = ("ifan", "kpac", "drbnet", "dmsft", "refocus")


@pytest.mark.parametrize("name", NETWORKS)
def test_optimised_path_matches_plain_eager(name: str) -> None:
    torch.manual_seed(0)
    loaded = load_method(name, device=CPU, random_weights_for_testing=True)
    assert loaded.module is not None
    plain = loaded.spec.cls(**loaded.hparams).eval()  # type: ignore[misc]
    plain.load_state_dict(loaded.module.state_dict())
    assert all(p.is_contiguous() for p in plain.parameters())  # really the default layout
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = loaded.spec.run(plain, x)
        got = loaded.tile_fn()(x)
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert got[key].shape == value.shape
        assert (got[key] - value).abs().max().item() <= 1e-5, key


def test_optimised_path_keeps_the_state_dict_layout() -> None:
    torch.manual_seed(0)
    loaded = load_method("kpac", device=CPU, random_weights_for_testing=True)
    assert loaded.module is not None
    plain = loaded.spec.cls(**loaded.hparams)  # type: ignore[misc]
    fast_state, plain_state = loaded.module.state_dict(), plain.state_dict()
    assert list(fast_state) == list(plain_state)
    assert all(fast_state[k].shape == plain_state[k].shape for k in plain_state)


def _no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx2", "fma"}))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_falls_back_to_fp32_on_a_cpu_without_it(monkeypatch: pytest.MonkeyPatch, precision: str) -> None:
    _no_native(monkeypatch)
    dtype, notice = resolve_precision(precision, CPU, supports_half=True)
    assert dtype is torch.float32
    assert notice is not None and precision in notice and "fp32" in notice and "\n" not in notice
    assert pick_dtype(precision, CPU, supports_half=True) is torch.float32


def test_bf16_runs_as_asked_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx512_bf16", "avx512f"}))
    monkeypatch.setattr(device_mod, "_onednn_supports", lambda dtype: True)
    assert resolve_precision("bf16", CPU, supports_half=True) == (torch.bfloat16, None)
    assert cpu_has_native(torch.bfloat16)
    assert not cpu_has_native(torch.float16)  # the flags name bf16 only


def test_fp32_and_fp32_only_methods_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_native(monkeypatch)
    assert resolve_precision("fp32", CPU, supports_half=True) == (torch.float32, None)
    with pytest.raises(DeviceError):
        resolve_precision("bf16", CPU, supports_half=False)
    with pytest.raises(DeviceError):
        resolve_precision("fp8", CPU, supports_half=True)


def test_the_library_returns_the_notice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_native(monkeypatch)
    weights = tmp_path / "kpac.safetensors"
    save_file(KPAC().state_dict(), str(weights))
    loaded = api.load_method("kpac", device="cpu", precision="bf16", weights=weights)
    assert loaded.dtype is torch.float32
    assert loaded.notice is not None and "bf16" in loaded.notice
    assert loaded.provenance()["precision"] == "float32"
    assert api.load_method("kpac", device="cpu", weights=weights).notice is None


def test_the_cli_prints_the_notice_once_and_json_records_fp32(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_native(monkeypatch)
    for i in range(2):
        Image.fromarray(np.full((24, 32, 3), 60 * i, dtype=np.uint8)).save(tmp_path / f"p{i}.png")
    args = ["deblur", str(tmp_path / "p0.png"), str(tmp_path / "p1.png"), "--method", "kpac", "--precision", "bf16"]
    result = CliRunner().invoke(app, [*args, "--random-weights-for-testing", "--offline", "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("no native bf16") == 1
    files = json.loads(result.stdout)["files"]
    assert [f["precision"] for f in files] == ["float32", "float32"]
