"""Camera RAW through LibRaw (rawpy): sizes checked before unpacking, LibRaw's own messages kept off the terminal.

LibRaw prints decoder complaints ("data corrupted at 12345") with ``fprintf(stderr)`` from C, past Python's
``sys.stderr``; a truncated RAW in a batch would scribble over the progress bar and ignore ``-q``. So the
process-level stderr (file descriptor 2) points at /dev/null while LibRaw runs, and what the user sees is our
one-line reason. rawpy's exceptions carry LibRaw's message as bytes; they are turned into plain text.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from deblurcli.errors import PhotoError, PhotoTooLargeError, UnsupportedFormatError

_stderr_lock = threading.Lock()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (other threads' stderr output is lost meanwhile)."""
    with _stderr_lock:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a daemon): nothing to protect
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def plain(err: BaseException) -> str:
    """The first line of an exception's message as text, also when the library gave bytes (``b'...'``)."""
    arg = err.args[0] if len(err.args) == 1 else None
    text = bytes(arg).decode("utf-8", "replace") if isinstance(arg, bytes | bytearray) else str(err)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(err).__name__


def decode_raw(path: Path, max_pixels: int, check: Callable[[int, int, int], None]) -> np.ndarray:
    """(H, W, 3) uint16 linear sRGB, camera white balance, orientation applied by LibRaw.

    ``check(width, height, max_pixels)`` raises for too large a photo; the sensor area (with its margins,
    which LibRaw unpacks too) may exceed the output by at most a factor of two before it counts as absurd.
    """
    import rawpy

    raw = rawpy.RawPy()
    try:
        with quiet_stderr():
            raw.open_file(str(path))
            sizes = raw.sizes
            check(sizes.width, sizes.height, max_pixels)
            if sizes.raw_width * sizes.raw_height > 2 * max(max_pixels, sizes.width * sizes.height):
                raise PhotoTooLargeError(
                    f"sensor area {sizes.raw_width}x{sizes.raw_height} is out of proportion to the "
                    f"{sizes.width}x{sizes.height} image (damaged or hostile RAW)"
                )
            raw.unpack()
            return raw.postprocess(
                gamma=(1, 1),
                no_auto_bright=True,
                output_bps=16,
                use_camera_wb=True,
                output_color=rawpy.ColorSpace.sRGB,
            )
    except (rawpy.LibRawFileUnsupportedError, rawpy.NotSupportedError) as err:
        raise UnsupportedFormatError(f"RAW format not supported by LibRaw: {plain(err)}") from None
    except rawpy.LibRawTooBigError as err:
        raise PhotoTooLargeError(f"RAW too large for LibRaw: {plain(err)}") from None
    except rawpy.LibRawError as err:
        raise PhotoError(f"corrupt or truncated RAW: {plain(err)}") from None
    finally:
        raw.close()


def exif_via_exiv2(path: Path) -> bytes | None:
    """EXIF of a RAW that is not TIFF-structured (CR3, RAF, ...), as a Pillow blob, or None.

    exiv2 reads those containers and copies the EXIF into a one-pixel TIFF in memory, where the same code
    that reads a TIFF's EXIF picks it up.
    """
    import io

    from deblurcli.io import metadata

    pyexiv2 = metadata.exiv2()
    try:
        source = pyexiv2.Image(str(path))
        carrier = pyexiv2.ImageData(metadata.carrier())
        try:
            source.copy_to_another_image(
                carrier, exif=True, iptc=False, xmp=False, comment=False, icc=False, thumbnail=False
            )
            blob = bytes(carrier.get_bytes())
        finally:
            carrier.close()
            source.close()
        return metadata.exif_from_tiff(io.BytesIO(blob))[0]
    except Exception:
        return None
