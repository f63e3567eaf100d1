"""Peak memory (RSS) of one ``defocus deblur`` run by photo size and method, to size ``--max-megapixels``.

Each run is a fresh process, measured by the kernel (``os.wait4`` rusage), so the number includes torch,
decoding, the tiled run and encoding. Photos are JPEGs made by upscaling a Debian wallpaper (any sharp photo
works). A network without downloaded weights runs with random weights: memory does not depend on their values.

    python benchmarks/pipeline_rss.py --mp 24 61 --methods classic kpac
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

_SOURCES = ("/usr/share/backgrounds", "/usr/share/wallpapers")
_SHAPES = {24: (6000, 4000), 61: (9504, 6336), 100: (11648, 8736), 200: (16320, 12240)}


def make_photo(path: Path, megapixels: int) -> None:
    """A JPEG of the given size: a wallpaper upscaled plus mild noise, so it compresses like a photo."""
    width, height = _SHAPES.get(megapixels) or (int((megapixels * 1.5e6) ** 0.5), int((megapixels * 1e6 / 1.5) ** 0.5))
    source = next(p for root in _SOURCES for p in sorted(Path(root).rglob("*.jpg")))
    with Image.open(source) as im:
        base = im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    rng = np.random.default_rng(0)
    rows = np.asarray(base)
    noisy = np.empty_like(rows)
    for y in range(0, height, 512):  # in bands, so the generator itself stays small
        band = rows[y : y + 512].astype(np.int16) + rng.integers(-3, 4, rows[y : y + 512].shape, dtype=np.int16)
        noisy[y : y + 512] = band.clip(0, 255)
    Image.fromarray(noisy).save(path, quality=92)


def measure(photo: Path, method: str, out: Path) -> tuple[float, float, int]:
    """Peak RSS (GiB), wall seconds and exit code of one CLI run."""
    cmd = [sys.executable, "-c", "from deblurcli.cli import main; main()", "deblur", str(photo), "-o", str(out)]
    cmd += ["--method", method, "--overwrite", "-q", "--max-megapixels", "1000"]
    if method != "classic":
        cmd.append("--random-weights-for-testing")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 2**20, time.perf_counter() - started, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mp", type=int, nargs="+", default=[24, 61, 100, 200])
    ap.add_argument("--methods", nargs="+", default=["classic", "kpac"])
    args = ap.parse_args()
    print("| MP | method | peak RSS (GiB) | seconds | exit |\n|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.mp:
            photo = Path(tmp) / f"photo_{mp}mp.jpg"
            make_photo(photo, mp)
            for method in args.methods:
                rss, seconds, code = measure(photo, method, Path(tmp) / "out")
                print(f"| {mp} | {method} | {rss:.2f} | {seconds:.0f} | {code} |", flush=True)


if __name__ == "__main__":
    main()
