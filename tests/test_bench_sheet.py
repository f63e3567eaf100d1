"""``defocus bench``: LPIPS weights are fetched only when asked, and the contact sheet is what the run computed."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deblurcli.bench.sheet import worst_window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hfserver import LocalHub  # noqa: E402
from test_bench import _write_pairs  # noqa: E402
from test_download import record, sha  # noqa: E402


def bench(*args: str) -> tuple[int, str, str]:
    from deblurcli.cli import app

    result = CliRunner().invoke(app, ["bench", *args])
    return result.exit_code, result.stdout, result.stderr + (repr(result.exception) if result.exception else "")


def test_worst_window_finds_the_most_damaged_region() -> None:
    diff = np.zeros((60, 80), dtype=np.int64)
    diff[30:40, 50:60] = 3
    diff[0:5, 0:5] = 1
    assert worst_window(diff, 10) == (30, 50)
    assert worst_window(diff, 4) == (30, 50)  # ties: the first window inside the damaged block
    assert worst_window(np.ones((8, 8), dtype=np.int64), 8) == (0, 0)


def _saved(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_sheet_cells_equal_the_inputs_outputs_and_targets(tmp_path: Path) -> None:
    data = tmp_path / "set"
    _write_pairs(data, 2)
    out = tmp_path / "report"
    code, _, err = bench(
        str(data), "--methods", "classic", "--sheet", "--save-outputs", "--no-lpips", "-o", str(out), "--offline"
    )
    assert code == 0, err
    info = json.loads((out / "sheet.json").read_text())
    assert info["columns"] == ["input", "classic", "target"]
    sheet = _saved(out / "sheet.png")
    cell, gap, header = info["cell"], info["gap"], info["header"]
    assert sheet.shape == (header + 2 * (cell + gap) - gap, 3 * (cell + gap) - gap, 3)
    assert [r["name"] for r in info["rows"]] == ["00_blur", "01_blur"]
    for r, row in enumerate(info["rows"]):
        top, left, size = row["top"], row["left"], row["size"]
        sources = {
            "input": data / "source" / f"{row['name']}.png",
            "classic": out / "outputs" / "classic" / f"{row['name']}.png",
            "target": data / "target" / f"{row['name'].removesuffix('_blur')}.png",
        }
        for k, column in enumerate(info["columns"]):
            y, x = header + r * (cell + gap), k * (cell + gap)
            expected = _saved(sources[column])[top : top + size, left : left + size]
            assert np.array_equal(sheet[y : y + size, x : x + size], expected), (row["name"], column)
    first_row = sheet[header : header + cell]
    assert not np.array_equal(first_row[:, :cell], first_row[:, cell + gap : 2 * cell + gap])  # input != output


def _lpips_files() -> tuple[bytes, bytes]:
    from deblurcli.bench.lpips import AlexFeatures

    torch.manual_seed(0)
    backbone = {f"features.{k}": v for k, v in AlexFeatures().features.state_dict().items()}
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    blobs = []
    for state in (backbone, heads):
        buf = io.BytesIO()
        torch.save(state, buf)
        blobs.append(buf.getvalue())
    return blobs[0], blobs[1]


def _request(tmp_path: Path, lpips: bool | None, offline: bool) -> Any:
    from deblurcli.bench.session import BenchRequest

    return BenchRequest(
        dataset=tmp_path, methods=["classic"], layout="auto", split="test", limit=None, out=tmp_path / "r",
        weights={}, device="cpu", precision="fp32", threads=None, tile=None, overlap=None, save_outputs=False,
        sheet=False, compare_published=False, lpips=lpips, offline=offline, cache_dir=tmp_path / "cache",
        random_weights_for_testing=False,
    )  # fmt: skip


def test_lpips_weights_are_downloaded_only_with_the_lpips_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deblurcli.bench.session import _lpips

    alex, heads = _lpips_files()
    cpu = torch.device("cpu")
    a, b = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    with LocalHub() as hub:
        recs = [
            record(rid, {"kind": "url", "url": hub.add_file(f"{rid}.pth", blob)}, digest=sha(blob), method=None)
            for rid, blob in (("alexnet-imagenet", alex), ("lpips-alex-v0.1", heads))
        ]
        manifest = tmp_path / "m.json"
        manifest.write_text(json.dumps({"schema_version": 1, "weights": recs}))
        monkeypatch.setenv("DEFOCUS_MANIFEST", str(manifest))
        score, note = _lpips(_request(tmp_path, None, False), cpu)  # the default: cached weights or nothing
        assert score is None and hub.state.count() == 0
        assert note.startswith("LPIPS skipped: weights not cached; `defocus models pull alexnet-imagenet`")
        score, note = _lpips(_request(tmp_path, True, True), cpu)  # --offline wins over --lpips
        assert score is None and hub.state.count() == 0 and "--lpips" not in note
        score, _ = _lpips(_request(tmp_path, True, False), cpu)  # asked for: downloaded once
        assert score is not None and score(a, b) > 0 and hub.state.count("GET") == 2
        score, _ = _lpips(_request(tmp_path, None, False), cpu)  # cached now: used without asking
        assert score is not None and hub.state.count("GET") == 2
        assert _lpips(_request(tmp_path, False, False), cpu)[0] is None
