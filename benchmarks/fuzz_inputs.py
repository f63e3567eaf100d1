"""Fuzz run: hundreds of corrupt, truncated and hostile photos plus a few good ones through one ``defocus deblur``.

Every format we read gets damaged copies (cut short at several points, zeroed ranges, flipped bits, header
only, noise under its name), joined by the hostile files of ``tests/hostile.py`` (sizes, tiles and strips that
lie) and some non-photos (empty, text, a folder named like a photo). The batch must end with exit code 1 and:
no traceback, no hang (``--timeout``), no temporary or partial file left, every written result a complete
image, and every good photo written. The outcome is printed as a small table per reason.

    python benchmarks/fuzz_inputs.py --variants 20 --out /tmp/fuzz
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dng import write_dng  # noqa: E402
from hostile import MAKERS, damaged_variants, hostile_files  # noqa: E402


def build(folder: Path, variants: int, seed: int) -> list[str]:
    """Write the corpus; returns the names of the good photos, which must all be deblurred."""
    from skimage import data

    rng = np.random.default_rng(seed)
    rgb8 = np.asarray(Image.fromarray(data.astronaut()).resize((96, 64)))
    folder.mkdir(parents=True)
    good = []
    sources: dict[str, bytes] = {ext: make(rgb8) for ext, make in MAKERS.items()}
    write_dng(folder / "good_raw.dng", np.asarray(Image.fromarray(rgb8).resize((128, 128))))
    sources["dng"] = (folder / "good_raw.dng").read_bytes()
    good.append("good_raw.dng")
    import pillow_heif

    heic = folder / "good_heic.heic"
    pillow_heif.from_pillow(Image.fromarray(rgb8)).save(heic, quality=90)
    sources["heic"] = heic.read_bytes()
    good.append(heic.name)
    for ext, blob in sources.items():
        if ext not in ("dng", "heic"):
            (folder / f"good_{ext}.{ext}").write_bytes(blob)
            good.append(f"good_{ext}.{ext}")
        for round_ in range(max(1, variants // 13)):
            for name, damaged in damaged_variants(blob, rng):
                (folder / f"bad_{ext}_{name}_{round_}.{ext}").write_bytes(damaged)
    for name, blob in hostile_files(rgb8, folder / "good_raw.dng").items():
        (folder / f"hostile_{name}").write_bytes(blob)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not a picture\n")
    (folder / "folder.jpg").mkdir()
    (folder / "gif_named.jpg").write_bytes(b"GIF89a" + bytes(64))
    return good


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("fuzz-run"))
    ap.add_argument("--variants", type=int, default=39, help="damaged copies per format, in rounds of 13")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    corpus, results = args.out / "corpus", args.out / "results"
    good = build(corpus, args.variants, args.seed)
    inputs = sum(1 for _ in corpus.iterdir())
    cmd = [sys.executable, "-c", "from deblurcli.cli import main; main()", "deblur", str(corpus), "-o", str(results)]
    started = time.perf_counter()
    try:
        run = subprocess.run([*cmd, "--json", "-q"], capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"HANG: no result after {args.timeout:.0f} s")
    seconds = time.perf_counter() - started
    summary = json.loads(run.stdout)
    leftovers = [p.name for p in results.rglob("*") if ".tmp" in p.name]
    broken = []
    for out in results.rglob("*"):
        try:
            with Image.open(out) as im:
                im.load()
        except Exception as err:  # a written result that does not decode is a partial file
            broken.append(f"{out.name}: {err}")
    written = {Path(f["source"]).name for f in summary["files"] if f["status"] == "ok"}
    reasons = collections.Counter(
        (f["reason"] or "").split(":")[0] for f in summary["files"] if f["status"] == "failed"
    )
    print(f"inputs: {inputs} (good: {len(good)}), exit code {run.returncode}, {seconds:.0f} s")
    print(f"ok {summary['ok']}, failed {summary['failed']}, skipped {summary['skipped']}")
    chatter = [line for line in run.stderr.splitlines() if line.strip() and not line.startswith("failed ")]
    print(f"traceback on stderr: {'Traceback' in run.stderr}; other stderr lines: {len(chatter)}")
    print(f"temporary files left: {len(leftovers)}")
    print(f"results that do not decode: {len(broken)}; good photos not written: {sorted(set(good) - written)}")
    for reason, count in reasons.most_common():
        print(f"  {count:4d}  {reason}")
    passed = (
        run.returncode == 1
        and "Traceback" not in run.stderr
        and not chatter
        and not leftovers
        and not broken
        and set(good) <= written
    )
    print("PASS" if passed else "FAIL")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
