"""Synthetic defocus rendered on demand, for training without a dataset on disk (``--data live:DIR[,DIR...]``).

It is the same renderer as ``defocus data synth``, not a second one: item ``i`` draws its crop and its seed
exactly as ``write_dataset`` draws sample ``i`` (with every photo in the training split), so a live run and a
run on ``data synth -n N --val-frac 0 --test-frac 0`` see the same scenes, the written ones quantised to 8 or
16 bits. Items are pure functions of ``(seed, i)``, which keeps the engine's bit-exact resume.

Cost decides which to use. On a CPU a 256 px sample takes about 0.2 s to render, several times a training
step of the small networks, so pre-rendering once (``data synth``) and cropping many patches from each sample
is the better use of cores there; live rendering pays off with DataLoader workers on a machine whose CPU
cores idle while a GPU trains, and it never repeats a scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from training.synth.sample import SynthConfig, make_sample
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

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        crop, _ = self.pool.draw(rng)
        sample = make_sample(crop, int(rng.integers(2**63 - 1)), self.config)
        return {
            "blur": torch.from_numpy(sample.blurred),
            "sharp": torch.from_numpy(sample.sharp),
            "left": torch.from_numpy(sample.left),
            "right": torch.from_numpy(sample.right),
            "defocus": torch.from_numpy(np.abs(sample.coc) * 0.5)[None],
        }
