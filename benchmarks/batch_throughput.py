"""Photos per minute of ``defocus deblur`` on a folder: one step at a time (``--prefetch 0``) against decoding
ahead and writing behind (``--prefetch N``), and optionally against ``--devices`` shards.

The folder is made once from the installed wallpapers (``/usr/share/backgrounds``, ``/usr/share/wallpapers``),
each resized to about ``--mp`` megapixels and saved as a JPEG, so decoding and encoding cost what a camera
folder costs. Every batch runs in this process through the same ``run_batch`` the command line calls, timed
from the start (method load included, as a user waits for it) to the last file written, into a fresh output
folder. Modes are interleaved within each repeat so that a busy machine slows them alike; the median of the
repeats is reported. A method without cached weights runs with random weights (``--weights`` takes a file):
its speed does not depend on their values.

    python benchmarks/batch_throughput.py --photos 4 --mp 0.3 --repeat 1            # a quick check
    python benchmarks/batch_throughput.py --photos 20 --mp 3 --repeat 3 --methods classic refocus
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image
from rich.console import Console

_SOURCES = ("/usr/share/backgrounds", "/usr/share/wallpapers")


def make_folder(folder: Path, photos: int, megapixels: float) -> list[Path]:
    """``photos`` JPEGs of about ``megapixels`` each, from distinct wallpapers (reused round robin if few)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for root in _SOURCES for ext in ("*.jpg", "*.png") for p in Path(root).rglob(ext))
    if not sources:
        raise SystemExit(f"no wallpapers found under {' or '.join(_SOURCES)}")
    made = []
    for i in range(photos):
        path = folder / f"photo{i:03d}.jpg"
        if not path.exists():
            with Image.open(sources[i % len(sources)]) as im:
                scale = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
                size = (max(16, round(im.width * scale)), max(16, round(im.height * scale)))
                im.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(path, quality=92)
        made.append(path)
    return made


def run_once(folder: Path, method: str, weights: Path | None, prefetch: int, devices: str | None) -> float:
    """Wall seconds of one batch over ``folder`` into a fresh output folder."""
    from deblurcli.cli.deblur_run import BatchRequest, run_batch
    from deblurcli.engine.shard import parse_devices
    from deblurcli.methods.registry import get_method

    needs_weights = get_method(method).cls is not None
    with tempfile.TemporaryDirectory(prefix="defocus-bench-") as out:
        request = BatchRequest(
            inputs=[str(folder)],
            output_dir=Path(out),
            method=method,
            weights=weights if needs_weights else None,
            recursive=False,
            strength=1.0,
            bokeh="keep",
            bokeh_threshold=None,
            mask=None,
            fmt=None,
            bit_depth=None,
            quality=95,
            maps=False,
            overwrite=False,
            tile=None,
            overlap=None,
            device="auto",
            precision="fp32",
            threads=None,
            max_pixels=120_000_000,
            offline=True,
            cache_dir=None,
            quiet=True,
            random_weights_for_testing=needs_weights and weights is None,
            devices=parse_devices(devices) if devices else (),
            prefetch=prefetch,
        )
        started = time.perf_counter()
        results, code = run_batch(request, Console(stderr=True, quiet=True))
        seconds = time.perf_counter() - started
    if code != 0:
        failed = [f"{r.source}: {r.reason}" for r in results if r.status != "ok"]
        raise SystemExit(f"{method} --prefetch {prefetch} failed: {failed[:3]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--mp", type=float, default=3.0, help="megapixels per photo")
    parser.add_argument("--methods", nargs="+", default=["classic", "refocus"])
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint for a learned method")
    parser.add_argument("--prefetch", type=int, nargs="+", default=[0, 1, 2], help="modes; 0 = one at a time")
    parser.add_argument("--devices", default=None, help="also time this --devices list, with --prefetch 1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="keep the photos here (default: a temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="defocus-photos-") as tmp:
        folder = args.folder or Path(tmp)
        photos = make_folder(folder, args.photos, args.mp)
        pixels = sum(Image.open(p).width * Image.open(p).height for p in photos) / len(photos) / 1e6
        print(f"{len(photos)} photos of {pixels:.1f} MP on average in {folder}")
        modes: list[tuple[str, int, str | None]] = [(f"prefetch {n}", n, None) for n in args.prefetch]
        if args.devices:
            modes.append((f"devices {args.devices}", 1, args.devices))
        times: dict[tuple[str, str], list[float]] = {}
        for repeat in range(args.repeat):
            for method in args.methods:
                for label, prefetch, devices in modes:
                    seconds = run_once(folder, method, args.weights, prefetch, devices)
                    times.setdefault((method, label), []).append(seconds)
                    print(f"  repeat {repeat + 1} {method:8s} {label:22s} {seconds:8.1f} s", flush=True)
        print(f"\n{'method':8s} {'mode':22s} {'median s':>9s} {'photos/min':>11s} {'vs prefetch 0':>14s}")
        for method in args.methods:
            base = statistics.median(times.get((method, "prefetch 0"), [float("nan")]))
            for label, _prefetch, _devices in modes:
                median = statistics.median(times[(method, label)])
                print(f"{method:8s} {label:22s} {median:9.1f} {len(photos) * 60 / median:11.1f} {base / median:13.2f}x")


if __name__ == "__main__":
    main()
