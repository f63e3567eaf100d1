"""Tiling overhead per method: tiles and (sum of tile areas) / (photo area) at the method's default tile and
overlap, for a 24 MP photo (6000x4000) and 1280x720. Pure arithmetic on the tiler's own plan
(``deblurcli.engine.tiling.tiling_overhead``): no network runs, so it takes a second.

    python benchmarks/tiling_overhead.py [--tile auto|N] [--budget-gb 2]

``--tile auto`` shows what ``defocus deblur --tile auto`` picks for each photo size within the budget instead.
"""

from __future__ import annotations

import argparse

from deblurcli.engine.device import choose_tile
from deblurcli.engine.tiling import tiling_overhead
from deblurcli.methods.registry import get_method

METHODS = ("classic", "refocus", "ifan", "kpac", "drbnet", "dmsft")
SIZES = ((4000, 6000), (720, 1280))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", default=None, help="auto, or an edge in px (default: each method's default_tile)")
    ap.add_argument("--budget-gb", type=float, default=2.0, help="memory budget for --tile auto")
    args = ap.parse_args()
    print("| method | overlap | " + " | ".join(f"{w}x{h}: tile, tiles, area ratio" for h, w in SIZES) + " |")
    print("|---|---|" + "---|" * len(SIZES))
    for name in METHODS:
        spec = get_method(name)
        cells = []
        for h, w in SIZES:
            if args.tile == "auto":
                tile = choose_tile(
                    h,
                    w,
                    overlap=spec.receptive_field,
                    multiple_of=spec.multiple_of,
                    bytes_per_pixel=spec.bytes_per_pixel,
                    tile_speed=spec.tile_speed,
                    budget_bytes=int(args.budget_gb * 1e9),
                )
            else:
                tile = int(args.tile) if args.tile else spec.default_tile
            o = tiling_overhead(h, w, tile=tile, overlap=spec.receptive_field, multiple_of=spec.multiple_of)
            cells.append(f"{tile}, {o.tiles}, {o.area_ratio:.2f}")
        print(f"| {name} | {spec.receptive_field} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
