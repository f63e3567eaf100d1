"""Choosing where and in which precision a method runs, and how large its tiles may be."""

from __future__ import annotations

import os
from pathlib import Path

import torch

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


def pick_dtype(precision: str, device: torch.device, *, supports_half: bool) -> torch.dtype:
    """Map ``fp32|fp16|bf16`` to a dtype, refusing combinations that are unsupported or numerically unsafe.

    fp16 convolutions are not implemented (or crawl) on most CPUs, so fp16 there is refused rather than
    slowly emulated; bf16 works on CPUs.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    dtype = PRECISIONS[precision]
    if dtype is torch.float32:
        return dtype
    if not supports_half:
        raise DeviceError(f"--precision {precision}: this method only runs in fp32")
    if dtype is torch.float16 and device.type == "cpu":
        raise DeviceError("--precision fp16 is not supported on the CPU; use bf16 or fp32")
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("--precision bf16: this GPU does not support bfloat16; use fp16")
    return dtype


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


def auto_tile(
    *, bytes_per_pixel: int, dtype: torch.dtype, device: torch.device, multiple_of: int, budget: float = 0.5
) -> int:
    """Largest square tile whose working memory fits in ``budget`` of the free memory.

    ``bytes_per_pixel`` is the method's measured fp32 peak per input pixel; half precision halves it. The
    result is clamped to [128, 4096]: smaller tiles waste time on context, larger ones gain nothing.
    The CPU budget is also capped at 8 GiB so that a batch leaves the machine usable.
    """
    free = free_memory_bytes(device)
    if device.type != "cuda":
        free = min(free, int(os.environ.get("DEFOCUS_CPU_BUDGET_BYTES", 8 << 30)))
    per_pixel = bytes_per_pixel * (0.5 if dtype in (torch.float16, torch.bfloat16) else 1.0)
    side = int((free * budget / max(per_pixel, 1.0)) ** 0.5)
    side = max(128, min(4096, side))
    m = max(1, multiple_of)
    return max(m, side // m * m)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
