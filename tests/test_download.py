"""Downloads, cache and conversion against a local server: hashes, resume, locking, offline, HF protocol."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from deblurcli.errors import DownloadError, HashMismatchError, UsageError, WeightsError, WeightsMissingError
from deblurcli.methods.spec import MethodSpec
from deblurcli.zoo import manifest as manifest_mod
from deblurcli.zoo.cache import WeightsCache, verify_cache
from deblurcli.zoo.importer import import_weights
from deblurcli.zoo.manifest import Manifest, load_manifest
from deblurcli.zoo.resolve import resolve_file, resolve_weights
from deblurcli.zoo.state import read_metadata, read_tensors, strip_prefix

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hfserver import COMMIT, LocalHub  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class Tiny(nn.Module):
    """A stand-in architecture: one conv whose width is a hyperparameter, so shapes can mismatch."""

    def __init__(self, *, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def convert_tiny(path: Path) -> dict[str, torch.Tensor]:
    """The authors' files wrap the net in DataParallel (``module.``), ours do not."""
    return strip_prefix(read_tensors(path), "module.")


TINY_SPEC = MethodSpec(
    name="tiny",
    summary="test-only",
    cls=Tiny,
    run=lambda m, x: {"image": x},
    hparams={"width": 4},
    weights=("tiny",),
    convert=convert_tiny,
)


def tiny_checkpoint(width: int = 4, seed: int = 0) -> bytes:
    """An 'official' checkpoint: a torch.save of a prefixed state dict, as bytes."""
    torch.manual_seed(seed)
    state = {f"module.{k}": v for k, v in Tiny(width=width).state_dict().items()}
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(
    rid: str, source: dict[str, Any], *, digest: str | None, method: str | None = "tiny", **kw: Any
) -> dict:
    rec: dict[str, Any] = {
        "id": rid,
        "method": method,
        "hparams": kw.pop("hparams", {"width": 4} if method else {}),
        "source": source,
        "sha256": digest,
        "size": kw.pop("size", None),
        "format": "torch-pth",
        "licence": "MIT",
        "citation": "test",
        "training_data": "none",
        "input": {"range": [0, 1], "bit_depth": 8, "multiple_of": 1} if method else None,
        "tile": None,
        "overlap": None,
    }
    rec.update(kw)
    return rec


@pytest.fixture()
def hub() -> Iterator[LocalHub]:
    with LocalHub() as server:
        yield server


@pytest.fixture()
def tiny_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from deblurcli.methods import registry

    monkeypatch.setattr(registry, "_specs", lambda: {"tiny": TINY_SPEC})
    monkeypatch.setitem(manifest_mod.HPARAMS, "tiny", {"width": int})


@pytest.fixture()
def env(
    tmp_path: Path, hub: LocalHub, tiny_registry: None, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A served checkpoint, a manifest describing it several ways, and an empty cache."""
    good = tiny_checkpoint()
    big = os.urandom(700_000)
    url = hub.add_file("tiny.pth", good)
    records = [
        record("tiny", {"kind": "url", "url": url}, digest=sha(good), size=len(good)),
        record("tiny-bad", {"kind": "url", "url": url}, digest="0" * 64),
        record("tiny-unpinned", {"kind": "url", "url": url}, digest=None),
        record("tiny-wide", {"kind": "url", "url": url}, digest=sha(good), hparams={"width": 8}),
        record("tiny-import", {"kind": "import", "instructions": "get it from the drive"}, digest=None),
        record("big", {"kind": "url", "url": hub.add_file("big.bin", big)}, digest=sha(big), method=None),
        record("tiny-404", {"kind": "url", "url": f"{hub.url}/files/missing.pth"}, digest=sha(good)),
    ]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema_version": 1, "weights": records}))
    monkeypatch.setenv("DEFOCUS_MANIFEST", str(path))
    aux_only = tmp_path / "aux.json"  # child processes know no 'tiny' method
    aux_only.write_text(
        json.dumps({"schema_version": 1, "weights": [r for r in records if r["method"] is None]})
    )
    return {
        "good": good,
        "big": big,
        "cache": tmp_path / "cache",
        "manifest": path,
        "hub": hub,
        "aux": aux_only,
    }


def test_first_download_converts_and_second_call_makes_no_request(env: dict[str, Any]) -> None:
    hub, cache = env["hub"], env["cache"]
    seen: list[tuple[int, int | None]] = []
    path = resolve_weights("tiny", cache_dir=cache, progress=lambda d, t: seen.append((d, t)))
    assert path == cache / "weights" / "tiny" / "converted.safetensors"
    meta = read_metadata(path)
    assert meta["method"] == "tiny" and meta["id"] == "tiny" and meta["hparams"] == {"width": 4}
    assert meta["source_sha256"] == sha(env["good"])
    assert set(read_tensors(path)) == {"conv.weight", "conv.bias"}
    assert (cache / "weights" / "tiny" / f"{sha(env['good'])}.pth").read_bytes() == env["good"]
    assert seen and seen[-1] == (len(env["good"]), len(env["good"]))
    n = hub.state.count()
    assert n >= 1
    assert resolve_weights("tiny", cache_dir=cache) == path
    assert resolve_weights("tiny", cache_dir=cache, offline=True) == path
    assert hub.state.count() == n


def test_hash_mismatch_is_rejected_and_nothing_is_cached(env: dict[str, Any]) -> None:
    with pytest.raises(HashMismatchError, match="tiny-bad.*pins 0000"):
        resolve_weights("tiny-bad", cache_dir=env["cache"])
    folder = env["cache"] / "weights" / "tiny-bad"
    assert [p.name for p in folder.iterdir() if p.name != ".lock"] == []
    assert WeightsCache(env["cache"]).source_path("tiny-bad") is None


def test_http_error_names_status_and_url(env: dict[str, Any]) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 404 .*missing\.pth"):
        resolve_file("tiny-404", cache_dir=env["cache"])


def test_unreachable_host_is_a_download_error(env: dict[str, Any], tmp_path: Path) -> None:
    bad = record("x", {"kind": "url", "url": "http://127.0.0.1:9/x.pth"}, digest="1" * 64, method=None)
    path = tmp_path / "m2.json"
    path.write_text(json.dumps({"schema_version": 1, "weights": [bad]}))
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        resolve_file("x", cache_dir=env["cache"], manifest=load_manifest(path))


def test_interrupted_download_resumes_with_range(env: dict[str, Any]) -> None:
    hub = env["hub"]
    hub.state.cut_after, hub.state.cuts_left = 200_000, 2
    path = resolve_file("big", cache_dir=env["cache"])
    assert path.read_bytes() == env["big"]
    ranges = [r for m, p, r in hub.state.requests if m == "GET" and p.endswith("big.bin")]
    assert ranges == [None, "bytes=200000-", "bytes=400000-"]
    assert not list(path.parent.glob("*.part"))


def test_leftover_part_file_from_a_killed_run_is_resumed(env: dict[str, Any]) -> None:
    folder = env["cache"] / "weights" / "big"
    folder.mkdir(parents=True)
    (folder / "download.pth.part").write_bytes(env["big"][:123_456])
    assert resolve_file("big", cache_dir=env["cache"]).read_bytes() == env["big"]
    assert env["hub"].state.requests[-1][2] == "bytes=123456-"


def test_corrupt_part_file_is_caught_by_the_hash(env: dict[str, Any]) -> None:
    folder = env["cache"] / "weights" / "big"
    folder.mkdir(parents=True)
    (folder / "download.pth.part").write_bytes(b"\0" * 1000)
    with pytest.raises(HashMismatchError):
        resolve_file("big", cache_dir=env["cache"])
    assert not (folder / "download.pth.part").exists()
    assert resolve_file("big", cache_dir=env["cache"]).read_bytes() == env["big"]  # retry starts clean


def test_offline_error_tells_how_to_get_the_weights(env: dict[str, Any]) -> None:
    with pytest.raises(WeightsMissingError) as info:
        resolve_weights("tiny", cache_dir=env["cache"], offline=True)
    msg = str(info.value)
    assert "defocus models import FILE --as tiny" in msg and "--weights FILE" in msg and "pull tiny" in msg
    assert env["hub"].state.count() == 0


def test_import_only_record_gives_the_instructions(env: dict[str, Any]) -> None:
    with pytest.raises(WeightsMissingError, match="get it from the drive"):
        resolve_weights("tiny-import", cache_dir=env["cache"])


def test_unpinned_needs_trust_then_records_the_hash(env: dict[str, Any]) -> None:
    with pytest.raises(WeightsMissingError, match="--trust-unpinned"):
        resolve_weights("tiny-unpinned", cache_dir=env["cache"])
    assert env["hub"].state.count() == 0
    path = resolve_weights("tiny-unpinned", cache_dir=env["cache"], trust_unpinned=True)
    info = WeightsCache(env["cache"]).info("tiny-unpinned")
    assert info is not None and info.sha256 == sha(env["good"]) and not info.pinned
    assert read_metadata(path)["source_sha256"] == sha(env["good"])


def test_wrong_architecture_fails_strictly(env: dict[str, Any]) -> None:
    with pytest.raises(WeightsError, match="conv.weight has shape"):
        resolve_weights("tiny-wide", cache_dir=env["cache"])
    assert not (env["cache"] / "weights" / "tiny-wide" / "converted.safetensors").exists()


def test_import_verifies_structure_and_records_hash(env: dict[str, Any], tmp_path: Path) -> None:
    good = tmp_path / "tiny_official.pth"
    good.write_bytes(tiny_checkpoint(seed=3))
    result = import_weights(good, as_id="tiny-import", cache_dir=env["cache"])
    assert result.sha256 == sha(good.read_bytes()) and result.matches_pin is None
    assert read_metadata(result.path)["id"] == "tiny-import"
    assert resolve_weights("tiny-import", cache_dir=env["cache"], offline=True) == result.path

    wrong = tmp_path / "wide.pth"
    wrong.write_bytes(tiny_checkpoint(width=8))
    with pytest.raises(WeightsError, match="shape"):
        import_weights(wrong, as_id="tiny-unpinned", cache_dir=env["cache"])
    assert WeightsCache(env["cache"]).source_path("tiny-unpinned") is None
    with pytest.raises(UsageError, match="--as"):
        import_weights(wrong, cache_dir=env["cache"])


def test_import_guesses_the_id_from_a_pinned_hash(env: dict[str, Any], tmp_path: Path) -> None:
    f = tmp_path / "whatever.pth"
    f.write_bytes(env["good"])
    manifest = load_manifest(env["manifest"])
    only = Manifest(records={"tiny": manifest.records["tiny"]})
    result = import_weights(f, cache_dir=env["cache"], manifest=only)
    assert result.id == "tiny" and result.matches_pin is True


def test_verify_detects_a_corrupted_file(env: dict[str, Any]) -> None:
    resolve_weights("tiny", cache_dir=env["cache"])
    cache = WeightsCache(env["cache"])
    pins = {r.id: r.sha256 for r in load_manifest(env["manifest"]).records.values()}
    assert [(r.id, r.ok) for r in verify_cache(cache, pins)] == [("tiny", True)]
    src = cache.source_path("tiny")
    assert src is not None
    src.write_bytes(src.read_bytes()[:-1] + b"x")
    [res] = verify_cache(cache, pins)
    assert not res.ok and "no longer has sha256" in res.detail


_CHILD = """
import sys
from pathlib import Path
from deblurcli.errors import DefocusError
from deblurcli.zoo.resolve import resolve_file
try:
    print(resolve_file(sys.argv[1], cache_dir=Path(sys.argv[2])))
except DefocusError as e:
    print(type(e).__name__, e)
    sys.exit(e.exit_code)
"""


def _child(weights_id: str, cache: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**os.environ, **env}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, weights_id, str(cache)], env=full, stdout=subprocess.PIPE, text=True
    )


def test_two_concurrent_pulls_end_with_one_valid_file(env: dict[str, Any]) -> None:
    hub = env["hub"]
    hub.state.delay_s = 0.15  # ~1.7 s per download: both children start long before it ends
    procs = [_child("big", env["cache"], {"DEFOCUS_MANIFEST": str(env["aux"])}) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0] == outs[1]
    folder = env["cache"] / "weights" / "big"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".lock", "source.json", f"{sha(env['big'])}.pth"]
    )
    assert Path(outs[0]).read_bytes() == env["big"]
    assert sum(1 for m, p, _ in hub.state.requests if m == "GET") == 1  # the second waited, then found it


@pytest.fixture()
def hf_env(tmp_path: Path, hub: LocalHub) -> dict[str, Any]:
    data = os.urandom(50_000)
    hub.add_hf_file("org/tiny", COMMIT, "model.bin", data)
    src = {"kind": "hf", "repo_id": "org/tiny", "filename": "model.bin", "revision": COMMIT}
    recs = [
        record("hf", src, digest=sha(data), method=None),
        record("hf-bad", src, digest="2" * 64, method=None),
        record("hf-gone", {**src, "filename": "nope.bin"}, digest=sha(data), method=None),
    ]
    path = tmp_path / "hf.json"
    path.write_text(json.dumps({"schema_version": 1, "weights": recs}))
    env = {"DEFOCUS_MANIFEST": str(path), "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hfhome")}
    return {"data": data, "cache": tmp_path / "cache", "env": env, "hub": hub}


def _run(weights_id: str, hf_env: dict[str, Any], **extra: str) -> tuple[int, str]:
    proc = _child(weights_id, hf_env["cache"], {**hf_env["env"], **extra})
    out = proc.communicate(timeout=120)[0].strip()
    return proc.returncode, out


def test_hf_source_goes_through_huggingface_hub(hf_env: dict[str, Any]) -> None:
    hub = hf_env["hub"]
    rc, out = _run("hf", hf_env)
    assert rc == 0, out
    assert Path(out).read_bytes() == hf_env["data"]
    assert Path(out).parent == hf_env["cache"] / "weights" / "hf"
    assert not (Path(out).parent / ".hf").exists()
    resolves = [m for m, p, _ in hub.state.requests if "/org/tiny/resolve/" in p]
    assert resolves.count("HEAD") >= 1 and resolves.count("GET") == 1
    n = hub.state.count()
    rc, out2 = _run("hf", hf_env)
    assert (rc, out2) == (0, out) and hub.state.count() == n


def test_hf_hash_mismatch_missing_file_and_offline(hf_env: dict[str, Any]) -> None:
    rc, out = _run("hf-bad", hf_env)
    assert rc == 6 and out.startswith("HashMismatchError")
    assert not [p for p in (hf_env["cache"] / "weights" / "hf-bad").iterdir() if p.name != ".lock"]
    rc, out = _run("hf-gone", hf_env)
    assert rc == 6 and out.startswith("DownloadError") and "404" in out and "nope.bin" in out
    before = hf_env["hub"].state.count()
    rc, out = _run("hf", hf_env, HF_HUB_OFFLINE="1")
    assert rc == 5 and out.startswith("WeightsMissingError") and "HF_HUB_OFFLINE" in out
    assert hf_env["hub"].state.count() == before


def test_shipped_manifest_loads_through_the_package_resource() -> None:
    manifest = load_manifest()
    assert "ifan" in manifest.records and manifest.records["ifan"].pinned
    assert (REPO / "weights_manifest.json").is_file()


def test_disk_full_is_a_download_error_and_leaves_no_part(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import io

    real_open = Path.open

    class Full(io.BufferedWriter):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self.name.endswith(".part") and mode in ("wb", "ab"):
            return Full(io.FileIO(str(self), mode))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fake_open)
    with pytest.raises(DownloadError, match="disk full"):
        resolve_file("big", cache_dir=env["cache"])
    assert not list((env["cache"] / "weights" / "big").glob("*.part"))


def test_shipped_ifan_record_end_to_end_through_load_method(
    tmp_path: Path, hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real ``ifan`` record, served locally (module.Network.* safetensors as published), loads a model."""
    from safetensors.torch import save_file

    try:
        from deblurcli.methods.loader import load_method
        from deblurcli.methods.registry import get_method

        spec = get_method("ifan")
    except ImportError as exc:
        pytest.skip(f"registry incomplete: {exc}")
    assert spec.cls is not None
    torch.manual_seed(0)
    net = spec.cls(**spec.hparams)
    mirror = tmp_path / "IFAN.safetensors"
    save_file({f"module.Network.{k}": v.contiguous() for k, v in net.state_dict().items()}, str(mirror))
    data = mirror.read_bytes()
    shipped = json.loads((REPO / "weights_manifest.json").read_text())
    [rec] = [r for r in shipped["weights"] if r["id"] == "ifan"]
    rec["source"]["url"] = hub.add_file("IFAN.safetensors", data)
    rec["sha256"] = sha(data)
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema_version": 1, "weights": [rec]}))
    monkeypatch.setenv("DEFOCUS_MANIFEST", str(path))

    loaded = load_method("ifan", device=torch.device("cpu"), cache_dir=tmp_path / "cache")
    assert loaded.weights_id == "ifan" and loaded.weights_sha256 == sha(data)
    assert loaded.module is not None
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key
    requests = hub.state.count()
    load_method("ifan", device=torch.device("cpu"), cache_dir=tmp_path / "cache", offline=True)
    assert hub.state.count() == requests
