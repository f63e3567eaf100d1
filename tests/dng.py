"""A minimal Bayer DNG writer for tests: no real camera RAW files can be shipped or downloaded.

The camera is declared to see linear sRGB (ColorMatrix1 = XYZ(D65) -> linear sRGB, neutral white balance),
so LibRaw's output should reproduce the source photo; that makes PSNR a meaningful check of the RAW path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from deblurcli.io.color import srgb_to_linear

# The matrix DNG calls ColorMatrix1 maps CIE XYZ to camera RGB; with camera RGB == linear sRGB it is the
# standard XYZ -> linear sRGB matrix (IEC 61966-2-1).
_XYZ_TO_LINEAR_SRGB = (
    (3.2404542, -1.5371385, -0.4985314),
    (-0.9692660, 1.8760108, 0.0415560),
    (0.0556434, -0.2040259, 1.0572252),
)
_COLOUR_INDEX = {"R": 0, "G": 1, "B": 2}


def _signed_rationals(values: np.ndarray, denominator: int = 1_000_000) -> list[int]:
    pairs = [(round(float(v) * denominator), denominator) for v in values.ravel()]
    return [n for pair in pairs for n in pair]


def mosaic(srgb8: np.ndarray, pattern: str, bits: int, black: int) -> np.ndarray:
    """Linearise an 8-bit sRGB photo and keep one colour per pixel in the 2x2 ``pattern`` (e.g. "RGGB")."""
    linear = srgb_to_linear(srgb8.astype(np.float32) / 255.0)
    h, w = (linear.shape[0] // 2) * 2, (linear.shape[1] // 2) * 2
    white = (1 << bits) - 1
    cfa = np.empty((h, w), np.float32)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        cfa[dy::2, dx::2] = linear[dy:h:2, dx:w:2, _COLOUR_INDEX[colour]]
    return np.round(black + cfa * (white - black)).clip(0, white).astype(np.uint16)


def write_dng(
    path: Path, srgb8: np.ndarray, *, pattern: str = "RGGB", bits: int = 12, black: int = 256
) -> np.ndarray:
    """Write a single-IFD CFA DNG 1.4 of ``srgb8``; returns the mosaic written, for bit-exact comparisons."""
    raw = mosaic(srgb8, pattern, bits, black)
    tags = [
        (271, "s", 0, "TestCam", True),  # Make
        (272, "s", 0, "Bayer-1", True),  # Model
        (306, "s", 0, "2024:05:06 07:08:09", True),  # DateTime
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, bytes(_COLOUR_INDEX[c] for c in pattern), True),  # CFAPattern
        (50706, "B", 4, bytes((1, 4, 0, 0)), True),  # DNGVersion: what LibRaw recognises a DNG by
        (50707, "B", 4, bytes((1, 1, 0, 0)), True),  # DNGBackwardVersion
        (50708, "s", 0, "TestCam Bayer-1", True),  # UniqueCameraModel
        (50710, "B", 3, bytes((0, 1, 2)), True),  # CFAPlaneColor: R, G, B
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50714, "I", 1, black, True),  # BlackLevel
        (50717, "I", 1, (1 << bits) - 1, True),  # WhiteLevel
        (50721, 10, 9, _signed_rationals(np.array(_XYZ_TO_LINEAR_SRGB)), True),  # ColorMatrix1
        (50728, 5, 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral: camera white is neutral
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
    ]
    tifffile.imwrite(
        path,
        raw,
        photometric=32803,  # CFA
        subfiletype=0,
        compression=None,
        extratags=tags,
        metadata=None,
    )
    return raw
