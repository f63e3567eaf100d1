"""The one training loop: every recipe, one CPU, one GPU or many (torchrun + DDP).

A step is: set the learning rate from the step number, run ``accum`` micro-batches through the objective
(DDP synchronises gradients on the last one only), unscale/clip, update. Rank 0 logs, validates, writes the
training state and exports weights; the others only compute. Interrupting (Ctrl-C) saves the state of the
last completed step before re-raising, so ``--resume`` continues exactly where the run stopped.

Run folder layout: ``run.json`` (recipe and options), ``log.csv``, ``val.csv``, ``state/last.pt``,
``best.safetensors`` + ``best.json`` (manifest record), ``final.safetensors`` + ``final.json``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from deblurcli.errors import DeviceError, UsageError
from training.engine import distributed as D
from training.engine.augment import BatchSource, Patches, Sample
from training.engine.checkpoint import STATE_NAME, load_state, rng_state, save_state, set_rng_state
from training.engine.export import export_weights
from training.engine.runlog import CsvLog
from training.engine.sampling import StreamSampler
from training.engine.validate import evaluate
from training.recipes.base import Recipe

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class RunResult:
    """How a run ended; ``record`` (the manifest record of ``final.safetensors``) is rank 0's only."""

    step: int
    val_psnr_start: float | None
    val_psnr: float | None
    best_psnr: float | None
    record: dict[str, Any] | None
    net: torch.nn.Module


@dataclass(frozen=True)
class StepInfo:
    """What the loop reports after each step (to a progress bar, or to a test)."""

    step: int
    total: int
    lr: float
    values: dict[str, float]
    val_psnr: float | None


def _autocast(device: torch.device, precision: str) -> Callable[[], AbstractContextManager[object]]:
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext
    if dtype is torch.float16 and device.type != "cuda":
        raise DeviceError("fp16 training needs a CUDA device; use bf16 or fp32")
    return lambda: torch.autocast(device.type, dtype=dtype)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _batches(loader: Iterable[dict[str, Any]], device: torch.device, channels_last: bool) -> Iterator[dict[str, Any]]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for batch in loader:
        yield {k: v.to(device, non_blocking=True).contiguous(memory_format=fmt) for k, v in batch.items()}


def train(
    recipe: Recipe,
    data: Dataset[Any],
    *,
    out: Path,
    val: Sequence[Sample] = (),
    world: D.World | None = None,
    device: str = "auto",
    precision: str = "fp32",
    accum: int = 1,
    workers: int = 0,
    val_every: int = 1000,
    ckpt_every: int = 1000,
    resume: bool = False,
    init: Path | None = None,
    deterministic: bool = False,
    data_desc: str = "",
    on_step: Callable[[StepInfo], None] | None = None,
) -> RunResult:
    """Train ``recipe`` on ``data`` into the run folder ``out``.

    Raises:
        UsageError: batch not divisible by processes x accumulation, a run already in ``out`` without
            ``resume``, or nothing to resume.
    """
    own_world = world is None
    world = world or D.setup(device)
    try:
        return _train(
            recipe,
            data,
            out=out,
            val=val,
            world=world,
            precision=precision,
            accum=accum,
            workers=workers,
            val_every=val_every,
            ckpt_every=ckpt_every,
            resume=resume,
            init=init,
            deterministic=deterministic,
            data_desc=data_desc,
            on_step=on_step,
        )
    finally:
        if own_world:
            D.teardown(world)


def _train(
    recipe: Recipe,
    data: Dataset[Any],
    *,
    out: Path,
    val: Sequence[Sample],
    world: D.World,
    precision: str,
    accum: int,
    workers: int,
    val_every: int,
    ckpt_every: int,
    resume: bool,
    init: Path | None,
    deterministic: bool,
    data_desc: str,
    on_step: Callable[[StepInfo], None] | None,
) -> RunResult:
    dev = world.device
    micro, rest = divmod(recipe.batch, world.size * accum)
    if rest or micro < 1:
        raise UsageError(
            f"batch {recipe.batch} is not divisible by {world.size} process(es) x --accum {accum}"
        )
    state_path = out / "state" / STATE_NAME
    if not resume and state_path.exists():
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    autocast = _autocast(dev, precision)
    channels_last = dev.type == "cuda"

    _seed_everything(recipe.seed)
    net = recipe.build_net()
    if init is not None and not resume:
        recipe.load_init(net, init)
    objective = recipe.objective(net).to(dev)
    if channels_last:
        objective = objective.to(memory_format=torch.channels_last)
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = recipe.optimizer(params)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
    step, best, first_psnr = 0, float("-inf"), None
    log, val_log = CsvLog(out / "log.csv"), CsvLog(out / "val.csv")
    if resume:
        st = load_state(state_path)
        objective.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        scaler.load_state_dict(st["scaler"])
        step, best, first_psnr = int(st["step"]), float(st["best"]), st.get("first_psnr")
        if int(st["samples"]) != step * recipe.batch:
            raise UsageError("the saved run used another batch size; resume with the run's own recipe")
        set_rng_state(st["rng"])
        if world.is_main:
            log.truncate_after(step)
            val_log.truncate_after(step)
    elif world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        run = {
            "recipe": recipe.to_dict(),
            "data": data_desc,
            "world_size": world.size,
            "accum": accum,
            "precision": precision,
            "torch": torch.__version__,
        }
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    model: torch.nn.Module = objective
    if world.distributed:
        model = DistributedDataParallel(objective, device_ids=[dev] if dev.type == "cuda" else None)

    sampler = StreamSampler(
        len(data), seed=recipe.seed, rank=world.rank, world=world.size, start=step * recipe.batch
    )
    loader: Iterable[dict[str, Any]]
    if isinstance(data, BatchSource):  # makes its batches itself, on the training device
        loader = data.batches(sampler, micro, aug=recipe.augment(), keys=recipe.keys, device=dev, workers=workers)
    else:
        loader = DataLoader(
            Patches(data, recipe.augment(), keys=recipe.keys),
            batch_size=micro,
            sampler=sampler,
            num_workers=workers,
            pin_memory=dev.type == "cuda",
        )
    batches = _batches(loader, dev, channels_last)

    def validate_now() -> float | None:
        if not (val and world.is_main):
            return None
        return evaluate(recipe, objective.export_net, val, device=dev, autocast=autocast)

    def save() -> None:
        if world.is_main:
            save_state(
                state_path,
                {
                    "model": objective.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "samples": step * recipe.batch,
                    "best": best,
                    "first_psnr": first_psnr,
                    "rng": rng_state(),
                },
            )

    def export(name: str, psnr: float | None) -> dict[str, Any]:
        training = {
            "recipe": recipe.to_dict(),
            "step": step,
            "data": data_desc,
            "world_size": world.size,
            "precision": precision,
            "metrics": {} if psnr is None else {"val_psnr": round(psnr, 4)},
        }
        return export_weights(
            objective.export_net,
            out / f"{name}.safetensors",
            method=recipe.method,
            weights_id=f"{recipe.method}-{out.name}",
            hparams=recipe.net_hparams(),
            training=training,
        )

    if step == 0 and world.is_main and val:
        first_psnr = validate_now()
        val_log.append(0, {"psnr": first_psnr or 0.0})
    D.barrier(world)
    t0 = time.perf_counter()
    objective.train()
    psnr: float | None = None
    try:
        while step < recipe.iterations:
            lr = recipe.lr * recipe.lr_factor(step)
            for group in opt.param_groups:
                group["lr"] = lr
            sums: dict[str, float] = {}
            for m in range(accum):
                last = m == accum - 1
                sync = nullcontext() if last or not world.distributed else model.no_sync()  # type: ignore[operator]
                with sync:
                    batch = next(batches)
                    with autocast():
                        losses = model(batch)
                    scaler.scale(losses["loss"] / accum).backward()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / accum
            if recipe.clip_grad is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, recipe.clip_grad)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            step += 1
            objective.after_step(step)
            values = D.mean_across(world, sums)
            psnr = None
            if world.is_main:
                log.append(step, {"lr": lr, **values, "seconds": time.perf_counter() - t0})
                if val and (step % val_every == 0 or step == recipe.iterations):
                    psnr = validate_now()
                    assert psnr is not None
                    val_log.append(step, {"psnr": psnr})
                    if psnr > best:
                        best = psnr
                        export("best", psnr)
                if step % ckpt_every == 0 or step == recipe.iterations:
                    save()
            D.barrier(world)
            if on_step is not None:
                on_step(StepInfo(step=step, total=recipe.iterations, lr=lr, values=values, val_psnr=psnr))
    except KeyboardInterrupt:
        save()
        raise
    result = RunResult(
        step=step,
        val_psnr_start=first_psnr,
        val_psnr=psnr,
        best_psnr=best if val else None,
        record=None,
        net=objective.export_net,
    )
    if world.is_main:
        result = dataclasses.replace(result, record=export("final", psnr))
        summary = {k: v for k, v in dataclasses.asdict(result).items() if k != "net"}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    D.barrier(world)
    return result
