"""From a manifest id to a file ready to load: cache hit, else download (or import) and convert once.

``resolve_weights`` is what ``defocus deblur`` calls: its fast path is one ``stat`` of the converted file, so
a cached model costs no network request and no lock. Converting uses the method's own spec (converter,
architecture, strict load), so a file that reaches ``converted.safetensors`` is known to fit its network key
for key; the converted file carries method, id, hyperparameters and the source's sha256 in its metadata, so
it is self-describing wherever it is copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deblurcli.errors import DownloadError, UsageError, WeightsError, WeightsMissingError
from deblurcli.zoo.cache import WeightsCache, sha256_file
from deblurcli.zoo.download import fetch_source, import_instructions, install
from deblurcli.zoo.manifest import Manifest, WeightsRecord, load_manifest

ProgressFn = Callable[[int, int | None], None]


def resolve_file(
    weights_id: str,
    *,
    offline: bool = False,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    trust_unpinned: bool = False,
    manifest: Manifest | None = None,
) -> Path:
    """The cached source file of ``weights_id`` exactly as published, fetched on first use.

    Raises:
        UsageError: unknown id.
        WeightsMissingError: not cached and offline, import-only, or unpinned and not trusted.
        DownloadError, HashMismatchError: the download failed or was rejected.
    """
    record = (manifest or load_manifest()).get(weights_id)
    cache = WeightsCache.open(cache_dir)
    found = cache.source_path(weights_id)
    if found is not None:
        return found
    with cache.lock(weights_id):
        return _source_locked(
            record, cache, offline=offline, progress=progress, trust_unpinned=trust_unpinned
        )


def resolve_weights(
    weights_id: str,
    *,
    offline: bool = False,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    trust_unpinned: bool = False,
    manifest: Manifest | None = None,
) -> Path:
    """The path of ``weights_id`` in our format (``converted.safetensors``), downloading and converting once.

    Raises:
        UsageError: unknown id, or an auxiliary record that belongs to no method.
        WeightsMissingError: not cached and cannot be fetched (offline, import-only, unpinned).
        DownloadError, HashMismatchError: the download failed or was rejected.
        WeightsError: the file does not fit the method's architecture.
    """
    record = (manifest or load_manifest()).get(weights_id)
    if record.method is None:
        raise UsageError(f"{weights_id!r} is an auxiliary file used as is, not a method's weights")
    cache = WeightsCache.open(cache_dir)
    converted = cache.converted_path(weights_id)
    if converted.is_file():
        return converted
    with cache.lock(weights_id):
        if converted.is_file():  # another process finished while we waited for the lock
            return converted
        source = _source_locked(
            record, cache, offline=offline, progress=progress, trust_unpinned=trust_unpinned
        )
        tmp = converted.with_name(f".converted.{os.getpid()}.tmp")
        _convert(record, source, tmp, source_sha256=_sha_of(cache, record, source))
        os.replace(tmp, converted)
        _record_converted(cache, record.id, converted)
    return converted


@dataclass(frozen=True)
class ImportResult:
    """What ``import_weights`` did: the id filled, the file's sha256, and whether it equals the pin."""

    id: str
    sha256: str
    matches_pin: bool | None
    path: Path


def import_weights(
    path: Path,
    *,
    as_id: str | None = None,
    cache_dir: Path | None = None,
    manifest: Manifest | None = None,
) -> ImportResult:
    """Copy a checkpoint the user obtained by hand into the cache, after proving it loads strictly.

    Without ``as_id`` the record is found by the file's sha256 (pinned records) or its published file name.

    Raises:
        UsageError: the file is missing or the id cannot be told.
        WeightsError: the file is not a checkpoint of that method (strict load failed); nothing is cached.
    """
    manifest = manifest or load_manifest()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    digest = sha256_file(path)
    record = manifest.get(as_id) if as_id else _guess_record(manifest, path, digest)
    cache = WeightsCache.open(cache_dir)
    folder = cache.ensure_folder(record.id)
    with cache.lock(record.id):
        tmp = folder / f".import.{os.getpid()}.tmp"
        try:
            shutil.copyfile(path, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DownloadError(f"cannot copy {path} into the cache {folder}: {exc.strerror or exc}") from exc
        converted_tmp = folder / f".converted.{os.getpid()}.tmp"
        try:
            if record.method is not None:
                _convert(record, tmp, converted_tmp, source_sha256=digest)
            else:
                from deblurcli.zoo.state import read_tensors

                read_tensors(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            converted_tmp.unlink(missing_ok=True)
            raise
        ext = ".pth.tar" if path.name.endswith(".pth.tar") else (path.suffix or record.ext)
        final = install(record, cache, tmp, origin=f"import:{path.resolve()}", check_pin=False, ext=ext)
        if record.method is not None:
            final = cache.converted_path(record.id)
            os.replace(converted_tmp, final)
            _record_converted(cache, record.id, final)
    pin = None if record.sha256 is None else record.sha256 == digest
    return ImportResult(id=record.id, sha256=digest, matches_pin=pin, path=final)


def offline_message(record: WeightsRecord, cache: WeightsCache) -> str:
    """What to do when ``record`` is needed offline and not cached."""
    return (
        f"weights {record.id!r} are not in the cache ({cache.root}) and downloading is off (--offline). "
        f"On a connected machine run `defocus models pull {record.id}` and copy the cache folder, "
        f"or import a file you have: `defocus models import FILE --as {record.id}`, "
        f"or pass the checkpoint directly with --weights FILE."
    )


def _source_locked(
    record: WeightsRecord,
    cache: WeightsCache,
    *,
    offline: bool,
    progress: ProgressFn | None,
    trust_unpinned: bool,
) -> Path:
    found = cache.source_path(record.id)
    if found is not None:
        return found
    if record.source.kind == "import":
        raise WeightsMissingError(import_instructions(record))
    if offline:
        raise WeightsMissingError(offline_message(record, cache))
    return fetch_source(record, cache, progress=progress, trust_unpinned=trust_unpinned)


def _convert(record: WeightsRecord, source: Path, dest: Path, *, source_sha256: str) -> None:
    """Convert ``source`` with the method's converter, strictly load it, and write our format to ``dest``."""
    from deblurcli.methods.registry import get_method
    from deblurcli.zoo.state import load_strict, save_ours

    assert record.method is not None
    spec = get_method(record.method)
    if spec.cls is None or spec.convert is None:
        raise WeightsError(f"method {record.method!r} loads no weights, but record {record.id!r} names it")
    state = spec.convert(source)
    hparams = {**spec.hparams, **record.hparams}
    module = spec.cls(**hparams)
    load_strict(module, state, source=f"{record.id} ({source.name})")
    meta = {
        "method": record.method,
        "id": record.id,
        "hparams": hparams,
        "source_sha256": source_sha256,
        "source_format": record.format,
        "licence": record.licence,
    }
    try:
        save_ours(dest, module.state_dict(), meta)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise DownloadError(f"cannot write {dest}: {exc.strerror or exc}") from exc


def _sha_of(cache: WeightsCache, record: WeightsRecord, source: Path) -> str:
    info = cache.info(record.id)
    return info.sha256 if info is not None else sha256_file(source)


def _record_converted(cache: WeightsCache, weights_id: str, converted: Path) -> None:
    info = cache.info(weights_id)
    if info is not None:
        info.converted_sha256 = sha256_file(converted)
        cache.write_info(info)


def _guess_record(manifest: Manifest, path: Path, digest: str) -> WeightsRecord:
    by_hash = [r for r in manifest.records.values() if r.sha256 == digest]
    if len(by_hash) == 1:
        return by_hash[0]
    by_name = [r for r in manifest.records.values() if _published_name(r) == path.name]
    if len(by_name) == 1:
        return by_name[0]
    raise UsageError(f"cannot tell which weights {path.name} holds; pass --as ID (see `defocus models list`)")


def _published_name(record: WeightsRecord) -> str | None:
    if record.source.filename:
        return record.source.filename
    if record.source.url:
        return record.source.url.rsplit("/", 1)[-1]
    return None
