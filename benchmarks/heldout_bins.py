"""Score methods on a synthetic set by blur size: PSNR inside each bin of the true blur radius.

A whole-image PSNR hides what matters for defocus: whether blurred regions got sharper *and* in-focus regions
were left alone. This reads a set written by ``defocus data synth`` (its CoC maps give the true blur radius
``|CoC| / 2`` per pixel), runs each method through the same engine as ``defocus deblur`` (tiled, size rule by
padding), and reports, for the input and each method, PSNR and SSIM over whole images plus PSNR over the
pixels of each radius bin (MSE pooled over the whole set, so small bins are not noisy per image).

    python benchmarks/heldout_bins.py DATA_DIR --split test --methods classic,refocus [--weights refocus=FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from deblurcli.bench.metrics import psnr, ssim
from deblurcli.engine.tiling import run_tiled
from deblurcli.methods.loader import load_method
from training.data.datasets import DPDD

#: blur-radius bins in px: [lo, hi)
BINS = ((0.0, 1.0), (1.0, 4.0), (4.0, 8.0), (8.0, math.inf))


def _bin_name(lo: float, hi: float) -> str:
    return f"r<{hi:g}" if lo == 0 else (f"r>={lo:g}" if math.isinf(hi) else f"{lo:g}-{hi:g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--methods", default="classic,refocus")
    ap.add_argument("--weights", action="append", default=[], help="METHOD=FILE (repeatable)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    weights = dict(w.split("=", 1) for w in args.weights)
    data = DPDD(args.data, args.split, dual=False, maps=True)
    n = min(len(data), args.limit) if args.limit else len(data)
    names = ["input", *args.methods.split(",")]
    methods = {
        m: load_method(m, device=torch.device("cpu"), weights=Path(weights[m]) if m in weights else None)
        for m in names[1:]
    }
    sq = {m: [0.0] * len(BINS) for m in names}
    count = [0] * len(BINS)
    whole: dict[str, list[tuple[float, float]]] = {m: [] for m in names}
    seconds = {m: 0.0 for m in names}
    for i in range(n):
        s = data[i]
        blur, sharp = s["input"][None], s["target"][None]
        radius = s["coc"].abs()[None] * 0.5
        outs = {"input": blur}
        for m, loaded in methods.items():
            t = time.perf_counter()
            spec = loaded.spec
            out = run_tiled(loaded.tile_fn(), blur, tile=None, overlap=0, multiple_of=spec.multiple_of)
            seconds[m] += time.perf_counter() - t
            outs[m] = out["image"].clamp(0.0, 1.0)
        for m, out in outs.items():
            err = ((out - sharp) ** 2).mean(1, keepdim=True)
            for b, (lo, hi) in enumerate(BINS):
                mask = (radius >= lo) & (radius < hi)
                sq[m][b] += float(err[mask].sum())
                if m == "input":
                    count[b] += int(mask.sum())
            whole[m].append((psnr(out[0], sharp[0]), ssim(out[0], sharp[0])))
    rows = {}
    for m in names:
        bins = {
            _bin_name(lo, hi): (10 * math.log10(count[b] / sq[m][b]) if count[b] and sq[m][b] > 0 else None)
            for b, (lo, hi) in enumerate(BINS)
        }
        rows[m] = {
            "psnr": sum(p for p, _ in whole[m]) / n,
            "ssim": sum(q for _, q in whole[m]) / n,
            "bins": bins,
            "seconds_per_image": seconds[m] / n,
        }
    share = {_bin_name(lo, hi): count[b] / sum(count) for b, (lo, hi) in enumerate(BINS)}
    header = "| method | PSNR | SSIM | " + " | ".join(f"PSNR {k} ({100 * v:.0f} % px)" for k, v in share.items())
    print(f"{n} images of {args.data} ({args.split}); bins by true blur radius in px")
    print(header + " |")
    print("|---" * (3 + len(BINS)) + "|")
    for m, r in rows.items():
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in r["bins"].values())
        print(f"| {m} | {r['psnr']:.2f} | {r['ssim']:.4f} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"images": n, "pixel_share": share, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
