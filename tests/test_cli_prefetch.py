"""Many photos: decoding ahead and writing behind (``--prefetch``), ``--devices`` and ``torchrun`` shards write
the same bytes, in the same report order, as one device doing one photo after the other; no photo is taken
twice, and a bad photo in the middle is still one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import deblurcli.io.decode as decode_mod
import deblurcli.io.encode as encode_mod
from deblurcli.cli import app
from deblurcli.engine.shard import Rank, parse_devices, rank_from_env, share
from deblurcli.errors import EncodeError, UsageError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


#: 2026-01-02T03:04:05Z: the provenance clock stopped (reproducible-builds' SOURCE_DATE_EPOCH), so that two runs
#: can be compared byte for byte
EPOCH = "1767323045"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def _photos(folder: Path, n: int) -> list[Path]:
    """Small photos of different sizes and both families, so that a swapped output would show."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(rng.integers(0, 255, (20 + 2 * i, 28 + i, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def run(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["deblur", *args, "--json", "-q"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _report(summary: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """What a user reads, in order; ``seconds`` differ from run to run."""
    return [(Path(f["source"]).name, f["status"], f["reason"]) for f in summary["files"]]


# --- the split ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5, 12])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_share_deals_every_item_to_exactly_one_worker(n: int, count: int) -> None:
    items = [f"f{i}" for i in range(n)]
    shares = [share(items, i, count) for i in range(count)]
    dealt = Counter(x for s in shares for x in s)
    assert sorted(dealt) == sorted(items) and set(dealt.values()) <= {1}
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # even
    assert shares == [share(list(items), i, count) for i in range(count)]  # a pure function of its arguments
    for s in shares:
        assert s == sorted(s, key=items.index)  # each worker keeps the input order


def test_share_is_round_robin_and_refuses_workers_that_do_not_exist() -> None:
    assert share(range(7), 1, 3) == [1, 4]
    for index, count in [(2, 2), (-1, 2), (0, 0)]:
        with pytest.raises(ValueError):
            share([1, 2], index, count)


def test_rank_from_env() -> None:
    assert rank_from_env({}) == Rank()
    assert rank_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Rank(index=3, count=4, local=1)
    for env in [{"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}, {"WORLD_SIZE": "0"}]:
        with pytest.raises(UsageError):
            rank_from_env(env)


def test_parse_devices() -> None:
    assert parse_devices("cuda:0, CUDA:1") == ("cuda:0", "cuda:1")
    assert parse_devices("cpu,cpu") == ("cpu", "cpu")
    with pytest.raises(UsageError):
        parse_devices("cuda:0,,cuda:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_devices_that_are_missing_are_named_as_devices(tmp_path: Path) -> None:
    _photos(tmp_path / "in", 1)
    result = runner.invoke(
        app, ["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--devices", "cuda:0,cuda:1"]
    )
    assert result.exit_code != 0
    assert "--devices cuda:0,cuda:1: cuda:0: no CUDA GPU" in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# --- prefetch -------------------------------------------------------------------------------------------


def test_prefetch_writes_the_same_bytes_and_report_as_the_plain_loop(tmp_path: Path) -> None:
    _photos(tmp_path / "in", 5)
    (tmp_path / "in/p2.png").write_bytes(b"not a photo")  # a failure in the middle
    reports = {}
    for depth in ("0", "1", "3"):
        code, summary = run(str(tmp_path / "in"), "-o", str(tmp_path / depth), "--maps", "--prefetch", depth)
        assert code == 1
        reports[depth] = _report(summary)
    assert reports["0"][2] == ("p2.png", "failed", "not an image (unrecognised content)")
    assert [r[1] for r in reports["0"]] == ["ok", "ok", "failed", "ok", "ok"]
    assert reports["1"] == reports["0"] and reports["3"] == reports["0"]
    plain = _contents(tmp_path / "0")
    assert {n.split("_")[0] for n in plain} == {"p0", "p1", "p3", "p4"} and len(plain) > 4  # results and maps
    assert _contents(tmp_path / "1") == plain and _contents(tmp_path / "3") == plain


def test_failures_in_each_stage_of_a_prefetched_batch_are_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode failure (reader thread) and an encode failure (writer thread) in the middle: each is its own
    failed result in its place, the photos around them are written, nothing partial is left."""
    _photos(tmp_path / "in", 5)
    (tmp_path / "in/p1.jpg").write_bytes(b"\xff\xd8\xff truncated")
    real = encode_mod.encode

    def encode(photo: Any, path: Path, **kwargs: Any) -> None:
        if path.name.startswith("p3_"):
            raise EncodeError("p3_deblurred.jpg came out incomplete (test); nothing was written")
        real(photo, path, **kwargs)

    monkeypatch.setattr("deblurcli.pipeline.encode", encode)
    code, summary = run(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--prefetch", "2")
    assert code == 1
    report = _report(summary)
    assert [r[:2] for r in report] == [
        ("p0.png", "ok"),
        ("p1.jpg", "failed"),
        ("p2.png", "ok"),
        ("p3.jpg", "failed"),
        ("p4.png", "ok"),
    ]
    assert "test" in (report[3][2] or "") and "\n" not in (report[1][2] or "")
    assert sorted(os.listdir(tmp_path / "out")) == ["p0_deblurred.png", "p2_deblurred.png", "p4_deblurred.png"]


# --- devices and ranks ----------------------------------------------------------------------------------


def test_devices_cpu_cpu_equal_one_device_and_take_each_photo_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _photos(tmp_path / "in", 5)
    (tmp_path / "in/p2.png").write_bytes(b"not a photo")
    code, one = run(str(tmp_path / "in"), "-o", str(tmp_path / "one"), "--device", "cpu")
    assert code == 1 and [f["status"] for f in one["files"]] == ["ok", "ok", "failed", "ok", "ok"]
    decoded: Counter[str] = Counter()
    real = decode_mod.decode

    def counting(path: Path, **kwargs: Any) -> Any:
        decoded[Path(path).name] += 1
        return real(path, **kwargs)

    monkeypatch.setattr(decode_mod, "decode", counting)
    code, many = run(str(tmp_path / "in"), "-o", str(tmp_path / "many"), "--devices", "cpu,cpu,cpu")
    assert code == 1
    assert decoded == Counter(f"p{i}.{'jpg' if i % 2 else 'png'}" for i in range(5))  # each exactly once
    assert _report(many) == _report(one)
    assert _contents(tmp_path / "many") == _contents(tmp_path / "one")


def test_device_and_devices_together_are_refused(tmp_path: Path) -> None:
    _photos(tmp_path / "in", 1)
    result = runner.invoke(app, ["deblur", str(tmp_path / "in"), "--device", "cpu", "--devices", "cpu,cpu"])
    assert result.exit_code == 2 and "not both" in result.stderr


_MAIN = """
import sys
from deblurcli.__main__ import main
sys.argv = ["defocus", "deblur", *sys.argv[1:]]
main()
"""


def test_torchrun_ranks_split_the_batch_and_write_what_one_process_writes(tmp_path: Path) -> None:
    _photos(tmp_path / "in", 5)
    code, one = run(str(tmp_path / "in"), "-o", str(tmp_path / "one"))
    assert code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    cmd = [sys.executable, "-c", textwrap.dedent(_MAIN), str(tmp_path / "in"), "-o", str(tmp_path / "ranks")]
    procs = [
        subprocess.Popen([*cmd, "--json", "-q"], env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    summaries = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    taken = [[Path(f["source"]).name for f in s["files"]] for s in summaries]
    assert taken == [["p0.png", "p2.png", "p4.png"], ["p1.jpg", "p3.jpg"]]  # dealt out, none twice
    assert all(f["status"] == "ok" for s in summaries for f in s["files"])
    assert _contents(tmp_path / "ranks") == _contents(tmp_path / "one")


_CTRL_C_WHILE_WRITING = """
import os, signal, sys
import deblurcli.pipeline as pipeline
real = pipeline.encode
def encode(photo, path, **kwargs):
    if path.name.startswith("p2_"):
        os.kill(os.getpid(), signal.SIGINT)  # lands in the main thread, while this one writes
    real(photo, path, **kwargs)
pipeline.encode = encode
from deblurcli.__main__ import main
sys.argv = ["defocus", "deblur", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("mode", [["--prefetch", "2"], ["--devices", "cpu,cpu"]])
def test_ctrl_c_while_a_helper_thread_writes_exits_130_and_leaves_no_temp_file(tmp_path: Path, mode: list[str]) -> None:
    srcs = _photos(tmp_path / "in", 5)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", textwrap.dedent(_CTRL_C_WHILE_WRITING), *map(str, srcs), "-o", str(tmp_path / "out")]
    proc = subprocess.run([*cmd, *mode, "-q"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in proc.stderr
    left = sorted(os.listdir(tmp_path / "out"))
    assert "p2_deblurred.png" not in left and not [n for n in left if n.startswith(".")]  # no temp or lock file
    for name in left:  # whatever was finished before Ctrl-C is whole
        with Image.open(tmp_path / "out" / name) as im:
            im.load()


def test_source_date_epoch_sets_the_provenance_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deblurcli.io.metadata import provenance_date

    assert provenance_date() == "2026-01-02T03:04:05+00:00"
    _photos(tmp_path / "in", 1)
    for name in ("a", "b"):
        code, _ = run(str(tmp_path / "in"), "-o", str(tmp_path / name))
        assert code == 0
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")  # two runs, the same bytes
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError):
        provenance_date()
