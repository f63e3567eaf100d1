"""The "key-seeded fill" of shared/reference/README.md: deterministic weights keyed by official tensor names.

With these weights our networks reproduce the tensors measured on the authors' own code, which is how the
tests prove the architectures exact without any released checkpoint; the tile-seam benchmark uses them too.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch


def key_seeded_state(shapes: Mapping[str, Sequence[int]], *, gain: float) -> dict[str, torch.Tensor]:
    """One tensor per key, from a generator seeded by crc32 of the key; ``gain`` is per network (IFAN 1.0,
    DRBNet and Restormer 0.7). Matrices are scaled by gain / sqrt(fan-in), vectors by 0.02."""
    state = {}
    for key, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        r = torch.randn(tuple(shape), generator=g, dtype=torch.float32)
        state[key] = r * (gain / math.sqrt(math.prod(shape[1:]))) if len(shape) > 1 else r * 0.02
    return state
