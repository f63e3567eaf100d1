"""Rebuild the synthetic sets the issue figures are measured on, from the Debian photo packages.

Every figure in issues #10-#12 names ``data/heldout`` (the held-out test set) or ``data/pool`` (the refocus
training pool); both are renders, so they are not kept in git. This script makes them again, bit for bit on
the same packages, by linking the source photos into folders (the photo order decides the split by photo, so
the folders list exactly these files) and running ``defocus data synth``:

* ``DIR/heldout``: 54 test scenes of 384 px from plasma-workspace-wallpapers photos that no training run sees
  (only 5 of the 10 have a 384 px window that is sharp enough, and the split by photo sends 4 to test:
  ColdRipple, OneStandsOut, Path and summer_1am; a quarter of the scenes come from that one sunset);
* ``DIR/heldout256``: the same photos at 256 px, 108 test scenes from 7 of them (summer_1am 12 %): wider, for
  a second opinion on every held-out figure;
* ``DIR/heldout_s9``, ``DIR/heldout_s10``: ``heldout`` again with other seeds (54 other scenes each), to see how
  far a figure moves from one render of the same photos to the next (issue #12's ratio: 6 points);
* ``DIR/pool``: 1365 train / 45 val scenes of 192 px from lomiri-wallpapers-16.04 and libjxl-testdata photos;
* ``DIR/tune384``: 54 test scenes of 384 px from those same training photos, for tuning what the held-out sets
  then report (``weighting.ESTIMATE_MARGIN`` was chosen on it).

    apt-get install -y lomiri-wallpapers-16.04 plasma-workspace-wallpapers libjxl-testdata
    python benchmarks/make_sets.py data            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PLASMA = "/usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
HELD_OUT = [
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
    "FallenLeaf", "Kite", "OneStandsOut", "Path", "summer_1am",
]  # fmt: skip
LOMIRI = [
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
    "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich",
    "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
    "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
    "sunset_by_Aitzol_Berasategi",
]  # fmt: skip
JXL = [
    "/usr/share/libjxl-testdata/jxl/flower/flower.png",
    "/usr/share/libjxl-testdata/external/wesaturate/500px/tmshre_riaphotographs_srgb8.png",
    "/usr/share/libjxl-testdata/external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png",
    "/usr/share/libjxl-testdata/external/wesaturate/500px/u76c0g_bliznaca_srgb8.png",
]
TRAIN = [f"/usr/share/backgrounds/{name}.jpg" for name in LOMIRI] + JXL
HELD = {f"{name}.jpg": PLASMA.format(name) for name in HELD_OUT}


def link_folder(folder: Path, files: dict[str, str]) -> None:
    """A folder of symlinks named as given; refuses to run when a package is missing."""
    missing = [src for src in files.values() if not Path(src).is_file()]
    if missing:
        sys.exit(f"missing source photos (install the packages in this script's docstring): {missing[:3]}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(src)


def synth(src: Path, out: Path, args: list[str]) -> None:
    if (out / "samples.json").is_file():
        print(f"{out} exists, kept")
        return
    cmd = ["defocus", "data", "synth", "--src", str(src), "-o", str(out), *args]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, nargs="?", default=Path("data"))
    args = ap.parse_args()
    link_folder(args.root / "held_src", HELD)
    link_folder(args.root / "train_src", {Path(p).name: p for p in TRAIN})
    synth(args.root / "held_src", args.root / "heldout",
          ["-n", "60", "--size", "384", "--seed", "7", "--val-frac", "0", "--test-frac", "0.9"])  # fmt: skip
    synth(args.root / "held_src", args.root / "heldout256",
          ["-n", "120", "--size", "256", "--seed", "8", "--val-frac", "0", "--test-frac", "0.9"])  # fmt: skip
    for seed in (9, 10):
        synth(args.root / "held_src", args.root / f"heldout_s{seed}",
              ["-n", "60", "--size", "384", "--seed", str(seed), "--val-frac", "0", "--test-frac", "0.9"])  # fmt: skip
    synth(args.root / "train_src", args.root / "pool",
          ["-n", "1500", "--size", "192", "--seed", "1", "--val-frac", "0.03", "--test-frac", "0.06"])  # fmt: skip
    synth(args.root / "train_src", args.root / "tune384",
          ["-n", "60", "--size", "384", "--seed", "11", "--val-frac", "0", "--test-frac", "0.9"])  # fmt: skip


if __name__ == "__main__":
    main()
