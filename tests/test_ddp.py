"""Two processes on the CPU (gloo) through torchrun: the run finishes, both ranks end with identical weights,
and those weights equal a single-process run on the same global batch (the ranks split the batch, the
gradients are averaged).

This file is also the worker script torchrun launches (``__main__`` below).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.methods import registry
from deblurcli.methods.spec import MethodSpec
from deblurcli.zoo import manifest
from deblurcli.zoo.state import read_tensors
from training.engine import distributed as D
from training.engine.loop import train
from training.engine.runlog import read_log
from training.recipes.base import Batch, Losses, Objective, Recipe

REPO = Path(__file__).resolve().parents[1]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.leaky_relu(self.a(x), 0.1))


class L1(Objective):
    def forward(self, batch: Batch) -> Losses:
        loss = F.l1_loss(self.net(batch["blur"]), batch["sharp"])
        return {"loss": loss}


@dataclass(frozen=True, kw_only=True)
class Small(Recipe):
    name: ClassVar[str] = "small"
    method: ClassVar[str] = "small"
    iterations: int = 5
    batch: int = 4
    crop: int = 16
    lr: float = 1e-2

    def build_net(self) -> nn.Module:
        return Net()

    def objective(self, net: nn.Module) -> Objective:
        return L1(net)

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return net(blur)


def data() -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(0)
    sharp = [torch.rand(3, 24, 24, generator=g) for _ in range(6)]
    return [{"blur": F.avg_pool2d(s[None], 3, 1, 1)[0], "sharp": s} for s in sharp]


def small_spec() -> MethodSpec:
    """The stand-in method, registered like a real one so that its export validates against the manifest."""
    return MethodSpec(name="small", summary="test", cls=Net, run=lambda m, x: {"image": m(x)})


def worker(out: Path) -> None:
    real = registry._specs
    registry._specs = lambda: {**real(), "small": small_spec()}  # a fresh process: patch directly
    manifest.HPARAMS["small"] = {}
    world = D.setup("cpu")
    try:
        result = train(Small(), data(), out=out / "ddp", world=world, val=data()[:1], val_every=5)
        torch.save(result.net.state_dict(), out / f"rank{world.rank}.pt")
    finally:
        D.teardown(world)


def test_two_gloo_processes_train_identical_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry._specs
    monkeypatch.setattr(registry, "_specs", lambda: {**real(), "small": small_spec()})
    monkeypatch.setitem(manifest.HPARAMS, "small", {})
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        __file__,
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])

    train(Small(), data(), out=tmp_path / "single", device="cpu")
    single = read_tensors(tmp_path / "single" / "final.safetensors")
    assert all(torch.allclose(single[k], ranks[0][k], atol=1e-5) for k in single)
    assert (tmp_path / "ddp" / "final.safetensors").is_file()
    assert [int(r["step"]) for r in read_log(tmp_path / "ddp" / "log.csv")] == [1, 2, 3, 4, 5]


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
