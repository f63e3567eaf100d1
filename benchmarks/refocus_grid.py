"""Does ``refocus`` print a grid into smooth areas? The periodic energy of its correction on a featureless sky.

A decoder that upsamples by pixel shuffle gives each pixel of a 2x2 block its own linear map of one coarse
feature; trained, ours printed the 1/8- and 1/4-scale cells into smooth skies as a faint 8 px and 4 px grid
(visible at 100 %, and 6 dB of in-focus PSNR on the held-out scenes cut from this photo). This measures it: the
sky of plasma-workspace-wallpapers' ``summer_1am`` (no detail at all), shrunk to 1024 px wide, with mild sensor
noise, goes through the network; the correction (output - input, grey) is Fourier-transformed along rows and
the amplitude at periods of 8 and 4 px is divided by the median amplitude of all periods. A grid-free
correction reads about 1; the step-4000 checkpoint of the pixel-shuffle decoder read 25.9 (8 px) and 24.9 (4 px).

The second line is the colour shift of the whole photo (sharp, in focus, 1280 x 800): the mean correction of
the worst 16-px band of rows, in 8-bit levels, with ``--bokeh remove`` and ``keep``. Trained on our synthetic
scenes, the network learns that blurred bright light spills onto dark neighbours (blur averages linear light),
and "undoes" it where a bright smooth sky meets a dark tree line that is not blurred at all: it darkens the
horizon by several levels. A network that leaves sharp photos alone reads about 0.

    python benchmarks/refocus_grid.py --weights training/checkpoints/refocus-cpu-step4000.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import deblurcli

SKY = Path("/usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg")
#: rows of the shrunk photo (1024 x 640) that hold sky only
SKY_ROWS = slice(0, 320)
NOISE = 2.0 / 255
#: rows per band of the colour-shift measure
BAND = 16


def periodic_energy(correction: np.ndarray, periods: tuple[int, ...]) -> list[float]:
    """Row-wise FFT amplitude at each period (px), over the median amplitude of all periods."""
    rows = correction - correction.mean(axis=1, keepdims=True)
    amplitude = np.abs(np.fft.rfft(rows, axis=1)).mean(axis=0)
    width = rows.shape[1]
    floor = float(np.median(amplitude[1:]))
    return [float(amplitude[round(width / p)]) / floor for p in periods]


def worst_band(out: np.ndarray, photo: np.ndarray) -> float:
    """The most negative mean correction (8-bit levels) over any ``BAND`` consecutive rows."""
    rows = (out.astype(np.float64) - photo).mean(axis=(1, 2))
    return float(np.convolve(rows, np.ones(BAND) / BAND, mode="valid").min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="refocus weights (safetensors)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with Image.open(SKY) as im:
        full = im.convert("RGB")
    photo = full.resize((1024, 640), Image.Resampling.LANCZOS)
    sky = np.asarray(photo, dtype=np.float32)[SKY_ROWS] / 255
    noisy = sky + np.random.default_rng(0).normal(0.0, NOISE, sky.shape).astype(np.float32)
    noisy = np.clip(noisy, 0.0, 1.0)
    method = deblurcli.load_method("refocus", device="cpu", weights=args.weights)
    out = deblurcli.deblur(noisy, method, bokeh="remove")
    correction = (out - noisy).mean(axis=2)
    p8, p4 = periodic_energy(correction, (8, 4))
    print(
        f"{args.weights}: 8 px {p8:.1f}, 4 px {p4:.1f} (x the median period; ~1 = no grid); "
        f"mean |correction| {255 * float(np.abs(correction).mean()):.2f}/255"
    )
    whole = np.asarray(full.resize((1280, 800), Image.Resampling.LANCZOS))
    shifts = [worst_band(deblurcli.deblur(whole, method, bokeh=mode), whole) for mode in ("remove", "keep")]
    print(f"horizon: worst {BAND}-row band {shifts[0]:+.2f} levels (remove), {shifts[1]:+.2f} (keep); ~0 = no shift")


if __name__ == "__main__":
    main()
