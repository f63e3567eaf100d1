"""Peak memory (RSS) of one ``defocus deblur`` run by photo size and method, to size ``--max-megapixels``.

Each run is a fresh process, measured by the kernel (``os.wait4`` rusage), so the number includes torch,
decoding, the tiled run and encoding. Photos are JPEGs made by upscaling a Debian wallpaper (any sharp photo
works). A network without downloaded weights runs with random weights: memory does not depend on their values.

``--stub`` replaces the method's tile function by a copy of its input (plus one full-size map per map the
method declares), so decoding, tiling buffers, blending and encoding are measured at full size in minutes
instead of hours on a busy CPU; the method's own per-tile working set (independent of the photo size) is the
difference between a real and a stubbed run at one size.

    python benchmarks/pipeline_rss.py --mp 24 61 --methods classic kpac
    python benchmarks/pipeline_rss.py --mp 24 61 100 200 --methods classic kpac --stub
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
_SHAPES = {1: (1224, 816), 24: (6000, 4000), 61: (9504, 6336), 100: (11648, 8736), 200: (16320, 12240)}


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


_STUB = """
import deblurcli.methods.loader as loader
def tile_fn(self):
    names = list(self.spec.map_units)
    return lambda t: {"image": t.clone(), **{n: t[:, :1].clone() for n in names}}
loader.LoadedMethod.tile_fn = tile_fn
"""


def measure(photo: Path, method: str, out: Path, *, stub: bool) -> tuple[float, float, int]:
    """Peak RSS (GiB), wall seconds and exit code of one CLI run."""
    code = (_STUB if stub else "") + "from deblurcli.cli import main; main()"
    cmd = [sys.executable, "-c", code, "deblur", str(photo), "-o", str(out)]
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
    ap.add_argument("--stub", action="store_true", help="identity tiles: full-size memory without the compute")
    args = ap.parse_args()
    print("| MP | method | peak RSS (GiB) | seconds | exit |\n|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.mp:
            photo = Path(tmp) / f"photo_{mp}mp.jpg"
            make_photo(photo, mp)
            for method in args.methods:
                rss, seconds, code = measure(photo, method, Path(tmp) / "out", stub=args.stub)
                label = f"{method} (stub)" if args.stub else method
                print(f"| {mp} | {label} | {rss:.2f} | {seconds:.0f} | {code} |", flush=True)


if __name__ == "__main__":
    main()
