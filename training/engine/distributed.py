"""Process-group plumbing for ``torchrun``: one process per device, rank 0 writes everything.

``torchrun`` (or ``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous variables; a plain ``defocus train`` sets none of them and runs as a world of one, with no process
group at all, so that single-device training pays nothing for the multi-device path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from deblurcli.errors import DeviceError


@dataclass(frozen=True)
class World:
    """Where this process sits: its rank, how many there are, and the device it drives."""

    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _pick_device(requested: str, local_rank: int) -> torch.device:
    """``auto`` is the local GPU when there is one; a bare ``cuda`` under torchrun is this rank's GPU."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but this torch build sees no CUDA device")
        if device.index is None:
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    elif device.type not in ("cpu", "mps"):
        raise DeviceError(f"unsupported training device {requested!r}")
    return device


def setup(device: str = "auto", *, timeout_s: float = 600.0) -> World:
    """Join the process group that torchrun describes in the environment, or run alone.

    NCCL for CUDA, gloo otherwise (gloo is what the CPU test of the multi-process path uses).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = _pick_device(device, local_rank)
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return World(rank=rank, size=size, local_rank=local_rank, device=dev)


def teardown(world: World) -> None:
    """Leave the process group (only if we joined one), so torchrun sees a clean exit.

    All ranks meet at a barrier first: rank 0 exports and logs after the last collective, and a rank that tears
    gloo down while its peer is still busy can abort ("terminate called without an active exception").
    """
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def mean_across(world: World, values: dict[str, float]) -> dict[str, float]:
    """Average scalars over ranks, so the logged loss describes the whole global batch, not rank 0's shard."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_collective_device(world))
    dist.all_reduce(t)
    t /= world.size
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def broadcast_flag(world: World, flag: bool) -> bool:
    """Rank 0's decision, everywhere (e.g. "stop now"), so no rank waits in a collective the others skip."""
    if not world.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=_collective_device(world))
    dist.broadcast(t, src=0)
    return bool(t.item())


def _collective_device(world: World) -> torch.device:
    return world.device if world.device.type == "cuda" else torch.device("cpu")
