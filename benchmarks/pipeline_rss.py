"""Peak memory (RSS) of one ``defocus deblur`` run by photo size and method, to size ``--max-megapixels``.

Each run is a fresh process, measured by the kernel (``os.wait4`` rusage), so the number includes torch,
decoding, the tiled run and encoding. Photos are JPEGs made by upscaling a Debian wallpaper (any sharp photo
works). A network without downloaded weights runs with random weights: memory does not depend on their values.

``--stub`` replaces the method's tile function by a copy of its input (plus one full-size map per map the
method declares), so decoding, tiling buffers, blending and encoding are measured at full size in minutes
instead of hours on a busy CPU; the method's own per-tile working set (independent of the photo size) is the
difference between a real and a stubbed run at one size.

``--stages`` also samples the child's RSS every few milliseconds and reports the peak while each step of the
data path runs (decode, model input, tiled run, bokeh weight, blend back, encode), so a memory change can be
aimed at the step that sets the peak instead of guessed at.

    python benchmarks/pipeline_rss.py --mp 24 61 --methods classic kpac
    python benchmarks/pipeline_rss.py --mp 24 61 100 200 --methods classic kpac --stub
    python benchmarks/pipeline_rss.py --mp 24 --methods classic --stub --stages
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


#: sampled in the child: the peak RSS while each step of the data path runs, written as JSON at exit
_STAGES = """
import atexit, functools, json, os, threading, time
import deblurcli.io.decode as _decode, deblurcli.pipeline as _pipeline
_now, _peaks = ["start"], {}
def _sample():
    while True:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
        _peaks[_now[0]] = max(_peaks.get(_now[0], 0.0), rss)
        time.sleep(0.002)
def _step(module, name, label):
    inner = getattr(module, name)
    @functools.wraps(inner)
    def labelled(*args, **kwargs):
        before, _now[0] = _now[0], label
        try:
            return inner(*args, **kwargs)
        finally:
            time.sleep(0.005)
            _now[0] = before
    setattr(module, name, labelled)
for _module, _name, _label in ((_decode, "decode", "decode"), (_pipeline, "to_model_input", "model input"),
        (_pipeline, "run_tiled", "tiled run"), (_pipeline, "correction_weight", "bokeh weight"),
        (_pipeline, "from_model_output", "blend back"), (_pipeline, "encode", "encode")):
    _step(_module, _name, _label)
threading.Thread(target=_sample, daemon=True).start()
atexit.register(lambda: open(os.environ["STAGES_JSON"], "w").write(json.dumps(_peaks)))
"""


def measure(
    photo: Path, method: str, out: Path, *, stub: bool, stages: Path | None = None
) -> tuple[float, float, int]:
    """Peak RSS (GiB), wall seconds and exit code of one CLI run; with ``stages``, per-step peaks go there."""
    code = (_STUB if stub else "") + (_STAGES if stages else "") + "from deblurcli.cli import main; main()"
    cmd = [sys.executable, "-c", code, "deblur", str(photo), "-o", str(out)]
    cmd += ["--method", method, "--overwrite", "-q", "--max-megapixels", "1000"]
    if method != "classic":
        cmd.append("--random-weights-for-testing")
    started = time.perf_counter()
    env = {**os.environ, "STAGES_JSON": str(stages)} if stages else None
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 2**20, time.perf_counter() - started, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mp", type=int, nargs="+", default=[24, 61, 100, 200])
    ap.add_argument("--methods", nargs="+", default=["classic", "kpac"])
    ap.add_argument("--stub", action="store_true", help="identity tiles: full-size memory without the compute")
    ap.add_argument("--stages", action="store_true", help="also the peak RSS while each step of the data path runs")
    args = ap.parse_args()
    print("| MP | method | peak RSS (GiB) | seconds | exit |\n|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.mp:
            photo = Path(tmp) / f"photo_{mp}mp.jpg"
            make_photo(photo, mp)
            for method in args.methods:
                stages = Path(tmp) / "stages.json" if args.stages else None
                rss, seconds, code = measure(photo, method, Path(tmp) / "out", stub=args.stub, stages=stages)
                label = f"{method} (stub)" if args.stub else method
                print(f"| {mp} | {label} | {rss:.2f} | {seconds:.0f} | {code} |", flush=True)
                if stages is not None and stages.exists():
                    peaks = json.loads(stages.read_text())
                    steps = ", ".join(f"{k} {v:.2f}" for k, v in peaks.items() if k != "start")
                    print(f"|  | peak GiB while: {steps} |  |  |  |", flush=True)


if __name__ == "__main__":
    main()
