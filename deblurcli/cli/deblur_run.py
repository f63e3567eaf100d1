"""The batch behind ``defocus deblur``: one loaded method, many photos, a failure never stops the rest.

Everything that can be checked without torch (inputs, output folder, names, clashes, bit depth) is checked
first, so that a typo costs a fraction of a second and one line; torch and the method load afterwards. Kept
apart from ``deblur.py`` because it imports torch, which ``--help`` must not pay for. The stages of one photo
and their error handling are here; how stages overlap and devices share the photos is ``lanes.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deblurcli import interrupts
from deblurcli.cli.common import one_line
from deblurcli.cli.lanes import Job, Show, Stages, not_attempted, run_lanes
from deblurcli.cli.outputs import check_bit_depth, find_clashes, prepare_folder
from deblurcli.engine.shard import Rank, rank_from_env, share
from deblurcli.errors import (
    DefocusError,
    DeviceError,
    DiskFullError,
    UsageError,
    WeightsError,
    WeightsMissingError,
)
from deblurcli.inputs import OUTPUT_MARKER, Candidate, expand_inputs
from deblurcli.io.atomic import claim, stale_temps
from deblurcli.io.decode import SUPPORTED_EXTENSIONS
from deblurcli.io.metadata import provenance_date
from deblurcli.naming import DEFAULT_SUFFIX, DEFAULT_TEMPLATE, Naming, check_naming, map_paths

if TYPE_CHECKING:
    from deblurcli.methods.loader import LoadedMethod
    from deblurcli.pipeline import DeblurOptions, Deblurred, FileResult, TileProgress

#: ``-o -``: the one result goes to standard output
STDOUT = Path("-")
_T = TypeVar("_T")


@dataclass(frozen=True)
class BatchRequest:
    """Everything the command line said, already type-checked by typer."""

    inputs: list[str]
    output_dir: Path | None
    method: str
    weights: Path | None
    recursive: bool
    strength: float
    bokeh: str
    bokeh_threshold: float | None
    mask: Path | None
    fmt: str | None
    bit_depth: int | None
    quality: int
    maps: bool
    overwrite: bool
    tile: str | None
    overlap: int | None
    device: str
    precision: str
    threads: int | None
    max_pixels: int
    offline: bool
    cache_dir: Path | None
    quiet: bool
    random_weights_for_testing: bool
    suffix: str = DEFAULT_SUFFIX
    name: str = DEFAULT_TEMPLATE
    hidden: bool = False
    verbose: bool = False
    #: ``--devices``: one worker per device, each over its share of the photos (empty: ``device`` alone)
    devices: tuple[str, ...] = ()
    #: ``--prefetch``: photos decoded ahead of the one running (0: decode, run, write one after the other)
    prefetch: int = 1


def run_batch(req: BatchRequest, console: Console) -> tuple[list[FileResult], int]:
    """Process every input; returns the per-file results and the exit code (0 all done, 1 some failed,
    4 the disk filled up).

    Raises:
        DefocusError: for problems that concern the whole batch (no inputs, bad options, unusable output
            folder, unusable device, no weights).
    """
    to_stdout = req.output_dir == STDOUT
    check_naming(req.suffix, req.name)
    if to_stdout and req.maps:
        raise UsageError("--maps needs files: use -o FOLDER instead of -o -")
    out_dir = None if to_stdout else req.output_dir
    if req.prefetch < 0:
        raise UsageError("--prefetch must be 0 or more")
    if req.devices and req.device != "auto":
        raise UsageError("give --device or --devices, not both")
    provenance_date()  # a malformed SOURCE_DATE_EPOCH stops the batch here, not at each photo's write
    rank = rank_from_env(os.environ)
    with tempfile.TemporaryDirectory(prefix="defocus-") as tmp:
        private = Path(tmp)
        found = expand_inputs(
            req.inputs,
            extensions=SUPPORTED_EXTENSIONS,
            recursive=req.recursive,
            hidden=req.hidden,
            output_markers=(OUTPUT_MARKER, req.suffix),
            exclude=out_dir,
        )
        candidates = list(found.found)
        if found.stdin:
            candidates.insert(0, Candidate(_read_stdin(private), label="-"))
        if not candidates and not found.missing:
            raise UsageError("no photos found in the given inputs")
        stdout = to_stdout or (found.stdin and out_dir is None)
        if stdout and len(candidates) + len(found.missing) != 1:
            raise UsageError(
                f"standard output takes one photo, but the inputs name {len(candidates) + len(found.missing)}; "
                "use -o FOLDER"
            )
        if stdout and sys.stdout.isatty():
            raise UsageError("refusing to write image data to a terminal; redirect standard output or use -o")
        _check_weights(req.weights)
        check_bit_depth(candidates, req.fmt, req.bit_depth)
        if out_dir is not None:
            prepare_folder(out_dir)
        naming = Naming(folder=private if stdout else out_dir, suffix=req.suffix, template=req.name, method=req.method)
        planned, refused = find_clashes(candidates, naming, req.fmt, _map_names(req) if req.maps else ())
        batch = _Batch(req, console, naming, planned, refused, stdout=stdout, rank=rank)
        results = batch.run(candidates, found.missing)
    return results, batch.exit_code(results)


def _map_names(req: BatchRequest) -> tuple[str, ...]:
    """The maps ``--maps`` will write, for the clash check (this imports torch, with ``--maps`` only)."""
    from deblurcli.methods.registry import get_method
    from deblurcli.pipeline import map_names

    return map_names(get_method(req.method), bokeh=req.bokeh, masked=req.mask is not None)


def _check_weights(weights: Path | None) -> None:
    """``--weights`` must be a readable file, or a bare name (a weights id such as ``ifan-mine``, which the loader
    looks up); what is inside is checked when the method loads."""
    if weights is None or (not weights.exists() and weights.parent == Path(".")):
        return
    if not weights.exists():
        raise WeightsMissingError(f"--weights {weights}: no such file")
    if not weights.is_file():
        raise WeightsMissingError(f"--weights {weights}: is a folder, not a checkpoint file")


def _read_stdin(private: Path) -> Path:
    """``-``: the photo on standard input, saved privately under a name whose extension the decoder expects."""
    if sys.stdin.isatty():
        raise UsageError("'-' reads a photo from standard input, but that is a terminal; pipe a file in")
    data = sys.stdin.buffer.read()
    if data.startswith(b"\xff\xd8"):
        ext = ".jpg"
    elif data.startswith(b"\x89PNG"):
        ext = ".png"
    elif data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        ext = ".tif"
    else:
        ext = ".raw"  # LibRaw recognises camera files by their content
    path = private / f"stdin{ext}"
    path.write_bytes(data)
    return path


class _Batch:
    """The loop over photos, with the state it shares: method, options, planned outputs, progress."""

    def __init__(
        self,
        req: BatchRequest,
        console: Console,
        naming: Naming,
        planned: dict[Path, Path],
        refused: dict[Path, str],
        *,
        stdout: bool,
        rank: Rank,
    ) -> None:
        self.req, self.console, self.naming = req, console, naming
        self.planned, self.refused, self.stdout = planned, refused, stdout
        self.rank = rank
        self.claimed = {dst.resolve(): src for src, dst in planned.items()}
        self.temps: dict[Path, dict[str, list[Path]]] = {}
        self.temps_lock = threading.Lock()  # the reader, the main thread and device threads all sweep
        self.disk_full = False
        self.stop = threading.Event()  # set when one device's thread must make the others stop

    def run(self, candidates: list[Candidate], missing: list[str]) -> list[FileResult]:
        from deblurcli.pipeline import FileResult

        results = [FileResult(source=m, status="failed", reason=_missing_reason(m)) for m in missing]
        todo = [c for c in candidates if c.path not in self.refused]
        results += [
            FileResult(source=c.label or str(c.path), status="failed", reason=self.refused[c.path])
            for c in candidates
            if c.path in self.refused
        ]
        if self.rank.count > 1:  # under torchrun: this rank's share; rank 0 alone reports what is not a photo
            todo = share(todo, self.rank.index, self.rank.count)
            results = results if self.rank.index == 0 else []
        if todo:
            results += self._process(todo)
        self._report(results)
        return results

    def _process(self, todo: list[Candidate]) -> list[FileResult]:
        req = self.req
        opts, loads = _options(req, self.console, self.rank)
        interrupts.check()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=req.quiet,
            transient=False,
        ) as progress:
            files_task = progress.add_task("photos", total=len(todo))
            tiles_task = progress.add_task("tiles", total=None, visible=False)

            def on_download(done: int, total: int | None) -> None:
                progress.update(tiles_task, description="weights", completed=done, total=total, visible=True)

            methods = [_load(req, args, on_download) for args in loads]
            interrupts.check()

            def on_tile(done: int, total: int) -> None:
                self._check()  # lets a device thread stop between tiles when the batch is interrupted
                progress.update(tiles_task, description="tiles", completed=done, total=total, visible=True)

            show = Show(
                start=lambda cand: progress.update(files_task, description=f"[bold]{escape(cand.path.name)}"),
                done=lambda: progress.advance(files_task),
                tile=on_tile,
            )
            lanes = [self._stages(method, opts) for method in methods]
            out = run_lanes(todo, lanes, show, depth=req.prefetch, stop=self.stop)
            progress.update(files_task, description="photos")
        return out

    def _stages(self, method: LoadedMethod, opts: DeblurOptions) -> Stages:
        """This batch's stages of a photo, bound to one device's loaded method."""
        return Stages(
            prepare=lambda cand: self._prepare(cand, method, opts),
            run=lambda job, on_tile: self._run(job, method, opts, on_tile),
            write=lambda job, done: self._write(job, done, method, opts),
            check=self._check,
            disk_full=lambda: self.disk_full,
        )

    def _check(self) -> None:
        """Raise ``KeyboardInterrupt`` once Ctrl-C was pressed, or once another device's thread failed."""
        interrupts.check()
        if self.stop.is_set():
            raise KeyboardInterrupt

    def _guard(self, src: str, step: Callable[[], _T]) -> _T | FileResult:
        """Run one stage of one photo; every user-facing error becomes a failed result with a one-line reason."""
        from deblurcli.pipeline import FileResult

        try:
            return step()
        except DiskFullError as err:
            self.disk_full = True
            return FileResult(source=src, status="failed", reason=one_line(err))
        except DefocusError as err:
            return FileResult(source=src, status="failed", reason=one_line(err))
        except MemoryError:
            return FileResult(source=src, status="failed", reason="out of memory; try a smaller --tile")
        except OSError as err:
            return FileResult(source=src, status="failed", reason=f"cannot write: {err.strerror or err}")

    def _prepare(self, cand: Candidate, method: LoadedMethod, opts: DeblurOptions) -> FileResult | Job:
        """Decode a photo and decide its output, or say why it is skipped or failed (runs ahead, on the reader)."""
        from deblurcli.io.decode import decode
        from deblurcli.pipeline import FileResult, resolve_format

        src = cand.label or str(cand.path)
        if self.disk_full:
            return not_attempted(src)

        def step() -> FileResult | Job:
            planned = self.planned[cand.path]
            if not self.stdout and planned.exists() and not self.req.overwrite:
                self._sweep(planned, method.spec.maps, locked=False)
                return FileResult(
                    source=src, output=str(planned), status="skipped", reason="output exists (--overwrite replaces it)"
                )
            photo = decode(cand.path, max_pixels=opts.max_pixels)
            fmt, depth = resolve_format(photo, opts)
            dst = self.naming.path(cand.path, fmt, cand.subdir)
            if dst.resolve() == cand.path.resolve():
                return FileResult(source=src, status="failed", reason="output would replace the input")
            owner = self.claimed.get(dst.resolve())
            if owner is not None and owner != cand.path:
                return FileResult(source=src, status="failed", reason=f"same output {dst} as {owner}; use --name")
            if dst != planned and dst.exists() and not self.req.overwrite:
                return FileResult(
                    source=src, output=str(dst), status="skipped", reason="output exists (--overwrite replaces it)"
                )
            return Job(cand=cand, src=src, photo=photo, fmt=fmt, depth=depth, dst=dst)

        return self._guard(src, step)

    def _run(
        self, job: Job, method: LoadedMethod, opts: DeblurOptions, on_tile: TileProgress
    ) -> FileResult | tuple[Deblurred, ExitStack]:
        """Claim the output and run the method; the claim is handed back, to be released after the write."""
        from deblurcli.pipeline import FileResult, run_file

        if self.disk_full:
            return not_attempted(job.src)
        lock = ExitStack()

        def step() -> FileResult | Deblurred:
            dst = job.dst
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not lock.enter_context(claim(dst)):
                return FileResult(
                    source=job.src,
                    output=str(dst),
                    status="skipped",
                    reason="another defocus run is writing this output",
                )
            self._sweep(dst, method.spec.maps, locked=True)
            if dst.exists() and not self.req.overwrite:  # finished by another run meanwhile
                return FileResult(
                    source=job.src, output=str(dst), status="skipped", reason="output exists (--overwrite replaces it)"
                )
            assert job.photo is not None
            return run_file(job.photo, method, opts, progress=on_tile)

        try:
            ran = self._guard(job.src, step)
        except BaseException:
            lock.close()
            raise
        if isinstance(ran, FileResult):
            lock.close()
            return ran
        return ran, lock

    def _write(self, job: Job, done: Deblurred, method: LoadedMethod, opts: DeblurOptions) -> FileResult:
        """Encode and write a result, plus its maps (runs behind, on the writer)."""
        from deblurcli.pipeline import write_file

        if self.disk_full:
            return not_attempted(job.src)

        def step() -> FileResult:
            result = write_file(done, job.cand.path, job.dst, method, opts, fmt=job.fmt, bit_depth=job.depth)
            result.source = job.src
            if self.stdout:
                _to_stdout(job.dst)
                result.output = "-"
            return result

        return self._guard(job.src, step)

    def _sweep(self, dst: Path, maps: tuple[str, ...], *, locked: bool) -> None:
        """Remove what a killed run left of this output and of its maps. Leftovers are only stale while we hold
        the output's lock (another run may be writing them); for an output we skip, the lock is taken here,
        and only when there is something to remove (one folder listing per folder, not one per photo)."""
        folder = dst.parent
        names = [dst.name] + [p.name for p in map_paths(dst, maps)]
        with self.temps_lock:
            if folder not in self.temps:
                self.temps[folder] = stale_temps(folder)
            leftovers = [tmp for name in names for tmp in self.temps[folder].pop(name, [])]
        if not leftovers:
            return
        with ExitStack() as stack:
            if not locked and not stack.enter_context(claim(dst)):
                return
            for tmp in leftovers:
                tmp.unlink(missing_ok=True)

    def _report(self, results: list[FileResult]) -> None:
        """Failures always (one line each, also under -q); skips with --verbose; the summary unless -q."""
        for r in results:
            if r.status == "failed":
                self.console.print(f"[red]failed[/] {escape(r.source)}: {escape(r.reason or '')}", soft_wrap=True)
            elif r.status == "skipped" and self.req.verbose:
                self.console.print(f"[yellow]skipped[/] {escape(r.source)}: {escape(r.reason or '')}", soft_wrap=True)
        if not self.req.quiet:
            ok = sum(r.status == "ok" for r in results)
            skipped = sum(r.status == "skipped" for r in results)
            failed = sum(r.status == "failed" for r in results)
            hint = " (--verbose lists why)" if skipped and not self.req.verbose else ""
            self.console.print(f"{ok} deblurred, {skipped} skipped{hint}, {failed} failed")

    def exit_code(self, results: list[FileResult]) -> int:
        if self.disk_full:
            return DiskFullError.exit_code
        return 1 if any(r.status == "failed" for r in results) else 0


def _missing_reason(arg: str) -> str:
    """Why an input matched nothing; ``-r true`` gets a hint, since flags take no value."""
    if arg.lower() in {"true", "false", "yes", "no", "on", "off"}:
        return f"no such file or matching photo (flags take no value: write -r, not -r {arg})"
    return "no such file or matching photo"


def _to_stdout(path: Path) -> None:
    """The finished, verified result as the only bytes on standard output."""
    with open(path, "rb") as fh:
        shutil.copyfileobj(fh, sys.stdout.buffer)
    sys.stdout.buffer.flush()


def _options(req: BatchRequest, console: Console, rank: Rank) -> tuple[DeblurOptions, list[dict[str, object]]]:
    """Options shared by every device, and each device's own load arguments; a method that runs in fp32 only
    ignores --precision with a note, and a CPU without native bf16/fp16 runs fp32 with a notice.

    ``--tile auto`` plans with the smallest memory budget of the devices, so that every device tiles alike and a
    sharded batch writes the same bytes as one device would.
    """
    import torch

    from deblurcli.engine.device import memory_budget, pick_device, resolve_precision, set_cpu_threads
    from deblurcli.methods.registry import get_method
    from deblurcli.pipeline import DeblurOptions

    spec = get_method(req.method)
    set_cpu_threads(req.threads)
    names = list(req.devices) or [req.device]
    if rank.count > 1 and names == ["auto"] and torch.cuda.is_available():
        names = [f"cuda:{rank.local}"]  # torchrun starts one process per GPU of a node
    try:
        devices = [pick_device(name) for name in names]
    except DeviceError as err:
        if not req.devices:
            raise
        reason = str(err).removeprefix("--device ")
        raise DeviceError(f"--devices {','.join(req.devices)}: {reason}") from None
    precision = req.precision
    if precision != "fp32" and not spec.supports_half:
        if not req.quiet:
            console.print(f"note: {req.method} runs in fp32 only; --precision {precision} ignored")
        precision = "fp32"
    lanes: list[dict[str, object]] = []
    notices: list[str] = []
    for device in devices:
        dtype, notice = resolve_precision(precision, device, supports_half=spec.supports_half)
        lanes.append({"device": device, "dtype": dtype})
        if notice is not None and notice not in notices:
            notices.append(notice)
    if not req.quiet:
        for notice in notices:
            console.print(notice)
    tile = int(req.tile) if req.tile not in (None, "auto") else None
    opts = DeblurOptions(
        tile=tile,
        tile_budget=min(memory_budget(d) for d in devices) if req.tile == "auto" else None,
        overlap=req.overlap,
        strength=req.strength,
        bokeh=req.bokeh,
        bokeh_threshold=req.bokeh_threshold,
        mask=req.mask,
        fmt=req.fmt,
        bit_depth=req.bit_depth,
        quality=req.quality,
        maps=req.maps,
        max_pixels=req.max_pixels,
    )
    return opts, lanes


def _load(req: BatchRequest, args: dict[str, object], on_download: object) -> LoadedMethod:
    """Load the method; a ``--weights`` file that is not a checkpoint is one line naming the file, never a
    traceback from whichever reader tried it."""
    from deblurcli.methods.loader import load_method

    try:
        return load_method(
            req.method,
            device=args["device"],  # type: ignore[arg-type]
            dtype=args["dtype"],  # type: ignore[arg-type]
            weights=req.weights,
            offline=req.offline,
            cache_dir=req.cache_dir,
            random_weights_for_testing=req.random_weights_for_testing,
            download_progress=on_download,  # type: ignore[arg-type]
        )
    except (DefocusError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:
        if req.weights is None:
            raise
        raise WeightsError(
            f"--weights {req.weights}: not a {req.method} checkpoint we can read ({one_line(err)})"
        ) from None
