"""Fetching a record's source file into the cache: resumable, hash-checked, atomic.

``url`` sources are streamed with urllib into ``<name>.part`` and resumed with an HTTP Range request after a
dropped connection (or in a later run); ``hf`` sources go through ``hf_hub_download`` so that HF_ENDPOINT,
HF_HUB_OFFLINE, tokens and mirrors behave as users of the Hub expect. Either way the finished file is hashed
*before* it enters the cache: a pinned hash that differs deletes the file and raises, and an unpinned file
is fetched only when the caller explicitly trusts it, its observed hash being recorded for later checks.

Callers hold the cache lock for the id (``WeightsCache.lock``) around :func:`fetch_source`.
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deblurcli import __version__
from deblurcli.errors import DownloadError, HashMismatchError, WeightsError, WeightsMissingError
from deblurcli.zoo.cache import CacheInfo, WeightsCache, sha256_file
from deblurcli.zoo.manifest import Source, WeightsRecord

#: called with (bytes done, total bytes or None) as a download proceeds
ProgressFn = Callable[[int, int | None], None]

CHUNK = 1 << 16
TIMEOUT_S = 60.0
#: attempts per download; each retry resumes from what the ``.part`` file already holds
ATTEMPTS = 4


def fetch_source(
    record: WeightsRecord,
    cache: WeightsCache,
    *,
    progress: ProgressFn | None = None,
    trust_unpinned: bool = False,
) -> Path:
    """Download ``record``'s source into the cache and return its path there.

    Raises:
        WeightsMissingError: import-only source, or unpinned and not trusted.
        DownloadError: HTTP error, unreachable host, disk full.
        HashMismatchError: the file differs from the pinned sha256 (it has been deleted).
    """
    if not record.source.downloadable:
        raise WeightsMissingError(import_instructions(record))
    reason = offline_reason(False)
    if reason is not None:  # the last gate: no caller reaches the network while HF_HUB_OFFLINE is set
        raise WeightsMissingError(f"weights {record.id!r} are not cached and downloading is off ({reason})")
    if not record.pinned and not trust_unpinned:
        raise WeightsMissingError(
            f"weights {record.id!r} have no published sha256, so they are not downloaded implicitly. "
            f"Run `defocus models pull {record.id} --trust-unpinned` to fetch them from "
            f"{record.source.describe()} and record their hash, "
            f"or `defocus models import FILE --as {record.id}`."
        )
    folder = cache.ensure_folder(record.id)
    if record.source.kind == "url":
        assert record.source.url is not None
        part = folder / f"download{record.ext}.part"
        _fetch_url(record.source.url, part, expected_size=record.size, progress=progress)
        origin = record.source.url
    else:
        part = _fetch_hf(record.source, folder, progress=progress)
        origin = record.source.describe()
    return install(record, cache, part, origin=origin)


def install(
    record: WeightsRecord,
    cache: WeightsCache,
    tmp: Path,
    *,
    origin: str,
    check_pin: bool = True,
    ext: str | None = None,
) -> Path:
    """Hash ``tmp`` (a finished file inside the id's folder), check it, and move it into place atomically.

    ``check_pin=False`` is for imports: the user vouches for a file the manifest may pin in another encoding
    (``IFAN.pytorch`` for the ``ifan`` record that pins the safetensors mirror); a strict load checks it.

    Raises:
        HashMismatchError: pinned hash or size differ; ``tmp`` has been deleted.
    """
    digest = sha256_file(tmp)
    size = tmp.stat().st_size
    if check_pin and record.sha256 is not None and digest != record.sha256:
        tmp.unlink(missing_ok=True)
        raise HashMismatchError(
            f"{record.id}: downloaded file has sha256 {digest}, the manifest pins {record.sha256}; "
            f"the file was deleted (source: {origin})"
        )
    if check_pin and record.sha256 is not None and record.size is not None and size != record.size:
        tmp.unlink(missing_ok=True)
        raise HashMismatchError(
            f"{record.id}: file is {size} bytes, the manifest says {record.size}; deleted"
        )
    final = cache.folder(record.id) / f"{digest}{ext or record.ext}"
    os.replace(tmp, final)
    previous = cache.info(record.id)
    cache.write_info(
        CacheInfo(
            id=record.id,
            sha256=digest,
            size=size,
            filename=final.name,
            origin=origin,
            pinned=record.sha256 == digest,
        )
    )
    if previous is not None and previous.filename != final.name:
        (cache.folder(record.id) / previous.filename).unlink(missing_ok=True)
        cache.converted_path(record.id).unlink(missing_ok=True)
    return final


#: values of HF_HUB_OFFLINE that huggingface_hub itself reads as true
_TRUE = ("1", "ON", "YES", "TRUE")


def offline_reason(offline: bool) -> str | None:
    """Why the network is off (``--offline`` or ``HF_HUB_OFFLINE``), or None when downloads may run.

    Read at call time, not import time, so the variable is honoured however the process was started.
    """
    if offline:
        return "--offline"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    return None


def import_instructions(record: WeightsRecord) -> str:
    """The message for a record that only a manual import can fill: the record's own instructions.

    No reason is invented here: the instructions say why (a web drive, or no published weights at all).
    """
    how = (record.source.instructions or "").rstrip(". ") or (
        f"obtain the file, then run `defocus models import FILE --as {record.id}`"
    )
    return (
        f"weights {record.id!r} are not cached and cannot be downloaded by defocus: {how}. "
        "Alternatively pass a checkpoint file with --weights FILE."
    )


def _fetch_url(url: str, part: Path, *, expected_size: int | None, progress: ProgressFn | None) -> None:
    """Stream ``url`` into ``part``, resuming what is there; retries dropped connections."""
    last: Exception | None = None
    for _ in range(ATTEMPTS):
        try:
            _fetch_url_once(url, part, expected_size=expected_size, progress=progress)
            return
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
            last = exc
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError):
                raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from exc
            if isinstance(exc.reason, ConnectionError | TimeoutError):
                last = exc
                continue
            raise DownloadError(f"cannot reach {url}: {exc.reason}") from exc
    raise DownloadError(f"download of {url} kept failing ({last}); run the command again to resume it")


def _fetch_url_once(url: str, part: Path, *, expected_size: int | None, progress: ProgressFn | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have == expected_size:
        return
    headers = {"User-Agent": f"defocus/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - http(s) only (manifest)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our partial file is complete or longer than the resource: start over
            part.unlink()
            raise ConnectionResetError("range not satisfiable; restarting") from exc
        raise
    with response:
        if have and response.status != 206:  # server ignored the Range: restart from zero
            have = 0
        total = _total_size(response, have) or expected_size
        done = have
        if progress is not None:
            progress(done, total)
        try:
            with part.open("ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                part.unlink(missing_ok=True)
                raise DownloadError(f"disk full while downloading {url} into {part.parent}") from exc
            if isinstance(exc, ConnectionError | TimeoutError):
                raise
            raise WeightsError(f"cannot write {part}: {exc.strerror or exc}") from exc
    if total is not None and done < total:
        raise http.client.IncompleteRead(b"", total - done)


def _total_size(response: Any, offset: int) -> int | None:
    """Full resource size from Content-Range (``bytes a-b/N``) or Content-Length."""
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1]
        if tail.isdigit():
            return int(tail)
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _fetch_hf(source: Source, folder: Path, *, progress: ProgressFn | None) -> Path:
    """Download through huggingface_hub into ``folder/.hf`` and return the finished file for ``install``."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    assert source.repo_id and source.filename and source.revision
    local = folder / ".hf"
    try:
        path = hf_hub_download(
            source.repo_id,
            source.filename,
            revision=source.revision,
            local_dir=local,
            library_name="defocus",
            library_version=__version__,
            tqdm_class=_tqdm_class(progress) if progress is not None else None,
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        url = exc.response.url if exc.response is not None else source.describe()
        raise DownloadError(f"HTTP {status} for {url}") from exc
    except LocalEntryNotFoundError as exc:
        if constants.HF_HUB_OFFLINE:
            raise WeightsMissingError(f"HF_HUB_OFFLINE is set and {source.describe()} is not cached") from exc
        raise DownloadError(f"cannot reach {constants.ENDPOINT} for {source.describe()}: {exc}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DownloadError(f"disk full while downloading {source.describe()} into {local}") from exc
        raise DownloadError(f"download of {source.describe()} failed: {exc}") from exc
    tmp = folder / f"download.{os.getpid()}.tmp"
    os.replace(Path(str(path)), tmp)
    shutil.rmtree(local, ignore_errors=True)  # hf's bookkeeping; the file itself now lives in our layout
    return tmp


def _tqdm_class(progress: ProgressFn) -> type:
    """A silent tqdm subclass that forwards huggingface_hub's byte counts to ``progress``."""
    from tqdm.auto import tqdm

    class _Forward(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            progress(self._done, int(self.total) if self.total else None)
            return None

    return _Forward
