"""Plausible random depth maps: a tilted background, layered planes and foreground blobs.

The scene need not match the photo's content; what matters for learning is that the blur varies smoothly
on surfaces, jumps at occlusion edges, and that near things occlude far things. Planes are written in
inverse depth, because a 3-D plane projects to an inverse depth that is linear in image coordinates.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=64)
def _bicubic_matrix(n: int, nodes: int) -> np.ndarray:
    """(n, nodes) weights of torch's bicubic upsampling (align_corners) of ``nodes`` samples to ``n``.

    Upsampling is linear and separable, so ``rows @ grid @ cols.T`` equals ``F.interpolate`` (to float
    rounding) at a fraction of its cost for the few-cell grids used here; the weights are read off torch
    itself by upsampling the identity along one axis (the other keeps its nodes, where cubic weights are 1).
    """
    eye = torch.eye(nodes, dtype=torch.float64)[None, None]
    return F.interpolate(eye, size=(n, nodes), mode="bicubic", align_corners=True)[0, 0].numpy()


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: a coarse random grid upsampled bicubically."""
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1))
    return (_bicubic_matrix(h, cells + 1) @ grid @ _bicubic_matrix(w, cells + 1).T).astype(np.float32)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    return np.broadcast_to(ys, (h, w)), np.broadcast_to(xs, (h, w))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Tilted plane (often a ground receding towards the top) with gentle relief."""
    y, x = _coords(h, w)
    far = math.exp(rng.uniform(math.log(3.0), math.log(60.0)))
    inv = 1.0 / far
    inv_map = inv * (1.0 + rng.uniform(0.0, 2.5) * (y + 1.0) / 2.0 + rng.uniform(-0.5, 0.5) * x)
    inv_map = np.maximum(inv_map, 1.0 / 200.0)
    relief = np.exp(0.15 * smooth_noise(rng, h, w, int(rng.integers(2, 6))))
    return (relief / inv_map).astype(np.float32)


def _half_plane(rng: np.random.Generator, h: int, w: int, depth: np.ndarray) -> np.ndarray:
    """A wall or ledge covering one side of a random line, nearer than what it covers."""
    y, x = _coords(h, w)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    offset = rng.uniform(-0.6, 0.6)
    mask = (np.cos(angle) * x + np.sin(angle) * y) > offset
    if not mask.any():
        return depth
    base = float(np.median(depth[mask])) * rng.uniform(0.3, 0.85)
    tilt = 1.0 + 0.3 * rng.uniform(-1.0, 1.0) * x + 0.3 * rng.uniform(-1.0, 1.0) * y
    plane = base / np.clip(tilt, 0.3, None)
    return np.where(mask, np.minimum(depth, plane), depth).astype(np.float32)


def _blob(rng: np.random.Generator, h: int, w: int, depth: np.ndarray) -> np.ndarray:
    """An object: a wobbly rounded shape with a slightly domed surface, in front of what is behind it."""
    y, x = _coords(h, w)
    cy, cx = rng.uniform(-0.8, 0.8, size=2)
    ry, rx = rng.uniform(0.12, 0.6, size=2)
    r2 = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    wobble = 0.35 * smooth_noise(rng, h, w, int(rng.integers(3, 8)))
    mask = r2 + wobble < 1.0
    if not mask.any():
        return depth
    behind = float(np.percentile(depth[mask], 10))
    near = behind * rng.uniform(0.15, 0.8)
    dome = near * (1.0 + 0.08 * np.clip(r2, 0.0, 1.0))
    return np.where(mask, np.minimum(depth, dome), depth).astype(np.float32)


def random_depth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Depth in metres, float32 (h, w), clipped to [0.3, 300] m so that the thin lens stays well defined."""
    depth = _background(rng, h, w)
    for _ in range(int(rng.integers(0, 3))):
        depth = _half_plane(rng, h, w, depth)
    for _ in range(int(rng.integers(0, 5))):
        depth = _blob(rng, h, w, depth)
    return np.clip(depth, 0.3, 300.0).astype(np.float32)
