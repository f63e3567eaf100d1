"""Write-then-verify-then-rename, so that no failure, full disk or Ctrl-C leaves a bad file under the final name.

The temporary file sits in the destination folder (``os.replace`` is only atomic within one file system) and
keeps the destination's suffix, because some encoders pick the format from it. Encoders do not always notice a
full disk (Pillow has been seen to finish a truncated JPEG without raising), so before the rename the file is
flushed to the disk and checked: not empty, and for JPEG/PNG/TIFF a header plus end marker (or, for TIFF,
every strip inside the file). Temporary names follow one pattern (:data:`TEMP_RE`) so that a later run can
recognise, and remove, the leftovers of a run that was killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from deblurcli import interrupts
from deblurcli.errors import DiskFullError, EncodeError

#: ``.<stem>.<8 hex>.tmp<suffix>``: group 1 + group 2 give the final file name
TEMP_RE = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".avif", ".heic", ".heif"}


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` that :data:`TEMP_RE` maps back to ``path.name``."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


def final_name(temp_name: str) -> str | None:
    """The file name a temporary file of ours was going to become, or ``None`` if it is not one of ours."""
    match = TEMP_RE.match(temp_name)
    return None if match is None else match.group(1) + (match.group(2) or "")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; verify, fsync and move it into place on success, delete it on
    any exception.

    ``BaseException`` is caught on purpose: Ctrl-C in the middle of a large TIFF must not leave a ``.tmp`` file
    behind either, and a Ctrl-C that something swallowed is raised again before the rename. The temporary file
    is not created here, so the writer creates it with the user's usual permissions.

    Raises:
        DiskFullError: the disk or quota filled up (raised by the writer, or found by the check).
        EncodeError: the written file is incomplete for another reason.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        try:
            yield tmp
        except OSError as err:
            if err.errno in _NO_SPACE:
                raise DiskFullError(f"no space left on device for {path.name}") from None
            raise
        interrupts.check()
        _sync_and_verify(tmp, path)
        interrupts.check()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_and_verify(tmp: Path, path: Path) -> None:
    try:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
            problem = verify_bytes(fh, path.suffix.lower())
    except OSError as err:
        if err.errno in _NO_SPACE:
            raise DiskFullError(f"no space left on device for {path.name}") from None
        raise
    if problem is None:
        return
    with contextlib.suppress(OSError):
        if shutil.disk_usage(path.parent).free < 4 << 20:
            raise DiskFullError(f"no space left on device for {path.name} ({problem})")
    raise EncodeError(f"{path.name} came out incomplete ({problem}); nothing was written")


def verify_bytes(fh: BinaryIO, suffix: str) -> str | None:
    """Why the open file ``fh`` is not a complete image of type ``suffix``, or ``None`` if it looks whole (or
    is not an image: reports and logs are only synced).

    Cheap on purpose (a few bytes at both ends; TIFF: the IFD tables), so it runs on every output.
    """
    size = fh.seek(0, os.SEEK_END)
    if suffix not in _IMAGE_SUFFIXES:
        return None
    if size == 0:
        return "empty file"
    fh.seek(0)
    head = fh.read(8)
    fh.seek(max(0, size - 12))
    tail = fh.read(12)
    if suffix in (".jpg", ".jpeg", ".jpe"):
        if not head.startswith(b"\xff\xd8\xff") or not tail.endswith(b"\xff\xd9"):
            return "no JPEG end marker"
    elif suffix == ".png":
        if not head.startswith(b"\x89PNG\r\n\x1a\n") or tail != _PNG_END:
            return "no PNG end chunk"
    elif suffix in (".tif", ".tiff"):
        return _tiff_problem(fh, size)
    elif suffix == ".webp":
        # RIFF: the header states the length of everything after its first 8 bytes
        if not head.startswith(b"RIFF") or int.from_bytes(head[4:8], "little") + 8 != size:
            return "WebP shorter than its RIFF header says"
    else:
        return _bmff_problem(fh, size)
    return None


def _bmff_problem(fh: BinaryIO, size: int) -> str | None:
    """AVIF and HEIF are ISO BMFF files: top-level boxes, each stating its own length, must tile the file."""
    pos = 0
    while pos < size:
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            return "HEIF/AVIF box header cut short"
        length = int.from_bytes(header[:4], "big")
        if length == 1:
            if len(header) < 16:
                return "HEIF/AVIF box header cut short"
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # the last box runs to the end of the file
            length = size - pos
        if length < 8 or pos + length > size:
            return "HEIF/AVIF shorter than its boxes say"
        if pos == 0 and header[4:8] != b"ftyp":
            return "no HEIF/AVIF file-type box"
        pos += length
    return None


def _tiff_problem(fh: BinaryIO, size: int) -> str | None:
    import tifffile

    fh.seek(0)
    try:
        with tifffile.TiffFile(fh) as tif:
            for page in tif.pages:
                for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):  # type: ignore[union-attr]
                    if offset + count > size:
                        return "TIFF strip beyond the end of the file"
    except Exception as err:  # tifffile raises many types for a cut file; all mean "not whole"
        return f"unreadable TIFF: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    return None


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened for this on Windows."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Try to become the only writer of ``path`` among concurrent runs; yields whether that worked.

    A lock per output (``.<name>.lock`` beside it, through ``filelock``, which works on Windows and macOS as on
    Linux) makes a second run skip a photo the first is working on instead of doing it twice; correctness
    does not depend on it, since every write is verified and atomic anyway. The lock file is removed while
    still held: filelock notices a lock on a removed file and retries, so no two holders can arise.
    """
    from filelock import FileLock, Timeout

    lock_path = path.with_name(f".{path.name}.lock")
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        lock.release()


def stale_temps(folder: Path) -> dict[str, list[Path]]:
    """Our temporary files in ``folder`` by the name they were to become. They are only stale for an output
    whose :func:`claim` the caller holds: another run may be writing the others right now."""
    temps: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return temps
    for entry in entries:
        name = final_name(entry.name) if entry.name.startswith(".") else None
        if name is not None:
            temps.setdefault(name, []).append(Path(entry.path))
    return temps


def keep_mtime(path: Path, mtime: float | None) -> None:
    """Give ``path`` the modification time ``mtime`` (a source photo's), as ``exiftool -P`` does; None: leave it.

    Photo libraries and file browsers sort by this date, so a result keeps its place beside its original.
    The access time becomes now, which is what it is.
    """
    if mtime is not None:
        os.utime(path, (time.time(), mtime))
