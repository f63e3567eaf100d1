"""Readers for real defocus datasets (and our synthetic one); augmentation is ``training.engine.augment``'s.

Every dataset is a ``torch.utils.data.Dataset`` of dicts with float tensors: ``input`` (blurred, 3xHxW in
[0, 1]) and, where the layout has them, ``target``, ``left``/``right`` (dual-pixel views), ``defocus`` (DED
map), ``coc``/``disparity`` (signed px maps from ``defocus data synth``), plus ``name``.
"""

from __future__ import annotations

from training.data.datasets import (
    CUHK,
    DED,
    DPDD,
    LFDOF,
    FolderDataset,
    PairedFolder,
    PixelDP,
    RealDOF,
)

__all__ = [
    "CUHK",
    "DED",
    "DPDD",
    "LFDOF",
    "FolderDataset",
    "PairedFolder",
    "PixelDP",
    "RealDOF",
]
