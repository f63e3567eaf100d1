"""The weights manifest: what each checkpoint is, where it comes from, and how far its bytes can be trusted.

``weights_manifest.json`` ships inside the package and is validated completely on load, so that a typo in a
hash, a source or a hyperparameter fails at once with the record and field named, instead of surfacing
later as a confusing download or shape error on a user's machine.

Trust policy. A record whose ``sha256`` is known is *pinned*: a download whose hash differs is deleted and
rejected. A record with ``sha256: null`` is *unpinned* (the publisher gives no hash): it is never fetched
implicitly; ``defocus models pull ID --trust-unpinned`` downloads it, records the observed sha256 in the
cache and prints it so the user can compare it with the publisher. Files behind web drives (Dropbox, Google
Drive, OneDrive) have ``import`` sources: the user downloads them by hand, following ``instructions``, and
``defocus models import FILE --as ID`` verifies their structure by a strict load. ``bundled`` sources are files
shipped inside the package (``path`` relative to it, read through importlib.resources so that zipped and
editable installs behave alike); they must be pinned and are never downloaded.

A per-user overlay (``deblurcli.zoo.overlay``) adds the user's own records on top of this file.

The manifest is read without importing torch, so ``defocus models list`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from deblurcli.errors import ManifestError, UsageError

SCHEMA_VERSION = 1
#: overrides the shipped manifest (tests, and maintainers trying out a record before publishing it)
MANIFEST_ENV = "DEFOCUS_MANIFEST"

#: checkpoint formats and the file extension a cached copy gets
FORMATS: dict[str, str] = {
    "ifan-pytorch": ".pytorch",
    "ifan-rs-safetensors": ".safetensors",
    "drbnet-pth": ".pth",
    "kpac-npz": ".npz",
    "didanet-pth-tar": ".pth.tar",
    "defocus-safetensors": ".safetensors",
    "torch-pth": ".pth",
}

#: allowed hyperparameters per method: name -> type, or the tuple of allowed values
HPARAMS: dict[str, dict[str, type | tuple[Any, ...]]] = {
    "ifan": {"iterations": int, "dual_pixel": bool},
    "drbnet": {"dual_pixel": bool},
    "kpac": {"levels": (2, 3), "dual_pixel": bool},
    "dmsft": {},
    # block counts per level; JSON stores the (down, up) pairs as lists
    "refocus": {"width": int, "enc_blocks": list, "mid_blocks": int, "dec_blocks": list},
}

SOURCE_KINDS = ("hf", "url", "import", "bundled")
#: the package that ``bundled`` source paths are relative to (a module attribute so tests can point elsewhere)
BUNDLE_PACKAGE = "deblurcli"
DATASETS = ("DPDD", "RealDOF", "LFDOF", "DED")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_RECORD_FIELDS = {
    "id", "method", "hparams", "source", "sha256", "size", "format", "licence", "citation",
    "training_data", "input", "tile", "overlap", "metrics", "notes",
}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """Where a checkpoint comes from: ``hf`` (repo_id, filename, revision), ``url``, ``import`` or ``bundled``."""

    kind: str
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    url: str | None = None
    instructions: str | None = None
    path: str | None = None

    @property
    def downloadable(self) -> bool:
        """Whether fetching this source needs the network (``import`` and ``bundled`` never do)."""
        return self.kind in ("hf", "url")

    def describe(self) -> str:
        if self.kind == "hf":
            return f"hf://{self.repo_id}/{self.filename}@{self.revision}"
        if self.kind == "url":
            return str(self.url)
        if self.kind == "bundled":
            return f"bundled:{BUNDLE_PACKAGE}/{self.path}"
        return "manual import"


@dataclass(frozen=True)
class InputContract:
    """What the network was trained on: value range, bit depth of its training data, size multiple."""

    value_range: tuple[float, float]
    bit_depth: int
    multiple_of: int


@dataclass(frozen=True)
class Metric:
    """One published score; ``source`` says which paper or table, since papers disagree (field.md §1)."""

    dataset: str
    psnr: float
    ssim: float | None
    lpips: float | None
    source: str


@dataclass(frozen=True)
class WeightsRecord:
    """One checkpoint. ``method`` is None for auxiliary files (LPIPS backbone) that are used unconverted."""

    id: str
    method: str | None
    hparams: Mapping[str, Any]
    source: Source
    sha256: str | None
    size: int | None
    format: str
    licence: str
    citation: str
    training_data: str
    input: InputContract | None
    tile: int | None
    overlap: int | None
    metrics: tuple[Metric, ...] = ()
    notes: str = ""
    #: True for records of the per-user overlay (``defocus models import --as NEW_ID``), not the shipped file
    local: bool = False

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None

    @property
    def ext(self) -> str:
        return FORMATS[self.format]


@dataclass(frozen=True)
class Manifest:
    """All records by id, in file order."""

    records: Mapping[str, WeightsRecord]
    origin: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def get(self, weights_id: str) -> WeightsRecord:
        """The record ``weights_id``.

        Raises:
            UsageError: no such id, listing the known ones.
        """
        if weights_id not in self.records:
            known = ", ".join(self.records) or "(none)"
            raise UsageError(f"unknown weights id {weights_id!r}; known ids: {known}")
        return self.records[weights_id]


def bundled_resource(source: Source) -> Any:
    """The package resource (an importlib Traversable) a ``bundled`` source names; read at call time."""
    assert source.kind == "bundled" and source.path is not None
    return resources.files(BUNDLE_PACKAGE).joinpath(*source.path.split("/"))


def default_manifest_path() -> Path:
    """``DEFOCUS_MANIFEST``, else the copy inside the package, else the source tree's root file."""
    env = os.environ.get(MANIFEST_ENV)
    if env:
        return Path(env)
    try:
        res = resources.files("deblurcli") / "weights_manifest.json"
        if res.is_file():
            return Path(str(res))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    return Path(__file__).resolve().parents[2] / "weights_manifest.json"


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest file (the shipped one by default).

    Raises:
        ManifestError: the file is missing, not JSON, or any record is malformed.
    """
    path = path or default_manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read weights manifest {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    return parse_manifest(data, origin=str(path))


def parse_manifest(data: Any, *, origin: str = "<manifest>", local: bool = False) -> Manifest:
    """Validate decoded JSON into a :class:`Manifest`; ``local`` marks every record as the user's own.

    Raises:
        ManifestError: naming the record and the field at fault.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"{origin}: top level must be an object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{origin}: schema_version {version!r} is not supported (this defocus reads {SCHEMA_VERSION})"
        )
    raw_records = data.get("weights")
    if not isinstance(raw_records, list):
        raise ManifestError(f"{origin}: 'weights' must be a list of records")
    records: dict[str, WeightsRecord] = {}
    for index, raw in enumerate(raw_records):
        rec = _Record(raw, origin=origin, index=index).build()
        if local:
            rec = replace(rec, local=True)
        if rec.id in records:
            raise ManifestError(f"{origin}: record {rec.id!r}: duplicate id")
        records[rec.id] = rec
    extra = {k: v for k, v in data.items() if k not in ("schema_version", "weights")}
    return Manifest(records=records, origin=origin, schema_version=version, extra=extra)


class _Record:
    """Field-by-field checks of one record, each error naming the record and the field."""

    def __init__(self, raw: Any, *, origin: str, index: int) -> None:
        self.origin = origin
        self.name = f"#{index}"
        if not isinstance(raw, dict):
            self.fail("", "a record must be an object")
        self.raw: dict[str, Any] = raw
        rid = raw.get("id")
        if isinstance(rid, str):
            self.name = repr(rid)

    def fail(self, fld: str, why: str) -> None:
        where = f"field {fld!r}: " if fld else ""
        raise ManifestError(f"{self.origin}: record {self.name}: {where}{why}")

    def get(self, fld: str, kinds: type | tuple[type, ...], *, required: bool = True) -> Any:
        if fld not in self.raw:
            if required:
                self.fail(fld, "missing")
            return None
        value = self.raw[fld]
        if value is None and not required:
            return None
        # bool is an int in Python; a count given as true/false is a typo, not a number
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            self.fail(fld, f"expected {_type_names(kinds)}, got {type(value).__name__}")
        return value

    def build(self) -> WeightsRecord:
        unknown = sorted(set(self.raw) - _RECORD_FIELDS)
        if unknown:
            self.fail(unknown[0], "unknown field (typo?)")
        rid = self.get("id", str)
        if not _ID_RE.match(rid):
            self.fail("id", "must be lowercase letters, digits, '.' and '-'")
        method = self.get("method", str, required=False)
        fmt = self.get("format", str)
        if fmt not in FORMATS:
            self.fail("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        sha = self.get("sha256", str, required=False)
        if sha is not None and not _SHA_RE.match(sha):
            self.fail("sha256", "expected 64 lowercase hex digits or null")
        size = self.get("size", int, required=False)
        if size is not None and size <= 0:
            self.fail("size", "must be a positive byte count or null")
        tile = self.get("tile", int, required=False)
        overlap = self.get("overlap", int, required=False)
        if tile is not None and tile < 16:
            self.fail("tile", "must be at least 16 pixels")
        if overlap is not None and (overlap < 0 or (tile is not None and 2 * overlap >= tile)):
            self.fail("overlap", "must be >= 0 and less than half the tile")
        notes = self.get("notes", str, required=False) or ""
        return WeightsRecord(
            id=rid,
            method=method,
            hparams=self._hparams(method),
            source=self._source(),
            sha256=sha,
            size=size,
            format=fmt,
            licence=self._text("licence"),
            citation=self._text("citation"),
            training_data=self._text("training_data"),
            input=self._input(method),
            tile=tile,
            overlap=overlap,
            metrics=self._metrics(),
            notes=notes,
        )

    def _text(self, fld: str) -> str:
        value = self.get(fld, str)
        if not value.strip():
            self.fail(fld, "must not be empty")
        return value

    def _hparams(self, method: str | None) -> dict[str, Any]:
        hp = self.get("hparams", dict, required=False) or {}
        if method is None:
            if hp:
                self.fail("hparams", "an auxiliary record (method null) takes no hyperparameters")
            return {}
        if method not in HPARAMS:
            self.fail("method", f"{method!r} is not one of {', '.join(HPARAMS)}")
        schema = HPARAMS[method]
        for key, value in hp.items():
            if key not in schema:
                self.fail("hparams", f"{method} takes no hyperparameter {key!r} (known: {', '.join(schema)})")
            rule = schema[key]
            if isinstance(rule, tuple):
                ok = value in rule and not isinstance(value, bool)
            elif rule is int:
                ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            else:
                ok = isinstance(value, rule)
            if not ok:
                self.fail("hparams", f"{key}={value!r} is invalid for {method}")
        return dict(hp)

    def _source(self) -> Source:
        src = self.get("source", dict)
        kind = src.get("kind")
        allowed = {
            "hf": {"repo_id", "filename", "revision"},
            "url": {"url"},
            "import": {"instructions", "url"},
            "bundled": {"path"},
        }
        if kind not in allowed:
            self.fail("source", f"kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        extra = sorted(set(src) - allowed[kind] - {"kind", "filename"})
        if extra:
            self.fail("source", f"{kind} source takes no {extra[0]!r}")
        for key in sorted(allowed[kind] - ({"url"} if kind == "import" else set())):
            if not isinstance(src.get(key), str) or not src[key].strip():
                self.fail("source", f"{kind} source needs a non-empty string {key!r}")
        url = src.get("url")
        if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            self.fail("source", "url must be an http(s) URL")
        if kind == "bundled":
            rel = src["path"]
            if rel.startswith(("/", "\\")) or ":" in rel or ".." in rel.replace("\\", "/").split("/"):
                self.fail("source", "bundled path must be relative to the package, without '..'")
            if self.raw.get("sha256") is None:
                self.fail("sha256", "a bundled file must be pinned (it ships with the package)")
        filename = src.get("filename")
        if filename is not None and (not isinstance(filename, str) or not filename.strip()):
            self.fail("source", "filename must be a non-empty string")
        return Source(kind=kind, **{k: v for k, v in src.items() if k != "kind"})

    def _input(self, method: str | None) -> InputContract | None:
        raw = self.get("input", dict, required=method is not None)
        if raw is None:
            return None
        rng = raw.get("range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int | float) for v in rng)):
            self.fail("input", "'range' must be [low, high]")
        if raw.get("bit_depth") not in (8, 16):
            self.fail("input", "'bit_depth' must be 8 or 16")
        mult = raw.get("multiple_of")
        if not isinstance(mult, int) or isinstance(mult, bool) or mult < 1:
            self.fail("input", "'multiple_of' must be a positive integer")
        low, high = float(rng[0]), float(rng[1])
        return InputContract(value_range=(low, high), bit_depth=raw["bit_depth"], multiple_of=mult)

    def _metrics(self) -> tuple[Metric, ...]:
        out = []
        for i, m in enumerate(self.get("metrics", list, required=False) or []):
            fld = f"metrics[{i}]"
            if not isinstance(m, dict):
                self.fail(fld, "must be an object")
            if m.get("dataset") not in DATASETS:
                self.fail(fld, f"dataset must be one of {', '.join(DATASETS)}")
            psnr, ssim, lp = m.get("psnr"), m.get("ssim"), m.get("lpips")
            if not isinstance(psnr, int | float) or not 10 <= psnr <= 60:
                self.fail(fld, "psnr must be a number of dB between 10 and 60")
            for name, v in (("ssim", ssim), ("lpips", lp)):
                if v is not None and (not isinstance(v, int | float) or not 0 <= v <= 1):
                    self.fail(fld, f"{name} must be in [0, 1] or null")
            if not isinstance(m.get("source"), str) or not m["source"]:
                self.fail(fld, "source (paper/table) is required")
            out.append(
                Metric(dataset=m["dataset"], psnr=float(psnr), ssim=ssim, lpips=lp, source=m["source"])
            )
        return tuple(out)


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _type_names(kinds: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kinds))
