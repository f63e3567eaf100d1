"""One synthetic sample from one sharp photo crop and one seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.synth.depth import random_depth
from training.synth.params import SampleParams, coc_px, draw_lens, draw_psf, draw_sensor
from training.synth.render import render_scene
from training.synth.sensor import (
    boost_highlights,
    dual_pixel_noise,
    jpeg_roundtrip,
    linear_to_srgb,
    srgb_to_linear,
)


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
    border sees real context) and then cut off.
    """
    s, m = config.source_size, config.margin
    if photo.shape != (3, s, s):
        raise ValueError(f"photo crop must be (3, {s}, {s}), got {photo.shape}")
    rng = np.random.default_rng(seed)
    depth = random_depth(rng, s, s)
    lens = draw_lens(rng, depth[m:-m, m:-m], max_coc=config.max_coc)
    psf = draw_psf(rng)
    sensor = draw_sensor(rng, jpeg_prob=config.jpeg_prob)
    coc = np.clip(coc_px(depth, lens), -config.max_coc, config.max_coc)
    scene = boost_highlights(srgb_to_linear(photo), sensor.highlight_gain)
    rendered = render_scene(scene, coc, psf, n_layers=config.n_layers, pad=False)
    inner = (slice(None), slice(m, -m), slice(m, -m))
    left, right = dual_pixel_noise(
        rendered.left[inner], rendered.right[inner], rng, shot=sensor.shot, read=sensor.read
    )
    views = [linear_to_srgb(v) for v in (0.5 * (left + right), left, right)]
    if sensor.jpeg_quality is not None:
        views = [jpeg_roundtrip(v, sensor.jpeg_quality) for v in views]
    params = SampleParams(seed=seed, lens=lens, psf=psf, sensor=sensor, n_layers=len(rendered.layer_cocs))
    return Sample(
        blurred=views[0],
        sharp=linear_to_srgb(scene[:, m:-m, m:-m]),
        left=views[1],
        right=views[2],
        coc=np.ascontiguousarray(coc[m:-m, m:-m]),
        disparity=np.ascontiguousarray(rendered.disparity[m:-m, m:-m]),
        depth=np.ascontiguousarray(depth[m:-m, m:-m]),
        params=params,
    )
