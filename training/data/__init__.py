"""Readers for real defocus datasets (and our synthetic one), plus per-paper augmentations.

Every dataset is a ``torch.utils.data.Dataset`` of dicts with float tensors: ``input`` (blurred, 3xHxW in
[0, 1]) and, where the layout has them, ``target``, ``left``/``right`` (dual-pixel views), ``defocus`` (DED
map), ``coc``/``disparity`` (signed px maps from ``defocus data synth``), plus ``name``.
"""

from __future__ import annotations

from training.data.augment import DMSFT_AUG, DRBNET_AUG, IFAN_AUG, Augment, apply_augment
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
    "DMSFT_AUG",
    "DPDD",
    "DRBNET_AUG",
    "IFAN_AUG",
    "LFDOF",
    "Augment",
    "FolderDataset",
    "PairedFolder",
    "PixelDP",
    "RealDOF",
    "apply_augment",
]
