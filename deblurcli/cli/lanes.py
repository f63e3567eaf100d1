"""How ``defocus deblur`` schedules its photos: one lane per device, each decoding ahead and writing behind.

The stages of one photo (decode and plan its output, run the method, write the result) and their error
handling belong to the batch (``deblur_run``). This module only orders them: it bounds what waits between
stages (memory), keeps results in input order, and stops every lane once one fails or Ctrl-C arrives. It is
apart so that the scheduling can be read, and changed, without the per-photo rules around it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from deblurcli.engine.shard import share
from deblurcli.inputs import Candidate

if TYPE_CHECKING:
    from deblurcli.io.photo import Photo
    from deblurcli.pipeline import Deblurred, FileResult, TileProgress

_T = TypeVar("_T")


@dataclass
class Job:
    """A photo decoded ahead of its run, with where its result goes."""

    cand: Candidate
    src: str
    photo: Photo | None
    fmt: str
    depth: int
    dst: Path


@dataclass(frozen=True)
class Show:
    """What a device's loop tells the progress bar (rich's ``Progress`` takes updates from any thread)."""

    start: Callable[[Candidate], None]
    done: Callable[[], None]
    tile: TileProgress


@dataclass(frozen=True)
class Stages:
    """One device's view of the batch: the three stages of a photo, each of which turns every user-facing
    error into a failed ``FileResult``, plus the two signals the loop obeys."""

    #: decode and decide the output, on the reader thread
    prepare: Callable[[Candidate], FileResult | Job]
    #: claim the output and run the method, on the lane's own thread; the claim is released after the write
    run: Callable[[Job, TileProgress], FileResult | tuple[Deblurred, ExitStack]]
    #: encode and write, on the writer thread
    write: Callable[[Job, Deblurred], FileResult]
    #: raises ``KeyboardInterrupt`` when the batch must stop (Ctrl-C, or another device failed)
    check: Callable[[], None]
    #: true once a write found the disk full: nothing after that photo is attempted
    disk_full: Callable[[], bool]


def not_attempted(src: str) -> FileResult:
    from deblurcli.pipeline import FileResult

    return FileResult(source=src, status="failed", reason="not attempted: no space left on device")


def run_lanes(
    todo: list[Candidate], lanes: list[Stages], show: Show, *, depth: int, stop: threading.Event
) -> list[FileResult]:
    """One thread per device, each over its share of the photos; results come back in input order.

    Ctrl-C reaches the main thread only, which waits here: it sets ``stop``, which each device's thread
    sees at its next tile or photo, and waits for them, so every temporary file is gone before we exit.
    """
    if len(lanes) == 1:
        return run_lane(todo, lanes[0], show, depth=depth)
    count = len(lanes)
    shares = [share(range(len(todo)), i, count) for i in range(count)]
    out: list[FileResult | None] = [None] * len(todo)
    with ThreadPoolExecutor(count, thread_name_prefix="defocus-device") as pool:
        futures = [
            pool.submit(run_lane, [todo[i] for i in mine], stages, show, depth=depth)
            for mine, stages in zip(shares, lanes, strict=True)
        ]
        try:
            for future in as_completed(futures):
                future.result()  # the first failure, on any device, stops the others at once
            for mine, future in zip(shares, futures, strict=True):
                for i, result in zip(mine, future.result(), strict=True):
                    out[i] = result
        except BaseException:
            stop.set()
            raise
    return [r for r in out if r is not None]


def run_lane(todo: list[Candidate], stages: Stages, show: Show, *, depth: int) -> list[FileResult]:
    """One device's photos in order: decoded ahead on one thread, run here, written behind on another.

    Besides the photo running, at most ``depth`` (``--prefetch``) decoded photos wait (12 bytes per pixel each)
    and one result is being written (its pixels, 12 bytes per pixel, and its maps), so the default adds about
    two photos' worth of memory: some 0.6 GB for 24 MP photos. Each stage's errors become the photo's one-line
    result exactly as in a plain loop; with ``depth`` 0 both helpers run inline, and this *is* the plain loop.
    """
    from deblurcli.pipeline import FileResult

    out: list[FileResult] = []
    full_at: int | None = None
    upcoming = iter(todo)
    ahead: deque[Future[FileResult | Job]] = deque()
    writing: tuple[Future[FileResult], ExitStack] | None = None
    with ExitStack() as stack:
        held: list[ExitStack] = []  # output claims, released once their write is over
        stack.callback(lambda: [lock.close() for lock in held])
        reader = _worker(depth, "defocus-decode")
        stack.callback(reader.shutdown, wait=True, cancel_futures=True)
        writer = _worker(depth, "defocus-write")
        stack.callback(writer.shutdown, wait=True, cancel_futures=True)

        def collect() -> None:
            """Wait for the write in flight; its result takes its place in the order."""
            nonlocal writing, full_at
            if writing is None:
                return
            future, lock = writing
            writing = None
            try:
                out.append(future.result())
            finally:
                lock.close()
                held.remove(lock)
            show.done()
            if stages.disk_full() and full_at is None:
                full_at = len(out) - 1

        for _ in todo:
            while len(ahead) <= depth and (cand := next(upcoming, None)) is not None:
                ahead.append(reader.submit(stages.prepare, cand))
            stages.check()
            job = ahead.popleft().result()
            if isinstance(job, Job):
                show.start(job.cand)
                ran = stages.run(job, show.tile)
                job.photo = None  # the input's pixels are no longer needed
            else:
                ran = job
            collect()
            if isinstance(ran, FileResult):
                out.append(ran)
                show.done()
                continue
            done, lock = ran
            held.append(lock)
            assert isinstance(job, Job)
            writing = (writer.submit(stages.write, job, done), lock)
        collect()
    if full_at is not None:  # as in a plain loop: nothing after the photo that filled the disk is attempted
        out[full_at + 1 :] = [not_attempted(r.source) for r in out[full_at + 1 :]]
    return out


class _Inline(Executor):
    """An executor that runs each task at once in the caller's thread: ``--prefetch 0``, the plain loop.
    Ctrl-C and other ``BaseException``s propagate at once, as they would without an executor."""

    def submit(self, fn: Callable[..., _T], /, *args: object, **kwargs: object) -> Future[_T]:  # type: ignore[override]
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:
            future.set_exception(err)
        return future


def _worker(depth: int, name: str) -> Executor:
    """One helper thread for a stage of the batch, or none when ``--prefetch 0`` asks for the plain loop. One
    thread, not more: photos must come out in order, and one decode or encode already keeps pace with a run."""
    return ThreadPoolExecutor(1, thread_name_prefix=name) if depth > 0 else _Inline()
