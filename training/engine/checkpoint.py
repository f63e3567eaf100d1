"""The training state on disk: everything needed to continue a run as if it had never stopped.

Saved: model and optimiser state, the AMP loss scaler, the step (which *is* the schedule's state, since the
learning rate is a function of it), the data position, the best validation score, and every RNG the
step could touch (python, numpy, torch CPU, each CUDA device). Files are written to a temporary name and
renamed, so a crash mid-write leaves the previous checkpoint intact, and read back with
``weights_only=True``: a training state is tensors, numbers and strings, never code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deblurcli.errors import UsageError

STATE_NAME = "last.pt"


def rng_state() -> dict[str, Any]:
    """Every global RNG's state in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, inner, gauss = state["python"]
    random.setstate((version, tuple(inner), gauss))
    npst = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
            "has_gauss": npst["has_gauss"],
            "gauss": npst["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(obj: Any) -> Any:
    return [_to_lists(o) for o in obj] if isinstance(obj, tuple | list) else obj


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace ``path`` with ``state``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    """The saved state.

    Raises:
        UsageError: no state there (``--resume`` on a run that never saved one) or it is unreadable.
    """
    if not path.is_file():
        raise UsageError(f"nothing to resume: {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a variety of unpickling/zip errors; all mean "not our state"
        raise UsageError(f"cannot read the training state {path}: {exc}") from exc
