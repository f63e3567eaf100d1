"""``defocus models``: list, fetch, import, check and remove checkpoints in the per-user cache.

Results (tables, JSON, paths) go to stdout so they can be piped; progress and notes go to stderr. The zoo is
imported inside the commands so ``defocus --help`` never loads huggingface_hub or torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from deblurcli.cli.common import fail, stderr_console
from deblurcli.errors import DefocusError, WeightsMissingError

app = typer.Typer(
    name="models", help="Manage network checkpoints (download, import, verify).", no_args_is_help=True
)

CacheDir = Annotated[
    Path | None, typer.Option("--cache-dir", help="Weights cache (default: $DEFOCUS_CACHE or per user).")
]
Offline = Annotated[bool, typer.Option("--offline", help="Never download; fail if not cached.")]


@app.callback()
def _models() -> None:
    """Manage network checkpoints (download, import, verify)."""


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Show every known checkpoint: method, size, licence, where it comes from, and whether it is cached."""
    from deblurcli.zoo.cache import WeightsCache
    from deblurcli.zoo.overlay import merged_manifest

    try:
        manifest = merged_manifest(cache_dir)
        cache = WeightsCache.open(cache_dir)
    except DefocusError as err:
        fail(err)
    rows = []
    for rec in manifest.records.values():
        source = cache.source_path(rec.id)
        converted = cache.converted_path(rec.id)
        info = cache.info(rec.id)
        rows.append(
            {
                "id": rec.id,
                "method": rec.method,
                "hparams": dict(rec.hparams),
                "format": rec.format,
                "size": rec.size,
                "sha256": rec.sha256,
                "licence": rec.licence,
                "source": "local" if rec.local else rec.source.kind,
                "local": rec.local,
                "origin": rec.source.describe(),
                "cached": source is not None,
                "cached_sha256": info.sha256 if info else None,
                "path": str(converted if converted.is_file() else source) if source else None,
                "tile": rec.tile,
                "overlap": rec.overlap,
                "metrics": [m.__dict__ for m in rec.metrics],
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"weights (cache: {cache.root})")
    for col in ("id", "method", "size", "licence", "cached", "source"):
        table.add_column(col, no_wrap=col in ("id", "size"))
    for row in rows:
        cached = "[green]yes[/]" if row["cached"] else "no"
        method = row["method"] or "[dim](aux)[/]"
        table.add_row(row["id"], method, _human(row["size"]), row["licence"], cached, row["source"])
    Console().print(table)


@app.command()
def pull(
    weights_id: Annotated[str, typer.Argument(metavar="ID", help="Manifest id (see `defocus models list`).")],
    trust_unpinned: Annotated[
        bool,
        typer.Option("--trust-unpinned", help="Download a file with no published sha256; record its hash."),
    ] = False,
    cache_dir: CacheDir = None,
    offline: Offline = False,
) -> None:
    """Download (and convert) a checkpoint into the cache; prints its path."""
    from deblurcli.zoo.cache import WeightsCache
    from deblurcli.zoo.overlay import merged_manifest
    from deblurcli.zoo.resolve import resolve_file, resolve_weights

    console = stderr_console()
    try:
        record = merged_manifest(cache_dir).get(weights_id)
        resolve = resolve_file if record.method is None else resolve_weights
        with _progress_bar(weights_id) as progress:
            path = resolve(
                weights_id,
                offline=offline,
                cache_dir=cache_dir,
                progress=progress,
                trust_unpinned=trust_unpinned,
            )
        info = WeightsCache.open(cache_dir).info(weights_id)
    except DefocusError as err:
        fail(err)
    if info is not None:
        state = "pinned" if info.pinned else "[yellow]NOT pinned: compare it with the publisher's hash[/]"
        console.print(f"{weights_id}: sha256 {info.sha256} ({state})")
    typer.echo(str(path))


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A checkpoint file: an official format, or `defocus train` output.")],
    as_id: Annotated[
        str | None,
        typer.Option("--as", help="Id to file it under: an official id, or a new one for your own weights."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Let your file take the place of an official id's weights.")
    ] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Verify a checkpoint (strict load) and add it to the cache: official weights, or your own under a new id."""
    from deblurcli.zoo.importer import import_weights

    console = stderr_console()
    try:
        result = import_weights(path, as_id=as_id, cache_dir=cache_dir, replace=replace)
    except DefocusError as err:
        fail(err)
    if result.local:
        note = f"your own {result.method} weights, listed as local"
        use = f"use: defocus deblur PHOTO --method {result.method} --weights {result.id}"
        console.print(f"imported {path.name} as {result.id}: sha256 {result.sha256} ({note}); {use}", soft_wrap=True)
    else:
        pin = {None: "no published hash", True: "matches the pinned hash", False: "differs from the pinned file"}
        console.print(
            f"imported {path.name} as {result.id}: sha256 {result.sha256} ({pin[result.matches_pin]})", soft_wrap=True
        )
    typer.echo(str(result.path))


@app.command()
def verify(cache_dir: CacheDir = None) -> None:
    """Re-hash every cached file; exits 1 if any is corrupt or missing."""
    from deblurcli.zoo.cache import WeightsCache, verify_cache
    from deblurcli.zoo.overlay import merged_manifest

    try:
        pins = {r.id: r.sha256 for r in merged_manifest(cache_dir).records.values()}
        results = verify_cache(WeightsCache.open(cache_dir), pins)
    except DefocusError as err:
        fail(err)
    out = Console()
    if not results:
        out.print("no weights cached")
    marks = {"ok": "[green]ok[/]  ", "bad": "[red]BAD[/] ", "partial": "[yellow]part[/]"}
    for res in results:
        mark = marks[res.state]
        out.print(f"{mark} {res.id}: {res.detail}", soft_wrap=True)
    bad = [r.id for r in results if not r.ok]
    if bad:
        stderr_console().print(
            f"[red]error:[/] corrupt cache entries: {', '.join(bad)}; `defocus models rm ID`"
        )
        raise typer.Exit(1)


@app.command()
def path(
    weights_id: Annotated[str, typer.Argument(metavar="ID")],
    cache_dir: CacheDir = None,
) -> None:
    """Print the path of a cached checkpoint (in our format when converted); fails if it is not cached."""
    from deblurcli.zoo.cache import WeightsCache
    from deblurcli.zoo.overlay import merged_manifest

    try:
        merged_manifest(cache_dir).get(weights_id)
        cache = WeightsCache.open(cache_dir)
        converted = cache.converted_path(weights_id)
        found = converted if converted.is_file() else cache.source_path(weights_id)
        if found is None:
            hint = f"`defocus models pull {weights_id}`"
            raise WeightsMissingError(f"{weights_id!r} is not cached in {cache.root}; {hint}")
    except DefocusError as err:
        fail(err)
    typer.echo(str(found))


@app.command()
def rm(
    weights_id: Annotated[str, typer.Argument(metavar="ID")],
    cache_dir: CacheDir = None,
) -> None:
    """Delete a checkpoint from the cache (and your own record of it); exits 2 for an unknown id."""
    from deblurcli.zoo.cache import WeightsCache
    from deblurcli.zoo.overlay import merged_manifest, remove_record

    console = stderr_console()
    try:
        cache = WeightsCache.open(cache_dir)
        manifest = merged_manifest(cache_dir)
        # ids dropped from a newer manifest can still be removed while the cache holds them
        if weights_id not in manifest.records and weights_id not in cache.cached_ids():
            manifest.get(weights_id)  # raises the usual "unknown weights id" (exit 2)
        record = manifest.records.get(weights_id)
        had_weights = cache.holds_weights(weights_id)
        had_folder = cache.remove(weights_id)
        dropped = record is not None and record.local and remove_record(weights_id, cache_dir)
    except DefocusError as err:
        fail(err)
    if had_weights:
        console.print(f"removed {weights_id}" + (" and your local record of it" if dropped else ""))
    elif dropped:
        console.print(f"removed your local record {weights_id} (its weights were not cached)")
    elif had_folder:
        console.print(
            f"{weights_id}: no weights cached, nothing removed (cleared a lock or interrupted download)", soft_wrap=True
        )
    else:
        console.print(f"{weights_id}: no weights cached, nothing removed")
    if dropped and weights_id in merged_manifest(cache_dir).records:
        console.print(f"the official {weights_id!r} record applies again")


@contextmanager
def _progress_bar(label: str) -> Iterator[Any]:
    """A byte progress bar on stderr, shown only once a download actually starts."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as bar:
        task: list[Any] = []

        def update(done: int, total: int | None) -> None:
            if not task:
                task.append(bar.add_task(label, total=total))
            bar.update(task[0], completed=done, total=total)

        yield update


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
