"""Which sample comes next, and with which random draw: a pure function of (seed, position).

Bit-exact resume needs the data stream to be replayable from a single integer. So instead of a shuffled
DataLoader whose position and worker RNGs cannot be saved, the sampler yields ``(index, sample_seed)`` pairs
from an infinite stream: global position ``p`` falls in epoch ``p // n``, whose permutation is drawn from
``(seed, epoch)``, and the sample's crop and augmentation are drawn from ``(seed, p)`` alone. Resuming at step
``s`` is then just starting the stream at position ``s * batch``, whatever the number of workers.

Under DDP the sampler also does DistributedSampler's job: rank ``r`` of ``w`` takes the positions congruent to
``r`` modulo ``w``, so the ranks see disjoint shards and one global step always covers the same ``batch``
consecutive positions, however many processes share it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def sample_seed(seed: int, position: int) -> int:
    """A 63-bit seed for the sample at global ``position`` (SeedSequence decorrelates nearby positions)."""
    state = np.random.SeedSequence([seed, position]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The visiting order of the ``n`` items in ``epoch``."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class StreamSampler(Sampler[tuple[int, int]]):
    """Endless ``(index, sample_seed)`` pairs for one rank, starting at a saved position.

    Args:
        n: number of items in the dataset.
        seed: run seed.
        rank, world: this process and the number of processes.
        start: global position (samples consumed by all ranks together) to resume from.
    """

    def __init__(self, n: int, *, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        if n < 1:
            raise ValueError("cannot sample from an empty dataset")
        if start % world:
            raise ValueError(f"start position {start} is not a multiple of the world size {world}")
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start + self.rank
        cached_epoch, order = -1, torch.empty(0, dtype=torch.long)
        while True:
            epoch, k = divmod(position, self.n)
            if epoch != cached_epoch:
                cached_epoch, order = epoch, epoch_order(self.n, self.seed, epoch)
            yield int(order[k]), sample_seed(self.seed, position)
            position += self.world
