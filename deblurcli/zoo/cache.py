"""The per-user weights cache: where files live, what we know about them, and who may write them.

Layout, one folder per manifest id::

    <cache>/weights/<id>/<sha256><ext>            the source file exactly as published (or imported)
    <cache>/weights/<id>/converted.safetensors    the same weights in our format, with metadata
    <cache>/weights/<id>/source.json              sha256 and origin of both files (the cache's own record)
    <cache>/weights/<id>/.lock                    taken while a process downloads or converts
    <cache>/local_manifest.json                   the user's own records (``deblurcli.zoo.overlay``)

Naming the source by its hash means a file is never mistaken for another version of itself; ``source.json``
exists so unpinned and imported files (whose hash the manifest cannot know) are still verifiable later.
Every file enters the cache through ``os.replace`` of a finished temporary file in the same folder, so a
reader sees either nothing or a complete file, never half of one. Locks go through ``filelock`` (flock on
POSIX, msvcrt on Windows), so nothing here calls a Unix-only API.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock

from deblurcli.errors import WeightsError

CACHE_ENV = "DEFOCUS_CACHE"
CONVERTED_NAME = "converted.safetensors"
INFO_NAME = "source.json"
LOCK_NAME = ".lock"


def cache_root(cache_dir: Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$DEFOCUS_CACHE``, else the platform's per-user cache folder."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("defocus"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed so multi-GB checkpoints do not fill memory."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass
class CacheInfo:
    """What the cache knows about one id's files (``source.json``)."""

    id: str
    sha256: str
    size: int
    filename: str
    origin: str
    pinned: bool
    converted_sha256: str | None = None


class WeightsCache:
    """Paths and bookkeeping of the weights cache rooted at ``root`` (see module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def open(cls, cache_dir: Path | None = None) -> WeightsCache:
        return cls(cache_root(cache_dir))

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    def folder(self, weights_id: str) -> Path:
        return self.weights_dir / weights_id

    def converted_path(self, weights_id: str) -> Path:
        return self.folder(weights_id) / CONVERTED_NAME

    def ensure_folder(self, weights_id: str) -> Path:
        folder = self.folder(weights_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WeightsError(
                f"cannot create the weights cache folder {folder}: {exc.strerror or exc}"
            ) from exc
        return folder

    def cached_ids(self) -> list[str]:
        if not self.weights_dir.is_dir():
            return []
        return sorted(p.name for p in self.weights_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- source.json ---------------------------------------------------------------------------------------

    def info(self, weights_id: str) -> CacheInfo | None:
        """The recorded facts about ``weights_id``, or None when nothing (readable) is recorded."""
        path = self.folder(weights_id) / INFO_NAME
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return CacheInfo(**data)
        except (OSError, ValueError, TypeError):
            return None

    def write_info(self, info: CacheInfo) -> None:
        """Atomically replace ``source.json``."""
        folder = self.ensure_folder(info.id)
        tmp = folder / f".{INFO_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, folder / INFO_NAME)

    def source_path(self, weights_id: str) -> Path | None:
        """The cached source file of ``weights_id`` if present (as recorded in ``source.json``)."""
        info = self.info(weights_id)
        if info is None:
            return None
        path = self.folder(weights_id) / info.filename
        return path if path.is_file() else None

    def remove(self, weights_id: str) -> bool:
        """Delete everything cached for ``weights_id``; False if there was nothing."""
        folder = self.folder(weights_id)
        if not folder.exists():
            return False
        shutil.rmtree(folder)
        return True

    @contextlib.contextmanager
    def lock(self, weights_id: str) -> Iterator[None]:
        """Exclusive lock on one id's folder, across processes; blocks until the holder is done."""
        folder = self.ensure_folder(weights_id)
        with FileLock(str(folder / LOCK_NAME)):
            yield

    def holds_weights(self, weights_id: str) -> bool:
        """Whether a finished file (source or converted) is cached, as opposed to leftovers or nothing."""
        return self.source_path(weights_id) is not None or self.converted_path(weights_id).is_file()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-hashing one id's cached files.

    ``ok`` is False for anything corrupt or missing; ``state`` is ``ok``, ``bad`` or ``partial`` (an
    interrupted download: not an error, but not weights either, so never reported as "ok").
    """

    id: str
    ok: bool
    detail: str
    state: str = "ok"


def verify_cache(cache: WeightsCache, pins: Mapping[str, str | None]) -> list[VerifyResult]:
    """Re-hash every cached file against what ``source.json`` recorded (and the manifest's pin, if any).

    ``pins`` maps manifest ids to their pinned sha256 (None when unpinned); ids missing from it are
    reported but not failed, since a newer manifest may have dropped a record the user still holds.
    """
    results = []
    for weights_id in cache.cached_ids():
        folder = cache.folder(weights_id)
        info = cache.info(weights_id)
        if info is None:
            leftovers = [p for p in folder.iterdir() if p.name != LOCK_NAME]
            if not leftovers:  # a lock file left by a failed or refused pull: no weights, nothing to check
                continue
            partial = any(p.suffix in (".part", ".tmp") or p.name == ".hf" for p in leftovers)
            why = "interrupted download; `defocus models pull` resumes it" if partial else "no weights, leftovers"
            results.append(VerifyResult(weights_id, True, why, state="partial"))
            continue
        problems: list[str] = []
        notes: list[str] = []
        source = folder / info.filename
        if not source.is_file():
            problems.append(f"source file {info.filename} is missing")
        elif sha256_file(source) != info.sha256:
            problems.append(f"{info.filename} no longer has sha256 {info.sha256}")
        converted = cache.converted_path(weights_id)
        if converted.is_file() and info.converted_sha256 and sha256_file(converted) != info.converted_sha256:
            problems.append(f"{CONVERTED_NAME} is corrupt")
        if weights_id not in pins:
            notes.append("not in the manifest")
        elif pins[weights_id] is None:
            notes.append("unpinned: compare the sha256 with the publisher's")
        elif pins[weights_id] != info.sha256:
            notes.append("imported file differs from the pinned one")
        detail = "; ".join(problems + notes) or "ok"
        state = "bad" if problems else "ok"
        results.append(VerifyResult(weights_id, not problems, f"sha256 {info.sha256[:12]}…: {detail}", state=state))
    return results
