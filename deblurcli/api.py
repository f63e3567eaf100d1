"""The Python API: ``deblurcli.deblur``, ``deblurcli.load_method`` and ``deblurcli.deblur_file``.

These are thin doors into ``deblurcli.pipeline``, the same functions ``defocus deblur`` runs per photo, so a
script and the command line give the same pixels for the same options. What this module adds is the caller's
conventions: arrays and Pillow images in and out in the caller's own dtype and layout (uint8, uint16, float;
grey, grey + alpha, RGB, RGBA), with alpha returned untouched, and method names or loaded methods alike.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from PIL import Image

from deblurcli.engine.device import pick_device, resolve_precision
from deblurcli.errors import UsageError
from deblurcli.io.decode import DEFAULT_MAX_PIXELS, decode
from deblurcli.io.formats import SUFFIX_FORMATS
from deblurcli.io.photo import Photo
from deblurcli.methods.loader import LoadedMethod
from deblurcli.methods.loader import load_method as _load
from deblurcli.methods.names import DEFAULT_METHOD
from deblurcli.methods.registry import get_method
from deblurcli.naming import Naming
from deblurcli.pipeline import DeblurOptions, deblur_photo, resolve_format
from deblurcli.pipeline import deblur_file as _deblur_file
from deblurcli.weighting import Mask

Bokeh = Literal["keep", "remove"]
ImageT = TypeVar("ImageT", np.ndarray, Image.Image)
_PEAK = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_PIL_MODES = ("L", "LA", "RGB", "RGBA", "I;16", "F")


def load_method(
    name: str = DEFAULT_METHOD,
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights: str | Path | None = None,
    offline: bool = False,
    cache_dir: str | Path | None = None,
) -> LoadedMethod:
    """Build a method once (network, weights, device) to deblur many images with it.

    Args:
        name: ``classic`` (no weights), ``ifan``, ``drbnet``, ``dmsft``, ``kpac``, ...
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``fp32``, ``fp16`` or ``bf16``; on a CPU without native half precision the method runs in
            fp32 instead and ``.notice`` of the result says so.
        weights: a checkpoint file (any official format); default: the cached one, downloaded on first use.
        offline: never download.
        cache_dir: the weights cache (default: ``$DEFOCUS_CACHE`` or the per-user cache).

    Raises:
        UnknownMethodError, DeviceError, WeightsMissingError, WeightsError, DownloadError.
    """
    spec = get_method(name)
    where = pick_device(device)
    dtype, notice = resolve_precision(precision, where, supports_half=spec.supports_half)
    loaded = _load(
        name,
        device=where,
        dtype=dtype,
        weights=Path(weights) if weights is not None else None,
        offline=offline,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
    loaded.notice = notice
    return loaded


def _options(strength: float, bokeh: str, threshold: float | None, mask: Mask | None, **more: object) -> DeblurOptions:
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"strength must be within 0..1, not {strength:g}")
    return replace(DeblurOptions(), strength=strength, bokeh=bokeh, bokeh_threshold=threshold, mask=mask, **more)


def _method(method: str | LoadedMethod, device: str) -> LoadedMethod:
    return method if isinstance(method, LoadedMethod) else load_method(method, device=device)


def _split(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(H, W[, C]) samples -> float colour (H, W, 1 | 3), the alpha samples as given, and the dtype's peak."""
    if array.dtype in _PEAK:
        peak = _PEAK[array.dtype]
    elif array.dtype.kind == "f":
        peak = 1.0
    else:
        raise UsageError(f"images must be uint8, uint16 or float, not {array.dtype}")
    samples = array[:, :, None] if array.ndim == 2 else array
    if samples.ndim != 3 or samples.shape[2] not in (1, 2, 3, 4):
        raise UsageError(f"images must be (H, W), (H, W, 1..4), not shape {array.shape}")
    colour = samples.shape[2] - (samples.shape[2] in (2, 4))
    alpha = samples[:, :, colour] if colour < samples.shape[2] else None
    return samples[:, :, :colour].astype(np.float32) / np.float32(peak), alpha, peak


def _mask_array(mask: Mask | Image.Image | str | None) -> Mask | None:
    """Masks as the pipeline takes them: a file path, or float samples in [0, 1]."""
    if mask is None or isinstance(mask, Path):
        return mask
    if isinstance(mask, str):
        return Path(mask)
    array = np.asarray(mask)
    if array.dtype == bool:
        return array.astype(np.float32)
    colour, _alpha, _peak = _split(array)
    return colour


def deblur(
    image: ImageT,
    method: str | LoadedMethod = DEFAULT_METHOD,
    *,
    strength: float = 1.0,
    bokeh: Bokeh = "keep",
    bokeh_threshold: float | None = None,
    mask: np.ndarray | Image.Image | str | Path | None = None,
    device: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
) -> ImageT:
    """Deblur one image held in memory; returns the same kind of image (array or Pillow), shape and dtype.

    Samples are sRGB: integers by their dtype's range, floats in [0, 1] (clipped to it on the way out). Grey
    images are processed as three equal channels and returned grey; an alpha channel comes back unchanged.

    Args:
        image: (H, W), (H, W, 1), (H, W, 2) grey + alpha, (H, W, 3) or (H, W, 4) array of uint8, uint16 or
            float; or a Pillow image (L, LA, RGB, RGBA, I;16, F; other modes are converted to RGB or RGBA).
        method: a method name, or a method from ``load_method`` (then ``device`` is ignored).
        strength: 0 returns the input, 1 the full correction.
        bokeh: ``keep`` corrects blur up to ``bokeh_threshold`` and leaves larger (intended) blur alone;
            ``remove`` corrects the whole frame.
        bokeh_threshold: blur radius in px (default: 3 px, scaled up for photos above 2000 px).
        mask: where to correct, overriding the defocus map: white (1) corrects, black (0) keeps; an array,
            a Pillow image or an image file, resized to the image if needed.
        tile, overlap: tiling (default: the method's own).

    Raises:
        UsageError: a bad argument; the errors of ``load_method`` when ``method`` is a name.
    """
    loaded = _method(method, device)
    as_pil = isinstance(image, Image.Image)
    if as_pil:
        pil = image if image.mode in _PIL_MODES else image.convert("RGBA" if "transparency" in image.info else "RGB")
        array = np.asarray(pil)
    else:
        array = np.asarray(image)
    colour, alpha, peak = _split(array)
    photo = Photo(
        pixels=np.ascontiguousarray(colour),
        alpha=None if alpha is None else np.clip(alpha.astype(np.float32) / np.float32(peak), 0.0, 1.0),
        transfer="srgb",
        bit_depth={255.0: 8, 65535.0: 16}.get(peak, 32),
        kind="tiff",
        exif=None,
        icc=None,
        source=Path("<array>"),
    )
    opts = _options(strength, bokeh, bokeh_threshold, _mask_array(mask), tile=tile, overlap=overlap)
    result, _maps, _provenance = deblur_photo(photo, loaded, opts)
    pixels = result.pixels
    if peak != 1.0:
        pixels = np.round(np.clip(pixels, 0.0, 1.0) * peak)
    out = pixels.astype(array.dtype)
    if alpha is not None:
        out = np.concatenate([out, alpha[:, :, None]], axis=2)
    if array.ndim == 2:
        out = out[:, :, 0]
    if not as_pil:
        return out  # type: ignore[return-value]
    made = Image.fromarray(out)
    made.info.update(pil.info)
    return made  # type: ignore[return-value]


def deblur_file(
    path: str | Path,
    output: str | Path | None = None,
    *,
    method: str | LoadedMethod = DEFAULT_METHOD,
    strength: float = 1.0,
    bokeh: Bokeh = "keep",
    bokeh_threshold: float | None = None,
    mask: str | Path | None = None,
    device: str = "auto",
    fmt: str | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    maps: bool = False,
    overwrite: bool = False,
    tile: int | None = None,
    overlap: int | None = None,
    max_megapixels: float = DEFAULT_MAX_PIXELS / 1e6,
) -> Path:
    """Deblur a photo file as ``defocus deblur`` does (metadata kept, provenance recorded); returns the result.

    ``output`` is a file, a folder (a path without a suffix; created if needed; the result is named
    ``<stem>_deblurred.<ext>`` there) or ``None`` (beside the input). The format follows ``fmt``, else
    ``output``'s suffix, else the input's family.

    Raises:
        UsageError: the result exists (pass ``overwrite=True``) or would replace the input; PhotoError,
            EncodeError and the errors of ``load_method``.
    """
    src = Path(path)
    target = Path(output) if output is not None else None
    if fmt is None and target is not None and not target.is_dir():
        fmt = SUFFIX_FORMATS.get(target.suffix.lower())
    opts = _options(
        strength,
        bokeh,
        bokeh_threshold,
        _mask_array(mask),
        fmt=fmt,
        bit_depth=bit_depth,
        quality=quality,
        maps=maps,
        tile=tile,
        overlap=overlap,
        max_pixels=int(max_megapixels * 1_000_000),
    )
    loaded = _method(method, device)
    photo = decode(src, max_pixels=opts.max_pixels)
    fmt_, depth = resolve_format(photo, opts)
    if target is None or target.is_dir() or not target.suffix:
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
        dst = Naming(folder=target, method=loaded.spec.name).path(src, fmt_)
    else:
        dst = target
    if dst.resolve() == src.resolve():
        raise UsageError("the output would replace the input")
    if dst.exists() and not overwrite:
        raise UsageError(f"{dst} exists; pass overwrite=True to replace it")
    _deblur_file(src, dst, loaded, opts, fmt=fmt_, bit_depth=depth, photo=photo)
    return dst
