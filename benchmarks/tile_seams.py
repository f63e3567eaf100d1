"""How far a tiled run of a deep network is from its full-frame run, by overlap.

The tiler is exact for overlap >= receptive field (tests/test_tiling.py), but IFAN's and DRBNet's theoretical
receptive fields are hundreds of pixels; what matters is the error at practical overlaps. Weights are the
deterministic "key-seeded fill" of shared/reference/README.md (gain 1.0 for IFAN, 0.7 for DRBNet), which
reproduces the authors' reference tensors, on a real photo (scikit-image's astronaut).

    python benchmarks/tile_seams.py [--size 512] [--tile 384] [--overlaps 32,64,96] [--methods ifan,drbnet]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from deblurcli.archs.reference import key_seeded_state
from deblurcli.engine.tiling import run_tiled
from deblurcli.methods.registry import get_method


def key_seeded(module: torch.nn.Module, gain: float) -> None:
    """Fill every tensor from its own name, as the reference tensors were made."""
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    module.load_state_dict(key_seeded_state(shapes, gain=gain))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", type=int, default=384)
    parser.add_argument("--overlaps", default="32,64,96", help="comma-separated overlaps to try")
    parser.add_argument("--methods", default="ifan,drbnet")
    args = parser.parse_args()
    from skimage import data

    img = torch.from_numpy(data.astronaut()[: args.size, : args.size].astype(np.float32) / 255).permute(2, 0, 1)[None]
    print(f"photo {tuple(img.shape[-2:])}, tile {args.tile}")
    print("| method | overlap | max abs error | mean abs error | PSNR tiled vs full (dB) |")
    print("|---|---|---|---|---|")
    gains = {"ifan": 1.0, "drbnet": 0.7}
    for name in args.methods.split(","):
        gain = gains[name]
        spec = get_method(name)
        torch.manual_seed(0)
        model = spec.cls(**spec.hparams).eval()
        key_seeded(model, gain)

        def fn(t: torch.Tensor, model: torch.nn.Module = model, spec=spec) -> dict[str, torch.Tensor]:  # noqa: ANN001
            with torch.inference_mode():
                return {"image": spec.run(model, t)["image"]}

        full = run_tiled(fn, img, tile=None, overlap=0, multiple_of=spec.multiple_of)["image"].clamp(0, 1)
        for overlap in (int(o) for o in args.overlaps.split(",")):
            if args.tile - 2 * overlap < spec.multiple_of:
                continue
            tiled = run_tiled(fn, img, tile=args.tile, overlap=overlap, multiple_of=spec.multiple_of,
                              receptive_field=overlap // 2)["image"].clamp(0, 1)
            err = (tiled - full).abs()
            mse = float((err**2).mean())
            db = math.inf if mse == 0 else 10 * math.log10(1 / mse)
            print(f"| {name} | {overlap} | {err.max():.2e} | {err.mean():.2e} | {db:.1f} |")


if __name__ == "__main__":
    main()
