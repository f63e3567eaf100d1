"""``defocus train`` end to end at toy size: its closing commands run as printed, and TensorBoard gets the log."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deblurcli.cli import app
from training.engine.runlog import read_log


def _pairs(root: Path, n: int = 4, size: int = 24) -> str:
    rng = np.random.default_rng(0)
    for kind in ("in", "gt"):
        (root / kind).mkdir(parents=True)
    for i in range(n):
        sharp = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        blurred = ((sharp.astype(np.uint16) + np.roll(sharp, 1, axis=1)) // 2).astype(np.uint8)
        Image.fromarray(blurred).save(root / "in" / f"{i}.png")
        Image.fromarray(sharp).save(root / "gt" / f"{i}.png")
    return f"paired:{root / 'in'},{root / 'gt'}"


def test_train_prints_commands_that_work_and_logs_to_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("DEFOCUS_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a toy network: threads only cost synchronisation, dearly on a loaded machine
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    monkeypatch.chdir(tmp_path)
    out = Path.cwd() / "runs" / "toy"  # given relative: the printed commands must work from any folder
    args = ["train", "--recipe", "kpac", "--data", _pairs(tmp_path / "data"), "--out", "runs/toy", "--iters", "2",
            "--batch", "2", "--crop", "16", "--val-count", "0", "--workers", "0", "--device", "cpu",
            "--tensorboard"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr + repr(result.exception)
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in result.stderr.splitlines() if ":" in line}
    assert lines["or keep them"] == f"defocus models import {out / 'final.safetensors'} --as kpac-toy"
    assert lines["use them"] == f"defocus deblur PHOTO --method kpac --weights {out / 'final.safetensors'}"

    recorded = json.loads((out / "final.json").read_text())["source"]["instructions"]
    assert lines["or keep them"] in recorded  # the manifest record gives the same command
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    printed = shlex.split(lines["or keep them"])[1:]  # exactly the printed command, minus the program name
    imported = CliRunner().invoke(app, printed)
    assert imported.exit_code == 0, imported.stderr
    listed = {r["id"]: r for r in json.loads(CliRunner().invoke(app, ["models", "list", "--json"]).stdout)}
    assert listed["kpac-toy"]["source"] == "local" and listed["kpac-toy"]["cached"]

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    csv_rows = read_log(out / "log.csv")
    scalars = events.Scalars("train/loss")
    assert [s.step for s in scalars] == [1, 2]
    for event, row in zip(scalars, csv_rows, strict=True):
        assert event.value == pytest.approx(float(row["loss"]), rel=1e-6)
    assert {"train/lr", "train/loss"} <= set(events.Tags()["scalars"])
