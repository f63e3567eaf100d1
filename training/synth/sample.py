"""Synthetic samples from sharp photo crops and seeds: a batch at once on any torch device, or one.

The split follows cost. Per scene, the random draws (depth map, lens, PSF shape, sensor) stay on the CPU in
numpy: they are cheap, and keeping them there keeps the parameter distribution exactly the one
``params``/``depth`` define. Everything per pixel (layer weights, kernels, FFT blur, compositing, noise,
sRGB) runs batched in torch on the device of the photos. ``make_sample`` is a batch of one on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deblurcli.engine.color import linear_to_srgb, srgb_to_linear
from training.synth.depth import random_depth
from training.synth.params import SampleParams, coc_px, draw_lens, draw_psf, draw_sensor
from training.synth.render import layer_cocs, render_views
from training.synth.sensor import boost_highlights, dual_pixel_noise, jpeg_roundtrip


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; ``max_coc`` is the largest CoC diameter in px that a sample may reach."""

    size: int = 256
    max_coc: float = 24.0
    n_layers: int = 12
    jpeg_prob: float = 0.2

    @property
    def margin(self) -> int:
        """Context cut around the crop so that blur near its border sees real content, not padding.

        At least the largest kernel radius (soft edge and chroma included), rounded up so that the source
        size has only factors 2, 3 and 5, which keeps every FFT fast.
        """
        need = self.size + 2 * int(math.ceil(self.max_coc / 2.0 * 1.25 + 3.0))
        while not _smooth(need):
            need += 2
        return (need - self.size) // 2

    @property
    def source_size(self) -> int:
        return self.size + 2 * self.margin


def _smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


@dataclass(frozen=True)
class Scene:
    """The CPU-side draws of one sample: depth and CoC maps (S, S) with margin, layer CoCs, parameters.

    ``noise_seed`` is drawn last from the sample's generator and seeds the torch generator of its sensor
    noise, so noise is a function of the seed too, on whichever device renders it.
    """

    depth: np.ndarray
    coc: np.ndarray
    layers: np.ndarray
    params: SampleParams
    noise_seed: int


def draw_scene(seed: int, config: SynthConfig) -> Scene:
    """Depth, lens, PSF and sensor of the sample with ``seed``; the order of draws is part of the format."""
    s, m = config.source_size, config.margin
    rng = np.random.default_rng(seed)
    depth = random_depth(rng, s, s)
    lens = draw_lens(rng, depth[m:-m, m:-m], max_coc=config.max_coc)
    psf = draw_psf(rng)
    sensor = draw_sensor(rng, jpeg_prob=config.jpeg_prob)
    coc = np.clip(coc_px(depth, lens), -config.max_coc, config.max_coc)
    layers = layer_cocs(float(coc.min()), float(coc.max()), config.n_layers)
    params = SampleParams(seed=seed, lens=lens, psf=psf, sensor=sensor, n_layers=len(layers))
    return Scene(depth=depth, coc=coc, layers=layers, params=params, noise_seed=int(rng.integers(2**63 - 1)))


@dataclass(frozen=True)
class SampleBatch:
    """sRGB views (B, 3, s, s) in [0, 1] and maps (B, s, s), on the rendering device; see ``Sample``."""

    blurred: torch.Tensor
    sharp: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    coc: torch.Tensor
    disparity: torch.Tensor
    depth: torch.Tensor
    params: tuple[SampleParams, ...]


def render_batch(
    photos: torch.Tensor,
    seeds: Sequence[int],
    config: SynthConfig,
    *,
    jpeg: bool = True,
    chunk: int | None = None,
    scenes: Sequence[Scene] | None = None,
) -> SampleBatch:
    """Render B samples from sRGB crops (B, 3, S, S) in [0, 1], S = ``config.source_size``, on their device.

    Sample b depends only on ``(photos[b], seeds[b])``, not on the rest of the batch (up to float rounding of
    batched FFTs), and is reproducible on one device; CPU and CUDA draw different noise. JPEG, drawn for
    ``config.jpeg_prob`` of the samples, is a Pillow round trip on the CPU (a device-to-host copy of those
    samples); ``jpeg=False`` skips it and records ``jpeg_quality=None`` in their parameters.

    ``scenes`` are the ``draw_scene`` results of ``seeds`` if the caller drew them already (e.g. in DataLoader
    workers, while the device renders the previous batch). ``chunk`` scenes go through the layered FFT blur
    together; by default all of them on an accelerator, and one at a time on the CPU, where the FFTs are the
    cost either way and a batch's (B, 2, 3, H, W) buffers fall out of cache (batches of 8 measured 30 %
    slower per sample than one by one, benchmarks/synth_speed.py).

    Raises:
        ValueError: crops of the wrong shape, not one seed per crop, or ``scenes`` of other seeds.
    """
    s, m = config.source_size, config.margin
    if photos.ndim != 4 or tuple(photos.shape[1:]) != (3, s, s) or len(seeds) != photos.shape[0]:
        raise ValueError(f"need crops (B, 3, {s}, {s}) and B seeds, got {tuple(photos.shape)} and {len(seeds)}")
    dev = photos.device
    if scenes is None:
        scenes = [draw_scene(int(seed), config) for seed in seeds]
    elif [sc.params.seed for sc in scenes] != [int(seed) for seed in seeds]:
        raise ValueError("scenes were drawn for other seeds")
    params = [sc.params for sc in scenes]
    depth = torch.from_numpy(np.stack([sc.depth[m:-m, m:-m] for sc in scenes])).to(dev)
    coc = torch.from_numpy(np.stack([sc.coc for sc in scenes]).astype(np.float32)).to(dev)
    gain = torch.tensor([p.sensor.highlight_gain for p in params], dtype=torch.float32, device=dev)
    scene = boost_highlights(srgb_to_linear(photos.float()), gain)
    step = chunk or (1 if dev.type == "cpu" else len(scenes))
    parts = [
        render_views(
            scene[i : i + step],
            coc[i : i + step],
            [p.psf for p in params[i : i + step]],
            [sc.layers for sc in scenes[i : i + step]],
        )
        for i in range(0, len(scenes), step)
    ]
    left, right, disparity = (torch.cat(t) for t in zip(*parts, strict=True))
    left, right = left[..., m:-m, m:-m], right[..., m:-m, m:-m]
    generators = [torch.Generator(device=dev).manual_seed(sc.noise_seed) for sc in scenes]
    shot, read = [p.sensor.shot for p in params], [p.sensor.read for p in params]
    left, right = dual_pixel_noise(left, right, generators, shot=shot, read=read)
    views = torch.stack([0.5 * (left + right), left, right], dim=1)  # (B, 3 views, 3, s, s)
    views = linear_to_srgb(views)
    for b, p in enumerate(params):
        quality = p.sensor.jpeg_quality
        if quality is None:
            continue
        if not jpeg:
            params[b] = dataclasses.replace(p, sensor=dataclasses.replace(p.sensor, jpeg_quality=None))
            continue
        cpu = views[b].cpu().numpy()
        views[b] = torch.from_numpy(np.stack([jpeg_roundtrip(v, quality) for v in cpu])).to(dev)
    return SampleBatch(
        blurred=views[:, 0],
        sharp=linear_to_srgb(scene[..., m:-m, m:-m]),
        left=views[:, 1],
        right=views[:, 2],
        coc=coc[..., m:-m, m:-m],
        disparity=disparity[..., m:-m, m:-m],
        depth=depth,
        params=tuple(params),
    )


@dataclass(frozen=True)
class Sample:
    """sRGB views (3, s, s) float32 in [0, 1]; ``coc`` and ``disparity`` (s, s) in px, signed.

    ``coc`` is positive behind the focal plane; ``disparity`` is the left view's offset relative to the
    right one and has the same sign.
    """

    blurred: np.ndarray
    sharp: np.ndarray
    left: np.ndarray
    right: np.ndarray
    coc: np.ndarray
    disparity: np.ndarray
    depth: np.ndarray
    params: SampleParams


def make_sample(photo: np.ndarray, seed: int, config: SynthConfig) -> Sample:
    """Render a sample from an sRGB crop (3, S, S) in [0, 1] with S = ``config.source_size``.

    Deterministic: the same crop and seed give bit-identical output. The margin is rendered (so blur at the
    border sees real context) and then cut off. This is ``render_batch`` with a batch of one on the CPU.
    """
    s = config.source_size
    if photo.shape != (3, s, s):
        raise ValueError(f"photo crop must be (3, {s}, {s}), got {photo.shape}")
    batch = render_batch(torch.from_numpy(np.ascontiguousarray(photo, dtype=np.float32))[None], [seed], config)

    def one(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t[0].numpy())

    return Sample(
        blurred=one(batch.blurred),
        sharp=one(batch.sharp),
        left=one(batch.left),
        right=one(batch.right),
        coc=one(batch.coc),
        disparity=one(batch.disparity),
        depth=one(batch.depth),
        params=batch.params[0],
    )
