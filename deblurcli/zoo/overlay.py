"""The per-user manifest overlay: the user's own weights, listed and resolved like the shipped ones.

``defocus models import FILE --as NEW_ID`` writes a record here (``<cache>/local_manifest.json``, beside the
weights it describes, so ``--cache-dir`` and ``$DEFOCUS_CACHE`` keep a user's records and files together).
The shipped manifest is never edited: upgrading the package cannot lose a user's records, and a user's record
cannot silently shadow an official one, because the overlay only holds an official id when the import was
asked to ``--replace`` it; ``defocus models rm ID`` drops the record and the official one comes back.

The overlay has the shipped file's schema and is validated the same way; its records carry ``local=True``.
Writers take a cross-process lock and replace the file atomically, so two imports never lose each other's
records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from deblurcli.errors import ManifestError
from deblurcli.zoo.cache import cache_root
from deblurcli.zoo.manifest import SCHEMA_VERSION, Manifest, load_manifest, parse_manifest

OVERLAY_NAME = "local_manifest.json"


def overlay_path(cache_dir: Path | None = None) -> Path:
    """Where the overlay of the cache at ``cache_dir`` (default: ``$DEFOCUS_CACHE`` or per user) lives."""
    return cache_root(cache_dir) / OVERLAY_NAME


def _read_raw(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read your local weights records {path}: {exc}") from exc
    parse_manifest(data, origin=str(path), local=True)  # the same checks as the shipped file
    return list(data["weights"])


def load_overlay(cache_dir: Path | None = None) -> Manifest:
    """The user's own records (empty when nothing was imported under a new id).

    Raises:
        ManifestError: the overlay file is unreadable or invalid, naming it.
    """
    path = overlay_path(cache_dir)
    records = _read_raw(path)
    return parse_manifest({"schema_version": SCHEMA_VERSION, "weights": records}, origin=str(path), local=True)


def merged_manifest(cache_dir: Path | None = None, base: Manifest | None = None) -> Manifest:
    """The shipped manifest (or ``base``) with the user's overlay on top; overlay records win."""
    base = base or load_manifest()
    local = load_overlay(cache_dir)
    if not local.records:
        return base
    records = {**base.records, **local.records}
    origin = f"{base.origin} + {overlay_path(cache_dir)}"
    return Manifest(records=records, origin=origin, schema_version=base.schema_version, extra=base.extra)


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    doc = {"schema_version": SCHEMA_VERSION, "weights": records}
    parse_manifest(doc, origin=str(path), local=True)  # never write what we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(f".{path.name}.lock")))


def add_record(record: Mapping[str, Any], cache_dir: Path | None = None) -> None:
    """Add or replace the user's record ``record["id"]``.

    Raises:
        ManifestError: the record is invalid (nothing is written).
    """
    path = overlay_path(cache_dir)
    with _lock(path):
        records = [r for r in _read_raw(path) if r.get("id") != record["id"]]
        _write(path, [*records, dict(record)])


def remove_record(weights_id: str, cache_dir: Path | None = None) -> bool:
    """Drop the user's record ``weights_id``; False if the overlay had none."""
    path = overlay_path(cache_dir)
    if not path.is_file():
        return False
    with _lock(path):
        records = _read_raw(path)
        kept = [r for r in records if r.get("id") != weights_id]
        if len(kept) == len(records):
            return False
        _write(path, kept)
    return True
