"""Reading and writing state dicts without ever executing pickled code.

Every converter in ``deblurcli/archs`` goes through ``read_tensors`` and every model is loaded through
``load_strict``, so that a wrong, truncated or foreign checkpoint fails with a message naming the offending key
instead of silently producing a half-initialised network.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from deblurcli.errors import WeightsError

StateDict = dict[str, torch.Tensor]

#: metadata key under which our own safetensors files store their JSON header
META_KEY = "defocus"


def read_tensors(path: Path) -> dict[str, Any]:
    """Read a checkpoint file as a mapping: safetensors natively, ``.pth``-style files with weights_only.

    Raises:
        WeightsError: the file is missing, not a checkpoint, or would need arbitrary code to unpickle.
    """
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if _is_safetensors(path):
        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, i.e. running the file's code: never pass that on.
        raise WeightsError(f"{path}: {_pickled_code_reason(exc)}") from exc
    except (RuntimeError, ValueError, EOFError, OSError, zipfile.BadZipFile, Exception) as exc:  # noqa: B014
        raise WeightsError(f"{path}: cannot be read as a plain tensor checkpoint ({_first_line(exc)})") from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a mapping of tensors, found {type(obj).__name__}")
    return dict(obj)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _pickled_code_reason(exc: BaseException) -> str:
    """Our own wording for a checkpoint that holds pickled objects, naming the object torch stopped at."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    what = f" ({found.group(1)})" if found else ""
    return (
        f"holds pickled Python objects{what}, not just tensors; defocus never runs code from a checkpoint. "
        "Save the state dict instead (`torch.save(model.state_dict(), 'weights.pth')`) and use that file"
    )


def read_metadata(path: Path) -> dict[str, Any]:
    """Our JSON metadata from a safetensors header, or ``{}`` for files that carry none."""
    if not _is_safetensors(path):
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from exc
    raw = meta.get(META_KEY)
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: corrupt defocus metadata ({exc})") from exc
    return parsed if isinstance(parsed, dict) else {}


def save_ours(path: Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> None:
    """Write a state dict in our format: safetensors, contiguous CPU tensors, JSON metadata in the header."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(dict(metadata), sort_keys=True)})


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Keys without ``prefix``; keys lacking it are kept as they are (so a later strict check names them)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def unwrap(obj: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    """Descend into the first of ``names`` present (``params``, ``state_dict`` …) until tensors are reached."""
    for name in names:
        inner = obj.get(name)
        if isinstance(inner, Mapping):
            return inner
    return obj


def float_state(
    obj: Mapping[str, Any], *, source: str, prefixes: tuple[str, ...] = ("module.",)
) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict as float32 tensors: unwrapped (``state_dict``/``params``), ``prefixes`` dropped
    (DataParallel's ``module.`` by default), every entry required to be a tensor.

    Raises:
        WeightsError: an entry is not a tensor (naming up to three), with ``source`` as the file's name.
    """
    state = dict(unwrap(obj, "state_dict", "params"))
    for prefix in prefixes:
        state = strip_prefix(state, prefix)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{source}: entries that are not tensors: {', '.join(bad[:3])}")
    return {k: v.float() for k, v in state.items()}


def load_strict(module: nn.Module, state: Mapping[str, Any], *, source: str) -> None:
    """Load ``state`` into ``module``, failing on any missing, unexpected or misshapen key.

    Raises:
        WeightsError: naming the first offending keys and the file they came from.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. {', '.join(unexpected[:3])}")
        raise WeightsError(f"{source}: does not match the architecture: {'; '.join(parts)}")
    for key, ref in own.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: key {key} is not a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise WeightsError(
                f"{source}: key {key} has shape {tuple(value.shape)}, the architecture expects {tuple(ref.shape)}"
            )
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length followed by ``{``."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)
