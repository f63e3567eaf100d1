"""The benchmark protocol: every method on every pair, quality, speed and memory measured the same way.

Protocol (README "Benchmark protocol"): inputs as the set stores them (8- or 16-bit, decoded by dtype); the
size rule met by reflect padding inside the tiler, never by cropping; metrics on the clipped float output
before any quantisation; the first image of each method is run once untimed (warm-up: allocator, kernels,
thread pools); time is wall time per image, which includes device synchronisation because outputs are
copied to the CPU; peak memory is CUDA max-allocated, or the process's peak RSS reset before each method.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deblurcli.bench.macs import count_macs
from deblurcli.bench.metrics import mae, psnr, ssim
from deblurcli.bench.sheet import ContactSheet
from deblurcli.datasets import Pair
from deblurcli.errors import DataError
from deblurcli.io.decode import decode
from deblurcli.io.encode import encode
from deblurcli.io.photo import Photo
from deblurcli.methods.loader import LoadedMethod
from deblurcli.pipeline import DeblurOptions, deblur_photo

MACS_SIZE = (720, 1280)


@dataclass
class ImageScore:
    """One method on one pair."""

    method: str
    name: str
    psnr: float
    ssim: float
    mae: float
    seconds: float
    lpips: float | None = None


@dataclass
class MethodSummary:
    """Means over a dataset plus the method's cost figures."""

    method: str
    images: int
    psnr: float
    ssim: float
    mae: float
    lpips: float | None
    seconds_per_image: float
    peak_memory_mb: float
    params: int
    gmacs_1280x720: float | None
    tile: str
    weights: str | None
    per_image: list[ImageScore] = field(default_factory=list)


def _as_chw(photo: Photo) -> torch.Tensor:
    pixels = np.clip(photo.pixels, 0.0, 1.0)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):  # Linux: "5" resets the peak RSS (VmHWM) of this process
            Path("/proc/self/clear_refs").write_text("5")


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    try:
        import resource  # POSIX only
    except ImportError:  # Windows: no portable peak-RSS reading without another dependency
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS reports bytes, Linux kB


def _macs(method: LoadedMethod) -> float | None:
    spec = method.spec
    if spec.cls is None:
        return None
    try:
        macs = count_macs(lambda: spec.cls(**method.hparams), spec.run, *MACS_SIZE)  # type: ignore[misc]
    except (RuntimeError, NotImplementedError, TypeError):  # an op without a meta kernel: report none
        return None
    return macs / 1e9


LpipsFn = Callable[[torch.Tensor, torch.Tensor], float]


def _score(method: str, name: str, output: torch.Tensor, target: torch.Tensor, seconds: float,
           lpips: LpipsFn | None) -> ImageScore:
    return ImageScore(
        method=method, name=name, psnr=psnr(output, target), ssim=ssim(output, target), mae=mae(output, target),
        seconds=seconds, lpips=lpips(output, target) if lpips is not None else None,
    )


def _load_pair(pair: Pair, max_pixels: int, sheet: ContactSheet | None = None) -> tuple[Photo, torch.Tensor]:
    """The decoded input and the target tensor, refusing pairs whose sizes differ."""
    source = decode(pair.source, max_pixels=max_pixels)
    target_photo = decode(pair.target, max_pixels=max_pixels)
    target = _as_chw(target_photo)
    if source.pixels.shape[:2] != tuple(target.shape[1:]):
        sizes = f"{source.pixels.shape[:2]} vs {tuple(target.shape[1:])}"
        raise DataError(f"{pair.name}: input and target sizes differ ({sizes})")
    if sheet is not None:
        sheet.choose(pair.name, source, target_photo)
    return source, target


def _summarise(method: str, scores: list[ImageScore], *, peak_mb: float = 0.0, params: int = 0,
               gmacs: float | None = None, tile: str = "-", weights: str | None = None) -> MethodSummary:
    """Means over the images; PSNR averages the finite values (identical pairs give inf)."""
    finite = [s.psnr for s in scores if math.isfinite(s.psnr)]
    lpips = [s.lpips for s in scores if s.lpips is not None]
    return MethodSummary(
        method=method,
        images=len(scores),
        psnr=float(np.mean(finite)) if finite else math.inf,
        ssim=float(np.mean([s.ssim for s in scores])),
        mae=float(np.mean([s.mae for s in scores])),
        lpips=float(np.mean(lpips)) if lpips else None,
        seconds_per_image=float(np.mean([s.seconds for s in scores])),
        peak_memory_mb=round(peak_mb, 1),
        params=params,
        gmacs_1280x720=gmacs,
        tile=tile,
        weights=weights,
        per_image=scores,
    )


def bench_method(
    method: LoadedMethod,
    pairs: list[Pair],
    opts: DeblurOptions,
    *,
    save_dir: Path | None = None,
    lpips: LpipsFn | None = None,
    on_image: Callable[[str], None] | None = None,
    sheet: ContactSheet | None = None,
) -> MethodSummary:
    """Score one loaded method on ``pairs`` (see the module docstring for the protocol)."""
    name = method.spec.name
    scores: list[ImageScore] = []
    _reset_peak(method.device)
    for i, pair in enumerate(pairs):
        source, target = _load_pair(pair, opts.max_pixels)
        if i == 0:
            deblur_photo(source, method, opts)  # warm-up, untimed
        start = time.perf_counter()
        result, _maps, _prov = deblur_photo(source, method, opts)
        seconds = time.perf_counter() - start
        scores.append(_score(name, pair.name, _as_chw(result), target, seconds, lpips))
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            encode(result, save_dir / f"{pair.name}.png", fmt="png", bit_depth=8)
        if sheet is not None:
            default = method.weights_id in (None, "random-for-testing", *method.spec.weights[:1])
            sheet.add(name if default else f"{name} ({method.weights_id})", pair.name, result)
        if on_image is not None:
            on_image(pair.name)
    module = method.module
    tile = opts.tile if opts.tile is not None else method.spec.default_tile
    overlap = opts.overlap if opts.overlap is not None else method.spec.receptive_field
    return _summarise(
        name,
        scores,
        peak_mb=_peak_mb(method.device),
        params=sum(p.numel() for p in module.parameters()) if module is not None else 0,
        gmacs=_macs(method),
        tile=f"{tile}/{overlap}",
        weights=method.weights_id,
    )


def score_input(
    pairs: list[Pair], *, max_pixels: int, lpips: LpipsFn | None = None, sheet: ContactSheet | None = None
) -> MethodSummary:
    """The blurred inputs themselves, scored like a method: the baseline every paper's table starts with.

    With ``sheet``, this is also where each pair's crop window is chosen (input and target are both at hand).
    """
    scores = []
    for pair in pairs:
        source, target = _load_pair(pair, max_pixels, sheet)
        scores.append(_score("input", pair.name, _as_chw(source), target, 0.0, lpips))
    return _summarise("input", scores)
