"""A before / ``--bokeh remove`` / ``--bokeh keep`` contact sheet of 100 % crops, one row per crop.

Run ``defocus deblur`` twice first (``-o remove --bokeh remove`` and ``-o keep --bokeh keep --maps``), then
name each photo with the centres of its crops (subject first, then background)::

    python benchmarks/bokeh_sheet.py --before . --remove remove --keep keep -o sheet.png \\
        LadyBird:1800,820:400,1200 TwoWings:1600,800:600,1000

Each row: the three crops side by side and the ``bokeh_weight`` preview of the same crop (yellow = corrected,
violet = untouched) when ``--maps`` wrote one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw


def _open(folder: Path, stem: str) -> Image.Image | None:
    found = sorted(folder.glob(f"{stem}.*"))
    return Image.open(found[0]).convert("RGB") if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos", nargs="+", help="STEM:X,Y[:X,Y...] crop centres in full-resolution px")
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--remove", type=Path, required=True)
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256, help="crop edge in px (100 %%)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    size, label = args.size, 18
    rows: list[tuple[str, list[Image.Image | None]]] = []
    for spec in args.photos:
        stem, *centres = spec.split(":")
        images = [
            _open(args.before, stem),
            _open(args.remove, f"{stem}_deblurred"),
            _open(args.keep, f"{stem}_deblurred"),
            _open(args.keep, f"{stem}_deblurred_bokeh_weight"),
        ]
        for i, centre in enumerate(centres):
            x, y = (int(v) for v in centre.split(","))
            box = (x - size // 2, y - size // 2, x + size // 2, y + size // 2)
            what = "subject" if i == 0 else "background"
            rows.append((f"{stem} {what} @ {x},{y}", [im.crop(box) if im else None for im in images]))
    sheet = Image.new("RGB", (4 * size + 3 * 4, len(rows) * (size + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, crops) in enumerate(rows):
        top = r * (size + label)
        draw.text((2, top + 2), f"{title}   |   before   |   remove   |   keep   |   weight", fill="black")
        for c, crop in enumerate(crops):
            if crop is not None:
                sheet.paste(crop, (c * (size + 4), top + label))
    sheet.save(args.output)
    print(args.output)


if __name__ == "__main__":
    main()
