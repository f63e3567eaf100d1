"""``defocus bench``: metrics against known values and scikit-image, layouts, MACs, and a full run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from deblurcli.bench.macs import count_macs
from deblurcli.bench.metrics import mae, psnr, ssim
from deblurcli.datasets import detect_layout, find_pairs
from deblurcli.errors import DataError


def test_identical_images() -> None:
    x = torch.rand(3, 40, 50)
    assert psnr(x, x) == math.inf
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert mae(x, x) == 0.0


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_known_noise_gives_known_psnr(sigma: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.full((3, 256, 256), 0.5, dtype=torch.float64)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)  # no clipping at 0.5 +- 4 sigma
    assert psnr(y, x) == pytest.approx(-20 * math.log10(sigma), abs=0.05)
    assert mae(y, x) == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.02)


@pytest.mark.parametrize(("h", "w", "seed"), [(7, 7, 0), (33, 48, 1), (120, 97, 2)])
def test_ssim_equals_scikit_image(h: int, w: int, seed: int) -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(seed)
    a = rng.random((h, w, 3))
    b = np.clip(a + rng.normal(0, 0.08, a.shape), 0, 1)
    ours = ssim(torch.from_numpy(b).permute(2, 0, 1), torch.from_numpy(a).permute(2, 0, 1))
    theirs = structural_similarity(b, a, channel_axis=2, data_range=1.0)
    assert abs(ours - theirs) < 1e-6


def test_mac_counter_counts_convolutions_exactly() -> None:
    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 2, stride=2),
            nn.Conv2d(4, 4, 3, padding=1, groups=2),
        )  # fmt: skip

    expected = 16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 * 4 * 4 + 32 * 32 * 4 * 2 * 9
    assert count_macs(build, lambda m, x: m(x), 16, 16) == expected


def _write_pairs(root: Path, n: int, *, src_name: str = "source") -> None:
    from skimage import data

    sharp = np.asarray(Image.fromarray(data.astronaut()).resize((64, 48)))
    (root / src_name).mkdir(parents=True)
    (root / "target").mkdir(parents=True)
    for i in range(n):
        img = np.roll(sharp, 5 * i, axis=1)
        blurred = np.asarray(Image.fromarray(img).resize((32, 24)).resize((64, 48), Image.BILINEAR))
        Image.fromarray(blurred).save(root / src_name / f"{i:02d}_blur.png")
        Image.fromarray(img).save(root / "target" / f"{i:02d}.png")


def test_layouts_are_detected_and_paired(tmp_path: Path) -> None:
    _write_pairs(tmp_path / "realdof", 3)
    assert detect_layout(tmp_path / "realdof") == "realdof"
    pairs = find_pairs(tmp_path / "realdof", limit=2)
    assert [p.target.name for p in pairs] == ["00.png", "01.png"]
    _write_pairs(tmp_path / "dpdd" / "test_c", 2)
    assert detect_layout(tmp_path / "dpdd") == "dpdd" and len(find_pairs(tmp_path / "dpdd")) == 2
    lf = tmp_path / "lfdof"
    (lf / "input").mkdir(parents=True)
    (lf / "ground_truth").mkdir()
    for name in ("IMG_1_ap1.png", "IMG_1_ap2.png"):
        (lf / "input" / name).write_bytes(b"")
    (lf / "ground_truth" / "IMG_1.png").write_bytes(b"")
    assert [p.target.name for p in find_pairs(lf)] == ["IMG_1.png", "IMG_1.png"]
    (lf / "input" / "IMG_2_ap1.png").write_bytes(b"")
    with pytest.raises(DataError, match="IMG_2"):
        find_pairs(lf)


def test_mismatched_counts_are_a_data_error(tmp_path: Path) -> None:
    _write_pairs(tmp_path, 2)
    (tmp_path / "target" / "01.png").unlink()
    with pytest.raises(DataError, match="cannot be matched"):
        find_pairs(tmp_path)


class TinyNet(nn.Module):
    """A stand-in network so the full bench runs in seconds."""

    def __init__(self, *, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.01 * self.body(x)


def test_full_bench_run_writes_every_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deblurcli.cli import app
    from deblurcli.methods import registry
    from deblurcli.methods.spec import MethodSpec

    tiny = MethodSpec(
        name="tiny", summary="test", cls=TinyNet, run=lambda m, x: {"image": m(x)}, multiple_of=4,
        receptive_field=4, hparams={"width": 4}, convert=lambda p: {}, default_tile=64,
    )  # fmt: skip
    real = registry._specs
    monkeypatch.setattr(registry, "_specs", lambda: {**real(), "tiny": tiny})
    _write_pairs(tmp_path / "set", 3)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["bench", str(tmp_path / "set"), "--methods", "classic,tiny", "--out", str(out), "--offline",
         "--cache-dir", str(tmp_path / "cache"), "--random-weights-for-testing", "--compare-published", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr + str(result.exception)
    assert {p.name for p in out.iterdir()} == {"bench.md", "bench.csv", "bench.json", "per_image.csv"}
    report = json.loads(result.stdout)
    assert [m["method"] for m in report["methods"]] == ["input", "classic", "tiny"]
    tiny_row = report["methods"][2]
    assert tiny_row["images"] == 3 and tiny_row["params"] == sum(p.numel() for p in TinyNet().parameters())
    assert tiny_row["gmacs_1280x720"] == pytest.approx(1280 * 720 * (4 * 3 * 9 + 3 * 4 * 9) / 1e9)
    baseline, classic = report["methods"][0], report["methods"][1]
    assert classic["psnr"] > 15 and 0 < classic["ssim"] <= 1
    assert baseline["psnr"] < classic["psnr"]  # the blurred inputs score lower than the deblurred ones
    assert all(m["lpips"] is None for m in report["methods"])
    assert any("LPIPS skipped" in n for n in report["notes"])
    with (out / "per_image.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 9
    assert "| classic |" in (out / "bench.md").read_text()
    assert "LPIPS" in (out / "bench.md").read_text() and "RANDOM" in (out / "bench.md").read_text()


def test_lpips_loads_official_layouts_strictly(tmp_path: Path) -> None:
    """The AlexNet file as torchvision saves it (features + classifier) and the v0.1 heads load key for key."""
    from deblurcli.bench.lpips import AlexFeatures, load_lpips
    from deblurcli.errors import WeightsError

    torch.manual_seed(0)
    backbone = {f"features.{k}": v for k, v in AlexFeatures().features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4096, 9216)  # present in the real file, ignored by LPIPS
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    model = load_lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert model(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert model(a, b).item() > model(a, (a + 0.02 * b).clamp(0, 1)).item() > 0
    del heads["lin4.model.1.weight"]
    torch.save(heads, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="4.weight"):
        load_lpips(tmp_path / "alexnet.pth", tmp_path / "bad.pth")
