"""The plain CSV log of a run: one row per step, readable by anything, append-only across resumes.

Values are written with ``repr`` so a float read back is the float that was logged, bit for bit; that is
what lets a test compare an interrupted-and-resumed run with an uninterrupted one from the logs alone.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CsvLog:
    """Rows of ``step`` then named values; the columns are fixed by the first row written.

    A run keeps two: ``log.csv`` (``step, lr, loss, <loss parts>, seconds``) and ``val.csv`` (``step, psnr``).
    """

    path: Path
    columns: list[str] = field(default_factory=list)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after the checkpoint we resume from (they will be recomputed identically)."""
        if not self.path.is_file():
            return
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            self.columns = list(rows[0].keys())
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) != len(rows):
            self._write_all(kept)

    def append(self, step: int, values: Mapping[str, float]) -> None:
        """One row; ``values`` in insertion order, extra keys after the first row are ignored."""
        if not self.columns:
            self.columns = ["step", *values]
        row = {"step": str(step), **{k: repr(float(v)) for k, v in values.items()}}
        new = not self.path.is_file()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _write_all(self, rows: list[dict[str, str]]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)


def read_log(path: Path) -> list[dict[str, str]]:
    """All rows of a run's log (for tests and reports)."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
