"""``--bokeh keep`` against ``remove`` on synthetic scenes whose blur is known (the generator's CoC maps).

For every test scene of a ``defocus data synth`` folder, both modes run through ``deblurcli.deblur``. Pixels
are split by the true blur radius (|CoC| / 2): *kept* where it is at least the end of the fade
(``threshold * (1 + FADE)``), *corrected* where it is at most the threshold. Reported per method, pooled over
all scenes (squared errors summed, then one PSNR):

* keep vs input in the kept region (untouched should read >= 45 dB; identical pixels give inf);
* the gain in PSNR against the sharp target in the corrected region, for keep and remove, and their ratio
  (keep should reach >= 90 % of remove's gain).

    defocus data synth --src /usr/share/wallpapers -o data/synth -n 40 --size 384 --seed 7 --test-frac 0.4
    python benchmarks/bokeh_synth.py data/synth --methods classic,refocus --weights refocus=runs/r/best.safetensors
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import deblurcli
from deblurcli.datasets import dpdd
from deblurcli.engine.bokeh import FADE, default_threshold
from deblurcli.io.decode import decode
from deblurcli.methods.registry import all_methods


def _read(path: Path) -> np.ndarray:
    return np.asarray(np.round(decode(path).pixels * 255.0), dtype=np.uint8)


def _radius(path: Path) -> np.ndarray:
    from training.synth.writer import decode_signed_map

    return np.abs(decode_signed_map(np.round(decode(path).pixels[:, :, 0] * 65535.0))) / 2.0


def _psnr(se: float, n: int) -> float:
    return math.inf if se == 0 else 10.0 * math.log10(n / se) if n else math.nan


def evaluate(
    root: Path,
    method: str,
    limit: int | None,
    threshold: float | None,
    weights: Path | None = None,
    skip: int = 0,
) -> dict[str, float]:
    loaded = deblurcli.load_method(method, device="cpu", weights=weights)
    sums = {k: 0.0 for k in ("kept_se", "corr_in", "corr_keep", "corr_remove")}
    counts = {"kept": 0, "corr": 0}
    entries = dpdd(root, "test", dual=False, maps=True)
    for entry in entries[skip : None if limit is None else skip + limit]:
        blurred, sharp, radius = _read(entry["input"]), _read(entry["target"]), _radius(entry["coc"])
        limit_px = threshold if threshold is not None else default_threshold(*radius.shape)
        kept, corr = radius >= limit_px * (1 + FADE), radius <= limit_px
        outs = {m: deblurcli.deblur(blurred, loaded, bokeh=m, bokeh_threshold=threshold) for m in ("keep", "remove")}

        def se(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
            d = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
            return float((d[region] ** 2).sum())

        sums["kept_se"] += se(outs["keep"], blurred, kept)
        sums["corr_in"] += se(blurred, sharp, corr)
        sums["corr_keep"] += se(outs["keep"], sharp, corr)
        sums["corr_remove"] += se(outs["remove"], sharp, corr)
        counts["kept"] += int(kept.sum()) * 3
        counts["corr"] += int(corr.sum()) * 3
    base = _psnr(sums["corr_in"], counts["corr"])
    gain_keep = _psnr(sums["corr_keep"], counts["corr"]) - base
    gain_remove = _psnr(sums["corr_remove"], counts["corr"]) - base
    return {
        "kept_psnr_vs_input": _psnr(sums["kept_se"], counts["kept"]),
        "kept_share": counts["kept"] / max(1, counts["kept"] + counts["corr"]),
        "gain_keep": gain_keep,
        "gain_remove": gain_remove,
        "ratio": gain_keep / gain_remove if gain_remove else math.nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a defocus data synth folder")
    parser.add_argument("--methods", default="classic")
    parser.add_argument("--limit", type=int, default=None, help="N test scenes only")
    parser.add_argument("--skip", type=int, default=0, help="start at the test scene of this index (sorted)")
    parser.add_argument("--threshold", type=float, default=None, help="--bokeh-threshold (default: per size)")
    parser.add_argument("--weights", action="append", default=[], metavar="METHOD=FILE", help="repeatable")
    args = parser.parse_args()
    known = all_methods()
    weights = {k: Path(v) for k, v in (w.split("=", 1) for w in args.weights)}
    print("| method | kept: PSNR keep vs input | corrected: gain keep | gain remove | keep / remove |")
    print("|---|---|---|---|---|")
    for method in args.methods.split(","):
        if method not in known:
            print(f"| {method} | not registered | | | |")
            continue
        r = evaluate(args.root, method, args.limit, args.threshold, weights.get(method), args.skip)
        print(
            f"| {method} | {r['kept_psnr_vs_input']:.2f} dB | {r['gain_keep']:+.3f} dB | "
            f"{r['gain_remove']:+.3f} dB | {100 * r['ratio']:.2f} % |"
        )


if __name__ == "__main__":
    main()
