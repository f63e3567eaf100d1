"""Read any supported photo into a ``Photo``: JPEG/PNG/WebP/AVIF via Pillow, HEIF via pillow-heif, 16-bit PNG
via imagecodecs, TIFF via tifffile, RAW via LibRaw; XMP and IPTC via exiv2 once the pixels are in.

The format is told by the file's first bytes, not its name, because renamed files are common; only RAW needs
the extension too, since most RAW formats are TIFF containers. Hostile files are refused before any pixel is
allocated: sizes come from the header and must fit ``max_pixels``; a TIFF must also have sane tiles and
strips that lie inside the file (a truncated TIFF would otherwise decode to silent zeros); a RAW's sensor
area must be in proportion to its image. Pillow's own decompression-bomb guard is switched off while we
read, because ``max_pixels`` is the limit the user controls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from deblurcli.errors import PhotoError, PhotoTooLargeError, UnsupportedFormatError
from deblurcli.io import metadata, png
from deblurcli.io.photo import Kind, Photo
from deblurcli.io.raw import decode_raw, exif_via_exiv2, plain

RAW_EXTENSIONS = frozenset(
    {
        ".3fr",
        ".ari",
        ".arw",
        ".bay",
        ".cr2",
        ".cr3",
        ".crw",
        ".dcr",
        ".dng",
        ".erf",
        ".fff",
        ".iiq",
        ".k25",
        ".kdc",
        ".mef",
        ".mos",
        ".mrw",
        ".nef",
        ".nrw",
        ".orf",
        ".pef",
        ".raf",
        ".raw",
        ".rw2",
        ".rwl",
        ".rwz",
        ".sr2",
        ".srf",
        ".srw",
        ".x3f",
    }
)
BMFF_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".avif"})
SUPPORTED_EXTENSIONS = (
    frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp"}) | BMFF_EXTENSIONS | RAW_EXTENSIONS
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

_OTHER_IMAGES = {b"GIF8": "GIF", b"BM": "BMP", b"\x00\x00\x00\x0cjP": "JPEG 2000", b"\xff\x0a": "JPEG XL"}
_pillow_lock = threading.Lock()

# The default pixel limit, sized by memory: ``defocus deblur`` peaks near 0.3 GB + 65 bytes per pixel (float32
# full-frame copies of the photo, its result and the tile blend: 49 B/px measured on JPEGs with
# ``benchmarks/pipeline_rss.py --stub``, plus the 12 B/px model-input copy that RAW, grey and float photos need),
# so 120 MP, a little above the largest common camera sensors (102 MP), stays under about 8 GB.
DEFAULT_MAX_PIXELS = 120_000_000
PIPELINE_BYTES_PER_PIXEL = 65
PIPELINE_BASE_BYTES = 300_000_000


def decode(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode ``path``; raise ``PhotoError`` (or a subclass) with a one-line reason if unreadable.

    The pixels come first: metadata is read (by exiv2) only from a file that decoded, so a hostile file
    meets one parser, not two.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            mtime = os.fstat(fh.fileno()).st_mtime
    except IsADirectoryError:
        raise PhotoError("is a folder, not a photo") from None
    except OSError as err:
        raise PhotoError(f"cannot open: {err.strerror or err}") from None
    if not head:
        raise PhotoError("empty file")
    with warnings.catch_warnings():  # Pillow warns on stderr about damaged EXIF ("Tag data larger than file")
        warnings.simplefilter("ignore")
        photo = _decode_pixels(path, head, max_pixels)
    xmp, iptc = metadata.read_xmp_iptc(path)
    return replace(photo, xmp=xmp, iptc=iptc, mtime=mtime)


def _decode_pixels(path: Path, head: bytes, max_pixels: int) -> Photo:
    kind = _sniff(head)
    ext = path.suffix.lower()
    if ext in RAW_EXTENSIONS and kind not in ("jpeg", "png"):
        return _decode_raw(path, head, max_pixels)
    if kind == "png":
        return _decode_png(path, max_pixels)
    if kind == "tiff":
        return _decode_tiff(path, head, max_pixels)
    if kind is not None:
        return _decode_pillow(path, kind, max_pixels)
    for magic, name in _OTHER_IMAGES.items():
        if head.startswith(magic):
            raise UnsupportedFormatError(f"{name} images are not supported (use JPEG, PNG, TIFF, HEIF, WebP or RAW)")
    raise PhotoError("not an image (unrecognised content)")


def _sniff(head: bytes) -> Kind | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(png.SIGNATURE):
        return "png"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":  # ISO BMFF: the major brand, else the compatible brands, name the codec
        size = int.from_bytes(head[:4], "big")
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
        if any(b in _AVIF_BRANDS for b in brands):
            return "avif"
        if any(b in _HEIF_BRANDS for b in brands) or b"mif1" in brands:
            return "heif"
    return None


def _too_large(width: int, height: int, max_pixels: int) -> None:
    """Refuse over the limit, saying what raising it would cost (absurd sizes are just called too large)."""
    pixels = width * height
    if pixels > max_pixels:
        need = (PIPELINE_BASE_BYTES + PIPELINE_BYTES_PER_PIXEL * pixels) / 2**30
        hint = f"; deblurring it needs about {need:.0f} GB of memory (--max-megapixels)" if need < 1024 else ""
        raise PhotoTooLargeError(
            f"{width}x{height} = {pixels / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:g} MP{hint}"
        )


_one_line = plain


def _scaled(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer samples to float32 in [0, 1] by the dtype's range; the depth comes from the dtype alone."""
    if array.dtype in (np.uint8, np.uint16):  # scaled in place: one float copy, not two, at the peak
        depth = 8 if array.dtype == np.uint8 else 16
        scaled = array.astype(np.float32)
        scaled /= np.float32(2**depth - 1)
        return scaled, depth
    if array.dtype.kind == "f":
        return array.astype(np.float32), 32
    raise UnsupportedFormatError(f"{array.dtype} samples are not supported (8/16-bit integer or float only)")


def _photo(path: Path, array: np.ndarray, kind: Kind, **meta: object) -> Photo:
    """Split (H, W, C) samples into colour and alpha (last channel of LA / RGBA) and build the Photo."""
    if array.ndim == 2:
        array = array[:, :, None]
    pixels, depth = _scaled(array)
    alpha = None
    if pixels.shape[2] in (2, 4):
        alpha = np.ascontiguousarray(np.clip(pixels[:, :, -1], 0.0, 1.0))
        pixels = pixels[:, :, :-1]
    elif pixels.shape[2] != 3 and pixels.shape[2] != 1:
        raise UnsupportedFormatError(f"{pixels.shape[2]} channels are not supported")
    return Photo(pixels=np.ascontiguousarray(pixels), alpha=alpha, bit_depth=depth, kind=kind, source=path, **meta)


@contextlib.contextmanager
def _no_bomb_guard() -> Iterator[None]:
    with _pillow_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode_pillow(path: Path, kind: Kind, max_pixels: int) -> Photo:
    """JPEG, 8-bit PNG, WebP, AVIF (Pillow's own codecs) and HEIF (pillow-heif); the size is checked on open,
    which reads only the header."""
    name = kind.upper()
    if kind == "heif":
        _register_heif()
    with _no_bomb_guard():
        try:
            with Image.open(path, formats=_PILLOW_FORMATS.get(kind)) as im:
                _too_large(im.width, im.height, max_pixels)
                im.load()
                exif, orientation = metadata.reset_orientation(im.getexif())
                # a CMYK/Lab profile would mislabel the RGB we convert to, so it is dropped with the mode
                icc = None if im.mode in ("CMYK", "LAB", "HSV") else im.info.get("icc_profile") or None
                text = {k: v for k, v in getattr(im, "text", {}).items() if k not in png.NOT_TEXT} or None
                array = np.asarray(_normalise_mode(im))
        except (PhotoError, MemoryError):
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
            raise PhotoError(f"corrupt or truncated {name}: {_one_line(err)}") from None
        except RuntimeError as err:  # pillow-heif's libheif errors
            raise PhotoError(f"corrupt or truncated {name}: {_one_line(err)}") from None
    array = metadata.orient(array, orientation)
    return _photo(path, array, kind, transfer="srgb", exif=exif, icc=icc, text=text if kind == "png" else None)


_PILLOW_FORMATS: dict[str, list[str]] = {
    "jpeg": ["JPEG"], "png": ["PNG"], "webp": ["WEBP"], "avif": ["AVIF"], "heif": ["HEIF"], "tiff": ["TIFF"]
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _register_heif() -> None:
    """pillow-heif's opener, registered on first use so that importing the decoder stays cheap."""
    try:
        import pillow_heif
    except ImportError:
        raise UnsupportedFormatError("HEIF/HEIC needs the pillow-heif package (pip install pillow-heif)") from None
    pillow_heif.register_heif_opener()


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Pillow modes to L / LA / RGB / RGBA (uint8) or I;16 (uint16), keeping transparency as alpha."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA", "I;16"):
        if "transparency" in im.info and mode in ("L", "RGB"):
            return im.convert(mode + "A" if mode == "L" else "RGBA")
        return im
    if mode in ("I;16B", "I;16L", "I;16N"):
        return im.convert("I;16")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("CMYK", "YCbCr", "RGBX", "LAB", "HSV"):
        return im.convert("RGB")
    raise UnsupportedFormatError(f"Pillow mode {mode} is not supported")


# --- PNG ------------------------------------------------------------------------------------------
# Pillow reduces 16-bit colour PNGs to 8 bits, so 16-bit PNGs are decoded by imagecodecs (libpng) through
# deblurcli.io.png; 8-bit ones go to Pillow.


def _decode_png(path: Path, max_pixels: int) -> Photo:
    with open(path, "rb") as fh:
        header = png.read_header(fh.read(33))
    _too_large(header.width, header.height, max_pixels)
    if header.depth != 16:
        return _decode_pillow(path, "png", max_pixels)
    array, chunks = png.read16(header, path.read_bytes())
    exif, orientation = None, 1
    if b"eXIf" in chunks:
        with contextlib.suppress(Exception):  # a broken EXIF block must not cost the user the photo
            exif, orientation = metadata.reset_orientation(metadata.load_exif(chunks[b"eXIf"][0]))
    icc, text = png.icc_profile(chunks), png.text_chunks(chunks) or None
    array = metadata.orient(array, orientation)
    return _photo(path, array, "png", transfer="srgb", exif=exif, icc=icc, text=text)


# --- TIFF and RAW --------------------------------------------------------------------------------


def _decode_tiff(path: Path, head: bytes, max_pixels: int) -> Photo:
    """First page only; a TIFF holding a CFA mosaic or a DNG tag is handed to LibRaw whatever its name.

    tifffile logs what it repairs in damaged files; without a handler of the application's, Python would
    print that on stderr, so a null handler keeps it off the terminal (our one-line reason says enough).
    """
    import tifffile

    _quiet_logger("tifffile")

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if page.photometric in (32803, 34892) or 50706 in page.tags:
                return _decode_raw(path, head, max_pixels)
            _check_tiff_layout(page, path.stat().st_size, max_pixels)
            array = page.asarray()
            axes, photometric, extra = page.axes, int(page.photometric), tuple(page.extrasamples)
            colormap, orientation_tag = page.colormap, page.tags.get(274)
            icc_tag = page.tags.get(metadata.ICC_TAG)
            icc = bytes(icc_tag.value) if icc_tag is not None else None
    except (PhotoError, MemoryError):
        raise
    except (ValueError, NotImplementedError, KeyError) as err:
        if "imagecodecs" in str(err) or isinstance(err, NotImplementedError):
            return _decode_tiff_with_pillow(path, err, max_pixels)
        raise PhotoError(f"corrupt or truncated TIFF: {_one_line(err)}") from None
    except Exception as err:  # tifffile raises many types for damaged files; all mean the same to the user
        raise PhotoError(f"corrupt or truncated TIFF: {_one_line(err)}") from None
    array = _tiff_samples(array, axes, photometric, extra, colormap)
    try:
        with open(path, "rb") as fh:
            exif, orientation = metadata.exif_from_tiff(fh)
    except Exception:  # a broken EXIF block must not cost the user the photo
        exif, orientation = None, int(orientation_tag.value) if orientation_tag is not None else 1
    array = metadata.orient(array, orientation if 1 <= orientation <= 8 else 1)
    return _photo(path, array, "tiff", transfer="srgb", exif=exif, icc=icc or None)


@functools.cache
def _quiet_logger(name: str) -> None:
    logging.getLogger(name).addHandler(logging.NullHandler())


def _check_tiff_layout(page: Any, file_size: int, max_pixels: int) -> None:
    """Refuse, from the tags alone, a TIFF whose decoding would allocate far more than its pixels need.

    Checked: the image size (``max_pixels``); samples per pixel and bits per sample (a photo has at most
    five samples of at most 64 bits); a tile no larger than four times the image plus a megapixel (a
    legitimate tile only pads the image to its tile grid); and every strip or tile inside the file (a truncated
    TIFF would otherwise come out with silent zeros where its data ended).
    """
    width, height = int(page.imagewidth), int(page.imagelength)
    _too_large(width, height, max_pixels)
    samples, bits = int(page.samplesperpixel), int(page.bitspersample)
    if not 1 <= samples <= 5 or not 1 <= bits <= 64 or int(page.imagedepth) != 1:
        raise UnsupportedFormatError(
            f"TIFF with {samples} samples of {bits} bits and depth {page.imagedepth} is not a photo"
        )
    if page.is_tiled:
        tile = int(page.tilewidth) * int(page.tilelength) * max(1, int(page.tiledepth))
        if tile > 4 * width * height + (1 << 20):
            raise PhotoError(f"corrupt TIFF: {page.tilewidth}x{page.tilelength} tiles for a {width}x{height} image")
    offsets, counts = page.dataoffsets, page.databytecounts
    if any(o + c > file_size for o, c in zip(offsets, counts, strict=False) if c):
        raise PhotoError("truncated TIFF: image data runs past the end of the file")
    if counts and not any(counts) and int(page.compression) != 1:
        raise PhotoError("corrupt TIFF: no image data")


def _decode_tiff_with_pillow(path: Path, err: Exception, max_pixels: int) -> Photo:
    """LZW and JPEG TIFFs need imagecodecs in tifffile; Pillow reads them too, but only losslessly for 8-bit
    samples and 16-bit grey, so 16-bit colour in those compressions stays unsupported without imagecodecs."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        lossless = page.dtype == np.uint8 or (page.dtype == np.uint16 and page.samplesperpixel == 1)
    if not lossless:
        raise UnsupportedFormatError(
            f"{page.bitspersample}-bit TIFF in this compression needs imagecodecs: {_one_line(err)}"
        )
    photo = _decode_pillow(path, "tiff", max_pixels)
    with open(path, "rb") as fh:
        exif, _ = metadata.exif_from_tiff(fh)
    return replace(photo, exif=exif)


def _tiff_samples(
    array: np.ndarray, axes: str, photometric: int, extra: tuple[int, ...], colormap: np.ndarray | None
) -> np.ndarray:
    """tifffile's page array to (H, W, C): samples last, palette expanded, white-is-zero inverted."""
    if axes.startswith("S") and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim not in (2, 3):
        raise UnsupportedFormatError(f"TIFF with axes {axes} is not a 2-D photo")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    if photometric == 3 and colormap is not None:  # palette: 16-bit colour table, indexed by the samples
        rgb = np.moveaxis(colormap[:, array if array.ndim == 2 else array[:, :, 0]], 0, -1)
        return (rgb.astype(np.float32) / 257.0).round().astype(np.uint8)
    if photometric == 0:  # MinIsWhite
        array = (1.0 - array) if array.dtype.kind == "f" else np.iinfo(array.dtype).max - array
    elif photometric not in (1, 2, 6):
        raise UnsupportedFormatError(f"TIFF photometric interpretation {photometric} is not supported")
    if array.ndim == 3:
        colour = 1 if photometric in (0, 1) else 3
        keep = colour + (1 if extra and extra[0] in (1, 2) and array.shape[2] > colour else 0)
        if extra and extra[0] == 1 and keep > colour:  # associated (premultiplied) alpha: unpremultiply
            f = array.astype(np.float32)
            scale = np.float32(1.0) if array.dtype.kind == "f" else np.float32(np.iinfo(array.dtype).max)
            a = f[:, :, colour : colour + 1] / scale
            f[:, :, :colour] = np.where(a > 0, f[:, :, :colour] / np.maximum(a, 1e-12), 0.0)
            array = f.clip(0, scale).round().astype(array.dtype) if array.dtype.kind != "f" else f
        array = array[:, :, :keep]
    return array


def _decode_raw(path: Path, head: bytes, max_pixels: int) -> Photo:
    """Demosaic with the camera's white balance to 16-bit linear sRGB (see ``deblurcli.io.raw``)."""
    rgb = decode_raw(path, max_pixels, _too_large)
    exif = None
    if _sniff(head) == "tiff":
        try:
            with open(path, "rb") as fh:
                exif, _ = metadata.exif_from_tiff(fh)
        except Exception:  # vendor IFDs are often odd; the photo matters more than its EXIF
            exif = None
    else:
        exif = exif_via_exiv2(path)
    return _photo(path, rgb, "raw", transfer="linear", exif=exif, icc=None)
