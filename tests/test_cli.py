"""``defocus deblur`` end to end: real images through the real pipeline, files checked on disk."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from deblurcli import __version__
from deblurcli.cli import app

runner = CliRunner()


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((96, 80))
    folder = tmp_path / "photos"
    folder.mkdir()
    img.save(folder / "a.jpg", quality=95)
    img.save(folder / "b.png")
    return folder


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from deblurcli.cli import main\n"
        "sys.argv = ['defocus', '{arg}']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    for arg in ("--version", "--help"):
        out = subprocess.run([sys.executable, "-c", code.format(arg=arg)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        if arg == "--version":
            assert out.stdout.strip() == f"defocus {__version__}"
        else:
            assert "deblur" in out.stdout


def test_deblur_writes_beside_input_and_skips_on_rerun(photo_dir: Path) -> None:
    src = photo_dir / "a.jpg"
    before = src.read_bytes()
    code, _out, err = invoke("deblur", str(src), "-q")
    assert code == 0, err
    dst = photo_dir / "a_deblurred.jpg"
    with Image.open(dst) as im:
        assert im.format == "JPEG" and im.size == (96, 80)
    assert src.read_bytes() == before
    stamp = dst.stat().st_mtime_ns
    code, out, _ = invoke("deblur", str(src), "--json", "-q")
    assert code == 0
    summary = json.loads(out)
    assert summary["skipped"] == 1 and summary["files"][0]["status"] == "skipped"
    assert dst.stat().st_mtime_ns == stamp
    code, out, _ = invoke("deblur", str(src), "--json", "-q", "--overwrite")
    assert json.loads(out)["ok"] == 1


def test_batch_with_bad_files_goes_on_and_exits_1(photo_dir: Path, tmp_path: Path) -> None:
    (photo_dir / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (photo_dir / "empty.jpg").write_bytes(b"")
    (photo_dir / "notes.tif").write_text("not an image")
    out_dir = tmp_path / "out"
    code, out, _ = invoke("deblur", str(photo_dir), "-o", str(out_dir), "--json", "-q")
    assert code == 1
    summary = json.loads(out)
    assert summary["ok"] == 2 and summary["failed"] == 3
    reasons = {Path(f["source"]).name: f["reason"] for f in summary["files"] if f["status"] == "failed"}
    assert set(reasons) == {"corrupt.png", "empty.jpg", "notes.tif"}
    assert all(r and "\n" not in r for r in reasons.values())
    assert sorted(p.name for p in out_dir.iterdir()) == ["a_deblurred.jpg", "b_deblurred.png"]


def test_missing_input_fails_and_no_input_is_usage_error(photo_dir: Path, tmp_path: Path) -> None:
    code, out, _ = invoke("deblur", str(photo_dir / "a.jpg"), str(tmp_path / "nope.jpg"), "--json", "-q")
    assert code == 1 and json.loads(out)["failed"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = invoke("deblur", str(empty))
    assert code == 2 and "no photos" in err


def test_pixel_limit_is_a_per_file_failure(photo_dir: Path) -> None:
    code, out, _ = invoke("deblur", str(photo_dir / "a.jpg"), "--max-megapixels", "0.001", "--json", "-q")
    assert code == 1
    assert "limit" in json.loads(out)["files"][0]["reason"].lower()
    assert not (photo_dir / "a_deblurred.jpg").exists()


def test_maps_format_and_depth_options(photo_dir: Path) -> None:
    code, out, err = invoke(
        "deblur", str(photo_dir / "b.png"), "--maps", "--format", "tiff", "--bit-depth", "16", "--json", "-q"
    )
    assert code == 0, err
    result = tifffile.imread(photo_dir / "b_deblurred.tif")
    assert result.dtype == np.uint16 and result.shape == (80, 96, 3)
    files = json.loads(out)["files"][0]["maps"]
    # --bokeh keep (the default) adds its weight and the blur radius that weight was formed from
    names = {"b_deblurred_defocus", "b_deblurred_bokeh_weight", "b_deblurred_bokeh_radius"}
    assert {Path(f).name for f in files} == {f"{n}.{ext}" for n in names for ext in ("tif", "png")}
    assert tifffile.imread(photo_dir / "b_deblurred_defocus.tif").dtype == np.uint16


def test_jpeg_16_bit_is_a_usage_error(photo_dir: Path) -> None:
    code, _, err = invoke("deblur", str(photo_dir / "a.jpg"), "--format", "jpeg", "--bit-depth", "16")
    assert code == 2 and "8-bit" in err


def test_strength_zero_returns_the_input(photo_dir: Path) -> None:
    code, _, err = invoke("deblur", str(photo_dir / "b.png"), "--strength", "0", "-q")
    assert code == 0, err
    a = np.asarray(Image.open(photo_dir / "b.png"), dtype=np.int16)
    b = np.asarray(Image.open(photo_dir / "b_deblurred.png"), dtype=np.int16)
    assert np.abs(a - b).max() <= 1


def test_interrupt_during_encoding_leaves_no_file(photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deblurcli.io.encode as encode_mod

    real = encode_mod.atomic_output

    @contextlib.contextmanager
    def interrupted(path: Path) -> Iterator[Path]:
        with real(path) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
            yield tmp  # pragma: no cover

    monkeypatch.setattr(encode_mod, "atomic_output", interrupted)
    result = runner.invoke(app, ["deblur", str(photo_dir / "b.png"), "-q"])
    assert isinstance(result.exception, KeyboardInterrupt) or result.exit_code == 130
    assert sorted(p.name for p in photo_dir.iterdir()) == ["a.jpg", "b.png"]


def test_unknown_method_is_a_usage_error(photo_dir: Path) -> None:
    code, _, _ = invoke("deblur", str(photo_dir / "a.jpg"), "--method", "magic")
    assert code == 2
