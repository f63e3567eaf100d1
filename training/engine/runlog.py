"""The plain CSV log of a run: one row per step, readable by anything, append-only across resumes.

Values are written with ``repr`` so a float read back is the float that was logged, bit for bit; that is
what lets a test compare an interrupted-and-resumed run with an uninterrupted one from the logs alone.
``TensorBoardLog`` mirrors the same values into TensorBoard for those who watch runs there.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deblurcli.errors import UsageError


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


class TensorBoardLog:
    """The same numbers as the CSV logs, as TensorBoard event files (``defocus train --tensorboard``).

    Optional: the ``tensorboard`` package is an extra (``pip install 'defocus[tensorboard]'``), since most runs
    need nothing but the CSV. On resume, events after the checkpoint's step are purged, matching what
    ``CsvLog.truncate_after`` does to the CSV, so a curve never shows the discarded steps twice.
    """

    @staticmethod
    def check_available() -> None:
        """Fail before training starts, not at its first step, when the extra is not installed.

        Raises:
            UsageError: the ``tensorboard`` package is missing.
        """
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as exc:
            raise UsageError(
                "--tensorboard needs the tensorboard package: pip install 'defocus[tensorboard]'"
            ) from exc

    def __init__(self, log_dir: Path, *, resume_from: int | None = None) -> None:
        self.check_available()
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_from is None else resume_from + 1
        self.log_dir = log_dir
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)

    def append(self, step: int, values: Mapping[str, float], *, prefix: str = "train") -> None:
        """One scalar per value, tagged ``prefix/name`` (``train/loss``, ``train/lr``, ``val/psnr``)."""
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
