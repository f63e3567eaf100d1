"""Time the synthetic defocus generator on the installed Debian photos and draw a contact sheet.

Usage (after ``apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04 libjxl-testdata``)::

    python benchmarks/synth_speed.py -n 200 --size 256 --sheet out/contact_sheet.png

Photos are taken from shared/research/samples/photo_manifest.tsv (real photos only, greyscale ``Grey``
skipped) where installed, else from skimage's astronaut. Rendering is timed separately from PNG writing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage
import torch
from PIL import Image, ImageDraw

from training.synth.sample import Sample, SynthConfig, make_sample
from training.synth.sources import PhotoPool
from training.synth.writer import write_sample

MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "research" / "samples" / "photo_manifest.tsv"


def installed_photos() -> list[Path]:
    paths: list[Path] = []
    if MANIFEST.exists():
        for line in MANIFEST.read_text().splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) > 4 and cols[4] == "RGB" and Path(cols[1]).exists():
                paths.append(Path(cols[1]))
    return paths or [Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"]


def _tile(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)


def _map_tile(m: np.ndarray, limit: float) -> np.ndarray:
    """Signed map: red behind focus, blue in front, black in focus."""
    t = np.clip(m / limit, -1, 1)
    rgb = np.stack([np.clip(t, 0, 1), np.zeros_like(t), np.clip(-t, 0, 1)])
    return _tile(rgb)


def contact_sheet(samples: list[Sample], path: Path, max_coc: float) -> None:
    cols = ("blurred", "sharp", "CoC", "left", "right", "L-R x4", "disparity")
    s = samples[0].sharp.shape[1]
    sheet = Image.new("RGB", (len(cols) * (s + 4), len(samples) * (s + 4) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(cols):
        draw.text((j * (s + 4) + 4, 2), name, fill="black")
    for i, smp in enumerate(samples):
        diff = 0.5 + 4 * (smp.left - smp.right)
        tiles = (
            _tile(smp.blurred),
            _tile(smp.sharp),
            _map_tile(smp.coc, max_coc / 2),
            _tile(smp.left),
            _tile(smp.right),
            _tile(diff),
            _map_tile(smp.disparity, max_coc / 4),
        )
        for j, t in enumerate(tiles):
            sheet.paste(Image.fromarray(t), (j * (s + 4), 16 + i * (s + 4)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sheet", type=Path, default=Path("out/contact_sheet.png"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = SynthConfig(size=args.size)
    photos = installed_photos()
    t0 = time.perf_counter()
    pool = PhotoPool(photos, config.source_size)
    t_pool = time.perf_counter() - t0
    crops = []
    for i in range(args.n):
        rng = np.random.default_rng([args.seed, i])
        crop, _ = pool.draw(rng)
        crops.append((crop, int(rng.integers(2**63 - 1))))
    t0 = time.perf_counter()
    samples = [make_sample(c, s, config) for c, s in crops]
    t_render = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i, smp in enumerate(samples):
            write_sample(Path(tmp), "train", i, smp, bits=8, max_coc=config.max_coc)
        t_write = time.perf_counter() - t0
    per = (t_render + t_write) / args.n
    print(f"photos: {len(photos)} files, {len(pool.items)} usable (photo, scale) pairs; scan {t_pool:.1f} s")
    print(
        f"render: {args.n / t_render:.2f} samples/s ({t_render / args.n * 1000:.0f} ms each, {args.size}px)"
    )
    print(f"write 8-bit PNGs: {t_write / args.n * 1000:.0f} ms each")
    print(f"total: {1 / per:.2f} samples/s -> 1000 samples in {1000 * per / 60:.1f} min (+ scan)")
    contact_sheet(samples[:8], args.sheet, config.max_coc)
    print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
