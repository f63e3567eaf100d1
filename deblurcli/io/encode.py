"""Write a result photo as JPEG, PNG, TIFF, WebP, AVIF or HEIF with all of its metadata, atomically.

Colour decision: every output is sRGB-encoded. A RAW result arrives linear (the pipeline returns the input's
transfer), and a linear 16-bit TIFF looks far too dark in any viewer that does not read an ICC profile, so
linear pixels are encoded with the exact sRGB curve here and tagged with an sRGB ICC profile. Photos that
came in with a profile keep it byte for byte.

Metadata (see ``deblurcli.io.metadata``): the encoder writes pixels, ICC and EXIF itself where the format
takes an EXIF blob (JPEG, PNG, WebP, AVIF, HEIF); exiv2 then adds XMP and IPTC to JPEG, PNG and TIFF (and
EXIF to TIFF). WebP, AVIF and HEIF take XMP from their encoder, with IPTC mapped into it. Provenance is
XMP, the ImageDescription stays the user's, and the result gets the input's modification time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from deblurcli.errors import DefocusError, EncodeError, UsageError
from deblurcli.io import metadata, png
from deblurcli.io.atomic import atomic_output
from deblurcli.io.atomic import keep_mtime as keep_mtime_of
from deblurcli.io.color import linear_to_srgb
from deblurcli.io.formats import DEPTHS as _DEPTHS
from deblurcli.io.formats import EXTENSIONS as EXTENSIONS  # re-exported: callers import it from here
from deblurcli.io.photo import Photo
from deblurcli.io.raw import plain
from deblurcli.zoo.cache import sha256_file

_EXIV2_WRITES = ("jpeg", "png", "tiff")  # formats exiv2 can write XMP/IPTC into; the others take XMP at encoding


def default_format(photo: Photo) -> tuple[str, int]:
    """The input's own family and depth; RAW becomes 16-bit TIFF, the only common format that holds it.

    WebP, AVIF and HEIF come back in their own (8-bit, lossy at ``--quality``) format: a phone's HEIC
    stays a HEIC that the phone's gallery shows. Their decoders hand us 8 bits, so nothing is lost there.
    """
    if photo.kind in ("jpeg", "webp", "avif", "heif"):
        return photo.kind, 8
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
    keep_mtime: bool = True,
) -> None:
    """Write ``photo.pixels`` (same transfer as the decoded input) to ``path``; nothing is left on failure.

    ``keep_mtime`` gives the result the source's modification time (as ``exiftool -P`` does), so that photo
    libraries that sort by file date keep the result beside its original.
    """
    if fmt not in _DEPTHS:
        raise UsageError(f"unknown output format {fmt!r} (choose {', '.join(_DEPTHS)})")
    if bit_depth not in _DEPTHS[fmt]:
        depths = "/".join(str(d) for d in _DEPTHS[fmt])
        raise UsageError(f"{fmt.upper()} output must be {depths}-bit, not {bit_depth}-bit")
    if not 1 <= quality <= 100:
        raise UsageError(f"JPEG quality must be 1..100, not {quality}")
    samples = quantise(photo, bit_depth, keep_alpha=fmt != "jpeg")
    height, width = samples.shape[:2]
    meta = _Meta(
        exif=metadata.output_exif(photo.exif, width, height, stamp=provenance is not None),
        icc=photo.icc or (metadata.srgb_icc() if photo.transfer == "linear" else None),
        xmp=metadata.output_xmp(
            photo.xmp,
            photo.iptc,
            width=width,
            height=height,
            provenance=_with_source(provenance, photo),
            iptc_into_xmp=fmt not in _EXIV2_WRITES,
        ),
        text=dict(photo.text or {}),
    )
    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            if fmt == "jpeg":
                _write_jpeg(tmp, samples, meta, quality)
            elif fmt == "png":
                _write_png(tmp, samples, meta)
            elif fmt == "tiff":
                _write_tiff(tmp, samples, meta, has_alpha=photo.alpha is not None)
            else:
                _write_bmff_or_webp(tmp, samples, meta, fmt, quality)
            if fmt in _EXIV2_WRITES and not _is_bigtiff(fmt, samples):  # exiv2 cannot write BigTIFF
                try:
                    tiff = fmt == "tiff"  # TIFF got its XMP from tifffile
                    metadata.embed(
                        tmp, exif=meta.exif if tiff else None, xmp=None if tiff else meta.xmp, iptc=photo.iptc
                    )
                except RuntimeError as err:  # exiv2's one exception type
                    hint = "; --format tiff or png holds it" if fmt == "jpeg" else ""
                    raise EncodeError(f"cannot write the metadata of {path.name}: {plain(err)}{hint}") from None
            if keep_mtime:
                keep_mtime_of(tmp, photo.mtime)
    except DefocusError:
        raise
    except (OSError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else plain(err)
        raise EncodeError(f"cannot write {path.name}: {reason}") from None


@dataclass(frozen=True)
class _Meta:
    """What every writer embeds, prepared once: EXIF blob, ICC profile, XMP packet, PNG text chunks."""

    exif: bytes | None
    icc: bytes | None
    xmp: str | None
    text: dict[str, str]


def _with_source(provenance: Mapping[str, str] | None, photo: Photo) -> dict[str, str] | None:
    """Provenance plus the input's name, sha256 and the date, so a result can be traced to its original."""
    if provenance is None:
        return None
    record = dict(provenance)
    record.setdefault("date", metadata.provenance_date())
    source = Path(photo.source)
    if source.name and "source" not in record:
        record["source"] = source.name
        if source.is_file():
            record["source_sha256"] = sha256_file(source)
    return record


def quantise(photo: Photo, bit_depth: int, *, keep_alpha: bool) -> np.ndarray:
    """(H, W, C[+1]) samples: sRGB-encoded, clipped to [0, 1] and rounded for integer depths.

    Integer outputs are converted in bands of rows straight into the output array, so a 200 MP photo
    needs its 8/16-bit result plus a few megabytes here, not three more float copies of itself.
    """
    alpha = photo.alpha if keep_alpha else None
    height, width, colour = photo.pixels.shape
    channels = colour + (alpha is not None)
    if bit_depth == 32 and alpha is None and photo.transfer == "srgb":
        return np.ascontiguousarray(photo.pixels, dtype=np.float32)  # already what is written: no copy
    if bit_depth == 32:
        out = np.empty((height, width, channels), np.float32)
        scale, dtype = None, np.float32
    else:
        scale, dtype = (np.float32(255.0), np.uint8) if bit_depth == 8 else (np.float32(65535.0), np.uint16)
        out = np.empty((height, width, channels), dtype)
    step = max(1, (1 << 20) // max(1, width))  # about a megapixel per band
    for y in range(0, height, step):
        band = photo.pixels[y : y + step]
        if photo.transfer == "linear":
            band = linear_to_srgb(np.clip(band, 0.0, 1.0))
        if alpha is not None:
            band = np.concatenate([band, alpha[y : y + step, :, None].astype(np.float32)], axis=2)
        if scale is None:
            out[y : y + step] = band
        else:
            out[y : y + step] = np.round(np.clip(band, 0.0, 1.0) * scale)
    return out


def _write_jpeg(tmp: Path, samples: np.ndarray, meta: _Meta, quality: int) -> None:
    """4:4:4 chroma: deblurring restores fine colour edges that 4:2:0 would blur again."""
    image = Image.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {"quality": quality, "subsampling": 0}
    if meta.exif:
        options["exif"] = meta.exif
    if meta.icc:
        options["icc_profile"] = meta.icc
    image.save(tmp, format="JPEG", **options)


def _write_tiff(tmp: Path, samples: np.ndarray, meta: _Meta, *, has_alpha: bool) -> None:
    """Pixels and ICC by tifffile; EXIF, XMP and IPTC follow through exiv2 (``metadata.embed``)."""
    import tifffile

    colour = samples.shape[2] - (1 if has_alpha else 0)
    extratags: list[tuple[int, int, int, bytes, bool]] = []
    if meta.icc:
        extratags.append((metadata.ICC_TAG, 7, len(meta.icc), meta.icc, True))
    if meta.xmp:
        packet = meta.xmp.encode("utf-8")
        extratags.append((metadata.XMP_TAG, 1, len(packet), packet, True))
    tifffile.imwrite(
        tmp,
        samples if colour > 1 or has_alpha else samples[:, :, 0],
        photometric="rgb" if colour == 3 else "minisblack",
        extrasamples=(2,) if has_alpha else None,
        compression="zlib",
        predictor=samples.dtype != np.float32,
        software=metadata.SOFTWARE_NAME,
        extratags=extratags,
        metadata=None,
        bigtiff=_is_bigtiff("tiff", samples),
    )


def _is_bigtiff(fmt: str, samples: np.ndarray) -> bool:
    """Over 2 GB of samples needs BigTIFF; exiv2 cannot write it, so EXIF and IPTC are left out there."""
    return fmt == "tiff" and samples.nbytes > 2**31


def _write_png(tmp: Path, samples: np.ndarray, meta: _Meta) -> None:
    """The source's text chunks are kept; Software names the tool that wrote these pixels."""
    text = {**meta.text, "Software": metadata.SOFTWARE_NAME}
    tmp.write_bytes(png.png_bytes(samples, exif=meta.exif, icc=meta.icc, text=text))


def _write_bmff_or_webp(tmp: Path, samples: np.ndarray, meta: _Meta, fmt: str, quality: int) -> None:
    """WebP and AVIF by Pillow's own codecs, HEIF by pillow-heif; grey is stored as RGB, as phones do."""
    if samples.shape[2] in (1, 2):
        samples = np.concatenate([np.repeat(samples[:, :, :1], 3, axis=2), samples[:, :, 1:]], axis=2)
    image = Image.fromarray(np.ascontiguousarray(samples))
    options: dict[str, object] = {"quality": quality}
    if meta.exif:
        options["exif"] = meta.exif
    if meta.icc:
        options["icc_profile"] = meta.icc
    if meta.xmp:
        options["xmp"] = meta.xmp.encode("utf-8")
    if fmt == "heif":
        import pillow_heif

        pillow_heif.from_pillow(image).save(tmp, **options)
    else:
        image.save(tmp, format=fmt.upper(), **options)
