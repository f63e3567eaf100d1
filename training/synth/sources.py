"""Sharp source photos: discovery, downscaling and a local sharpness mask to avoid the photos' own bokeh.

Wallpaper photos often have deliberate shallow depth of field; using their blurred regions as "sharp"
targets would teach a network to keep blur. Each photo is downscaled (which also sharpens it) and cut into
32-px blocks:

* a block is **sharp** if the variance of its 4-neighbour Laplacian on 0-255 grey is above
  ``SHARP_LAPLACIAN_VAR`` = 100 (the threshold used in shared/research/data_sources.md);
* a block is **flat** if the grey standard deviation is below ``FLAT_STD`` = 4: sky or walls, where blur
  changes nothing, so they are harmless;
* any other block is **suspect** (smooth gradients with texture missing: likely real bokeh).

A crop window is accepted when at most ``MAX_SUSPECT`` = 10 % of the blocks it touches are suspect and at
least ``MIN_SHARP`` = 30 % are sharp (all-flat crops of sky or walls teach nothing about deblurring).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from deblurcli.errors import DataError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
BLOCK = 32
SHARP_LAPLACIAN_VAR = 100.0
FLAT_STD = 4.0
MAX_SUSPECT = 0.10
MIN_SHARP = 0.30
SHORT_SIDES = (1024, 640)  # each photo is used at two scales for variety of texture size


def find_photos(dirs: list[Path]) -> list[Path]:
    """Every image file under the given folders (or the files themselves), sorted for determinism."""
    found: set[Path] = set()
    for d in dirs:
        if d.is_file():
            found.add(d)
        elif d.is_dir():
            found.update(p for p in d.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        else:
            raise DataError(f"source folder does not exist: {d}")
    return sorted(found)


def block_classes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sharp, suspect) boolean (h // 32, w // 32) block maps of a uint8 (h, w, 3) photo."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = np.zeros_like(grey)
    lap[1:-1, 1:-1] = (
        grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    )
    bh, bw = grey.shape[0] // BLOCK, grey.shape[1] // BLOCK
    blocks = (slice(0, bh * BLOCK), slice(0, bw * BLOCK))
    lap_b = lap[blocks].reshape(bh, BLOCK, bw, BLOCK)
    grey_b = grey[blocks].reshape(bh, BLOCK, bw, BLOCK)
    sharp = lap_b.var(axis=(1, 3)) > SHARP_LAPLACIAN_VAR
    flat = grey_b.std(axis=(1, 3)) < FLAT_STD
    return sharp, ~(sharp | flat)


def suspect_blocks(rgb: np.ndarray) -> np.ndarray:
    """Blocks that are neither sharp nor flat: likely the photo's own defocus blur."""
    return block_classes(rgb)[1]


@dataclass(frozen=True)
class ScaledPhoto:
    """A downscaled photo and the top-left block coordinates of its acceptable crop windows."""

    path: Path
    rgb: np.ndarray  # uint8 (h, w, 3)
    windows: np.ndarray  # (n, 2) block indices


def _window_sums(blocks: np.ndarray, n: int) -> np.ndarray:
    integral = np.pad(blocks.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return integral[n:, n:] - integral[:-n, n:] - integral[n:, :-n] + integral[:-n, :-n]


def _windows(sharp: np.ndarray, suspect: np.ndarray, nblocks: int) -> np.ndarray:
    """Block positions of nblocks x nblocks windows that pass the MAX_SUSPECT and MIN_SHARP rules."""
    bh, bw = suspect.shape
    if bh < nblocks or bw < nblocks:
        return np.zeros((0, 2), dtype=np.int64)
    area = nblocks * nblocks
    ok = (_window_sums(suspect, nblocks) <= MAX_SUSPECT * area) & (
        _window_sums(sharp, nblocks) >= MIN_SHARP * area
    )
    return np.argwhere(ok)


def load_scaled(path: Path, short_side: int, crop: int) -> ScaledPhoto | None:
    """Open, drop greyscale photos, downscale to ``short_side`` and find windows for ``crop``-px crops."""
    try:
        with Image.open(path) as im:
            if im.mode in ("L", "I;16", "I", "1", "LA"):
                return None
            im = im.convert("RGB")
            scale = short_side / min(im.size)
            if scale < 1.0:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            rgb = np.asarray(im, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"cannot read source photo {path}: {err}") from err
    nblocks = -(-crop // BLOCK)
    return ScaledPhoto(path=path, rgb=rgb, windows=_windows(*block_classes(rgb), nblocks))


class PhotoPool:
    """All usable (photo, scale) pairs; draws sharp crops deterministically from a numpy Generator."""

    def __init__(self, paths: list[Path], crop: int) -> None:
        self.crop = crop
        self.items: list[ScaledPhoto] = []
        for path in paths:
            shapes: set[tuple[int, ...]] = set()
            for side in SHORT_SIDES:
                item = load_scaled(path, side, crop)
                if item is not None and len(item.windows) and item.rgb.shape not in shapes:
                    shapes.add(item.rgb.shape)
                    self.items.append(item)
        if not self.items:
            raise DataError(f"no source photo has a sharp {crop}x{crop} region (checked {len(paths)} files)")

    @property
    def photos(self) -> list[Path]:
        return sorted({item.path for item in self.items})

    def draw(self, rng: np.random.Generator, allowed: set[Path] | None = None) -> tuple[np.ndarray, dict]:
        """A (3, crop, crop) float sRGB crop in [0, 1] plus where it came from (for the JSON sidecar)."""
        items = [it for it in self.items if allowed is None or it.path in allowed]
        item = items[int(rng.integers(len(items)))]  # uniform over (photo, scale): big photos do not dominate
        by, bx = item.windows[int(rng.integers(len(item.windows)))]
        span = -(-self.crop // BLOCK) * BLOCK
        y = min(by * BLOCK + int(rng.integers(span - self.crop + 1)), item.rgb.shape[0] - self.crop)
        x = min(bx * BLOCK + int(rng.integers(span - self.crop + 1)), item.rgb.shape[1] - self.crop)
        patch = item.rgb[y : y + self.crop, x : x + self.crop]
        flip = bool(rng.uniform() < 0.5)
        if flip:
            patch = patch[:, ::-1]
        info = {
            "photo": str(item.path),
            "scaled_hw": list(item.rgb.shape[:2]),
            "y": int(y),
            "x": int(x),
            "flip": flip,
        }
        return (patch.astype(np.float32) / 255.0).transpose(2, 0, 1).copy(), info
