"""``torch.utils.data.Dataset`` classes over the layouts in :mod:`deblurcli.datasets`.

Files are decoded by ``deblurcli.io.decode``, the same reader ``defocus`` and ``defocus bench`` use, so a
16-bit PNG keeps its 16 bits here too. Items are whole decoded images: cropping and augmentation belong to the
training engine (``training.engine.augment``), which seeds them by stream position so that resume is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deblurcli import datasets as layouts
from deblurcli.errors import DataError, PhotoError
from deblurcli.io.decode import decode
from deblurcli.io.photo import Photo

DED_MAP_SCALE = 256.0  # DED stores defocus maps as 8-bit PNG read as value / 256
SIGNED_MAP_OFFSET, SIGNED_MAP_SCALE = 32768.0, 256.0  # coc/disparity maps written by ``defocus data synth``


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as Pillow's "L" mode uses


def _decode(path: Path) -> Photo:
    """A decoding failure is a DataError naming the file: in a dataset it is bad data, not a bad photo."""
    try:
        return decode(path)
    except PhotoError as err:
        raise DataError(f"cannot decode {path}: {err}") from None


def read_image(path: Path) -> np.ndarray:
    """Float32 (3, h, w) in [0, 1] from an 8- or 16-bit PNG/JPEG/TIFF; grey becomes 3 equal channels, alpha
    is dropped."""
    pixels = _decode(path).pixels
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def read_map(path: Path) -> np.ndarray:
    """Single-channel map as stored (uint8 or uint16 values as float32 (h, w)); no scaling applied.

    Colour maps are reduced to luma, as the Pillow reader this replaces did.
    """
    photo = _decode(path)
    values = photo.pixels[:, :, 0] if photo.pixels.shape[2] == 1 else photo.pixels @ _LUMA
    if photo.bit_depth == 32:  # float TIFF: the samples are the values
        return np.ascontiguousarray(values, dtype=np.float32)
    return np.round(values * np.float32(2**photo.bit_depth - 1)).astype(np.float32)


def load_entry(entry: layouts.Entry) -> dict[str, torch.Tensor | str]:
    """Read every file of an entry; images (3, h, w) in [0, 1], maps (1, h, w); shapes must agree."""
    out: dict[str, torch.Tensor | str] = {"name": entry["input"].stem}
    for role, path in entry.items():
        if role == "defocus":
            arr = read_map(path)[None] / DED_MAP_SCALE
        elif role in ("coc", "disparity"):
            arr = (read_map(path)[None] - SIGNED_MAP_OFFSET) / SIGNED_MAP_SCALE
        else:
            arr = read_image(path)
        out[role] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    shape = out["input"].shape[-2:]
    for role, t in out.items():
        if isinstance(t, torch.Tensor) and t.shape[-2:] != shape:
            raise DataError(f"{entry[role]} is {tuple(t.shape[-2:])}, but {entry['input']} is {tuple(shape)}")
    return out


class FolderDataset(Dataset):
    """Entries of files, read on access."""

    def __init__(self, entries: list[layouts.Entry]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return load_entry(self.entries[index])


class DPDD(FolderDataset):
    """DPDD (8- or 16-bit PNG, detected per file) or a synthetic set in the same layout."""

    def __init__(
        self,
        root: Path,
        split: str = "train",
        *,
        dual: bool = True,
        maps: bool = False,
    ) -> None:
        super().__init__(layouts.dpdd(Path(root), split, dual=dual, maps=maps))


class LFDOF(FolderDataset):
    def __init__(self, root: Path) -> None:
        super().__init__(layouts.lfdof(Path(root)))


class RealDOF(FolderDataset):
    def __init__(self, root: Path) -> None:
        super().__init__(layouts.realdof(Path(root)))


class DED(FolderDataset):
    def __init__(self, root: Path) -> None:
        super().__init__(layouts.ded(Path(root)))


class CUHK(FolderDataset):
    def __init__(self, root: Path) -> None:
        super().__init__(layouts.cuhk(Path(root)))


class PixelDP(FolderDataset):
    def __init__(self, root: Path) -> None:
        super().__init__(layouts.pixeldp(Path(root)))


class PairedFolder(FolderDataset):
    def __init__(self, inputs: Path, targets: Path) -> None:
        super().__init__(layouts.paired(Path(inputs), Path(targets)))
