"""Seconds per megapixel of tile (context included) against tile edge, per method, for ``--tile auto``.

``--tile auto`` minimises (tile area the grid feeds the method) x (seconds per tile megapixel at that edge)
within the memory budget; this benchmark measures the second factor, recorded per method as
``MethodSpec.tile_speed``. On a shared machine absolute times drift, so every edge of one method is timed in
the same process, interleaved (round-robin over edges, ``--repeat`` rounds, median per edge), and the result
is also given relative to the method's fastest edge. Weights are random (speed does not depend on them).

``--memory`` instead runs one forward per (method, edge) in a fresh process and reports the peak-RSS growth
per input pixel (ru_maxrss after minus RSS before), the figure ``MethodSpec.bytes_per_pixel`` holds.

    python benchmarks/tile_speed.py --methods refocus,classic,ifan,kpac,drbnet --edges 256,512,768 --repeat 3
    python benchmarks/tile_speed.py --memory --methods refocus,classic --edges 512,1024
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from deblurcli.methods.registry import get_method


def _build(name: str) -> tuple[object, torch.nn.Module | None]:
    spec = get_method(name)
    torch.manual_seed(0)
    model = spec.cls(**spec.hparams).eval() if spec.cls is not None else None
    return spec, model


def speed(name: str, edges: list[int], repeat: int) -> dict[int, float]:
    """Median seconds per tile megapixel for each edge, edges interleaved round by round."""
    spec, model = _build(name)
    inputs = {e: torch.rand(1, 3, e, e) for e in edges}
    times: dict[int, list[float]] = {e: [] for e in edges}
    with torch.inference_mode():
        spec.run(model, inputs[edges[0]])  # warm-up (allocator, oneDNN primitive cache)
        for _ in range(repeat):
            for e in edges:
                start = time.perf_counter()
                spec.run(model, inputs[e])
                times[e].append((time.perf_counter() - start) / (e * e / 1e6))
    return {e: statistics.median(v) for e, v in times.items()}


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(name: str, edge: int) -> float:
    """Peak-RSS growth per input pixel of one forward at ``edge`` x ``edge`` (run in a fresh process)."""
    spec, model = _build(name)
    x = torch.rand(1, 3, edge, edge)
    before = _rss_bytes()
    with torch.inference_mode():
        spec.run(model, x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return (peak - before) / (edge * edge)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="refocus,classic,ifan,kpac,drbnet")
    ap.add_argument("--edges", default="256,512,768")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="peak RSS per pixel instead of speed")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(memory_child(args.child[0], int(args.child[1]))))
        return
    edges = [int(e) for e in args.edges.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), fp32 CPU", flush=True)
    if args.memory:
        print("| method | edge | peak RSS growth, B per input px |\n|---|---|---|", flush=True)
        for name in args.methods.split(","):
            for e in edges:
                cmd = [sys.executable, __file__, "--child", name, str(e)]
                bpp = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                print(f"| {name} | {e} | {bpp:.0f} |", flush=True)
        return
    print("| method | " + " | ".join(f"{e} px s/MP (rel)" for e in edges) + " |")
    print("|---|" + "---|" * len(edges), flush=True)
    for name in args.methods.split(","):
        result = speed(name, edges, args.repeat)
        best = min(result.values())
        cells = " | ".join(f"{result[e]:.2f} ({result[e] / best:.2f})" for e in edges)
        print(f"| {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
