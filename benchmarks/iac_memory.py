"""Time and peak memory of IFAN's IAC (shifted views vs ``F.unfold``) and of the whole network, on CPU.

Each case runs in a fresh subprocess so that ``ru_maxrss`` (the process's peak resident set) belongs to it
alone; torch's CPU allocations show up there. "setup" is the peak after building the inputs (and, for the
IAC cases, the 15232-channel filter tensor; for the network cases, the weights), "extra" the additional peak
the measured call needed ("extra B/px" per input pixel: the figure behind ``SPEC.bytes_per_pixel``).

    python benchmarks/iac_memory.py                 # 1280x720, all cases
    python benchmarks/iac_memory.py --size 640x360 --cases iac-views iac-unfold
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
CASES = ("iac-views", "iac-unfold", "net-forward", "net-forward-with-filters")


def iac_unfold(features: Tensor, filters: Tensor, *, iterations: int, kernel_size: int = 3) -> Tensor:
    """Straightforward reference IAC: im2col (``F.unfold``) each pass, multiply, sum over taps.

    Kept out of the library on purpose: it materialises k copies of the features per pass. ``F.unfold``
    orders its rows channel-major then tap, which is exactly the filter tensor's ``channel * k + tap``.
    """
    b, c, h, w = features.shape
    k, r = kernel_size, kernel_size // 2
    out = features
    for i in range(iterations):
        start = i * 2 * c * k
        taps = filters[:, start : start + c * k].reshape(b, c, k, h * w)
        bstart = iterations * 2 * c * k + i * c
        bias = filters[:, bstart : bstart + c]
        cols = F.unfold(F.pad(out, (0, 0, r, r), mode="replicate"), (k, 1)).view(b, c, k, h * w)
        vert = (cols * taps).sum(2).view(b, c, h, w)
        cols = F.unfold(F.pad(vert, (r, r, 0, 0), mode="replicate"), (1, k)).view(b, c, k, h * w)
        out = F.leaky_relu((cols * taps).sum(2).view(b, c, h, w) + bias, 0.1)
    return out


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(case: str, height: int, width: int) -> dict[str, float]:
    """Run one case in this process and return its measurements."""
    sys.path.insert(0, str(ROOT))
    from deblurcli.archs.iac import filter_channels, iac
    from deblurcli.archs.ifan import IFAN

    torch.manual_seed(0)
    base = _maxrss_bytes()
    with torch.inference_mode():
        if case.startswith("iac"):
            h8, w8 = height // 8, width // 8
            feats = torch.randn(1, 128, h8, w8)
            filters = torch.randn(1, filter_channels(channels=128, iterations=17), h8, w8).mul_(0.3)
            fn = iac if case == "iac-views" else iac_unfold
            call = lambda: fn(feats, filters, iterations=17)  # noqa: E731
        else:
            net = IFAN().eval()
            image = torch.rand(1, 3, height, width)
            call = (lambda: net(image)) if case == "net-forward" else (lambda: net.forward_with_filters(image))
        setup = _maxrss_bytes()
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
    peak = _maxrss_bytes()
    return {
        "seconds": seconds,
        "base_mb": base / 1e6,
        "setup_mb": setup / 1e6,
        "peak_mb": peak / 1e6,
        "extra_mb": (peak - setup) / 1e6,
        "extra_per_px": (peak - setup) / (height * width),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT, multiples of 8")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(child(args.child, height, width)))
        return
    print(f"IFAN on CPU at {width}x{height}, fp32, {torch.get_num_threads()} threads")
    print(f"{'case':<26}{'time s':>8}{'import MB':>10}{'setup MB':>10}{'peak MB':>9}{'extra MB':>10}"
          f"{'extra B/px':>12}")
    for case in args.cases:
        cmd = [sys.executable, __file__, "--size", args.size, "--child", case]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"{case:<26}{res['seconds']:>8.2f}{res['base_mb']:>10.0f}{res['setup_mb']:>10.0f}"
              f"{res['peak_mb']:>9.0f}{res['extra_mb']:>10.0f}{res['extra_per_px']:>12.0f}")


if __name__ == "__main__":
    main()
