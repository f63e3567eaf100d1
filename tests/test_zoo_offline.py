"""No network when told so (every source kind, both switches), bundled sources, and the cross-process lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deblurcli.errors import HashMismatchError, ManifestError, WeightsMissingError
from deblurcli.zoo import manifest as manifest_mod
from deblurcli.zoo.cache import WeightsCache, verify_cache
from deblurcli.zoo.manifest import parse_manifest
from deblurcli.zoo.resolve import resolve_file, resolve_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_download  # noqa: E402
from hfserver import COMMIT, LocalHub  # noqa: E402
from test_download import record, sha, tiny_checkpoint  # noqa: E402

# fixtures shared with the download tests, taken by name below
env, hub, tiny_registry = test_download.env, test_download.hub, test_download.tiny_registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def every_kind(env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The ``env`` manifest plus an ``hf`` record, all served by the counting local server."""
    hub: LocalHub = env["hub"]
    good = env["good"]
    hub.add_hf_file("org/tiny", COMMIT, "tiny.pth", good)
    doc = json.loads(env["manifest"].read_text())
    src = {"kind": "hf", "repo_id": "org/tiny", "filename": "tiny.pth", "revision": COMMIT}
    doc["weights"].append(record("tiny-hf", src, digest=sha(good)))
    env["manifest"].write_text(json.dumps(doc))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # were the gate to fail, requests would reach the counter
    return env


@pytest.mark.parametrize("switch", ["--offline", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("weights_id", ["tiny", "tiny-hf", "big"])
def test_offline_makes_no_request_for_any_source_kind(
    every_kind: dict[str, Any], monkeypatch: pytest.MonkeyPatch, switch: str, weights_id: str
) -> None:
    if switch == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolve = resolve_file if weights_id == "big" else resolve_weights
    with pytest.raises(WeightsMissingError, match="--offline" if switch == "--offline" else "HF_HUB_OFFLINE"):
        resolve(weights_id, cache_dir=every_kind["cache"], offline=switch == "--offline")
    assert every_kind["hub"].state.count() == 0


def test_hf_hub_offline_stops_deblur_and_pull_on_the_command_line(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: ``HF_HUB_OFFLINE=1 defocus deblur -m ifan`` contacted a url source and exited 6."""
    from deblurcli.cli import app

    shipped = json.loads((REPO / "weights_manifest.json").read_text())
    [ifan] = [r for r in shipped["weights"] if r["id"] == "ifan"]
    ifan["source"]["url"] = hub.add_file("IFAN.safetensors", b"x" * 100)
    path = tmp_path / "ifan.json"
    path.write_text(json.dumps({"schema_version": 1, "weights": [ifan]}))
    monkeypatch.setenv("DEFOCUS_MANIFEST", str(path))
    monkeypatch.setenv("DEFOCUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(photo)
    result = CliRunner().invoke(app, ["deblur", str(photo), "-m", "ifan", "--device", "cpu"])
    assert result.exit_code == 5 and "HF_HUB_OFFLINE" in result.stderr, result.stderr
    result = CliRunner().invoke(app, ["models", "pull", "ifan"])
    assert result.exit_code == 5 and "HF_HUB_OFFLINE" in result.stderr
    assert hub.state.count() == 0


@pytest.fixture()
def bundle(tmp_path: Path, tiny_registry: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A throwaway package holding a weights file, standing in for ``deblurcli`` itself."""
    pkg = tmp_path / "bundlepkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = tiny_checkpoint(seed=2)
    (pkg / "weights" / "tiny.pth").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(manifest_mod, "BUNDLE_PACKAGE", "bundlepkg")
    src = {"kind": "bundled", "path": "weights/tiny.pth"}
    recs = [record("tiny-own", src, digest=sha(data)), record("tiny-own-bad", src, digest="3" * 64)]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema_version": 1, "weights": recs}))
    monkeypatch.setenv("DEFOCUS_MANIFEST", str(path))
    return {"data": data, "cache": tmp_path / "cache"}


def test_bundled_source_works_offline_and_is_checked_against_its_pin(
    bundle: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_weights("tiny-own", cache_dir=bundle["cache"], offline=True)
    assert path.name == "converted.safetensors"
    source = resolve_file("tiny-own", cache_dir=bundle["cache"], offline=True)
    assert source.read_bytes() == bundle["data"]
    [result] = verify_cache(WeightsCache(bundle["cache"]), {"tiny-own": sha(bundle["data"])})
    assert result.state == "ok"
    with pytest.raises(HashMismatchError):
        resolve_weights("tiny-own-bad", cache_dir=bundle["cache"], offline=True)


@pytest.mark.parametrize(
    ("source", "sha256", "needle"),
    [
        ({"kind": "bundled", "path": "weights/x.pth"}, None, "must be pinned"),
        ({"kind": "bundled", "path": "../x.pth"}, "a" * 64, "relative to the package"),
        ({"kind": "bundled", "path": "/abs/x.pth"}, "a" * 64, "relative to the package"),
        ({"kind": "bundled"}, "a" * 64, "non-empty string 'path'"),
        ({"kind": "bundled", "path": "x.pth", "url": "https://e.org/x"}, "a" * 64, "takes no 'url'"),
        ({"kind": "zenodo", "path": "x.pth"}, "a" * 64, "kind must be one of hf, url, import, bundled"),
    ],
)
def test_bundled_records_are_validated(source: dict[str, str], sha256: str | None, needle: str) -> None:
    rec = record("b", source, digest=sha256, method=None)
    with pytest.raises(ManifestError, match=needle):
        parse_manifest({"schema_version": 1, "weights": [rec]})


def test_shipped_bundled_files_exist_and_match_their_pins() -> None:
    shipped = manifest_mod.load_manifest(REPO / "weights_manifest.json")
    for rec in shipped.records.values():
        if rec.source.kind == "bundled":
            resource = manifest_mod.bundled_resource(rec.source)
            assert resource.is_file(), rec.id
            assert sha(resource.read_bytes()) == rec.sha256, rec.id


_HOLDER = """
import sys, time
from pathlib import Path
from deblurcli.zoo.cache import WeightsCache
log = Path(sys.argv[2])
with WeightsCache(Path(sys.argv[1])).lock("x"):
    log.write_text("held\\n")
    time.sleep(1.5)
    log.write_text("held\\nreleased\\n")
"""


def test_the_cache_lock_excludes_another_process(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), str(log)], env=child_env)
    try:
        deadline = time.monotonic() + 60
        while not log.exists():
            assert time.monotonic() < deadline and holder.poll() is None, "the child never took the lock"
            time.sleep(0.02)
        with WeightsCache(tmp_path).lock("x"):
            assert log.read_text().endswith("released\n")  # we got in only after the other process let go
    finally:
        assert holder.wait(timeout=60) == 0
