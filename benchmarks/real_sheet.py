"""Before/after contact sheet of 100 % crops from real photos, for looking at what a method does to them.

Real photos have no ground truth, so the check is visual: ringing, halos, colour shifts, checkerboard and
noise amplification show in 100 % crops, not in downscaled previews. For each photo, two crops are taken
automatically: the most detailed 256 px block (the subject, where missed focus would be fixed) and the
smoothest block that is not flat (deliberate bokeh, which a careful method leaves alone). Each row shows
input | method A | method B ... for one crop.

    python benchmarks/real_sheet.py PHOTO... --methods classic,refocus [--weights refocus=FILE] -o sheet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from deblurcli.engine.tiling import run_tiled
from deblurcli.methods.loader import load_method

CROP = 256
MAX_SIDE = 1600  # photos are downscaled to this first, as a phone or web export would be


def shrunk_rgb(path: Path, long_side: int) -> np.ndarray:
    """The photo as 8-bit RGB, downscaled (Lanczos) so its long side is at most ``long_side``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return np.asarray(im)


def _load(path: Path) -> np.ndarray:
    return shrunk_rgb(path, MAX_SIDE).astype(np.float32) / 255.0


def _crops(rgb: np.ndarray) -> list[tuple[int, int]]:
    """(y, x) of the most detailed block and of the smoothest block that still has some texture."""
    grey = rgb.mean(2)
    gy, gx = np.gradient(grey)
    energy = np.hypot(gy, gx)
    h, w = grey.shape
    scores = []
    for y in range(0, h - CROP + 1, CROP // 2):
        for x in range(0, w - CROP + 1, CROP // 2):
            block = grey[y : y + CROP, x : x + CROP]
            scores.append((float(energy[y : y + CROP, x : x + CROP].mean()), float(block.std()), y, x))
    detailed = max(scores)
    textured = [s for s in scores if s[1] > 0.04] or scores
    smooth = min(textured)
    return [(detailed[2], detailed[3]), (smooth[2], smooth[3])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path, nargs="+")
    ap.add_argument("--methods", default="classic,refocus")
    ap.add_argument("--weights", action="append", default=[], help="METHOD=FILE (repeatable)")
    ap.add_argument("-o", "--output", type=Path, default=Path("sheet.png"))
    args = ap.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights)
    names = args.methods.split(",")
    methods = {
        m: load_method(m, device=torch.device("cpu"), weights=Path(weights[m]) if m in weights else None)
        for m in names
    }
    rows: list[tuple[str, list[np.ndarray]]] = []
    for path in args.photos:
        rgb = _load(path)
        x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
        outs = [rgb]
        for loaded in methods.values():
            spec = loaded.spec
            out = run_tiled(loaded.tile_fn(), x, tile=1024, overlap=spec.receptive_field, multiple_of=spec.multiple_of)
            outs.append(out["image"][0].clamp(0, 1).numpy().transpose(1, 2, 0))
        for i, (y, x0) in enumerate(_crops(rgb)):
            label = f"{path.stem} {'detail' if i == 0 else 'smooth'} @({x0},{y})"
            rows.append((label, [o[y : y + CROP, x0 : x0 + CROP] for o in outs]))
    head, gap = 16, 4
    cols = 1 + len(names)
    sheet = Image.new("RGB", (cols * (CROP + gap), len(rows) * (CROP + head + gap) + head), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(["input", *names]):
        draw.text((c * (CROP + gap) + 4, 2), title, fill="black")
    for r, (label, tiles) in enumerate(rows):
        top = head + r * (CROP + head + gap)
        draw.text((4, top + 2), label, fill="black")
        for c, tile in enumerate(tiles):
            img = Image.fromarray((tile * 255 + 0.5).astype(np.uint8))
            sheet.paste(img, (c * (CROP + gap), top + head))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"wrote {args.output} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
