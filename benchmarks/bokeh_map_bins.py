"""What the defocus maps read, binned by the true blur radius of held-out synthetic scenes.

``--bokeh keep`` can only be as good as its map. For every pixel of the chosen test scenes this prints, per
bin of the true radius (|CoC| / 2): the share of pixels that are edge votes of ``classic``'s own gradient-ratio
estimator (``classic._edge_estimates``), the radius those votes read (10th / 50th / 90th percentile), and the
pyramid map ``--bokeh keep`` adds (``weighting.estimate_radius``). A map that reads true 4.5 px or more below
the 3 px threshold makes ``keep`` correct intended blur.

    python benchmarks/bokeh_map_bins.py /work/data/heldout --skip 16 --limit 22
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.bokeh_synth import _radius, _read
from deblurcli.datasets import dpdd
from deblurcli.engine.bokeh import default_threshold, resize
from deblurcli.engine.color import srgb_to_linear
from deblurcli.methods import classic
from deblurcli.weighting import estimate_radius

BINS = (0.0, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0, 10.0, 13.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a defocus data synth folder")
    parser.add_argument("--skip", type=int, default=0, help="start at the test scene of this index (sorted)")
    parser.add_argument("--limit", type=int, default=None, help="N test scenes only")
    args = parser.parse_args()
    entries = dpdd(args.root, "test", dual=False, maps=True)
    chosen = entries[args.skip : None if args.limit is None else args.skip + args.limit]
    votes: list[list[np.ndarray]] = [[] for _ in BINS[1:]]
    dense: list[list[np.ndarray]] = [[] for _ in BINS[1:]]
    pixels = [0 for _ in BINS[1:]]
    for entry in chosen:
        photo, truth = _read(entry["input"]), _radius(entry["coc"])
        x = torch.from_numpy(photo.astype(np.float32).transpose(2, 0, 1) / 255.0)[None]
        with torch.inference_mode():
            luma = (srgb_to_linear(x) * torch.tensor(classic._LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
            value, confidence = classic._edge_estimates(luma)
        value, edge = value[0, 0].numpy(), confidence[0, 0].numpy() > 0
        estimate = resize(estimate_radius(x, default_threshold(*truth.shape)), *truth.shape)
        for i, (lo, hi) in enumerate(zip(BINS[:-1], BINS[1:], strict=True)):
            inside = (truth >= lo) & (truth < hi)
            pixels[i] += int(inside.sum())
            votes[i].append(value[inside & edge])
            dense[i].append(estimate[inside])
    print(f"scenes {chosen[0]['input'].stem} .. {chosen[-1]['input'].stem} ({len(chosen)})")
    print("| true radius px | pixels | edge votes | vote p10 / p50 / p90 | keep's map p10 / p50 / p90 |")
    print("|---|---|---|---|---|")
    for i, (lo, hi) in enumerate(zip(BINS[:-1], BINS[1:], strict=True)):
        v, d = np.concatenate(votes[i]), np.concatenate(dense[i])
        if not d.size:
            continue
        vp = " / ".join(f"{q:.2f}" for q in np.percentile(v, (10, 50, 90))) if v.size else "-"
        dp = " / ".join(f"{q:.2f}" for q in np.percentile(d, (10, 50, 90)))
        print(f"| {lo:g}-{hi:g} | {pixels[i]} | {v.size / pixels[i]:.1%} | {vp} | {dp} |")


if __name__ == "__main__":
    main()
