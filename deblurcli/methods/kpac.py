"""``--method kpac``: KPAC (Son et al., ICCV 2021), and the reader for its TensorFlow checkpoints.

The authors ship ``pretrained/{single_2level,single_3level,dual}.npz``, written by TensorLayer's
``save_npz``: one object array ``params`` holding every variable in creation order, TF layouts
(conv ``[kh, kw, in, out]``, deconv ``[kh, kw, out, in]``). An object array is a pickle, so we parse it with
an unpickler that only accepts numpy's array reconstruction: a checkpoint can describe arrays, never run
code. Files saved positionally (``arr_0``, ``arr_1`` …) or by TF variable name are read too.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deblurcli.archs.kpac import BLOCKS, KPAC
from deblurcli.errors import UsageError, WeightsError
from deblurcli.methods.spec import MethodSpec, Outputs, StateDict
from deblurcli.zoo.state import read_tensors

#: number of TF variables -> levels (the dual model is 3-level and differs only in c0's input channels)
_LEVELS_BY_COUNT = {58: 2, 66: 3}


def kpac_variables(*, levels: int, dual_pixel: bool) -> list[tuple[str, str]]:
    """(TF variable name, our state-dict key) in the order TensorLayer saved them (``params`` order)."""
    del dual_pixel  # same variables; only c0's shape differs
    pairs: list[tuple[str, str]] = []

    def layer(tf_scope: str, ours: str, *, kind: str = "conv2d") -> None:
        pairs.append((f"deblur_net/{tf_scope}/W_{kind}", f"{ours}.weight"))
        pairs.append((f"deblur_net/{tf_scope}/b_{kind}", f"{ours}.bias"))

    encoder = ["c0", "c0_2", "c2", "c2_2", "c3", "c3_2"] + (["c4", "c4_2"] if levels == 3 else [])
    for name in encoder:
        layer(f"deblur/{name}", name)
    for i in range(BLOCKS):
        pairs.append((f"deblur_net/dc1/{i}/filter", f"blocks.{i}.kernel"))
        for j in range(4):
            pairs.append((f"deblur_net/sca_dc{j + 1}/{i}/filter", f"blocks.{i}.scale_att.{j}.weight"))
            pairs.append((f"deblur_net/sca_dc{j + 1}/{i}/b", f"blocks.{i}.scale_att.{j}.bias"))
        layer(f"sca_c2/{i}", f"blocks.{i}.scale_att.4")
        layer(f"sha_c1/{i}", f"blocks.{i}.shape_att.0")
        layer(f"sha_c2/{i}", f"blocks.{i}.shape_att.1")
        layer(f"cf/{i}", f"blocks.{i}.fuse")
    layer("deblur/cm_1", "cm_1")
    layer("deblur/cm_2", "cm_2")
    for name in (["d0"] if levels == 3 else []) + ["d1", "d2"]:
        layer(f"deblur/{name}", name, kind="deconv2d")
        layer(f"deblur/{name}_2", f"{name}_2")
    return pairs


def tf_to_torch(array: np.ndarray) -> torch.Tensor:
    """TF conv ``[kh,kw,in,out]`` -> ``[out,in,kh,kw]``; the same permutation takes a TF deconv
    ``[kh,kw,out,in]`` to ConvTranspose2d's ``[in,out,kh,kw]`` (both are cross-correlations: no flip)."""
    if array.ndim == 4:
        array = array.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals numpy needs to rebuild plain arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): lambda: _reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): lambda: _reconstruct(),
    }

    def find_class(self, module: str, name: str) -> Any:
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")
        return factory()


def _reconstruct() -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError("this numpy cannot rebuild pickled arrays")


def _read_member(zf: zipfile.ZipFile, member: str, source: str) -> np.ndarray | list[np.ndarray]:
    """One ``.npy`` member: a plain array directly, an object array through the array-only unpickler."""
    f = io.BytesIO(zf.read(member))
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            items = _ArrayOnlyUnpickler(f, encoding="latin1").load()
            return [np.asarray(a) for a in np.asarray(items, dtype=object).ravel()]
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, EOFError, pickle.UnpicklingError, TypeError) as exc:
        raise WeightsError(f"{source}: cannot read {member} ({exc})") from exc


def read_kpac_npz(path: Path) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Positional arrays (``params`` object array or ``arr_N``), or a name -> array dict for named files."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.endswith(".npy")]
            keys = {m[: -len(".npy")]: m for m in members}
            if "params" in keys:
                params = _read_member(zf, keys["params"], path.name)
                if not isinstance(params, list):
                    raise WeightsError(f"{path.name}: 'params' is not a list of arrays")
                return params
            if keys and all(re.fullmatch(r"arr_\d+", k) for k in keys):
                ordered = sorted(keys, key=lambda k: int(k[4:]))
                return [_as_array(_read_member(zf, keys[k], path.name), k, path) for k in ordered]
            return {k: _as_array(_read_member(zf, m, path.name), k, path) for k, m in keys.items()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path.name}: not a readable .npz ({exc})") from exc


def _as_array(value: np.ndarray | list[np.ndarray], key: str, path: Path) -> np.ndarray:
    if isinstance(value, list):
        raise WeightsError(f"{path.name}: {key} holds objects, expected one array")
    return value


def _normalise(name: str) -> str:
    """TF name without ``:0`` and its outermost scope (``deblur_net/``, or KPAC-Net's ``main_net/``)."""
    name = name.removesuffix(":0")
    return name.split("/", 1)[1] if "/" in name else name


def infer_kpac_hparams(path: Path) -> dict[str, Any]:
    """``levels`` and ``dual_pixel`` of an authors' ``.npz``, from the array count and c0's input channels."""
    arrays = read_kpac_npz(path)
    if isinstance(arrays, list):
        count, first = len(arrays), (arrays[0] if arrays else None)
    else:
        named = {_normalise(k): v for k, v in arrays.items()}
        count, first = len(named), named.get("deblur/c0/W_conv2d")
    if count not in _LEVELS_BY_COUNT or first is None or np.ndim(first) != 4:
        raise WeightsError(f"{path.name}: {count} arrays do not look like a KPAC checkpoint (58 or 66)")
    return {"levels": _LEVELS_BY_COUNT[count], "dual_pixel": int(np.shape(first)[2]) == 6}


def convert_kpac_npz(path: Path, *, levels: int, dual_pixel: bool) -> StateDict:
    """The authors' ``.npz`` as a state dict of ``KPAC(levels=..., dual_pixel=...)``, shapes checked strictly.

    Raises:
        WeightsError: wrong number of arrays, a missing variable, or a shape that does not fit, naming the
            TF variable.
    """
    arrays = read_kpac_npz(path)
    pairs = kpac_variables(levels=levels, dual_pixel=dual_pixel)
    if isinstance(arrays, list):
        if len(arrays) != len(pairs):
            raise WeightsError(f"{path.name}: {len(arrays)} arrays, a {levels}-level KPAC has {len(pairs)}")
        values = arrays
    else:
        named = {_normalise(k): v for k, v in arrays.items()}
        missing = [tf for tf, _ in pairs if _normalise(tf) not in named]
        if missing or len(named) != len(pairs):
            raise WeightsError(
                f"{path.name}: missing {', '.join(missing[:3]) or 'nothing'}; "
                f"{len(named)} arrays for {len(pairs)} variables"
            )
        values = [named[_normalise(tf)] for tf, _ in pairs]
    shapes = {k: tuple(v.shape) for k, v in KPAC(levels=levels, dual_pixel=dual_pixel).state_dict().items()}
    state: StateDict = {}
    for index, ((tf_name, key), value) in enumerate(zip(pairs, values, strict=True)):
        tensor = tf_to_torch(np.asarray(value))
        if tuple(tensor.shape) != shapes[key]:
            want = shapes[key] if len(shapes[key]) != 4 else tuple(shapes[key][i] for i in (2, 3, 1, 0))
            raise WeightsError(
                f"{path.name}: variable {index} ({tf_name}) has shape {tuple(value.shape)}, "
                f"expected {want} (TF layout)"
            )
        state[key] = tensor
    return state


def convert_kpac(path: Path) -> StateDict:
    """Any KPAC weights file: the authors' ``.npz`` (variant inferred) or our safetensors."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            is_npz = any(m.endswith(".npy") for m in zf.namelist())
        if is_npz:
            return convert_kpac_npz(path, **infer_kpac_hparams(path))
    return {k: v for k, v in read_tensors(path).items() if isinstance(v, torch.Tensor)}


def run_kpac(model: nn.Module | None, x: torch.Tensor) -> Outputs:
    """Our sRGB [0, 1] -> the authors' ``(x - 127.5) / 127.5`` = [-1, 1] -> back (not clipped)."""
    if not isinstance(model, KPAC):
        raise TypeError("run_kpac needs a KPAC")
    if model.dual_pixel:
        raise UsageError("the dual-pixel KPAC needs the two dual-pixel views, which this input does not have")
    return {"image": (model(x * 2.0 - 1.0) + 1.0) * 0.5}


def infer_state_hparams(state: StateDict) -> dict[str, Any]:
    """``levels`` and ``dual_pixel`` of a converted state dict: the 3-level net adds ``c4``; dual input has 6
    channels on ``c0``."""
    first = state.get("c0.weight")
    if first is None or first.dim() != 4:
        raise WeightsError("not a KPAC state dict: no c0.weight")
    return {"levels": 3 if "c4.weight" in state else 2, "dual_pixel": int(first.shape[1]) == 6}


SPEC = MethodSpec(
    name="kpac",
    summary="KPAC (ICCV 2021): shared-kernel atrous convs with scale/shape attention; light, 1.6M params",
    cls=KPAC,
    run=run_kpac,
    # 2 levels need multiples of 4; 8 also fits the 3-level and dual variants a weights record may select.
    multiple_of=8,
    # Two KPAC blocks at 1/4 scale reach +-19 px there each (dilation-2 attention path), ~+-175 px in theory;
    # the effective reach is far smaller.
    receptive_field=96,
    hparams={"levels": 2, "dual_pixel": False},
    weights=("kpac-2level",),
    convert=convert_kpac,
    infer_hparams=infer_state_hparams,
    # Larger tiles keep the global shape attention close to its whole-image value; the model is light.
    # What --tile auto picks for a 24 MP photo within 2 GB end to end (choose_tile); 1280x720 gets 736.
    default_tile=616,
    # Peak RSS growth per input pixel, fp32 CPU inference, 2 levels: 1422 B/px at 512^2, 1266 at 1024^2
    # (re-measured 1375 at 512 with benchmarks/tile_speed.py --memory). Set to 1750 because 1500 let a 24 MP run
    # (benchmarks/bigphoto.py, 680 px tiles) peak at 2.09 GB, over the 2 GB budget: the tile's transient buffers.
    bytes_per_pixel=1750,
    # Seconds per tile MP relative to the fastest edge: 2.96 s/MP at 256 px, 4.01 at 512, 4.37 at 768, 4.17 at 1024
    # (python benchmarks/tile_speed.py --edges 256,512,768,1024 --repeat 2: fp32, 2 threads, edges interleaved
    # in one process, quiet 2-core machine). Smaller tiles run faster per pixel (caches).
    tile_speed=((256, 1.0), (512, 1.35), (768, 1.48), (1024, 1.41)),
)
