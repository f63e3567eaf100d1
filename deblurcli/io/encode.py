"""Write a result photo as JPEG, PNG or TIFF, keeping its EXIF and ICC and recording how it was made.

Colour decision: every output is sRGB-encoded. A RAW result arrives linear (the pipeline returns the input's
transfer), and a linear 16-bit TIFF looks far too dark in any viewer that does not read an ICC profile, so
linear pixels are encoded with the exact sRGB curve here and no profile is embedded (untagged means sRGB to
every viewer). Photos that came in sRGB keep their own ICC profile byte for byte.

Metadata kept: JPEG keeps the EXIF blob (APP1) and ICC; PNG the EXIF (eXIf) and ICC (iCCP); TIFF the ICC (tag
34675), the IFD0 strings Make/Model/DateTime/Artist/HostComputer/Copyright and the complete Exif and GPS
sub-IFDs. Provenance goes to ImageDescription + Software (JPEG EXIF, TIFF tags) or to iTXt "Description" and
tEXt "Software" chunks (PNG), as compact JSON. Everything is written through ``atomic_output``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from deblurcli.errors import DefocusError, EncodeError, UsageError
from deblurcli.io import metadata, png
from deblurcli.io.atomic import atomic_output
from deblurcli.io.color import linear_to_srgb
from deblurcli.io.photo import Photo

EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif"}
_DEPTHS = {"jpeg": (8,), "png": (8, 16), "tiff": (8, 16, 32)}


def default_format(photo: Photo) -> tuple[str, int]:
    """The input's own family and depth; RAW becomes 16-bit TIFF, the only common format that holds it."""
    if photo.kind == "jpeg":
        return "jpeg", 8
    if photo.kind == "png":
        return "png", min(photo.bit_depth, 16)
    if photo.kind == "tiff":
        return "tiff", photo.bit_depth
    return "tiff", 16


def encode(
    photo: Photo,
    path: Path,
    *,
    fmt: str,
    bit_depth: int,
    quality: int = 95,
    provenance: Mapping[str, str] | None = None,
) -> None:
    """Write ``photo.pixels`` (same transfer as the decoded input) to ``path``; nothing is left on failure."""
    if fmt not in _DEPTHS:
        raise UsageError(f"unknown output format {fmt!r} (choose jpeg, png or tiff)")
    if bit_depth not in _DEPTHS[fmt]:
        depths = "/".join(str(d) for d in _DEPTHS[fmt])
        raise UsageError(f"{fmt.upper()} output must be {depths}-bit, not {bit_depth}-bit")
    if not 1 <= quality <= 100:
        raise UsageError(f"JPEG quality must be 1..100, not {quality}")
    samples = quantise(photo, bit_depth, keep_alpha=fmt != "jpeg")
    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            if fmt == "jpeg":
                _write_jpeg(tmp, samples, photo, quality, provenance)
            elif fmt == "png":
                _write_png(tmp, samples, photo, provenance)
            else:
                _write_tiff(tmp, samples, photo, provenance, has_alpha=photo.alpha is not None)
    except DefocusError:
        raise
    except (OSError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
        raise EncodeError(f"cannot write {path.name}: {reason}") from None


def quantise(photo: Photo, bit_depth: int, *, keep_alpha: bool) -> np.ndarray:
    """(H, W, C[+1]) samples: sRGB-encoded, clipped to [0, 1] and rounded for integer depths."""
    pixels = photo.pixels
    if photo.transfer == "linear":
        pixels = linear_to_srgb(np.clip(pixels, 0.0, 1.0))
    if keep_alpha and photo.alpha is not None:
        pixels = np.concatenate([pixels, photo.alpha[:, :, None].astype(np.float32)], axis=2)
    if bit_depth == 32:
        return np.ascontiguousarray(pixels, dtype=np.float32)
    scale, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.round(np.clip(pixels, 0.0, 1.0) * np.float32(scale)).astype(dtype)


def _write_jpeg(
    tmp: Path, samples: np.ndarray, photo: Photo, quality: int, provenance: Mapping[str, str] | None
) -> None:
    """4:4:4 chroma: deblurring restores fine colour edges that 4:2:0 would blur again."""
    image = Image.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {"quality": quality, "subsampling": 0}
    exif = metadata.with_provenance(photo.exif, provenance)
    if exif:
        options["exif"] = exif
    if photo.icc:
        options["icc_profile"] = photo.icc
    image.save(tmp, format="JPEG", **options)


def _write_tiff(
    tmp: Path, samples: np.ndarray, photo: Photo, provenance: Mapping[str, str] | None, *, has_alpha: bool
) -> None:
    import tifffile

    colour = samples.shape[2] - (1 if has_alpha else 0)
    bigtiff = samples.nbytes > 2**31
    subifds = {} if bigtiff else metadata.tiff_subifds(photo.exif)
    extratags: list[tuple[int, int | str, int, object, bool]] = list(metadata.tiff_ascii_tags(photo.exif))
    if photo.icc:
        extratags.append((metadata.ICC_TAG, 7, len(photo.icc), photo.icc, True))
    extratags += metadata.placeholder_tags(subifds)
    tifffile.imwrite(
        tmp,
        samples if colour > 1 or has_alpha else samples[:, :, 0],
        photometric="rgb" if colour == 3 else "minisblack",
        extrasamples=(2,) if has_alpha else None,
        compression="zlib",
        predictor=samples.dtype != np.float32,
        description=metadata.provenance_json(provenance) if provenance is not None else None,
        software=metadata.SOFTWARE_NAME,
        extratags=extratags,
        metadata=None,
        bigtiff=bigtiff,
    )
    if subifds:
        metadata.append_subifds(tmp, subifds)


# --- PNG ------------------------------------------------------------------------------------------
# Pillow cannot write 16-bit colour PNGs, so every PNG goes through deblurcli.io.png: one code path for all
# depths.


def _write_png(tmp: Path, samples: np.ndarray, photo: Photo, provenance: Mapping[str, str] | None) -> None:
    text: dict[str, str] = {}
    if provenance is not None:
        text = {"Description": metadata.provenance_json(provenance), "Software": metadata.SOFTWARE_NAME}
    tmp.write_bytes(png.png_bytes(samples, exif=photo.exif, icc=photo.icc, text=text))
