"""Choosing where and in which precision a method runs, and how large its tiles may be."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from deblurcli.engine.tiling import tiling_overhead
from deblurcli.errors import DeviceError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(name: str) -> torch.device:
    """Resolve ``auto|cpu|cuda[:N]|mps`` to a device that exists on this machine.

    Raises:
        DeviceError: the device is named but not available, so a batch does not silently run 50x slower.
    """
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: no Apple GPU (MPS) is available here")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no CUDA GPU is available (torch {torch.__version__})")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if not 0 <= index < torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


#: ``/proc/cpuinfo`` flags (x86 ``flags``, Arm ``Features``) that mean the CPU computes in that dtype itself
NATIVE_CPU_FLAGS: dict[torch.dtype, frozenset[str]] = {
    torch.bfloat16: frozenset({"avx512_bf16", "amx_bf16", "bf16"}),
    torch.float16: frozenset({"avx512_fp16", "amx_fp16", "fphp"}),
}


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags from ``/proc/cpuinfo``; empty where that file does not exist (macOS,
    Windows), which makes half precision fall back to fp32: slower than it could be there, never 100x."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return frozenset()
    flags: set[str] = set()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def cpu_has_native(dtype: torch.dtype) -> bool:
    """Whether convolutions in ``dtype`` run at least as fast as fp32 on this CPU.

    Both must agree: the CPU flags (AVX512-BF16/AMX-BF16, AVX512-FP16/AMX-FP16 or the Arm equivalents) and
    oneDNN, which PyTorch's CPU convolutions use. Without them bf16/fp16 convolutions are emulated, seen at
    about 100x slower than fp32 (kpac, 451x300: 214 s in bf16, 2.1 s in fp32).
    """
    if dtype is torch.float32:
        return True
    return bool(NATIVE_CPU_FLAGS.get(dtype, frozenset()) & cpu_flags()) and _onednn_supports(dtype)


def _onednn_supports(dtype: torch.dtype) -> bool:
    """oneDNN's own verdict on ``dtype`` (a private PyTorch op; missing means no)."""
    check = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}.get(dtype)
    if check is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return False


def inference_memory_format(device: torch.device) -> torch.memory_format:
    """The layout networks run fastest in on ``device``: channels_last (NHWC) on the CPU, where oneDNN's
    convolutions then skip the reorder of every activation (measured: kpac 0.80x the NCHW time at 640x360,
    benchmarks/forward_cpu.py); elsewhere the default layout, as nothing was measured there."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def resolve_precision(precision: str, device: torch.device, *, supports_half: bool) -> tuple[torch.dtype, str | None]:
    """Map ``fp32|fp16|bf16`` to the dtype to run in, plus a one-line notice when that is not the one asked.

    Half precision on a CPU that would only emulate it falls back to fp32 (same result, far faster) with a
    notice, rather than refusing: the user asked for speed or memory, and fp32 gives both here.

    Raises:
        DeviceError: unknown precision, half precision for an fp32-only method, or bf16 on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    dtype = PRECISIONS[precision]
    if dtype is torch.float32:
        return dtype, None
    if not supports_half:
        raise DeviceError(f"--precision {precision}: this method only runs in fp32")
    if device.type == "cpu" and not cpu_has_native(dtype):
        capability = torch.backends.cpu.get_cpu_capability()
        return torch.float32, (
            f"note: this CPU ({capability}) has no native {precision}; running in fp32, which is much faster here"
        )
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("--precision bf16: this GPU does not support bfloat16; use fp16")
    return dtype, None


def pick_dtype(precision: str, device: torch.device, *, supports_half: bool) -> torch.dtype:
    """The dtype of ``resolve_precision``, for callers that report the precision they record anyway."""
    return resolve_precision(precision, device, supports_half=supports_half)[0]


def set_cpu_threads(threads: int | None) -> None:
    """Honour ``--threads``; by default torch uses every core, which is what a photographer wants."""
    if threads is not None:
        if threads < 1:
            raise DeviceError("--threads must be at least 1")
        torch.set_num_threads(threads)


def free_memory_bytes(device: torch.device) -> int:
    """Memory a run may still take: free GPU memory, or MemAvailable on the CPU (Linux), else 4 GiB."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 4 << 30


#: memory a whole ``--tile auto`` run may take on the CPU, photo buffers included (issue 15's budget); the
#: environment variable ``DEFOCUS_CPU_BUDGET_BYTES`` overrides it, and less free memory lowers it
DEFAULT_CPU_BUDGET_BYTES = 2 * 10**9
#: share of the free memory a run may plan for, leaving the rest to the allocator's slack and other programs
FREE_SHARE = 0.8
#: whole-photo float32 buffers alive while tiles run: decoded photo, model input and assembled result (12 B per
#: pixel each) and one map (4 B). The model input is a view of the photo for sRGB colour photos (every JPEG),
#: a copy for RAW, grey and float sources; planning for the copy keeps those within the budget too. The
#: pipeline's later peak (about 50 B/px during the bokeh weight and the blend, README "Memory") does not depend
#: on the tile, so it is not the tile's business.
PHOTO_BYTES_PER_PIXEL = 40
#: RSS before the first tile: interpreter, torch, codecs and weights (benchmarks/pipeline_rss.py --stub at 1 MP
#: peaked at 0.31 GiB, photo buffers included)
BASE_BYTES = 330 * 2**20
#: the smallest core ``--tile auto`` considers: below it the context dominates every tile
MIN_CORE = 64


def memory_budget(device: torch.device) -> int:
    """Bytes a ``--tile auto`` run plans for: on a GPU most of its free memory (the photo stays on the host);
    on the CPU the default 2 GB (or ``DEFOCUS_CPU_BUDGET_BYTES``), lowered when less memory is free."""
    free = int(free_memory_bytes(device) * FREE_SHARE)
    if device.type == "cuda":
        return free
    return min(free, int(os.environ.get("DEFOCUS_CPU_BUDGET_BYTES", DEFAULT_CPU_BUDGET_BYTES)))


def relative_speed(tile_speed: Sequence[tuple[int, float]], edge: int) -> float:
    """Seconds per tile megapixel at ``edge``, relative, interpolated in the method's measured table and flat
    beyond its ends (1.0 everywhere when nothing was measured)."""
    if not tile_speed:
        return 1.0
    points = sorted(tile_speed)
    if edge <= points[0][0]:
        return points[0][1]
    for (e0, s0), (e1, s1) in zip(points[:-1], points[1:], strict=True):
        if edge <= e1:
            return s0 + (s1 - s0) * (edge - e0) / (e1 - e0)
    return points[-1][1]


def choose_tile(
    height: int,
    width: int,
    *,
    overlap: int,
    multiple_of: int,
    bytes_per_pixel: int,
    tile_speed: Sequence[tuple[int, float]],
    budget_bytes: int,
    half: bool = False,
    shares_host_memory: bool = True,
) -> int:
    """The tile edge that minimises a photo's run time within ``budget_bytes``: what ``--tile auto`` runs.

    Time is modelled as (tile area the grid feeds the method, ``tiling_overhead``) x (seconds per tile
    megapixel at that edge, ``relative_speed`` of the method's measured ``tile_speed``): larger tiles waste
    less on context, smaller ones often run faster per pixel (caches). Memory is the method's
    ``bytes_per_pixel`` (fp32; half precision halves it) times the largest tile, plus, when the tile runs in
    host memory, the process and the photo's own buffers (``BASE_BYTES``, ``PHOTO_BYTES_PER_PIXEL``). Only the
    smallest tile of each possible tile count is a candidate: a larger one with the same count costs the same
    area and more memory. When even the smallest useful tile (a ``MIN_CORE`` px core) does not fit, that one
    is returned and the out-of-memory fallback of ``run_tiled`` has the last word.
    """
    m = max(1, multiple_of)
    overlap = math.ceil(max(0, overlap) / m) * m
    per_pixel = bytes_per_pixel * (0.5 if half else 1.0)
    fixed = BASE_BYTES + PHOTO_BYTES_PER_PIXEL * height * width if shares_host_memory else 0
    smallest = math.ceil((2 * overlap + MIN_CORE) / m) * m
    whole = math.ceil(max(height, width) / m) * m
    largest = min(whole, int((max(0, budget_bytes - fixed) / max(per_pixel, 1.0)) ** 0.5) // m * m)
    if largest <= smallest:
        return min(smallest, whole)
    candidates = {largest}
    for length in (height, width):
        units = math.ceil(length / m)
        for count in range(1, units + 1):
            edge = math.ceil((units * m + 2 * overlap * (count - 1)) / count / m) * m
            if edge < smallest:
                break
            if edge <= largest:
                candidates.add(edge)

    def cost(edge: int) -> tuple[float, int]:
        plan = tiling_overhead(height, width, tile=edge, overlap=overlap, multiple_of=m)
        return plan.area_ratio * relative_speed(tile_speed, plan.largest), edge

    return min(candidates, key=cost)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
