"""Writing a benchmark's results: a rich table for people, Markdown/CSV/JSON files for papers and scripts."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from deblurcli.bench.published import PublishedRow
from deblurcli.bench.run import MethodSummary

COLUMNS = ("method", "images", "PSNR", "SSIM", "MAE", "LPIPS", "s/image", "peak MB", "params", "GMACs@720p",
           "tile/overlap", "weights")


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def rows(summaries: list[MethodSummary], published: list[PublishedRow]) -> list[list[str]]:
    """The table body shared by every output format."""
    out = [
        [
            s.method, str(s.images), _fmt(s.psnr, 3), _fmt(s.ssim, 4), _fmt(s.mae, 4), _fmt(s.lpips, 4),
            _fmt(s.seconds_per_image, 3), _fmt(s.peak_memory_mb, 0), f"{s.params:,}",
            _fmt(s.gmacs_1280x720, 1), s.tile, s.weights or "-",
        ]
        for s in summaries
    ]
    out += [
        [f"{p.method} (published)", "-", _fmt(p.psnr, 3), _fmt(p.ssim, 4), _fmt(p.mae, 4), _fmt(p.lpips, 4),
         "-", "-", "-", "-", "-", p.source]
        for p in published
    ]
    return out


#: the terminal table keeps the columns people compare; the files keep all of them
TERMINAL_COLUMNS = ("method", "images", "PSNR", "SSIM", "MAE", "LPIPS", "s/image", "peak MB", "GMACs@720p")


def rich_table(summaries: list[MethodSummary], published: list[PublishedRow], title: str) -> Table:
    """The results as a compact table for the terminal; published rows are marked and sourced in a caption."""
    keep = [COLUMNS.index(c) for c in TERMINAL_COLUMNS]
    table = Table(title=title, caption="; ".join(f"{p.method}: {p.source}" for p in published) or None)
    short = {"images": "n", "s/image": "s/img", "peak MB": "MB", "GMACs@720p": "GMAC@720p"}
    for col in TERMINAL_COLUMNS:
        table.add_column(short.get(col, col), justify="left" if col == "method" else "right", no_wrap=True)
    for row in rows(summaries, published):
        cells = [row[i] for i in keep]
        cells[0] = cells[0].replace(" (published)", " (paper)")
        table.add_row(*cells, style="dim" if "(published)" in row[0] else None)
    return table


def markdown(summaries: list[MethodSummary], published: list[PublishedRow], title: str, notes: list[str]) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(summaries, published)]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def write_reports(out_dir: Path, summaries: list[MethodSummary], published: list[PublishedRow], *, title: str,
                  notes: list[str], meta: dict[str, object]) -> list[Path]:
    """Write ``bench.md``, ``bench.csv``, ``bench.json`` and ``per_image.csv``; return their paths."""
    from deblurcli.io.atomic import atomic_output

    out_dir.mkdir(parents=True, exist_ok=True)
    summary_csv = io.StringIO()
    writer = csv.writer(summary_csv)
    writer.writerow(COLUMNS)
    writer.writerows(rows(summaries, published))
    per_image = io.StringIO()
    writer = csv.writer(per_image)
    writer.writerow(["method", "image", "psnr", "ssim", "mae", "lpips", "seconds"])
    for s in summaries:
        for r in s.per_image:
            writer.writerow([r.method, r.name, f"{r.psnr:.4f}", f"{r.ssim:.6f}", f"{r.mae:.6f}",
                             "" if r.lpips is None else f"{r.lpips:.6f}", f"{r.seconds:.4f}"])
    payload = {
        **meta,
        "notes": notes,
        "methods": [asdict(s) for s in summaries],
        "published": [asdict(p) for p in published],
    }
    files = {
        "bench.md": markdown(summaries, published, title, notes),
        "bench.csv": summary_csv.getvalue(),
        "per_image.csv": per_image.getvalue(),
        "bench.json": json.dumps(_finite(payload), indent=2) + "\n",
    }
    written = []
    for name, text in files.items():
        with atomic_output(out_dir / name) as tmp:
            tmp.write_text(text)
        written.append(out_dir / name)
    return written


def _finite(value: object) -> object:
    """JSON has no infinity: identical images (PSNR = inf) become null, as does NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
