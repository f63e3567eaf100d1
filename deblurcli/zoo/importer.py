"""``defocus models import``: put a checkpoint file into the cache, under an official id or a new one of the user's.

Two cases, kept apart on purpose:

* ``--as OFFICIAL_ID`` fills a shipped record with its published file (DRBNet's Google Drive zip, IFAN's
  ablation checkpoints). The file must be that record's file: its pinned sha256, or, for unpinned records, a
  file in the authors' own formats; records under which nothing was ever published (DMSFT) take any file of
  their method. Anything else (your own training run, above all) would silently replace
  the official weights everyone else means by that id, so it is refused unless ``--replace`` is given, and then
  a local record says so in ``models list`` until ``models rm`` brings the official one back.
* ``--as NEW_ID`` registers the user's own weights: the method comes from the file's metadata (our exports)
  or from which method's converter loads it strictly (authors' formats); hyperparameters from the metadata or
  the tensor shapes. The record goes to the per-user overlay (``deblurcli.zoo.overlay``).

The file is checked where the user put it, so every error names the user's file, never a temporary copy; it is
then copied into the cache and the copy re-hashed, so a file changing underneath is caught.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deblurcli.errors import DefocusError, DownloadError, UsageError, WeightsError
from deblurcli.zoo.cache import WeightsCache, sha256_file
from deblurcli.zoo.download import install
from deblurcli.zoo.manifest import _ID_RE, FORMATS, Manifest, WeightsRecord, parse_manifest
from deblurcli.zoo.overlay import add_record, merged_manifest
from deblurcli.zoo.resolve import _convert, _record_converted
from deblurcli.zoo.state import read_metadata, read_tensors

#: what ``defocus train`` writes into the metadata of the weights it exports
TRAINED_SOURCE = "defocus train"


@dataclass(frozen=True)
class ImportResult:
    """What ``import_weights`` did: the id filled, the file's sha256, whether it equals the pin, and if it is
    the user's own (local) record."""

    id: str
    sha256: str
    matches_pin: bool | None
    path: Path
    local: bool = False
    method: str | None = None


def import_weights(
    path: Path,
    *,
    as_id: str | None = None,
    cache_dir: Path | None = None,
    manifest: Manifest | None = None,
    replace: bool = False,
) -> ImportResult:
    """Verify ``path`` by a strict load and cache it under ``as_id`` (guessed from hash or name if omitted).

    Raises:
        UsageError: no such file, the id cannot be told, a malformed new id, or an official id that the file
            would replace without ``replace``.
        WeightsError: the file is not a checkpoint of the method (strict load failed); nothing is cached.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    manifest = manifest or merged_manifest(cache_dir)
    digest = sha256_file(path)
    if as_id is None:
        record = _guess_record(manifest, path, digest)
    elif as_id in manifest.records:
        record = manifest.records[as_id]
        held = _method_of(path)
        if held is not None and record.method is not None and held != record.method:
            raise WeightsError(f"{path} holds {held} weights, but {record.id!r} is a {record.method} id")
        if not _is_published_file(record, path, digest) and not replace:
            raise UsageError(_refusal(record, path, held or record.method))
    else:
        record = None
    local = None
    if record is None or (replace and not _is_published_file(record, path, digest)):
        base = record if record is not None and not record.local else None
        local = _local_record(path, digest, as_id or "", base=base)
        record = parse_manifest({"schema_version": 1, "weights": [local]}, origin=str(path), local=True).get(
            local["id"]
        )
    assert record is not None
    final = _copy_in(record, path, digest, WeightsCache.open(cache_dir))
    if local is not None:
        add_record(local, cache_dir)
    pin = None if record.sha256 is None or record.local else record.sha256 == digest
    return ImportResult(
        id=record.id, sha256=digest, matches_pin=pin, path=final, local=record.local, method=record.method
    )


def _copy_in(record: WeightsRecord, path: Path, digest: str, cache: WeightsCache) -> Path:
    """Convert from the user's file, then copy it into the cache and install both, under the id's lock."""
    folder = cache.ensure_folder(record.id)
    with cache.lock(record.id):
        converted_tmp = folder / f".converted.{os.getpid()}.tmp"
        tmp = folder / f".import.{os.getpid()}.tmp"
        try:
            if record.method is not None:
                _convert(record, path, converted_tmp, source_sha256=digest)
            else:
                read_tensors(path)
            try:
                shutil.copyfile(path, tmp)
            except OSError as exc:
                raise DownloadError(f"cannot copy {path} into the cache {folder}: {exc.strerror or exc}") from exc
            if sha256_file(tmp) != digest:
                raise WeightsError(f"{path} changed while it was being imported; import it again")
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
    return final


def _is_published_file(record: WeightsRecord, path: Path, digest: str) -> bool:
    """Whether ``path`` is what the official ``record`` stands for (so importing it replaces nothing)."""
    if record.local:
        return record.sha256 == digest
    if record.sha256 is not None:
        return record.sha256 == digest
    if record.source.kind == "import" and not (record.source.filename or record.source.url):
        return True  # nothing was ever published under this id (dmsft): a trained file replaces nothing
    try:
        meta = read_metadata(path)
    except WeightsError:
        return True  # not a safetensors file of ours: the strict load decides
    return meta.get("source") != TRAINED_SOURCE and "source_sha256" not in meta


def _method_of(path: Path) -> str | None:
    """The method our own files name in their metadata (authors' files name none)."""
    try:
        method = read_metadata(path).get("method")
    except WeightsError:
        return None
    return method if isinstance(method, str) else None


def _refusal(record: WeightsRecord, path: Path, method: str | None) -> str:
    if record.local:
        what = f"{record.id!r} already holds your weights with another sha256 ({record.sha256})"
    elif record.sha256 is not None:
        what = f"{record.id!r} is an official id pinned to sha256 {record.sha256}, and {path.name} differs"
    else:
        what = f"{record.id!r} is an official id, and {path.name} is your own trained file, not the published one"
    return (
        f"{what}. Import it under a new id (`defocus models import {path} --as {method or 'weights'}-mine`), "
        f"or pass --replace to use it in place of {record.id!r} (`defocus models rm {record.id}` undoes that)."
    )


def _infer_method(path: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The method, hyperparameters and our metadata of a checkpoint that names no manifest record."""
    from deblurcli.methods.registry import all_methods, get_method
    from deblurcli.zoo.state import load_strict

    meta = read_metadata(path)
    if isinstance(meta.get("method"), str):
        spec = get_method(meta["method"])
        hparams = meta.get("hparams")
        if not isinstance(hparams, dict):
            state = spec.convert(path) if spec.convert is not None else {}
            hparams = {**spec.hparams, **(spec.infer_hparams(state) if spec.infer_hparams else {})}
        return spec.name, dict(hparams), meta
    tried = []
    for spec in all_methods().values():
        if spec.cls is None or spec.convert is None:
            continue
        tried.append(spec.name)
        try:
            state = spec.convert(path)
            hparams = {**spec.hparams, **(spec.infer_hparams(state) if spec.infer_hparams else {})}
            load_strict(spec.cls(**hparams), state, source=str(path))
        except (DefocusError, KeyError, ValueError, TypeError, RuntimeError, OSError):
            continue
        return spec.name, hparams, meta
    raise WeightsError(f"{path}: not a checkpoint of any method ({', '.join(tried)}) in a format defocus reads")


def _local_record(path: Path, digest: str, weights_id: str, *, base: WeightsRecord | None) -> dict[str, Any]:
    """A manifest record (shipped schema) for the user's file, for the overlay."""
    from deblurcli.methods.registry import get_method

    if not _ID_RE.match(weights_id):
        raise UsageError(f"--as {weights_id!r}: an id is lowercase letters, digits, '.' and '-' (e.g. ifan-mine)")
    method, hparams, meta = _infer_method(path)
    if base is not None and base.method != method:
        raise WeightsError(f"{path} holds {method} weights, but {base.id!r} is a {base.method} id")
    spec = get_method(method)
    ours = "source_sha256" in meta or meta.get("source") == TRAINED_SOURCE
    fmt = "defocus-safetensors" if ours else _format_for(method, path)
    training = {k: v for k, v in meta.items() if k in ("recipe", "step", "data", "metrics", "precision")}
    overlap = spec.receptive_field if 2 * spec.receptive_field < spec.default_tile else None
    return {
        "id": weights_id,
        "method": method,
        "hparams": hparams,
        "source": {
            "kind": "import",
            "filename": path.name,
            "instructions": f"your own weights, imported from {path.resolve()}; "
            f"`defocus models import {path} --as {weights_id}` adds them again",
        },
        "sha256": digest,
        "size": path.stat().st_size,
        "format": fmt,
        "licence": str(meta.get("licence") or "your own (unspecified)"),
        "citation": base.citation if base is not None else spec.summary,
        "training_data": str(meta.get("data") or "unspecified"),
        "input": {"range": [0, 1], "bit_depth": 8, "multiple_of": spec.multiple_of},
        "tile": spec.default_tile,
        "overlap": overlap,
        "metrics": [],
        "notes": ("replaces the official record; " if base is not None else "")
        + ("defocus train: " + json.dumps(training, sort_keys=True, default=str) if training else ""),
    }


def _format_for(method: str, path: Path) -> str:
    """The manifest format name of an authors' file, by extension (it names the cached copy's suffix)."""
    by_method = {"ifan": "ifan-pytorch", "drbnet": "drbnet-pth", "kpac": "kpac-npz", "dmsft": "torch-pth"}
    fmt = by_method.get(method, "torch-pth")
    return fmt if path.name.endswith(FORMATS[fmt]) else "torch-pth"


def _guess_record(manifest: Manifest, path: Path, digest: str) -> WeightsRecord:
    by_hash = [r for r in manifest.records.values() if r.sha256 == digest]
    if len(by_hash) == 1:
        return by_hash[0]
    by_name = [r for r in manifest.records.values() if _published_name(r) == path.name and not r.local]
    if len(by_name) == 1:
        return by_name[0]
    raise UsageError(
        f"cannot tell which weights {path.name} holds; pass --as ID (an id of `defocus models list`, "
        "or a new id for your own weights)"
    )


def _published_name(record: WeightsRecord) -> str | None:
    if record.source.filename:
        return record.source.filename
    if record.source.url:
        return record.source.url.rsplit("/", 1)[-1]
    return None
