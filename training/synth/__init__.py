"""Physically based synthetic defocus: sharp photo in, blurred/DP/CoC training sample out.

Real defocus datasets cannot be downloaded everywhere, so we render defocus ourselves from real sharp photos:
random layered depth, thin-lens circle of confusion, lens-like PSFs (soft disc, rim, blades, cat's eye,
lateral chroma), dual-pixel half-aperture views, occlusion-aware layered compositing in linear light, then
sensor noise, sRGB and optional JPEG. Every sample is a pure function of (photo, seed). ``render_batch``
renders a batch at once on any torch device; ``make_sample`` is a batch of one on the CPU.
"""

from __future__ import annotations

from training.synth.params import LensParams, PsfParams, SampleParams, SensorParams
from training.synth.render import Rendered, render_scene
from training.synth.sample import Sample, SampleBatch, Scene, SynthConfig, draw_scene, make_sample, render_batch

__all__ = [
    "LensParams",
    "PsfParams",
    "Rendered",
    "Sample",
    "SampleBatch",
    "SampleParams",
    "Scene",
    "SensorParams",
    "SynthConfig",
    "draw_scene",
    "make_sample",
    "render_batch",
    "render_scene",
]
