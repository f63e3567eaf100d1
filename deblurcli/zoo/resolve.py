"""From a manifest id to a file ready to load: cache hit, else download (or import) and convert once.

``resolve_weights`` is what ``defocus deblur`` calls: its fast path is one ``stat`` of the converted file, so
a cached model costs no network request and no lock. Converting uses the method's own spec (converter,
architecture, strict load), so a file that reaches ``converted.safetensors`` is known to fit its network key
for key; the converted file carries method, id, hyperparameters and the source's sha256 in its metadata, so
it is self-describing wherever it is copied.

Offline means offline for every source kind: ``--offline`` and ``HF_HUB_OFFLINE`` both stop ``url`` and ``hf``
sources before any request is made (huggingface_hub would honour the variable for ``hf`` alone), while
``import`` and ``bundled`` sources never touch the network. Records come from the shipped manifest plus the
user's overlay (``deblurcli.zoo.overlay``), so an id imported with ``--as NEW_ID`` resolves like any other.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from deblurcli.errors import DownloadError, UsageError, WeightsError, WeightsMissingError
from deblurcli.zoo.cache import WeightsCache, sha256_file
from deblurcli.zoo.download import fetch_source, import_instructions, install, offline_reason
from deblurcli.zoo.manifest import Manifest, WeightsRecord, bundled_resource
from deblurcli.zoo.overlay import merged_manifest

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
    record = (manifest or merged_manifest(cache_dir)).get(weights_id)
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
    record = (manifest or merged_manifest(cache_dir)).get(weights_id)
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


def weights_by_id(
    weights: Path,
    *,
    method: str,
    offline: bool = False,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Path, str | None]:
    """``--weights`` names a file, or else a manifest id (e.g. one imported with ``--as NEW_ID``).

    Returns the file to load and the id it came from (None for a plain file). A path that exists always wins,
    so a file that happens to be named like an id is still read as a file.

    Raises:
        UsageError: neither a file nor a known id, or the id belongs to another method.
    """
    if weights.exists() or weights.parent != Path("."):
        return weights, None
    manifest = merged_manifest(cache_dir)
    record = manifest.records.get(str(weights))
    if record is None:
        raise UsageError(f"--weights {weights}: no such file, and no weights id of that name (`defocus models list`)")
    if record.method != method:
        raise UsageError(f"--weights {weights}: weights id for {record.method or 'no method'}, not {method}")
    path = resolve_weights(
        record.id, offline=offline, cache_dir=cache_dir, progress=progress, manifest=manifest
    )
    return path, record.id


def offline_message(record: WeightsRecord, cache: WeightsCache, reason: str) -> str:
    """What to do when ``record`` is needed offline and not cached."""
    return (
        f"weights {record.id!r} are not in the cache ({cache.root}) and downloading is off ({reason}). "
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
    if record.source.kind == "bundled":
        return _install_bundled(record, cache)
    reason = offline_reason(offline)
    if reason is not None:
        raise WeightsMissingError(offline_message(record, cache, reason))
    return fetch_source(record, cache, progress=progress, trust_unpinned=trust_unpinned)


def _install_bundled(record: WeightsRecord, cache: WeightsCache) -> Path:
    """Copy a file shipped in the package into the cache, checked against its pin like a download.

    Going through the cache (rather than loading from the package) keeps one path for conversion, ``models
    verify`` and ``models rm``, and works when the package itself is zipped.
    """
    from importlib import resources

    resource = bundled_resource(record.source)
    if not resource.is_file():
        raise WeightsError(f"{record.id}: bundled file {record.source.describe()} is missing: reinstall defocus")
    folder = cache.ensure_folder(record.id)
    tmp = folder / f".bundled.{os.getpid()}.tmp"
    with resources.as_file(resource) as src:
        shutil.copyfile(src, tmp)
    return install(record, cache, tmp, origin=record.source.describe())


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
