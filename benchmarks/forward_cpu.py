"""Each network's forward on the CPU (fp32): plain eager against the optimised path every method runs.

"eager" is the architecture as written (NCHW, default layout); "optimised" is what ``load_method`` returns,
i.e. exactly what ``defocus deblur`` and the Python API run (channels_last on the CPU, see
``deblurcli/engine/device.py``). Both share the same random weights and input; they run interleaved in one
process (so machine load hits both alike) and the medians of ``--repeat`` timed forwards after one warm-up
are reported, with the max abs difference of their outputs (must stay <= 1e-5).

GFLOP/s is 2 x MACs (our counter, deblurcli/bench/macs.py) / seconds, set against the peak of a large fp32
matmul measured in the same run. Every network runs in a fresh subprocess so that its peak RSS is its own
(the figure covers both paths). ``--profile`` adds a torch.profiler breakdown of one optimised forward:
the operators by share of time, and the convolutions by input shape with their own GFLOP/s, which says
which layers hold a network below the matmul peak.

    python benchmarks/forward_cpu.py [--height 720 --width 1280] [--repeat 3] [--methods ifan,drbnet,...]
        [--profile]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from deblurcli.bench.macs import count_macs
from deblurcli.methods.loader import load_method
from deblurcli.methods.registry import get_method
from deblurcli.methods.spec import MethodSpec

NETWORKS = ("refocus", "ifan", "drbnet", "dmsft", "kpac")
#: rows of each profile table
TOP = 10


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


def _image(spec: MethodSpec, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return spec.run(module, x)["image"]


def operator_profile(spec: MethodSpec, module: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """One profiled forward: operators by self time, and each convolution shape's time and GFLOP/s."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        _image(spec, module, x)
    by_op = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in by_op) / 1e6
    ops = [
        {"op": e.key, "seconds": e.self_cpu_time_total / 1e6, "calls": e.count}
        for e in sorted(by_op, key=lambda e: -e.self_cpu_time_total)[:TOP]
    ]
    convs = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in ("aten::conv2d", "aten::conv_transpose2d"):
            continue
        seconds = e.cpu_time_total / 1e6
        shapes = [s for s in e.input_shapes[:2] if s]
        flops = e.flops
        if e.key == "aten::conv_transpose2d" and len(shapes) == 2:  # the profiler counts no flops for these
            (n, cin, h, w), (_, cout, kh, kw) = shapes
            flops = 2 * n * cin * h * w * cout * kh * kw * e.count
        convs.append(
            {
                "op": e.key.removeprefix("aten::"),
                "shapes": shapes,
                "calls": e.count,
                "seconds": seconds,
                "gflops": flops / seconds / 1e9 if flops and seconds else 0.0,
            }
        )
    convs.sort(key=lambda c: -c["seconds"])
    return {"total": total, "ops": ops, "convs": convs[:TOP]}


def child(name: str, height: int, width: int, repeat: int, with_profile: bool) -> dict[str, Any]:
    """Runs in its own process: both paths, one warm-up each, then ``repeat`` interleaved timed forwards."""
    torch.manual_seed(0)
    loaded = load_method(name, device=torch.device("cpu"), random_weights_for_testing=True)
    spec, fast = loaded.spec, loaded.module
    assert fast is not None
    plain = spec.cls(**loaded.hparams).eval().requires_grad_(False)  # type: ignore[misc]
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(1, 3, height, width)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times: dict[str, list[float]] = {"eager": [], "optimised": []}
    with torch.inference_mode():
        diff = (_image(spec, plain, x) - _image(spec, fast, x)).abs().max().item()
        for _ in range(repeat):
            for label, module in (("eager", plain), ("optimised", fast)):
                start = time.perf_counter()
                _image(spec, module, x)
                times[label].append(time.perf_counter() - start)
        result: dict[str, Any] = {k: statistics.median(v) for k, v in times.items()}
        result["runs"] = times
        result["max_abs_diff"] = diff
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["extra_rss_mb"] = result["peak_rss_mb"] - base
        if with_profile:
            result["profile"] = operator_profile(spec, fast, x)
    return result


def print_profile(name: str, prof: dict[str, Any], peak: float) -> None:
    print(f"\n#### {name}: one optimised forward, {prof['total']:.2f} s of operator time")
    print("| operator (self time) | calls | seconds | share |\n|---|---|---|---|")
    for row in prof["ops"]:
        print(f"| {row['op']} | {row['calls']} | {row['seconds']:.3f} | {100 * row['seconds'] / prof['total']:.1f}% |")
    print("| convolution (input, weight) | calls | seconds | share | GFLOP/s | % of matmul peak |")
    print("|---|---|---|---|---|---|")
    for c in prof["convs"]:
        shapes = " ".join("x".join(map(str, s)) for s in c["shapes"])
        print(
            f"| {c['op']} {shapes} | {c['calls']} | {c['seconds']:.3f} | {100 * c['seconds'] / prof['total']:.1f}% "
            f"| {c['gflops']:.1f} | {100 * c['gflops'] / peak:.0f}% |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=3, help="timed forwards per path (median reported)")
    parser.add_argument("--methods", default=",".join(NETWORKS))
    parser.add_argument("--profile", action="store_true", help="add a per-operator profile of each network")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.height, args.width, args.repeat, args.profile)))
        return
    peak = matmul_peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, matmul peak {peak:.1f} GFLOP/s")
    print(f"input 1x3x{args.height}x{args.width}, fp32, median of {args.repeat} interleaved runs after one warm-up")
    print(
        "| network | GMACs | eager s | optimised s | ratio | eager GFLOP/s | opt GFLOP/s | opt % of peak "
        "| max abs diff | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    profiles: dict[str, dict[str, Any]] = {}
    for name in args.methods.split(","):
        spec = get_method(name)
        macs = count_macs(lambda spec=spec: spec.cls(**spec.hparams), spec.run, args.height, args.width)
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--height",
            str(args.height),
            "--width",
            str(args.width),
            "--repeat",
            str(args.repeat),
        ] + (["--profile"] if args.profile else [])
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        eager, fast = 2 * macs / result["eager"] / 1e9, 2 * macs / result["optimised"] / 1e9
        print(
            f"| {name} | {macs / 1e9:.1f} | {result['eager']:.2f} | {result['optimised']:.2f} "
            f"| {result['optimised'] / result['eager']:.2f} | {eager:.1f} | {fast:.1f} | {100 * fast / peak:.0f}% "
            f"| {result['max_abs_diff']:.1e} | {result['peak_rss_mb']:.0f} |",
            flush=True,
        )
        if "profile" in result:
            profiles[name] = result["profile"]
    for name, prof in profiles.items():
        print_profile(name, prof, peak)


if __name__ == "__main__":
    main()
