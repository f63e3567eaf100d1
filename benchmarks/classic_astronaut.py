"""How much the weightless ``classic`` method recovers from known disc blur on a real photo.

Scikit-image's astronaut (512x512) is blurred in linear light with a supersampled uniform disc (built here,
independently of the method's own kernel), re-encoded to sRGB and quantised to 8 bit, then deblurred with
``classic`` (or, with ``--method``, any method's network) on the whole frame. Rows: radius 0 (the sharp
photo itself: how much damage), uniform radii, and a spatially varying case (left half r=2, right half r=6).
PSNR as in field.md section 7 (RGB in [0, 1], whole image); SSIM via scikit-image when it is installed.
``--noise N`` adds seeded Gaussian noise of N/255 in sRGB before the 8-bit quantisation (a high-ISO photo:
noise steepens fine gradients, so ``classic``'s map reads a noisy blur as sharper than it is).

No method is trained on the astronaut, so ``--method refocus --weights FILE`` is a held-out check of a
checkpoint on a real photo with known blur, and its radius-0 row is the damage it does to a sharp photo.

    python benchmarks/classic_astronaut.py [--threads N] [--noise 6] [--method refocus --weights FILE]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import deblurcli
from deblurcli.methods.classic import linear_to_srgb, srgb_to_linear


def disc(radius: float, supersample: int = 16) -> torch.Tensor:
    """Uniform disc PSF with exact-ish pixel coverage, summing to 1."""
    k = math.ceil(radius)
    n = (2 * k + 1) * supersample
    t = (np.arange(n) + 0.5) / supersample - (k + 0.5)
    inside = (t[:, None] ** 2 + t[None, :] ** 2 <= radius * radius).astype(np.float64)
    cover = inside.reshape(2 * k + 1, supersample, 2 * k + 1, supersample).mean(axis=(1, 3))
    return torch.from_numpy(cover / cover.sum()).float()


def blur_srgb8(sharp: torch.Tensor, radius: float, noise: float = 0.0) -> torch.Tensor:
    """Disc blur in linear light, back to 8-bit sRGB with Gaussian noise of ``noise``/255 (seeded by the
    radius, so every run sees the same noise); radius 0 without noise returns the photo unchanged."""
    srgb = sharp
    if radius:
        kernel = disc(radius)
        p = kernel.shape[0] // 2
        lin = F.pad(srgb_to_linear(sharp), (p, p, p, p), mode="reflect")
        srgb = linear_to_srgb(F.conv2d(lin, kernel[None, None].expand(3, 1, -1, -1).contiguous(), groups=3))
    if noise:
        gen = torch.Generator().manual_seed(round(radius * 100))
        srgb = srgb + torch.randn(srgb.shape, generator=gen) * noise / 255
    elif not radius:
        return sharp
    return torch.round(srgb.clamp(0, 1) * 255) / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return float("nan")
    x, y = (t[0].permute(1, 2, 0).numpy() for t in (a, b))
    return float(structural_similarity(x, y, channel_axis=2, data_range=1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--method", default="classic", help="any --method of defocus deblur (default classic)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file for --method")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma, 8-bit sRGB levels")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = deblurcli.load_method(args.method, device="cpu", weights=args.weights).tile_fn()  # whole frame
    from skimage import data

    sharp = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    half = sharp.shape[-1] // 2
    cases = [(str(r), blur_srgb8(sharp, r, args.noise)) for r in (0, 2, 3, 4, 6, 8)]
    uniform = dict(cases)
    split = torch.cat([uniform["2"][..., :half], uniform["6"][..., half:]], dim=-1)
    cases.append(("2|6", split))
    run(sharp[..., :64, :64])  # warm-up: ratio table, allocator

    print(
        f"{'radius':>6} {'in PSNR':>8} {'out PSNR':>9} {'gain':>6} {'in SSIM':>8} {'out SSIM':>9} "
        f"{'map mean':>9} {'median':>7} {'seconds':>8}"
    )
    for name, blurred in cases:
        start = time.perf_counter()
        result = run(blurred)
        seconds = time.perf_counter() - start
        out = result["image"].clamp(0, 1)
        p_in, p_out = psnr(blurred, sharp), psnr(out, sharp)
        gain = f"{p_out - p_in:+6.2f}" if math.isfinite(p_in) else f"{'n/a':>6}"
        defocus = result.get("defocus")
        map_mean, map_median = (
            (float(defocus.mean()), float(defocus.median())) if defocus is not None else (math.nan,) * 2
        )
        print(
            f"{name:>6} {p_in:8.2f} {p_out:9.2f} {gain} {ssim(blurred, sharp):8.4f} "
            f"{ssim(out, sharp):9.4f} {map_mean:9.2f} {map_median:7.2f} {seconds:8.2f}"
        )


if __name__ == "__main__":
    main()
