"""From a trained network to files the rest of the tool uses: our safetensors and a manifest record.

The weights file carries its own metadata (method, id, architecture hyperparameters, how it was trained), so
``defocus deblur --method M --weights FILE`` builds the right architecture from the file alone. The record
is what a maintainer pastes into ``weights_manifest.json`` to publish the file: its hash and size pin the
bytes, and the training facts travel with it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from deblurcli.zoo.state import save_ours


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_weights(
    net: nn.Module,
    path: Path,
    *,
    method: str,
    weights_id: str,
    hparams: Mapping[str, Any],
    training: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``net``'s weights to ``path`` and the manifest record to ``path.with_suffix('.json')``.

    Returns:
        the manifest record.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "method": method,
        "id": weights_id,
        "hparams": dict(hparams),
        "source": "defocus train",
        **training,
    }
    tmp = path.with_name(path.name + ".tmp")
    save_ours(tmp, net.state_dict(), meta)
    os.replace(tmp, path)
    record = {
        "id": weights_id,
        "method": method,
        "file": path.name,
        "format": "defocus-safetensors",
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "hparams": dict(hparams),
        "source": "defocus train",
        **training,
    }
    record_path = path.with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
