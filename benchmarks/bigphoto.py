"""End-to-end time and peak RSS of one big photo through ``defocus deblur``, per method (issue 15).

The photo is a crop-and-tile of an installed wallpaper at its native resolution (mirrored copies fill the
frame, so every pixel carries real photographic detail, not upscaled blur), saved as a quality-92 JPEG. Each
method runs as its own ``defocus deblur`` process; wall time and peak RSS (``ru_maxrss`` of that child, from
``os.wait4``) cover decode, tiling, the method, blending and encode. Networks run with random weights
(``--random-weights-for-testing``): speed and memory do not depend on the values.

    python benchmarks/bigphoto.py --size 6000x4000 --methods classic,refocus,kpac,ifan,drbnet --tile auto
    python benchmarks/bigphoto.py --size 1728x1152 --methods classic,refocus   # 2 MP check

``--tile`` is passed through (``auto``, an edge in px, or ``default`` for each method's default tile).
``--threads`` is passed through too (default: torch's own, every core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SOURCES = ("/usr/share/backgrounds", "/usr/share/wallpapers")


def find_wallpaper() -> Path:
    """The largest installed wallpaper (JPEG or PNG), so the crop repeats as little as possible."""
    found = [
        p
        for root in SOURCES
        if Path(root).is_dir()
        for p in Path(root).rglob("*")
        if p.suffix.lower() in {".jpg", ".png"}
    ]
    if not found:
        raise SystemExit(f"no wallpaper found under {' or '.join(SOURCES)}")

    def pixels(p: Path) -> int:
        with Image.open(p) as im:
            return im.width * im.height

    return max(sorted(found), key=pixels)


def make_photo(path: Path, width: int, height: int, source: Path) -> None:
    """``width`` x ``height`` JPEG: the wallpaper, mirrored as often as needed to fill the frame, then cropped."""
    with Image.open(source) as im:
        base = np.asarray(im.convert("RGB"))
    reps_y, reps_x = -(-height // base.shape[0]), -(-width // base.shape[1])
    row = np.concatenate([base if i % 2 == 0 else base[:, ::-1] for i in range(reps_x)], axis=1)
    full = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(reps_y)], axis=0)
    Image.fromarray(np.ascontiguousarray(full[:height, :width])).save(path, quality=92)


def run_one(photo: Path, out: Path, method: str, tile: str, threads: int | None) -> dict[str, object]:
    """One ``defocus deblur`` process: wall seconds, peak RSS (GiB), exit code and the tile count it reports."""
    cmd = [sys.executable, "-m", "deblurcli", "deblur", str(photo), "-o", str(out), "--method", method]
    cmd += ["--overwrite", "-q", "--json", "--max-megapixels", "1000"]
    if tile != "default":
        cmd += ["--tile", tile]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if method != "classic":
        cmd.append("--random-weights-for-testing")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout is not None else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    tiles: object = "?"
    try:
        files = json.loads(stdout).get("files", [])
        tiles = files[0].get("tiles", "?") if files else "?"
    except (json.JSONDecodeError, AttributeError):
        pass
    return {
        "seconds": seconds,
        "rss_gib": usage.ru_maxrss / 2**20,
        "exit": os.waitstatus_to_exitcode(status),
        "tiles": tiles,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT of the test photo")
    ap.add_argument("--methods", default="classic,refocus,kpac,ifan,drbnet")
    ap.add_argument("--tile", default="auto", help="auto, an edge in px, or 'default'")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--source", type=Path, default=None, help="wallpaper to crop and tile (default: largest found)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    source = args.source or find_wallpaper()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / f"photo_{width}x{height}.jpg"
        make_photo(photo, width, height, source)
        print(f"photo {width}x{height} ({width * height / 1e6:.1f} MP) from {source.name}, --tile {args.tile}")
        print("| method | tiles | seconds | peak RSS (GiB) | exit |\n|---|---|---|---|---|", flush=True)
        for method in args.methods.split(","):
            r = run_one(photo, Path(tmp) / "out", method, args.tile, args.threads)
            print(f"| {method} | {r['tiles']} | {r['seconds']:.1f} | {r['rss_gib']:.2f} | {r['exit']} |", flush=True)


if __name__ == "__main__":
    main()
