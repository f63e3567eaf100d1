"""The output formats the encoder writes: extension, bit depths, and which extensions name which format.

Kept apart from ``encode`` (which pulls in numpy, Pillow and exiv2) so that the command line can check names
and ``--bit-depth`` up front, before anything heavy is imported, from the same table the encoder obeys.
"""

from __future__ import annotations

#: format -> extension of the files we write
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "avif": ".avif", "heif": ".heic"}
#: format -> bit depths per sample it can hold
DEPTHS = {"jpeg": (8,), "png": (8, 16), "tiff": (8, 16, 32), "webp": (8,), "avif": (8,), "heif": (8,)}
#: file extension -> the format that extension names (RAW extensions are decoded, never written)
SUFFIX_FORMATS = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff",
    ".webp": "webp", ".avif": "avif", ".heic": "heif", ".heif": "heif",
}  # fmt: skip
