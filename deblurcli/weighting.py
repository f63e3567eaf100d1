"""Which signal decides where a photo is corrected: a hand-made mask, or the method's own defocus map joined by
the pyramid estimator's, turned into the per-pixel weight of ``engine.bokeh``.

Every method is treated alike: the first map it reports that ``engine.bokeh.radius_from_map`` understands
(``defocus`` in blur-radius px, or IFAN's 1/8-scale ``disparity``) is its own. Method maps err low for wide blur
(networks rarely saw more blur than DPDD holds; the classic method's deconvolution map is kept low on purpose,
since deconvolving with too wide a disc rings), and an error that way would sharpen the very bokeh ``keep`` is
meant to protect. So the pyramid estimator of ``methods.defocus_map``, which reads wide blur, always runs too
(on the photo shrunk as the threshold grows with photo size, so the threshold falls at the same place of its
range on every photo size), and the larger of the two radii wins: a large blur either map sees is kept.

The pyramid estimate is read twice, on the photo and on it shrunk ``SECOND_LOOK`` times more, and the smaller
reading counts. Its errors are over-reads of soft in-focus detail (the tree lines and reeds of a hazy
landscape read as 4-8 px), and they are not the same at two scales, while a true blur reads nearly alike at
both (a disc of 4-12 px reads 3-7 % lower in the minimum, on ``classic_map.py``'s report photos): so the smaller
reading is the estimator's own principle, that evidence of sharpness wins, applied across scales.
Even so its readings near the threshold scatter by a fifth from photo to photo (``benchmarks/classic_map.py``:
a true 3 px reads 2.3-4.4 px on five report photos), so an estimate just above the threshold is missed focus
as often as bokeh, and the estimate withholds correction only where it reads ``ESTIMATE_MARGIN`` of the
threshold above it. With one scale and no margin ``keep`` withheld 6-13 % of the correction that ``remove``
gives below the threshold on four held-out renders; now 2-8 %, while the pixels past the fade still change by
only about 1/255 RMS (``benchmarks/bokeh_synth.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deblurcli.engine import bokeh
from deblurcli.errors import PhotoError, UsageError
from deblurcli.io.decode import decode
from deblurcli.zoo.cache import sha256_file

Mask = Path | np.ndarray
BOKEH_MODES = ("keep", "remove")
WEIGHT_MAP = "bokeh_weight"
WEIGHT_UNIT = "correction weight (0 = untouched, 1 = fully corrected)"
#: the blur radius ``keep`` decided by: read it to choose ``--bokeh-threshold`` for a photo
RADIUS_MAP = "bokeh_radius"
RADIUS_UNIT = "blur radius, px: the larger of the method's map and the pyramid estimate less its margin (full size)"
#: units of the maps this module adds to a method's own, for the map files' records
MAP_UNITS = {WEIGHT_MAP: WEIGHT_UNIT, RADIUS_MAP: RADIUS_UNIT}
_LUMA = (0.2126, 0.7152, 0.0722)
#: the pyramid estimate runs on at most this many pixels (about 110 B each), so a 24 MP photo stays in 2 GB
ESTIMATE_MAX_PIXELS = 1_000_000
#: the second reading of the pyramid estimate is taken on the photo shrunk this much more than the first
SECOND_LOOK = 1.5
#: the pyramid estimate counts this fraction of the threshold less (see the module docstring). Chosen on the
#: training photos' scenes (``benchmarks/make_sets.py``'s ``tune384``) as the largest margin that keeps their
#: pixels past the fade within 46 dB of the input (1 dB inside the 45 dB that issue #12 calls untouched)
ESTIMATE_MARGIN = 0.12


def grey_guide(x: torch.Tensor) -> np.ndarray:
    """(H, W) grey sRGB of the (1, 3, H, W) model input: the guide that steers the weight onto photo edges."""
    grey = torch.zeros(x.shape[-2:], dtype=torch.float32)
    for c, w in enumerate(_LUMA):  # a channel at a time: whole-photo RGB temporaries would be 24 MP's peak
        grey.add_(x[0, c].clamp(0.0, 1.0), alpha=w)
    return grey.numpy()


def _read_estimate(x: torch.Tensor, scale: float) -> np.ndarray:
    """The pyramid estimator's blur radius (full-resolution px) on the photo shrunk ``scale`` times."""
    from deblurcli.methods.defocus_map import estimate_defocus

    small = x.float()  # no copy for a float32 model input
    # shrink first, clamp after: clamping the full-size photo would copy it, and for a model input (in [0, 1]) the
    # antialiased bilinear shrink, a weighted mean, stays in [0, 1], so the order changes nothing
    if scale > 1.0:
        size = (max(1, round(x.shape[-2] / scale)), max(1, round(x.shape[-1] / scale)))
        small = F.interpolate(small, size=size, mode="bilinear", antialias=True, align_corners=False)
    small = small.clamp(0.0, 1.0)
    with torch.inference_mode():
        radius = estimate_defocus(small)[0, 0].numpy()
    return (radius * scale).astype(np.float32)


def estimate_radius(x: torch.Tensor, threshold: float) -> np.ndarray:
    """The pyramid estimate of blur radius (full-resolution px): the smaller of its readings at two scales.

    The first scale grows with the threshold, so the threshold falls at the same place of the estimator's range
    on every photo size; photos above ``ESTIMATE_MAX_PIXELS`` are shrunk further, for memory. The second is
    ``SECOND_LOOK`` times smaller. Returned on the first reading's grid (the photo shrunk by the first scale).
    """
    pixels = x.shape[-2] * x.shape[-1]
    scale = max(1.0, threshold / bokeh.BASE_THRESHOLD_PX, math.sqrt(pixels / ESTIMATE_MAX_PIXELS))
    first = _read_estimate(x, scale)
    second = bokeh.resize(_read_estimate(x, scale * SECOND_LOOK), *first.shape)
    return np.minimum(first, second, out=first)


def load_mask(mask: Mask, height: int, width: int, *, max_pixels: int) -> tuple[np.ndarray, str]:
    """A mask (file any decoder reads, or a float (H, W[, C]) array in [0, 1]) as an (H, W) weight + sha256.

    White means correct, black keep; colour masks count by their mean channel; a different size is resized.

    Raises:
        UsageError: the mask file cannot be read (named, with the decoder's reason) or the array is not 2-D/3-D.
    """
    if isinstance(mask, np.ndarray):
        values = np.asarray(mask, dtype=np.float32)
        import hashlib

        digest = hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
    else:
        try:
            values = decode(Path(mask), max_pixels=max_pixels).pixels
        except PhotoError as err:
            raise UsageError(f"--mask {mask}: {err}") from None
        digest = sha256_file(Path(mask))
    if values.ndim == 3:
        values = values.mean(axis=2)
    if values.ndim != 2:
        raise UsageError(f"a mask must be (H, W) or (H, W, C), not shape {values.shape}")
    return np.clip(bokeh.resize(values, height, width), 0.0, 1.0), digest


def correction_weight(
    x: torch.Tensor,
    maps: Mapping[str, np.ndarray],
    *,
    mode: str,
    threshold: float | None,
    mask: Mask | None,
    max_pixels: int,
) -> tuple[np.ndarray | None, dict[str, str], np.ndarray | None]:
    """The (H, W) weight for this photo (``None``: correct everywhere), what provenance records about it, and
    the blur radius (px) the weight was formed from, on the estimate's grid (``None`` for a mask or ``remove``).

    Raises:
        UsageError: unknown mode, non-positive threshold, unreadable mask.
    """
    if mode not in BOKEH_MODES:
        raise UsageError(f"--bokeh must be one of {', '.join(BOKEH_MODES)}, not {mode!r}")
    height, width = x.shape[-2:]
    if mask is not None:
        weight, digest = load_mask(mask, height, width, max_pixels=max_pixels)
        source = str(mask) if isinstance(mask, Path) else "array"
        return weight, {"bokeh": "mask", "bokeh_mask": source, "bokeh_mask_sha256": digest}, None
    if mode == "remove":
        return None, {"bokeh": "remove"}, None
    if threshold is not None and not threshold > 0:
        raise UsageError(f"--bokeh-threshold must be positive, not {threshold:g}")
    limit = threshold if threshold is not None else bokeh.default_threshold(height, width)
    radius = estimate_radius(x, limit)
    radius = np.maximum(radius - ESTIMATE_MARGIN * limit, 0.0, out=radius)
    source = "pyramid estimate"
    own = next(((k, v) for k, v in maps.items() if k in ("defocus", "disparity")), None)
    if own is not None:
        radius = np.maximum(bokeh.resize(bokeh.radius_from_map(*own), *radius.shape), radius)
        source = f"{own[0]} + {source}"
    weight = bokeh.correction_weight(radius, grey_guide(x), limit)
    record = {"bokeh": "keep", "bokeh_threshold": f"{limit:.3g}", "bokeh_map": source}
    return weight, record, radius
