"""Synthetic defocus rendered on demand, for training without a dataset on disk (``--data live:DIR[,DIR...]``).

It is the same renderer as ``defocus data synth``, not a second one: item ``i`` draws its crop and its seed
exactly as ``write_dataset`` draws sample ``i`` (with every photo in the training split), so a live run and a
run on ``data synth -n N --val-frac 0 --test-frac 0`` see the same scenes, the written ones quantised to 8 or
16 bits. Items are pure functions of ``(seed, i)``, which keeps the engine's bit-exact resume.

Two ways in. ``LiveSynth[i]`` renders one item on the CPU (a DataLoader worker's job). The training loop
instead calls ``LiveSynth.batch`` (it is an engine ``BatchSource``): the whole micro-batch is rendered at once
on the training device by ``render_batch`` and augmented there, so a GPU makes its own data and the CPU only
draws the per-scene parameters. On a CPU alone rendering costs several times a training step of the small
networks (benchmarks/synth_speed.py), so pre-rendering once (``data synth``) and cropping many patches from
each sample is the better use of cores there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from training.engine.augment import Augment, Sample, apply, require_keys
from training.synth.sample import SynthConfig, render_batch
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

    def render(self, indices: Sequence[int], device: torch.device | str = "cpu") -> Sample:
        """Items ``indices`` stacked (B, C, s, s) on ``device``, rendered as one batch."""
        crops, seeds = [], []
        for index in indices:
            rng = np.random.default_rng([self.seed, index])
            crop, _ = self.pool.draw(rng)
            crops.append(crop)
            seeds.append(int(rng.integers(2**63 - 1)))
        photos = torch.from_numpy(np.stack(crops).astype(np.float32, copy=False)).to(device)
        out = render_batch(photos, seeds, self.config)
        return {
            "blur": out.blurred,
            "sharp": out.sharp,
            "left": out.left,
            "right": out.right,
            "defocus": (out.coc.abs() * 0.5)[:, None],
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.render([index]).items()}

    def batch(
        self, items: Sequence[tuple[int, int]], *, aug: Augment, keys: tuple[str, ...], device: torch.device
    ) -> Sample:
        """The engine's micro-batch for the sampler's ``(index, seed)`` pairs, rendered and augmented on ``device``."""
        raw = self.render([index for index, _ in items], device)
        require_keys(raw, keys, items[0][0])
        patches = [apply({k: raw[k][j] for k in keys}, aug, seed) for j, (_, seed) in enumerate(items)]
        return {k: torch.stack([p[k] for p in patches]) for k in keys}
