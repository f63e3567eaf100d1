"""The contact sheet of a benchmark: one row per image, columns input | each method | target, same crop in each.

Full frames shrunk side by side hide exactly what a deblurring paper or bug report needs to show, so each row
is a 1:1 crop. The crop is the window where the input differs most from the target (the worst blur of the
pair), chosen once per image and used for every column, so the columns compare like with like. Cells are the
8-bit values ``defocus`` writes for that image (``io.encode.quantise``), so a cell equals the same window of a
``--save-outputs`` PNG byte for byte. ``sheet.json`` records every window, so a figure can say where it is from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deblurcli.io.encode import quantise
from deblurcli.io.photo import Photo

GAP = 4
HEADER = 16
BACKGROUND = (255, 255, 255)


@dataclass
class _Row:
    name: str
    top: int
    left: int
    size: int
    cells: dict[str, np.ndarray] = field(default_factory=dict)


class ContactSheet:
    """Collects crops while a benchmark runs (``choose`` per pair, ``add`` per method), then ``save``."""

    def __init__(self, crop: int = 192, max_rows: int = 8) -> None:
        self.crop, self.max_rows = crop, max_rows
        self.rows: dict[str, _Row] = {}
        self.columns: list[str] = ["input"]

    def choose(self, name: str, source: Photo, target: Photo) -> None:
        """Pick the window for pair ``name`` and keep its input and target crops (first ``max_rows`` pairs)."""
        if name in self.rows or len(self.rows) >= self.max_rows:
            return
        a, b = _rgb8(source), _rgb8(target)
        size = min(self.crop, a.shape[0], a.shape[1])
        top, left = worst_window(np.abs(a.astype(np.int32) - b.astype(np.int32)).sum(axis=2), size)
        row = _Row(name, top, left, size)
        row.cells["input"] = a[top : top + size, left : left + size]
        row.cells["target"] = b[top : top + size, left : left + size]
        self.rows[name] = row

    def add(self, column: str, name: str, output: Photo) -> None:
        """Keep method ``column``'s crop of pair ``name`` (ignored for pairs beyond the sheet's rows)."""
        row = self.rows.get(name)
        if row is None:
            return
        if column not in self.columns:
            self.columns.append(column)
        pixels = _rgb8(output)
        row.cells[column] = pixels[row.top : row.top + row.size, row.left : row.left + row.size]

    def save(self, path: Path) -> list[Path]:
        """Write the PNG and its ``.json`` description (atomically); returns both paths."""
        columns = [*self.columns, "target"]
        cell = max((r.size for r in self.rows.values()), default=0)
        width = max(len(columns) * (cell + GAP) - GAP, 1)
        height = HEADER + max(len(self.rows) * (cell + GAP) - GAP, 0)
        canvas = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        for k, column in enumerate(columns):
            draw.text((k * (cell + GAP) + 2, 2), column, fill=(0, 0, 0))
        for r, row in enumerate(self.rows.values()):
            for k, column in enumerate(columns):
                if column in row.cells:
                    canvas.paste(Image.fromarray(row.cells[column]), (k * (cell + GAP), HEADER + r * (cell + GAP)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        canvas.save(tmp, format="PNG")
        os.replace(tmp, path)
        described = {
            "columns": columns,
            "cell": cell,
            "gap": GAP,
            "header": HEADER,
            "rows": [{"name": r.name, "top": r.top, "left": r.left, "size": r.size} for r in self.rows.values()],
        }
        info = path.with_suffix(".json")
        info.write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
        return [path, info]


def worst_window(diff: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left of the ``size`` x ``size`` window with the largest summed ``diff`` (an integral-image argmax)."""
    integral = np.zeros((diff.shape[0] + 1, diff.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = diff.cumsum(axis=0).cumsum(axis=1)
    sums = (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def _rgb8(photo: Photo) -> np.ndarray:
    samples = quantise(photo, 8, keep_alpha=False)
    return np.repeat(samples, 3, axis=2) if samples.shape[2] == 1 else samples
