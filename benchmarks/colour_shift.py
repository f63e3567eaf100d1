"""Does a method shift the colour of real photos? Mean correction per channel and the worst band of rows.

A deblurring method should move pixels around an edge, not the brightness of a photo: the mean of its
correction over a whole photo ought to be near 0. ``refocus`` learnt from our synthetic scenes to undo the
spill of blurred bright light onto dark neighbours (blur averages linear light) and also applies that to dark
edges that are sharp: real photos darken by -0.2 to -1.3 levels overall, and by up to -5 levels in the worst
16-row band (a bright sky over a dark horizon). Adding its residual in linear light instead of sRGB did not
remove this (issue #10), so it is the misapplied correction, not a learnt offset. This prints, per photo and method, the
mean correction of R, G and B in 8-bit levels with ``--bokeh remove``, and the worst band
(``refocus_grid.worst_band``) with ``remove`` and ``keep``. The photos default to the Quickstart example and
the nature photos of Debian's ``mate-backgrounds``, shrunk to a long side of 1280 px.

    python benchmarks/colour_shift.py --methods classic,refocus [--weights refocus=FILE] [PHOTO ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import deblurcli

sys.path.insert(0, str(Path(__file__).parent))
from real_sheet import shrunk_rgb  # noqa: E402
from refocus_grid import BAND, worst_band  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MATE = Path("/usr/share/backgrounds/mate/nature")
LONG_SIDE = 1280


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", type=Path, nargs="*")
    ap.add_argument("--methods", default="classic,refocus")
    ap.add_argument("--weights", action="append", default=[], help="METHOD=FILE (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    photos = args.photos or [ROOT / "examples/astronaut_defocus.jpg", *sorted(MATE.glob("*.jpg"))]
    weights = dict(w.split("=", 1) for w in args.weights)
    for name in args.methods.split(","):
        file = Path(weights[name]) if name in weights else None
        method = deblurcli.load_method(name, device="cpu", weights=file)
        means, bands = [], []
        print(f"{name}: mean correction R G B (remove) | worst {BAND}-row band remove / keep, 8-bit levels")
        for path in photos:
            photo = shrunk_rgb(path, LONG_SIDE)
            out = {mode: deblurcli.deblur(photo, method, bokeh=mode) for mode in ("remove", "keep")}
            mean = (out["remove"].astype(np.float64) - photo).mean(axis=(0, 1))
            band = [worst_band(out[mode], photo) for mode in ("remove", "keep")]
            means.append(mean)
            bands.append(band)
            rgb = " ".join(f"{v:+6.2f}" for v in mean)
            print(f"  {path.stem:<22} {rgb} | {band[0]:+6.2f} / {band[1]:+6.2f}")
        m, b = np.array(means), np.array(bands)
        print(
            f"  {'all':<22} mean {m.mean():+.2f} (range {m.min():+.2f}..{m.max():+.2f}) | "
            f"worst band {b[:, 0].min():+.2f} / {b[:, 1].min():+.2f}"
        )


if __name__ == "__main__":
    main()
