"""Each network's forward at 1280x720 on the CPU (fp32, all threads): seconds, peak RSS and achieved GFLOP/s.

GFLOP/s is 2 x MACs (our counter, deblurcli/bench/macs.py) / seconds, set against the peak of a large fp32
matmul measured in the same run, so the figure says how well each network uses this machine. Every network runs
in a fresh subprocess so that peak RSS is its own; weights are random (speed does not depend on them).

    python benchmarks/forward_cpu.py [--height 720 --width 1280] [--repeat 2] [--methods ifan,drbnet,...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from deblurcli.bench.macs import count_macs
from deblurcli.methods.registry import get_method

NETWORKS = ("refocus", "ifan", "drbnet", "dmsft", "kpac")


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matmul: the practical ceiling for conv-heavy networks here."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def child(name: str, height: int, width: int, repeat: int) -> dict[str, float]:
    """Runs in its own process: build, one warm-up forward, then the best of ``repeat`` timed forwards."""
    spec = get_method(name)
    torch.manual_seed(0)
    model = spec.cls(**spec.hparams).eval()  # type: ignore[misc]
    x = torch.rand(1, 3, height, width)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeat + 1):
            start = time.perf_counter()
            spec.run(model, x)
            best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": best, "peak_rss_mb": peak, "extra_rss_mb": peak - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--methods", default=",".join(NETWORKS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.height, args.width, args.repeat)))
        return
    peak = matmul_peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, matmul peak {peak:.1f} GFLOP/s")
    print(f"input 1x3x{args.height}x{args.width}, fp32, best of {args.repeat} after one warm-up")
    print("| network | params | GMACs | seconds | peak RSS MB | GFLOP/s | % of matmul peak |")
    print("|---|---|---|---|---|---|---|")
    for name in args.methods.split(","):
        spec = get_method(name)
        params = sum(p.numel() for p in spec.cls(**spec.hparams).parameters())  # type: ignore[misc]
        macs = count_macs(lambda spec=spec: spec.cls(**spec.hparams), spec.run, args.height, args.width)
        cmd = [sys.executable, __file__, "--child", name, "--height", str(args.height), "--width", str(args.width),
               "--repeat", str(args.repeat)]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        gflops = 2 * macs / result["seconds"] / 1e9
        print(f"| {name} | {params:,} | {macs / 1e9:.1f} | {result['seconds']:.2f} | {result['peak_rss_mb']:.0f} "
              f"| {gflops:.1f} | {100 * gflops / peak:.0f}% |")


if __name__ == "__main__":
    main()
