"""``defocus deblur`` on batches: every input accounted for, names and trees as asked, one-line refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deblurcli.cli import app

runner = CliRunner()


def _save(path: Path, seed: int = 0, fmt: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, format=fmt)


def run(*args: str, stdin: bytes | None = None) -> tuple[int, dict[str, Any] | None, str, bytes]:
    """Exit code, the --json summary (when asked for), stderr and raw stdout."""
    result = runner.invoke(app, ["deblur", *args], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    summary = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None
    return result.exit_code, summary, result.stderr, result.stdout_bytes


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(f["source"]).as_posix(): f for f in summary["files"]}


def test_tree_is_kept_under_output_dir(tmp_path: Path) -> None:
    _save(tmp_path / "s/a/img.jpg", 1)
    _save(tmp_path / "s/b/img.jpg", 2)
    _save(tmp_path / "s/top.png", 3)
    code, summary, err, _ = run(str(tmp_path / "s"), "-r", "-o", str(tmp_path / "out"), "--json", "-q")
    assert code == 0, err
    assert summary is not None and summary["ok"] == 3 and summary["skipped"] == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["a/img_deblurred.jpg", "b/img_deblurred.jpg", "top_deblurred.png"]
    a = np.asarray(Image.open(tmp_path / "out/a/img_deblurred.jpg"), dtype=float)
    b = np.asarray(Image.open(tmp_path / "out/b/img_deblurred.jpg"), dtype=float)
    assert np.abs(a - b).mean() > 20  # two different photos, not one written twice


def test_clash_is_refused_for_both_and_never_skipped(tmp_path: Path) -> None:
    _save(tmp_path / "s/IMG_1.tif", 1)
    _save(tmp_path / "s/IMG_1.tiff", 2)
    _save(tmp_path / "s/other.png", 3)
    code, summary, err, _ = run(str(tmp_path / "s"), "-o", str(tmp_path / "out"), "--json", "-q")
    assert code == 1
    assert summary is not None and summary["ok"] == 1 and summary["failed"] == 2 and summary["skipped"] == 0
    files = by_name(summary)
    for name in ("IMG_1.tif", "IMG_1.tiff"):
        reason = next(f["reason"] for k, f in files.items() if k.endswith("/" + name))
        assert "same output" in reason and "\n" not in reason
    assert err.count("failed") == 2  # -q still lists failures, one line each
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["other_deblurred.png"]


def test_maps_are_part_of_the_clash_check(tmp_path: Path) -> None:
    _save(tmp_path / "s/a.jpg", 1)  # a_deblurred.jpg and a_deblurred.png differ, but their maps would not
    _save(tmp_path / "s/a.png", 2)
    _save(tmp_path / "s/b.png", 3)
    code, summary, err, _ = run(str(tmp_path / "s"), "--maps", "-o", str(tmp_path / "out"), "--json", "-q")
    assert code == 1, err
    assert summary is not None and summary["ok"] == 1 and summary["failed"] == 2
    for name in ("a.jpg", "a.png"):
        reason = by_name(summary)[(tmp_path / "s" / name).as_posix()]["reason"]
        assert "a_deblurred_defocus.tif" in reason and "same output" in reason and "\n" not in reason
    assert not list((tmp_path / "out").glob("a_*"))
    code, summary, err, _ = run(str(tmp_path / "s/a.jpg"), "--maps", "-o", str(tmp_path / "out"), "--json", "-q")
    assert code == 0, err  # one of them alone is fine


def test_a_map_never_replaces_an_input(tmp_path: Path) -> None:
    _save(tmp_path / "x.jpg", 1)
    _save(tmp_path / "x_deblurred_defocus.png", 2)  # named like x's map preview, given explicitly
    code, summary, err, _ = run(str(tmp_path / "x.jpg"), str(tmp_path / "x_deblurred_defocus.png"), "--maps", "--json")
    assert code == 1, err
    assert summary is not None
    reason = by_name(summary)[(tmp_path / "x.jpg").as_posix()]["reason"]
    assert "would replace the input" in reason
    with Image.open(tmp_path / "x_deblurred_defocus.png") as im:
        assert im.size == (32, 24) and im.mode == "RGB"  # still the user's photo


def test_suffix_and_name_template(tmp_path: Path) -> None:
    _save(tmp_path / "shoot/x.jpg")
    code, _, err, _ = run(str(tmp_path / "shoot/x.jpg"), "--suffix", "-sharp", "-q")
    assert code == 0, err
    assert (tmp_path / "shoot/x-sharp.jpg").is_file()
    code, _, err, _ = run(
        str(tmp_path / "shoot/x.jpg"), "--name", "{parent}_{stem}_{method}.{ext}", "-o", str(tmp_path / "o"), "-q"
    )
    assert code == 0, err
    with Image.open(tmp_path / "o/shoot_x_classic.jpg") as im:
        assert im.format == "JPEG" and im.size == (32, 24)


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--name", "{stem}.png", "{ext}"),
        ("--name", "{stem}{nope}.{ext}", "unknown field"),
        ("--name", "{stem:>9}.{ext}", "format"),
        ("--name", "{stem}/x.{ext}", "plain"),
        ("--name", "{stem.{ext}", "--name"),
        ("--suffix", "a/b", "separator"),
    ],
)
def test_bad_names_are_one_usage_error_before_any_work(tmp_path: Path, option: str, value: str, needle: str) -> None:
    _save(tmp_path / "x.jpg")
    code, _, err, _ = run(str(tmp_path / "x.jpg"), option, value)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]


def test_hidden_files_and_folders_need_hidden(tmp_path: Path) -> None:
    _save(tmp_path / "s/seen.jpg")
    _save(tmp_path / "s/.cache/thumb.jpg")
    _save(tmp_path / "s/.dot.jpg")
    code, summary, _, _ = run(str(tmp_path / "s"), "-r", "-o", str(tmp_path / "o1"), "--json", "-q")
    assert code == 0 and summary is not None and [Path(f["source"]).name for f in summary["files"]] == ["seen.jpg"]
    code, summary, _, _ = run(str(tmp_path / "s"), "-r", "--hidden", "-o", str(tmp_path / "o2"), "--json", "-q")
    assert code == 0 and summary is not None and summary["ok"] == 3
    assert (tmp_path / "o2/.cache/thumb_deblurred.jpg").is_file()


def test_stdin_to_stdout_is_one_image_and_nothing_else(tmp_path: Path) -> None:
    _save(tmp_path / "x.png")
    code, _, err, out = run("-", "-q", stdin=(tmp_path / "x.png").read_bytes())
    assert code == 0, err
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "PNG" and im.size == (32, 24)
    code, summary, err, _ = run("-", "-o", str(tmp_path / "o"), "--json", stdin=(tmp_path / "x.png").read_bytes())
    assert code == 0 and summary is not None and summary["files"][0]["source"] == "-"
    assert _names(tmp_path / "o") == ["stdin_deblurred.png"]
    code, _, err, out = run(str(tmp_path / "x.png"), "-o", "-", "--format", "jpeg")
    assert code == 0, err
    assert out[:3] == b"\xff\xd8\xff" and out[-2:] == b"\xff\xd9"
    assert "1 deblurred" in err  # the summary went to stderr, stdout holds the image alone
    assert _names(tmp_path) == ["o", "x.png"]
    code, _, err, _ = run(str(tmp_path / "x.png"), str(tmp_path / "x.png") + "*", "-o", "-")
    assert code == 0  # the same file twice is one photo
    code, _, err, _ = run("-", str(tmp_path / "x.png"), stdin=b"")
    assert code == 2 and "one photo" in err
    code, _, err, _ = run(str(tmp_path / "x.png"), "-o", "-", "--json")
    assert code == 2 and "--json" in err


def test_verbose_lists_skips_and_json_has_every_reason(tmp_path: Path) -> None:
    _save(tmp_path / "a.jpg")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    assert run(str(tmp_path / "a.jpg"), "-q")[0] == 0
    code, summary, err, _ = run(str(tmp_path), "-v", "--json")
    assert code == 1 and summary is not None and summary["exit_code"] == 1
    assert all(f["reason"] for f in summary["files"] if f["status"] != "ok")
    assert "skipped" in err and "output exists" in err and "bad.png" in err
    code, _, err, _ = run(str(tmp_path))
    assert "--verbose" in err and "output exists" not in err


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--weights", "{tmp}/nonexist.zip", "-m", "drbnet"], 5, "no such file"),
        (["--weights", "{tmp}", "-m", "ifan"], 5, "folder"),
        (["--weights", "{tmp}/x.jpg", "-m", "ifan"], 5, "x.jpg"),
        (["-o", "{tmp}/x.jpg"], 2, "is a file"),
        (["--bit-depth", "16"], 2, "JPEG"),
        (["--format", "png", "--bit-depth", "32"], 2, "PNG"),
    ],
)
def test_up_front_validation(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    _save(tmp_path / "x.jpg")
    argv = [a.format(tmp=tmp_path) for a in args]
    got, _, err, _ = run(str(tmp_path / "x.jpg"), *argv, "-q")
    assert got == code, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]


def test_weights_takes_an_imported_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deblurcli.archs.kpac import KPAC
    from deblurcli.zoo.state import save_ours

    monkeypatch.setenv("DEFOCUS_CACHE", str(tmp_path / "cache"))
    mine = tmp_path / "final.safetensors"
    hparams = {"levels": 2, "dual_pixel": False}
    save_ours(mine, KPAC(levels=2).state_dict(), {"method": "kpac", "id": "kpac-x", "hparams": hparams})
    imported = runner.invoke(app, ["models", "import", str(mine), "--as", "kpac-mine"])
    assert imported.exit_code == 0, imported.stderr
    _save(tmp_path / "x.jpg")
    code, summary, err, _ = run(str(tmp_path / "x.jpg"), "-m", "kpac", "--weights", "kpac-mine", "--json", "-q")
    assert code == 0, err  # a bare name is an id for the loader, not a missing file
    assert summary is not None and summary["ok"] == 1 and (tmp_path / "x_deblurred.jpg").is_file()
    code, _, err, _ = run(str(tmp_path / "x.jpg"), "-m", "kpac", "--weights", "kpac-nope", "--overwrite", "-q")
    assert code == 2 and "no weights id" in err


def test_unwritable_output_folder_is_exit_4(tmp_path: Path) -> None:
    _save(tmp_path / "x.jpg")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        if __import__("os").access(tmp_path / "ro", __import__("os").W_OK):
            pytest.skip("running as a user who can write anywhere")
        code, _, err, _ = run(str(tmp_path / "x.jpg"), "-o", str(tmp_path / "ro/sub"), "-q")
        assert code == 4 and "cannot write" in err
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_precision_bf16_with_the_default_method_runs(tmp_path: Path) -> None:
    _save(tmp_path / "x.jpg")
    code, _, err, _ = run(str(tmp_path / "x.jpg"), "--precision", "bf16")
    assert code == 0, err
    assert "fp32 only" in err and (tmp_path / "x_deblurred.jpg").is_file()
