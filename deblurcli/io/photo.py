"""The decoded photo that travels from the decoder through the pipeline to the encoder.

One immutable record keeps the pixels together with everything the encoder needs to write a faithful result
(transfer, depth, metadata), so that no step has to reopen the source file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Transfer = Literal["srgb", "linear"]
Kind = Literal["jpeg", "png", "tiff", "raw", "webp", "avif", "heif"]


@dataclass(frozen=True)
class Photo:
    """Pixels plus the facts about their encoding.

    ``pixels`` is (H, W, C) float32 with C == 1 (grey) or 3, orientation already applied; integer sources are
    scaled to [0, 1] by their dtype's range, float TIFFs are kept as stored. ``alpha`` is kept aside (H, W) in
    [0, 1] because no model is trained on it. ``exif`` is the blob as ``PIL.Image.Exif.tobytes()`` writes it
    (with its ``Exif\\0\\0`` prefix) and Orientation reset to 1, since the pixels are already upright.

    The remaining fields default to "nothing" so that code building a Photo from pixels alone keeps working:
    ``xmp`` is the source's XMP packet as stored, ``iptc`` its IPTC-IIM records as exiv2 names them,
    ``text`` the PNG text chunks other than XMP and raw profiles, and ``mtime`` the source file's
    modification time, which the encoder gives the result so that photo libraries sort it with its original.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    transfer: Transfer
    bit_depth: int
    kind: Kind
    exif: bytes | None
    icc: bytes | None
    source: Path
    xmp: str | None = None
    iptc: dict[str, str | list[str]] | None = None
    text: dict[str, str] | None = None
    mtime: float | None = None
