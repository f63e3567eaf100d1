"""``defocus models``: list, pull, import, verify, path and rm, through the real CLI app."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deblurcli.cli import app
from deblurcli.zoo import manifest as manifest_mod
from deblurcli.zoo.state import read_metadata

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hfserver import LocalHub  # noqa: E402
from test_download import TINY_SPEC, record, sha, tiny_checkpoint  # noqa: E402

runner = CliRunner()


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from deblurcli.methods import registry

    monkeypatch.setattr(registry, "_specs", lambda: {"tiny": TINY_SPEC})
    monkeypatch.setitem(manifest_mod.HPARAMS, "tiny", {"width": int})
    good = tiny_checkpoint()
    with LocalHub() as hub:
        url = hub.add_file("tiny.pth", good)
        records = [
            record("tiny", {"kind": "url", "url": url}, digest=sha(good), size=len(good)),
            record("tiny-unpinned", {"kind": "url", "url": url}, digest=None),
            record(
                "tiny-drive",
                {"kind": "import", "filename": "tiny.pth", "instructions": "download it from the drive"},
                digest=None,
            ),
            record("tiny-train", {"kind": "import", "instructions": "nothing published: train it"}, digest=None),
            record(
                "lpips", {"kind": "url", "url": hub.add_file("alex.pth", good)}, digest=sha(good), method=None
            ),
        ]
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps({"schema_version": 1, "weights": records}))
        monkeypatch.setenv("DEFOCUS_MANIFEST", str(path))
        cache = tmp_path / "cache"
        monkeypatch.setenv("DEFOCUS_CACHE", str(cache))
        yield {"hub": hub, "good": good, "cache": cache, "tmp": tmp_path}


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args])
    return result.exit_code, result.stdout, result.stderr


def test_list_json_shows_cached_state(setup: dict[str, Any]) -> None:
    code, out, _ = run("list", "--json")
    assert code == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert set(rows) == {"tiny", "tiny-unpinned", "tiny-drive", "tiny-train", "lpips"}
    assert (
        rows["tiny"]["cached"] is False
        and rows["tiny"]["source"] == "url"
        and rows["tiny"]["licence"] == "MIT"
    )
    assert rows["lpips"]["method"] is None
    assert run("pull", "tiny")[0] == 0
    rows = {r["id"]: r for r in json.loads(run("list", "--json")[1])}
    assert rows["tiny"]["cached"] is True and rows["tiny"]["path"].endswith("converted.safetensors")


def test_list_table(setup: dict[str, Any]) -> None:
    code, out, _ = run("list")
    assert code == 0
    for word in ("tiny-drive", "import", "MIT", "cached"):
        assert word in out


def test_pull_prints_path_and_hash_then_path_finds_it(setup: dict[str, Any]) -> None:
    code, out, err = run("pull", "tiny")
    assert code == 0, err
    path = Path(out.strip())
    assert path.is_file() and read_metadata(path)["id"] == "tiny"
    assert sha(setup["good"]) in err and "pinned" in err
    requests = setup["hub"].state.count()
    assert run("pull", "tiny")[:2] == (0, out)
    assert setup["hub"].state.count() == requests
    assert run("path", "tiny")[:2] == (0, out)


def test_pull_auxiliary_file_returns_it_unconverted(setup: dict[str, Any]) -> None:
    code, out, _ = run("pull", "lpips")
    assert code == 0 and Path(out.strip()).read_bytes() == setup["good"]


def test_pull_unpinned_requires_trust(setup: dict[str, Any]) -> None:
    code, _, err = run("pull", "tiny-unpinned")
    assert code == 5 and "--trust-unpinned" in err
    code, _, err = run("pull", "tiny-unpinned", "--trust-unpinned")
    assert code == 0 and "NOT pinned" in err and sha(setup["good"]) in err


def test_offline_and_import_only_errors(setup: dict[str, Any]) -> None:
    code, _, err = run("pull", "tiny", "--offline")
    assert code == 5 and "defocus models import FILE --as tiny" in err
    code, _, err = run("pull", "tiny-drive")
    assert code == 5 and "download it from the drive" in err
    code, _, err = run("path", "tiny")
    assert code == 5 and "not cached" in err
    code, _, err = run("pull", "nope")
    assert code == 2 and "unknown weights id" in err


def test_import_then_verify_then_corruption_then_rm(setup: dict[str, Any]) -> None:
    f = setup["tmp"] / "mine.pth"
    f.write_bytes(tiny_checkpoint(seed=5))
    code, out, err = run("import", str(f), "--as", "tiny-drive")
    assert code == 0, err
    assert read_metadata(Path(out.strip()))["source_sha256"] == sha(f.read_bytes())
    assert sha(f.read_bytes()) in err

    code, out, _ = run("verify")
    assert code == 0 and "tiny-drive" in out and "ok" in out

    source = next(p for p in (setup["cache"] / "weights" / "tiny-drive").glob("*.pth"))
    source.write_bytes(b"garbage")
    code, out, err = run("verify")
    assert code == 1 and "BAD" in out and "tiny-drive" in err

    code, _, err = run("rm", "tiny-drive")
    assert code == 0 and "removed" in err
    assert not (setup["cache"] / "weights" / "tiny-drive").exists()
    assert run("verify")[0] == 0


def test_import_rejects_a_file_that_does_not_fit(setup: dict[str, Any]) -> None:
    f = setup["tmp"] / "wide.pth"
    f.write_bytes(tiny_checkpoint(width=8))
    code, _, err = run("import", str(f), "--as", "tiny-drive")
    assert code == 5 and "shape" in err
    assert run("path", "tiny-drive")[0] == 5
    code, _, err = run("import", str(setup["tmp"] / "absent.pth"))
    assert code == 2 and "no such file" in err


def test_cache_dir_option_wins_over_env(setup: dict[str, Any]) -> None:
    other = setup["tmp"] / "other"
    code, out, _ = run("pull", "tiny", "--cache-dir", str(other))
    assert code == 0 and out.strip().startswith(str(other))
    assert not (setup["cache"] / "weights" / "tiny").exists()
