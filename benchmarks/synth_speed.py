"""Time the synthetic defocus generator, one sample at a time and in batches, and draw a contact sheet.

Usage (after ``apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04 libjxl-testdata``)::

    python benchmarks/synth_speed.py -n 64 --sizes 128,192,256 --batch 16 --threads 2
    python benchmarks/synth_speed.py -n 256 --sizes 128,192,256 --batch 16 --device cuda --per-sample 0

For each size it reports samples/s of ``make_sample`` on the CPU (the ``data synth`` and DataLoader path,
a batch of one); of ``render_batch`` on ``--device`` with batches of ``--batch``, scene draws included;
render-only: the same with the scenes drawn beforehand (what ``live:`` training does with ``--workers``);
no-jpeg: render-only with ``jpeg=False`` (the difference is the CPU JPEG round trip of the ~20 % of samples
that draw it); and the CPU cost of one scene's draws (depth map, lens, PSF, sensor) on one thread, which
sets how many ``--workers`` keep a device busy: workers ~ draw seconds x render-only samples/s.
Photos are taken from shared/research/samples/photo_manifest.tsv (real photos only, greyscale
``Grey`` skipped) where installed, else from skimage's astronaut. PNG writing (``data synth``) is timed
separately, for the per-sample path.
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

from training.synth.sample import Sample, Scene, SynthConfig, draw_scene, make_sample, render_batch
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(
    crops: list[tuple[np.ndarray, int]],
    config: SynthConfig,
    device: torch.device,
    batch: int,
    *,
    jpeg: bool,
    chunk: int | None,
    scenes: list[Scene] | None = None,
) -> float:
    """Seconds per sample of ``render_batch`` over ``crops`` in batches (crops start on the CPU, as in training).

    With ``scenes`` (drawn beforehand, as ``--workers`` do during training) only the device part is timed.
    """

    def run(i: int) -> None:
        part = crops[i : i + batch]
        photos = torch.from_numpy(np.stack([c for c, _ in part])).to(device)
        drawn = None if scenes is None else scenes[i : i + batch]
        render_batch(photos, [s for _, s in part], config, jpeg=jpeg, chunk=chunk, scenes=drawn)

    run(0)  # warm-up: FFT plans, CUDA context and kernels
    _sync(device)
    t0 = time.perf_counter()
    for i in range(0, len(crops), batch):
        run(i)
    _sync(device)
    return (time.perf_counter() - t0) / len(crops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=64, help="samples per size for the batched timings")
    ap.add_argument("--per-sample", type=int, default=None, help="samples per size for make_sample (default -n)")
    ap.add_argument("--sizes", default="128,192,256")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk", type=int, default=None, help="scenes per FFT pass (render_batch's default if unset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sheet", type=Path, default=None, help="contact sheet of the last size's first 8 samples")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    photos = installed_photos()
    print(f"photos: {len(photos)} files; device {device}, {args.threads} CPU thread(s), batch {args.batch}")
    print("size  per-sample/s  batched/s  render-only/s  no-jpeg/s  draw ms/scene  write ms")
    for size in (int(s) for s in args.sizes.split(",")):
        config = SynthConfig(size=size)
        pool = PhotoPool(photos, config.source_size)
        crops = []
        for i in range(max(args.n, args.batch)):
            rng = np.random.default_rng([args.seed, i])
            crop, _ = pool.draw(rng)
            crops.append((crop.astype(np.float32), int(rng.integers(2**63 - 1))))
        n_single = args.n if args.per_sample is None else args.per_sample
        samples: list[Sample] = []
        per_single, write = float("nan"), float("nan")
        if n_single:
            make_sample(*crops[0], config)
            t0 = time.perf_counter()
            samples = [make_sample(c, s, config) for c, s in crops[:n_single]]
            per_single = (time.perf_counter() - t0) / n_single
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                for i, smp in enumerate(samples):
                    write_sample(Path(tmp), "train", i, smp, bits=8, max_coc=config.max_coc)
                write = (time.perf_counter() - t0) / n_single
        t0 = time.perf_counter()
        scenes = [draw_scene(seed, config) for _, seed in crops]
        draw = (time.perf_counter() - t0) / len(crops)
        per_batch = time_batched(crops, config, device, args.batch, jpeg=True, chunk=args.chunk)
        per_device = time_batched(crops, config, device, args.batch, jpeg=True, chunk=args.chunk, scenes=scenes)
        per_nojpeg = time_batched(crops, config, device, args.batch, jpeg=False, chunk=args.chunk, scenes=scenes)
        print(
            f"{size:4d}  {1 / per_single:12.2f}  {1 / per_batch:9.2f}  {1 / per_device:14.2f}  {1 / per_nojpeg:9.2f}"
            f"  {draw * 1000:12.0f}  {write * 1000:8.0f}"
        )
        if args.sheet is not None and samples:
            contact_sheet(samples[:8], args.sheet, config.max_coc)
    if args.sheet is not None:
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
