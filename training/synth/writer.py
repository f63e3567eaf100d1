"""Write synthetic samples in the DPDD layout (plus CoC/disparity maps and DED-style defocus maps) and JSON.

Layout under ``out``::

    {split}_c/source/NNNNN.png   blurred combined view      {split}_c/target/NNNNN.png  sharp target
    {split}_l/source/NNNNN.png   left dual-pixel view       {split}_r/source/NNNNN.png  right view
    {split}_c/coc/NNNNN.png      signed CoC, 16-bit grey:   value = 32768 + 256 * coc_px
    {split}_c/disparity/NNNNN.png  signed L-R disparity, same encoding
    ded/{split}/image/synth/image_N.png, sharp/synth/sharp_N.png, filtered/synth/defocus_filterd_N.png
                                 DED defocus map, 8-bit:   value = 255 * min(|coc| / max_coc, 1)
    samples.json                 generator settings and every sample's parameters

Splits are made per source photo when there are enough photos, so that validation and test crops never come
from a photo seen in training; with fewer than 3 photos they fall back to splitting samples.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deblurcli.io import png
from training.synth.sample import Sample, SynthConfig, make_sample
from training.synth.sources import PhotoPool

MAP_OFFSET = 32768
MAP_SCALE = 256.0
SPLITS = ("train", "val", "test")


def encode_signed_map(m: np.ndarray) -> np.ndarray:
    """Signed px map -> uint16 with 1/256 px steps over about +-128 px."""
    return np.clip(np.round(m * MAP_SCALE + MAP_OFFSET), 0, 65535).astype(np.uint16)


def decode_signed_map(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_signed_map`."""
    return ((v.astype(np.float32) - MAP_OFFSET) / MAP_SCALE).astype(np.float32)


def _quantise(img: np.ndarray, bits: int) -> np.ndarray:
    peak = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.round(np.clip(img, 0.0, 1.0) * peak).astype(dtype).transpose(1, 2, 0)


def write_png(path: Path, samples: np.ndarray) -> None:
    """8- or 16-bit PNG (grey or RGB) by our own codec, which keeps 16-bit colour that Pillow would truncate.

    The Up filter and zlib level 1 because generation is bulk work: a few percent larger files for a faster
    writer (Paeth took about 1.5x as long for 2-3 % smaller files on 512x512 RGB).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    png.write_png(path, samples, filters=2, level=1)


def split_counts(n: int, val_frac: float, test_frac: float) -> dict[str, int]:
    n_val, n_test = int(round(n * val_frac)), int(round(n * test_frac))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _photo_splits(
    photos: list[Path], counts: dict[str, int], seed: int
) -> tuple[dict[str, set[Path] | None], str]:
    if len(photos) < 3:
        return {s: None for s in SPLITS}, "sample"
    order = [photos[i] for i in np.random.default_rng([seed, 7]).permutation(len(photos))]
    total = sum(counts.values())
    out: dict[str, set[Path] | None] = {}
    start = 0
    for i, split in enumerate(SPLITS):
        share = counts[split] / total if total else 0.0
        k = (
            len(order) - start
            if i == len(SPLITS) - 1
            else max(1 if counts[split] else 0, round(share * len(order)))
        )
        k = min(k, len(order) - start - sum(1 for s in SPLITS[i + 1 :] if counts[s]))
        out[split] = set(order[start : start + k]) if counts[split] else set()
        start += k
    return out, "photo"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_sample(out: Path, split: str, index: int, sample: Sample, *, bits: int, max_coc: float) -> None:
    """Write one sample's files (the DED image/sharp files are hard links to the DPDD ones)."""
    name = f"{index:05d}.png"
    c, t = out / f"{split}_c" / "source" / name, out / f"{split}_c" / "target" / name
    write_png(c, _quantise(sample.blurred, bits))
    write_png(t, _quantise(sample.sharp, bits))
    write_png(out / f"{split}_l" / "source" / name, _quantise(sample.left, bits))
    write_png(out / f"{split}_r" / "source" / name, _quantise(sample.right, bits))
    write_png(out / f"{split}_c" / "coc" / name, encode_signed_map(sample.coc))
    write_png(out / f"{split}_c" / "disparity" / name, encode_signed_map(sample.disparity))
    ded = out / "ded" / split
    _link_or_copy(c, ded / "image" / "synth" / f"image_{index}.png")
    _link_or_copy(t, ded / "sharp" / "synth" / f"sharp_{index}.png")
    dm = np.round(np.clip(np.abs(sample.coc) / max_coc, 0.0, 1.0) * 255.0).astype(np.uint8)
    write_png(ded / "filtered" / "synth" / f"defocus_filterd_{index}.png", dm)


def write_dataset(
    pool: PhotoPool,
    out: Path,
    *,
    n: int,
    seed: int,
    config: SynthConfig,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    bits: int = 8,
    on_sample: Callable[[int], None] | None = None,
) -> dict:
    """Generate ``n`` samples into ``out``; sample i depends only on (seed, i), never on the others."""
    counts = split_counts(n, val_frac, test_frac)
    allowed, split_by = _photo_splits(pool.photos, counts, seed)
    records: list[dict] = []
    index = 0
    for split in SPLITS:
        for _ in range(counts[split]):
            rng = np.random.default_rng([seed, index])
            crop, origin = pool.draw(rng, allowed[split])
            sample_seed = int(rng.integers(2**63 - 1))
            sample = make_sample(crop, sample_seed, config)
            write_sample(out, split, index, sample, bits=bits, max_coc=config.max_coc)
            records.append(
                {
                    "index": index,
                    "split": split,
                    "file": f"{index:05d}.png",
                    "source": origin,
                    "params": dataclasses.asdict(sample.params),
                    "coc_range": [float(sample.coc.min()), float(sample.coc.max())],
                }
            )
            index += 1
            if on_sample is not None:
                on_sample(index)
    meta = {
        "generator": "training.synth",
        "seed": seed,
        "config": dataclasses.asdict(config),
        "bits": bits,
        "split_by": split_by,
        "counts": counts,
        "maps": {
            "coc": "signed CoC diameter px = (png - 32768) / 256; positive behind the focal plane",
            "disparity": "signed left-minus-right px, same encoding; same sign as coc",
            "ded_filtered": f"8-bit: 255 * min(|coc| / {config.max_coc}, 1)",
        },
        "samples": records,
    }
    (out / "samples.json").write_text(json.dumps(meta, indent=1))
    return meta
