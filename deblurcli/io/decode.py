"""Read any supported photo into a ``Photo``: JPEG/PNG via Pillow, TIFF via tifffile, RAW via LibRaw.

The format is told by the file's first bytes, not its name, because renamed files are common; only RAW needs
the extension too, since most RAW formats are TIFF containers. Sizes are checked from the header before any
pixel is decoded, so a 2-gigapixel file fails fast instead of exhausting memory. Pillow's own
decompression-bomb guard is switched off while we read, because ``max_pixels`` is the limit the user controls.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deblurcli.errors import PhotoError, PhotoTooLargeError, UnsupportedFormatError
from deblurcli.io import metadata, png
from deblurcli.io.photo import Kind, Photo

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
SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff"}) | RAW_EXTENSIONS

_OTHER_IMAGES = {b"GIF8": "GIF", b"BM": "BMP", b"\x00\x00\x00\x0cjP": "JPEG 2000", b"\xff\x0a": "JPEG XL"}
_pillow_lock = threading.Lock()


def decode(path: Path, *, max_pixels: int = 200_000_000) -> Photo:
    """Decode ``path``; raise ``PhotoError`` (or a subclass) with a one-line reason if unreadable."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except IsADirectoryError:
        raise PhotoError("is a folder, not a photo") from None
    except OSError as err:
        raise PhotoError(f"cannot open: {err.strerror or err}") from None
    if not head:
        raise PhotoError("empty file")
    kind = _sniff(head)
    ext = path.suffix.lower()
    if ext in RAW_EXTENSIONS and kind not in ("jpeg", "png"):
        return _decode_raw(path, head, max_pixels)
    if kind == "png":
        return _decode_png(path, max_pixels)
    if kind == "jpeg":
        return _decode_pillow(path, "jpeg", max_pixels)
    if kind == "tiff":
        return _decode_tiff(path, head, max_pixels)
    for magic, name in _OTHER_IMAGES.items():
        if head.startswith(magic):
            raise UnsupportedFormatError(f"{name} images are not supported (use JPEG, PNG, TIFF or RAW)")
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypavif", b"ftypmif1") or head[8:12] == b"WEBP":
        raise UnsupportedFormatError("HEIF/AVIF/WebP images are not supported (use JPEG, PNG, TIFF or RAW)")
    raise PhotoError("not an image (unrecognised content)")


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(png.SIGNATURE):
        return "png"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    return None


def _too_large(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise PhotoTooLargeError(
            f"{width}x{height} = {width * height / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:g} MP"
        )


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _scaled(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer samples to float32 in [0, 1] by the dtype's range; the depth comes from the dtype alone."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0), 8
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0), 16
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
    return Photo(
        pixels=np.ascontiguousarray(pixels), alpha=alpha, bit_depth=depth, kind=kind, source=path, **meta
    )


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
    name = kind.upper()
    with _no_bomb_guard():
        try:
            with Image.open(path) as im:
                _too_large(im.width, im.height, max_pixels)
                im.load()
                exif, orientation = metadata.reset_orientation(im.getexif())
                # a CMYK/Lab profile would mislabel the RGB we convert to, so it is dropped with the mode
                icc = None if im.mode in ("CMYK", "LAB", "HSV") else im.info.get("icc_profile") or None
                array = np.asarray(_normalise_mode(im))
        except (PhotoError, MemoryError):
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
            raise PhotoError(f"corrupt or truncated {name}: {_one_line(err)}") from None
    array = metadata.orient(array, orientation)
    return _photo(path, array, kind, transfer="srgb", exif=exif, icc=icc)


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
# Pillow reduces 16-bit colour PNGs to 8 bits, so 16-bit PNGs are decoded by deblurcli.io.png; 8-bit ones
# still go to Pillow.


def _decode_png(path: Path, max_pixels: int) -> Photo:
    with open(path, "rb") as fh:
        header = png.read_header(fh.read(33))
    _too_large(header.width, header.height, max_pixels)
    if header.depth != 16:
        return _decode_pillow(path, "png", max_pixels)
    array, chunks = png.read16(header, path.read_bytes())
    exif, orientation = None, 1
    if b"eXIf" in chunks:
        exif, orientation = metadata.reset_orientation(metadata.load_exif(chunks[b"eXIf"][0]))
    icc = None
    if b"iCCP" in chunks:
        with contextlib.suppress(zlib.error, ValueError):
            icc = zlib.decompress(chunks[b"iCCP"][0].split(b"\0", 1)[1][1:]) or None
    return _photo(path, metadata.orient(array, orientation), "png", transfer="srgb", exif=exif, icc=icc)


# --- TIFF and RAW --------------------------------------------------------------------------------


def _decode_tiff(path: Path, head: bytes, max_pixels: int) -> Photo:
    """First page only; a TIFF holding a CFA mosaic or a DNG tag is handed to LibRaw whatever its name."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if page.photometric in (32803, 34892) or 50706 in page.tags:
                return _decode_raw(path, head, max_pixels)
            _too_large(page.imagewidth, page.imagelength, max_pixels)
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
    """Demosaic with the camera's white balance to 16-bit linear sRGB; LibRaw applies the orientation."""
    import rawpy

    raw = rawpy.RawPy()
    try:
        raw.open_file(str(path))
        _too_large(raw.sizes.width, raw.sizes.height, max_pixels)
        raw.unpack()
        rgb = raw.postprocess(
            gamma=(1, 1),
            no_auto_bright=True,
            output_bps=16,
            use_camera_wb=True,
            output_color=rawpy.ColorSpace.sRGB,
        )
    except (rawpy.LibRawFileUnsupportedError, rawpy.NotSupportedError) as err:
        raise UnsupportedFormatError(f"RAW format not supported by LibRaw: {_one_line(err)}") from None
    except rawpy.LibRawError as err:
        raise PhotoError(f"corrupt or truncated RAW: {_one_line(err)}") from None
    finally:
        raw.close()
    exif = None
    if _sniff(head) == "tiff":
        try:
            with open(path, "rb") as fh:
                exif, _ = metadata.exif_from_tiff(fh)
        except Exception:  # vendor IFDs are often odd; the photo matters more than its EXIF
            exif = None
    return _photo(path, rgb, "raw", transfer="linear", exif=exif, icc=None)
