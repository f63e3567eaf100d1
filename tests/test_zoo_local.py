"""The user's own weights in the zoo: ``models import --as NEW_ID``, ``--replace``, honest ``rm``/``verify``/errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deblurcli.zoo.download import import_instructions
from deblurcli.zoo.manifest import load_manifest
from deblurcli.zoo.state import read_metadata, save_ours

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_models_cli  # noqa: E402
from test_download import Tiny, sha, tiny_checkpoint  # noqa: E402
from test_models_cli import run  # noqa: E402

setup = test_models_cli.setup  # the fixture, shared: tests below take it by name

REPO = Path(__file__).resolve().parents[1]


def trained_file(path: Path, seed: int = 7) -> Path:
    """What ``defocus train`` exports: our safetensors with method, hparams and training facts."""
    torch.manual_seed(seed)
    meta = {"method": "tiny", "id": "tiny-run", "hparams": {"width": 4}, "source": "defocus train", "data": "x"}
    save_ours(path, Tiny(width=4).state_dict(), meta)
    return path


def rows() -> dict[str, dict[str, Any]]:
    code, out, err = run("list", "--json")
    assert code == 0, err
    return {r["id"]: r for r in json.loads(out)}


def test_own_weights_get_a_new_local_id_and_load_by_it(setup: dict[str, Any]) -> None:
    from deblurcli.methods.loader import load_method

    manifest_before = Path(setup["tmp"] / "manifest.json").read_bytes()
    mine = trained_file(setup["tmp"] / "final.safetensors")
    code, out, err = run("import", str(mine), "--as", "tiny-mine")
    assert code == 0, err
    assert "local" in err and "--weights tiny-mine" in err
    assert read_metadata(Path(out.strip()))["source_sha256"] == sha(mine.read_bytes())
    row = rows()["tiny-mine"]
    assert (row["source"], row["method"], row["cached"]) == ("local", "tiny", True)
    assert row["sha256"] == sha(mine.read_bytes())
    assert row["hparams"] == {"width": 4}
    overlay = json.loads((setup["cache"] / "local_manifest.json").read_text())
    assert [r["id"] for r in overlay["weights"]] == ["tiny-mine"]
    assert (setup["tmp"] / "manifest.json").read_bytes() == manifest_before  # the shipped file is never edited
    loaded = load_method("tiny", device=torch.device("cpu"), weights=Path("tiny-mine"))
    assert loaded.weights_id == "tiny-mine" and loaded.module is not None
    assert torch.equal(loaded.module.state_dict()["conv.weight"], read_tensors_of(mine)["conv.weight"])


def read_tensors_of(path: Path) -> dict[str, torch.Tensor]:
    from deblurcli.zoo.state import read_tensors

    return read_tensors(path)


def test_method_is_inferred_from_an_authors_format_file(setup: dict[str, Any]) -> None:
    f = setup["tmp"] / "theirs.pth"
    f.write_bytes(tiny_checkpoint(seed=3))  # torch.save of module.-prefixed tensors: no metadata at all
    code, _, err = run("import", str(f), "--as", "tiny-theirs")
    assert code == 0, err
    assert rows()["tiny-theirs"]["method"] == "tiny"
    junk = setup["tmp"] / "junk.pth"
    torch.save({"x": torch.zeros(2)}, junk)
    code, _, err = run("import", str(junk), "--as", "tiny-junk")
    assert code == 5 and str(junk) in err and "not a checkpoint of any method" in err
    assert "tiny-junk" not in rows()


def test_official_ids_are_not_replaced_unless_asked(setup: dict[str, Any]) -> None:
    hub = setup["hub"]
    mine = trained_file(setup["tmp"] / "final.safetensors")
    for official in ("tiny", "tiny-drive"):  # pinned url record; unpinned import-only record
        code, _, err = run("import", str(mine), "--as", official)
        assert code == 2 and "--replace" in err and "--as tiny-mine" in err, err
        assert not (setup["cache"] / "weights" / official / "converted.safetensors").exists()
    code, _, err = run("import", str(mine), "--as", "tiny-train")  # nothing published there: nothing replaced
    assert code == 0 and rows()["tiny-train"]["source"] == "import", err
    code, out, err = run("import", str(mine), "--as", "tiny", "--replace")
    assert code == 0, err
    assert rows()["tiny"]["source"] == "local"
    requests = hub.state.count()
    assert run("pull", "tiny")[:2] == (0, out)  # your file is what `tiny` means now: nothing downloaded
    assert hub.state.count() == requests
    code, _, err = run("rm", "tiny")
    assert code == 0 and "removed tiny" in err and "official" in err
    assert rows()["tiny"]["source"] == "url" and not rows()["tiny"]["cached"]


def test_rm_says_removed_only_for_weights_and_verify_skips_leftovers(setup: dict[str, Any]) -> None:
    code, _, err = run("rm", "nope")
    assert code == 2 and "unknown weights id" in err
    assert run("path", "nope")[0] == 2
    lock_only = setup["cache"] / "weights" / "tiny"
    lock_only.mkdir(parents=True)
    (lock_only / ".lock").touch()  # what a refused or failed pull leaves
    code, out, _ = run("verify")
    assert code == 0 and "tiny" not in out and "no weights cached" in out
    partial = setup["cache"] / "weights" / "tiny-unpinned"
    partial.mkdir(parents=True)
    (partial / "download.pth.part").write_bytes(b"12")
    code, out, _ = run("verify")
    assert code == 0 and "part" in out and "tiny-unpinned" in out and "ok" not in out
    code, _, err = run("rm", "tiny")
    assert code == 0 and "nothing removed" in err and "removed tiny" not in err
    assert run("pull", "tiny")[0] == 0
    code, _, err = run("rm", "tiny")
    assert code == 0 and "removed tiny" in err


def test_import_errors_name_the_users_file_and_give_no_unsafe_advice(setup: dict[str, Any]) -> None:
    pickled = setup["tmp"] / "whole_model.pth"
    torch.save({"model": nn.Conv2d(3, 4, 3)}, pickled)  # a pickled module, not a state dict
    code, _, err = run("import", str(pickled), "--as", "tiny-drive")
    assert code == 5 and str(pickled) in err
    assert "weights_only" not in err and ".tmp" not in err and "Conv2d" in err
    wide = setup["tmp"] / "wide.pth"
    wide.write_bytes(tiny_checkpoint(width=8))
    code, _, err = run("import", str(wide), "--as", "tiny-drive")
    assert code == 5 and "wide.pth" in err and ".tmp" not in err


def test_dmsft_message_does_not_contradict_itself() -> None:
    record = load_manifest(REPO / "weights_manifest.json").get("dmsft")
    text = import_instructions(record)
    assert "published no" in text and "web drive" not in text
    assert "--as dmsft-" in text  # your own weights get an id of their own
