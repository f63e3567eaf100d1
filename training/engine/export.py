"""From a trained network to files the rest of the tool uses: our safetensors and a manifest record.

The weights file carries its own metadata (method, id, architecture hyperparameters, how it was trained), so
``defocus deblur --method M --weights FILE`` builds the right architecture from the file alone. The record is
written in ``weights_manifest.json``'s own schema (and checked against it), so a maintainer can paste it in
as is: an ``import`` source naming the file until it is uploaded, its sha256 and size pinning the bytes, the
method's citation and input contract, and the training facts in ``notes``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from deblurcli.methods.registry import get_method
from deblurcli.zoo.cache import sha256_file
from deblurcli.zoo.manifest import load_manifest, parse_manifest
from deblurcli.zoo.state import save_ours


def manifest_id(text: str) -> str:
    """A manifest id from free text: lower case, runs of other characters become one hyphen."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "trained"


def import_command(path: Path, weights_id: str) -> str:
    """The ``defocus models import`` line that keeps the weights file ``path`` under ``weights_id``, with the file's
    absolute path (quoted for a POSIX shell), so that it works as printed from any folder, not only the run's."""
    return f"defocus models import {shlex.quote(str(path.absolute()))} --as {weights_id}"


def _citation(method: str) -> str:
    """The method's paper, as the shipped manifest cites it for the method's published weights (else its summary)."""
    cited = (r.citation for r in load_manifest().records.values() if r.method == method)
    return next(cited, get_method(method).summary)


def export_weights(
    net: nn.Module,
    path: Path,
    *,
    method: str,
    weights_id: str,
    hparams: Mapping[str, Any],
    training: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``net``'s weights to ``path`` and their manifest record to ``path.with_suffix('.json')``.

    Returns:
        the manifest record (valid under ``deblurcli.zoo.manifest``).
    """
    weights_id = manifest_id(weights_id)
    spec = get_method(method)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"method": method, "id": weights_id, "hparams": dict(hparams), "source": "defocus train", **training}
    tmp = path.with_name(path.name + ".tmp")
    save_ours(tmp, net.state_dict(), meta)
    os.replace(tmp, path)
    record = {
        "id": weights_id,
        "method": method,
        "hparams": dict(hparams),
        "source": {
            "kind": "import",
            "filename": path.name,
            "instructions": f"Trained with `defocus train`; run: {import_command(path, weights_id)}"
            " (or upload the file and replace this source with its url/hf location).",
        },
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "format": "defocus-safetensors",
        "licence": "unspecified: set by whoever publishes these weights (mind the training data's licences)",
        "citation": _citation(method),
        "training_data": str(training.get("data") or "unspecified"),
        "input": {"range": [0, 1], "bit_depth": 8, "multiple_of": spec.multiple_of},
        "tile": spec.default_tile,
        "overlap": spec.receptive_field,
        "metrics": [],
        "notes": "defocus train: " + json.dumps(dict(training), sort_keys=True, default=str),
    }
    parse_manifest({"schema_version": 1, "weights": [record]}, origin=str(path.with_suffix(".json")))
    record_path = path.with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
