"""Outputs that are whole or absent: verified temporary files, full disks, per-output locks across processes,
leftovers of killed runs, and Ctrl-C that exits 130 even when a library swallowed it."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

import deblurcli.io.encode as encode_mod
from deblurcli import interrupts
from deblurcli.cli import app
from deblurcli.errors import DiskFullError, EncodeError
from deblurcli.io import atomic
from deblurcli.io.atomic import atomic_output, verify_bytes

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _photos(folder: Path, n: int, ext: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = [folder / f"p{i}.{ext}" for i in range(n)]
    for p in paths:
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(p)
    return paths


def run(*args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["deblur", *args, "--json", "-q"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout), result.stderr


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- verification before the rename ------------------------------------------------------------------


def test_verify_bytes_finds_cut_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpg")
    Image.fromarray(pixels).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", pixels, compression="zlib")
    Image.fromarray(pixels).save(tmp_path / "a.webp", quality=90)
    Image.fromarray(pixels).save(tmp_path / "a.avif", quality=90)
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(tmp_path / "a.heic", quality=90)
    for name in ("a.jpg", "a.png", "a.tif", "a.webp", "a.avif", "a.heic"):
        whole = (tmp_path / name).read_bytes()
        with open(tmp_path / name, "rb") as fh:
            assert verify_bytes(fh, Path(name).suffix) is None
        (tmp_path / name).write_bytes(whole[: len(whole) * 2 // 3])
        with open(tmp_path / name, "rb") as fh:
            assert verify_bytes(fh, Path(name).suffix) is not None, name


def test_truncated_write_that_raised_nothing_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.jpg"
    with pytest.raises(EncodeError, match="incomplete"), atomic_output(target) as tmp:
        tmp.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)  # a JPEG without its end, as Pillow left one
    assert _files(tmp_path) == []
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: Usage(10, 10, 0))
    with pytest.raises(DiskFullError, match="no space left"), atomic_output(target) as tmp:
        tmp.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    assert _files(tmp_path) == []


def test_enospc_from_the_writer_is_disk_full(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError), atomic_output(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert _files(tmp_path) == []


def test_disk_full_stops_the_batch_with_exit_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _photos(tmp_path / "in", 3)

    def full(tmp: Path, *args: object) -> None:
        tmp.write_bytes(b"\x89PNG\r\n\x1a\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(encode_mod, "_write_png", full)
    code, summary, err = run(str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 4 and summary["ok"] == 0 and summary["failed"] == 3
    reasons = [f["reason"] for f in summary["files"]]
    assert "no space left" in reasons[0] and all("not attempted" in r for r in reasons[1:])
    assert _files(tmp_path / "out") == []


def test_real_full_filesystem(tmp_path: Path) -> None:
    """A 16 KiB tmpfs (needs root to mount): the big result fails as "no space", nothing partial is left."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rng = np.random.default_rng(1)
        Image.fromarray(rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
        code, summary, _ = run(str(tmp_path / "noise.png"), "-o", str(mount), "--format", "tiff")
        assert code == 4 and "no space left" in summary["files"][0]["reason"]
        assert _files(mount) == []
    finally:
        subprocess.run(["umount", str(mount)])


# --- locks, leftovers, interrupts ----------------------------------------------------------------------

_HOLDER = """
import sys
from pathlib import Path
from deblurcli.io.atomic import claim
with claim(Path(sys.argv[1])) as mine:
    print("held" if mine else "busy", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_skips_an_output_being_written(tmp_path: Path) -> None:
    (src,) = _photos(tmp_path, 1)
    dst = tmp_path / "p0_deblurred.png"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(dst)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, summary, _ = run(str(src))
        assert code == 0 and summary["skipped"] == 1 and "another defocus run" in summary["files"][0]["reason"]
        assert not dst.exists()
    finally:
        holder.communicate("")
    code, summary, _ = run(str(src))
    assert code == 0 and summary["ok"] == 1 and dst.is_file()
    assert _files(tmp_path) == ["p0.png", "p0_deblurred.png"]  # no lock file left behind


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    (src,) = _photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    ours = [out / ".p0_deblurred.0123abcd.tmp.png", out / ".p0_deblurred_defocus.89abcdef.tmp.tif"]
    theirs = [out / ".p9_deblurred.0123abcd.tmp.png", out / ".notes.txt"]  # another output, a user's file
    for p in ours + theirs:
        p.write_bytes(b"partial")
    code, summary, _ = run(str(src), "-o", str(out))
    assert code == 0 and summary["ok"] == 1
    assert _files(out) == sorted([p.name for p in theirs] + ["p0_deblurred.png"])
    ours[1].write_bytes(b"killed while writing the map")  # the result itself was finished
    code, summary, _ = run(str(src), "-o", str(out))
    assert code == 0 and summary["skipped"] == 1
    assert _files(out) == sorted([p.name for p in theirs] + ["p0_deblurred.png"])


def test_interrupt_flag_survives_a_swallowed_keyboardinterrupt(tmp_path: Path) -> None:
    previous = signal.getsignal(signal.SIGINT)
    interrupts.install()
    try:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        except BaseException:  # what some import-time code does
            pass
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "x.png") as tmp:
            tmp.write_bytes(b"whole enough")
        assert _files(tmp_path) == []
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts.reset()


_SWALLOWER = """
import os, signal, sys
import deblurcli.io.decode as decode_mod
real = decode_mod.decode
def decode(*args, **kwargs):
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    except BaseException:
        pass
    return real(*args, **kwargs)
decode_mod.decode = decode
from deblurcli.__main__ import main
sys.argv = ["defocus", "deblur", *sys.argv[1:]]
main()
"""


def test_ctrl_c_swallowed_by_a_library_still_exits_130(tmp_path: Path) -> None:
    srcs = _photos(tmp_path / "in", 2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SWALLOWER), *map(str, srcs), "-o", str(tmp_path / "out"), "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in proc.stderr
    assert _files(tmp_path / "out") == []


@pytest.mark.slow
def test_two_concurrent_runs_share_the_work_and_write_whole_files(tmp_path: Path) -> None:
    _photos(tmp_path / "in", 8)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deblurcli", "deblur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(2)]
    summaries = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(s["ok"] for s in summaries) == 8  # each photo done by exactly one of the two runs
    assert sum(s["skipped"] for s in summaries) == 8
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"p{i}_deblurred.png" for i in range(8)]
    for p in written:
        with Image.open(p) as im:
            im.load()
            assert im.size == (32, 24)


def test_format_webp_avif_heif_are_written_and_8_bit_only(tmp_path: Path) -> None:
    from deblurcli.io.decode import decode

    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(src)
    for fmt, ext in (("webp", ".webp"), ("avif", ".avif"), ("heif", ".heic")):
        code, report, _ = run(str(src), "-o", str(tmp_path / fmt), "--format", fmt, "--method", "classic")
        assert code == 0, report
        photo = decode(tmp_path / fmt / f"in_deblurred{ext}")
        assert photo.kind == fmt and photo.pixels.shape == (48, 64, 3)
    bad = runner.invoke(app, ["deblur", str(src), "-o", str(tmp_path / "x"), "--format", "webp", "--bit-depth", "16"])
    assert bad.exit_code == 2 and "8-bit only" in bad.stderr and not (tmp_path / "x").exists()
