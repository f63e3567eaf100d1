"""Per-pixel maps a method can emit (blur radius, disparity, ...): a lossless-enough TIFF plus a PNG preview.

The TIFF is 16-bit grey stretched over the full range, with the real minimum and maximum in its
ImageDescription JSON, so the values come back to within (max - min) / 65535 in the method's own units with
``read_map``. The PNG is for eyes only: a perceptual (viridis-like) colour map, where equal steps in
value look like equal steps in brightness, unlike a rainbow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deblurcli.io import metadata
from deblurcli.io.atomic import atomic_output
from deblurcli.io.png import png_bytes

# Control points (position, sRGB 0..255) of a dark-violet -> teal -> yellow ramp with rising lightness.
_RAMP = np.array(
    [
        (0.000, 68, 1, 84),
        (0.125, 71, 44, 122),
        (0.250, 59, 81, 139),
        (0.375, 44, 113, 142),
        (0.500, 33, 144, 141),
        (0.625, 39, 173, 129),
        (0.750, 92, 200, 99),
        (0.875, 170, 220, 50),
        (1.000, 253, 231, 37),
    ],
    dtype=np.float64,
)


def colormap_lut(size: int = 256) -> np.ndarray:
    """(size, 3) uint8 table interpolated linearly between the control points."""
    t = np.linspace(0.0, 1.0, size)
    return (
        np.stack([np.interp(t, _RAMP[:, 0], _RAMP[:, k]) for k in (1, 2, 3)], axis=1).round().astype(np.uint8)
    )


def write_map(
    values: np.ndarray,
    tiff_path: Path,
    png_path: Path,
    *,
    unit: str,
    provenance: Mapping[str, str] | None,
) -> None:
    """Write an (H, W) map in method units; non-finite values are stored as the minimum."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"a map must be 2-D, got shape {values.shape}")
    finite = np.isfinite(values)
    lo = float(values[finite].min()) if finite.any() else 0.0
    hi = float(values[finite].max()) if finite.any() else 0.0
    span = hi - lo
    norm = np.where(finite, (values - lo) / span if span > 0 else 0.0, 0.0).clip(0.0, 1.0)
    samples = np.round(norm * 65535.0).astype(np.uint16)
    record = {
        **dict(provenance or {}),
        "unit": unit,
        "min": lo,
        "max": hi,
        "decode": "value = min + (max - min) * sample / 65535",
    }
    description = json.dumps(record, separators=(",", ":"), sort_keys=True)
    import tifffile

    with atomic_output(Path(tiff_path)) as tmp:
        tifffile.imwrite(
            tmp,
            samples,
            photometric="minisblack",
            compression="zlib",
            predictor=True,
            description=description,
            software=metadata.SOFTWARE_NAME,
            metadata=None,
        )
    preview = colormap_lut()[(samples >> 8).astype(np.intp)]
    text = {"Description": description, "Software": metadata.SOFTWARE_NAME}
    with atomic_output(Path(png_path)) as tmp:
        tmp.write_bytes(png_bytes(preview, text=text))


def read_map(tiff_path: Path) -> tuple[np.ndarray, dict[str, object]]:
    """Values in method units and the JSON record of a map written by ``write_map``."""
    import tifffile

    with tifffile.TiffFile(tiff_path) as tif:
        page = tif.pages.first
        record = json.loads(page.description)
        samples = page.asarray()
    lo, hi = float(record["min"]), float(record["max"])
    return (lo + (hi - lo) * samples.astype(np.float64) / 65535.0).astype(np.float32), record
