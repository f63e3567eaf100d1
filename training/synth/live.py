"""Synthetic defocus rendered on demand, for training without a dataset on disk (``--data live:DIR[,DIR...]``).

It is the same renderer as ``defocus data synth``, not a second one: item ``i`` draws its crop and its seed
exactly as ``write_dataset`` draws sample ``i`` (with every photo in the training split), so a live run and a
run on ``data synth -n N --val-frac 0 --test-frac 0`` see the same scenes, the written ones quantised to 8 or
16 bits. Items are pure functions of ``(seed, i)``, which keeps the engine's bit-exact resume.

Two ways in. ``LiveSynth[i]`` renders one item on the CPU (a DataLoader worker's job). The training loop
instead calls ``LiveSynth.batches`` (it is an engine ``BatchSource``): ``--workers`` processes draw the crops
and per-scene parameters ahead, and each micro-batch is rendered at once on the training device by
``render_batch`` and augmented there, so a GPU makes its own data. On a CPU alone rendering costs several
times a training step of the small networks (benchmarks/synth_speed.py), so pre-rendering once (``data
synth``) and cropping many patches from each sample is the better use of cores there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from training.engine.augment import Augment, Sample, apply, require_keys
from training.synth.sample import Scene, SynthConfig, draw_scene, render_batch
from training.synth.sources import PhotoPool, find_photos

#: the engine's sampler needs a length; live data has no natural one, so a pass is this many scenes
LIVE_LENGTH = 1_000_000


class LiveSynth(Dataset[dict[str, torch.Tensor]]):
    """Scenes rendered from ``pool`` on demand; entries use the engine's keys (``defocus`` = radius px)."""

    def __init__(self, pool: PhotoPool, *, config: SynthConfig, seed: int = 0, length: int = LIVE_LENGTH) -> None:
        self.pool, self.config, self.seed, self.length = pool, config, seed, length

    @classmethod
    def from_folders(cls, folders: list[Path], *, config: SynthConfig, seed: int = 0) -> LiveSynth:
        """Sharp photos under ``folders``, cut into crops with context for ``config`` (see ``sources``)."""
        return cls(PhotoPool(find_photos(folders), config.source_size), config=config, seed=seed)

    def __len__(self) -> int:
        return self.length

    def _draw(self, index: int) -> tuple[np.ndarray, Scene]:
        """Item ``index``'s crop and scene draws: the CPU half of rendering, done by ``batches``' workers."""
        rng = np.random.default_rng([self.seed, index])
        crop, _ = self.pool.draw(rng)
        return crop.astype(np.float32, copy=False), draw_scene(int(rng.integers(2**63 - 1)), self.config)

    def _render(self, drawn: Sequence[tuple[np.ndarray, Scene]], device: torch.device | str) -> Sample:
        photos = torch.from_numpy(np.stack([crop for crop, _ in drawn])).to(device)
        scenes = [scene for _, scene in drawn]
        out = render_batch(photos, [sc.params.seed for sc in scenes], self.config, scenes=scenes)
        return {
            "blur": out.blurred,
            "sharp": out.sharp,
            "left": out.left,
            "right": out.right,
            "defocus": (out.coc.abs() * 0.5)[:, None],
        }

    def render(self, indices: Sequence[int], device: torch.device | str = "cpu") -> Sample:
        """Items ``indices`` stacked (B, C, s, s) on ``device``, rendered as one batch."""
        return self._render([self._draw(i) for i in indices], device)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.render([index]).items()}

    def _patches(self, raw: Sample, items: Sequence[tuple[int, int]], aug: Augment, keys: tuple[str, ...]) -> Sample:
        require_keys(raw, keys, items[0][0])
        patches = [apply({k: raw[k][j] for k in keys}, aug, seed) for j, (_, seed) in enumerate(items)]
        return {k: torch.stack([p[k] for p in patches]) for k in keys}

    def batch(
        self, items: Sequence[tuple[int, int]], *, aug: Augment, keys: tuple[str, ...], device: torch.device
    ) -> Sample:
        """The engine's micro-batch for the sampler's ``(index, seed)`` pairs, rendered and augmented on ``device``."""
        return self._patches(self.render([index for index, _ in items], device), items, aug, keys)

    def batches(
        self,
        stream: Iterable[tuple[int, int]],
        micro: int,
        *,
        aug: Augment,
        keys: tuple[str, ...],
        device: torch.device,
        workers: int = 0,
    ) -> Iterator[Sample]:
        """``batch`` for consecutive groups of ``micro`` pairs of ``stream``, endlessly.

        ``workers`` DataLoader processes make the crops and scene draws (the part that stays on the CPU, ~50 ms
        per 256 px scene) ahead of time, in order, so the device renders while they draw.
        """
        groups = _groups(iter(stream), micro)
        loader = DataLoader(_Draws(self), batch_sampler=groups, num_workers=workers, collate_fn=_as_list)
        for drawn in loader:
            items = [item for item, _ in drawn]
            yield self._patches(self._render([d for _, d in drawn], device), items, aug, keys)


class _Draws(Dataset[tuple[tuple[int, int], tuple[np.ndarray, Scene]]]):
    """The CPU half of ``LiveSynth`` items, indexed by the sampler's ``(index, seed)`` pairs."""

    def __init__(self, live: LiveSynth) -> None:
        self.live = live

    def __len__(self) -> int:
        return len(self.live)

    def __getitem__(self, item: tuple[int, int]) -> tuple[tuple[int, int], tuple[np.ndarray, Scene]]:
        return item, self.live._draw(item[0])


def _groups(stream: Iterator[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    while True:
        yield [next(stream) for _ in range(size)]


def _as_list(batch: list[Any]) -> list[Any]:
    """DataLoader collate that keeps the drawn items as they are (module level: workers pickle it)."""
    return batch
