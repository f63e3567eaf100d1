"""Pack the training photos into one small folder that can travel to a machine without the Debian packages.

A GPU machine lent for a few minutes has neither the wallpaper packages nor time to install them, and what
travels to it is capped (64 MiB). The renderer downscales every photo to at most 1024 px on the short side
anyway (``training.synth.sources.SHORT_SIDES``), so storing them at that size as quality-92 JPEGs loses
nothing it would use. Photos are listed by folder or file; held-out photos must simply not be given.

    python -m training.pack_photos /usr/share/backgrounds/*_by_*.jpg /usr/share/libjxl-testdata/jxl/flower \
        -o photos/ --max-mib 60
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from training.synth.sources import SHORT_SIDES, find_photos


def pack(sources: list[Path], out: Path, *, max_bytes: int, quality: int = 92) -> list[Path]:
    """Write each photo downscaled to the renderer's largest short side; stop before ``max_bytes``."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    total = 0
    for path in find_photos(sources):
        with Image.open(path) as im:
            if im.mode in ("L", "I;16", "I", "1", "LA"):
                continue  # the renderer skips greyscale photos too
            im = im.convert("RGB")
            scale = max(SHORT_SIDES) / min(im.size)
            if scale < 1.0:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            target = out / f"{path.stem}.jpg"
            im.save(target, quality=quality, subsampling=0)
        size = target.stat().st_size
        if total + size > max_bytes:
            target.unlink()
            break
        total += size
        written.append(target)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", type=Path, nargs="+")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--max-mib", type=float, default=60.0)
    args = ap.parse_args()
    files = pack(args.sources, args.out, max_bytes=int(args.max_mib * 2**20))
    total = sum(f.stat().st_size for f in files)
    print(f"{len(files)} photos, {total / 2**20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
