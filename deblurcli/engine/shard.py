"""Which photos of a batch each worker takes: one device of ``--devices``, or one rank under ``torchrun``.

The split is a pure function of the ordered file list, the worker's index and the number of workers. Every
process of a ``torchrun`` job expands the same inputs in the same order, so each computes the same split
without talking to the others, and no photo is taken twice or left out. Photos are dealt out like cards
(round robin) rather than in blocks: a folder sorted by name keeps one camera's or one size's photos together,
and dealing evens out the work. Nothing here imports torch, so a bad environment fails before it loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from deblurcli.errors import UsageError

T = TypeVar("T")


def share(items: Sequence[T], index: int, count: int) -> list[T]:
    """The items worker ``index`` of ``count`` takes: every ``count``-th one from position ``index``.

    Raises:
        ValueError: ``count`` below 1 or ``index`` outside ``0..count-1`` (a caller's bug, not a user error).
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"worker {index} of {count} does not exist")
    return list(items[index::count])


@dataclass(frozen=True)
class Rank:
    """This process's place in a ``torchrun`` job; ``Rank()`` when run on its own."""

    index: int = 0
    count: int = 1
    local: int = 0


def rank_from_env(environ: Mapping[str, str]) -> Rank:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` as ``torchrun`` sets them.

    Raises:
        UsageError: the variables are set but are not integers, or the rank lies outside the world.
    """
    if "WORLD_SIZE" not in environ:
        return Rank()
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    try:
        index, count, local = (int(environ.get(name, "0")) for name in names)
    except ValueError:
        shown = ", ".join(f"{n}={environ.get(n, '')!r}" for n in names)
        raise UsageError(f"torchrun environment is not a set of integers: {shown}") from None
    if count < 1 or not 0 <= index < count or local < 0:
        raise UsageError(f"torchrun environment names rank {index} of a world of {count}")
    return Rank(index=index, count=count, local=local)


def parse_devices(text: str) -> tuple[str, ...]:
    """``--devices cuda:0,cuda:1`` as a tuple of device names (checked when the devices are opened).

    Raises:
        UsageError: an empty entry, as in ``cuda:0,,cuda:1``.
    """
    names = tuple(part.strip().lower() for part in text.split(","))
    if not all(names):
        raise UsageError(f"--devices {text!r}: list devices separated by commas, e.g. cuda:0,cuda:1")
    return names
