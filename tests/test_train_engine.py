"""The training engine against a tiny stand-in network: resume, accumulation, data stream, export."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.errors import DataError, UsageError
from deblurcli.methods.defocus_map import gaussian
from deblurcli.zoo.manifest import parse_manifest
from deblurcli.zoo.state import read_metadata, read_tensors
from training.engine.augment import Augment, apply
from training.engine.export import sha256_file
from training.engine.loop import StepInfo, train
from training.engine.runlog import read_log
from training.engine.sampling import StreamSampler
from training.recipes.base import Batch, Losses, Objective, Recipe


class TinyNet(nn.Module):
    def __init__(self, *, width: int = 8) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, width, 3, padding=1)
        self.b = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.leaky_relu(self.a(x), 0.1))


class TinyObjective(Objective):
    def forward(self, batch: Batch) -> Losses:
        out = self.net(batch["blur"])
        l1 = F.l1_loss(out, batch["sharp"])
        mse = F.mse_loss(out, batch["sharp"])
        return {"loss": l1 + mse, "l1": l1.detach(), "mse": mse.detach()}


@dataclass(frozen=True, kw_only=True)
class TinyRecipe(Recipe):
    name: ClassVar[str] = "tiny"
    method: ClassVar[str] = "tiny"
    schedule_points: ClassVar[tuple[str, ...]] = ("milestone",)
    iterations: int = 6
    batch: int = 4
    crop: int = 16
    lr: float = 1e-2
    milestone: int = 4
    clip_grad: float | None = 1.0

    def build_net(self) -> nn.Module:
        return TinyNet(width=8)

    def net_hparams(self) -> dict[str, int]:
        return {"width": 8}

    def objective(self, net: nn.Module) -> Objective:
        return TinyObjective(net)

    def lr_factor(self, step: int) -> float:
        return 1.0 if step < self.milestone else 0.5

    def augment(self) -> Augment:
        return Augment(crop=self.crop, flips=True, rot90=True, noise_p=0.5, gray_p=0.3, scale_p=0.5)

    def predict(self, net: nn.Module, blur: Tensor) -> Tensor:
        return net(blur)


@pytest.fixture(autouse=True)
def _register_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the stand-in method known to the registry and the manifest schema, as a real method is."""
    from deblurcli.methods import registry
    from deblurcli.methods.spec import MethodSpec
    from deblurcli.zoo import manifest

    spec = MethodSpec(name="tiny", summary="test", cls=TinyNet, run=lambda m, x: {"image": m(x)}, hparams={"width": 8})
    real = registry._specs
    monkeypatch.setattr(registry, "_specs", lambda: {**real(), "tiny": spec})
    monkeypatch.setitem(manifest.HPARAMS, "tiny", {"width": int})


def tiny_data(n: int = 5, size: int = 24, seed: int = 0) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        sharp = torch.rand(3, size, size, generator=g)
        blur = F.avg_pool2d(sharp[None], 3, 1, 1, count_include_pad=False)[0]
        items.append({"blur": blur, "sharp": sharp})
    return items


def losses(run: Path) -> list[str]:
    return [r["loss"] for r in read_log(run / "log.csv")]


def test_interrupted_and_resumed_run_reproduces_the_loss_sequence_exactly(tmp_path: Path) -> None:
    data, val = tiny_data(), tiny_data(2, seed=1)
    recipe = TinyRecipe()
    train(recipe, data, out=tmp_path / "full", val=val, device="cpu", val_every=2)

    def interrupt(info: StepInfo) -> None:
        if info.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            recipe,
            data,
            out=tmp_path / "cut",
            val=val,
            device="cpu",
            val_every=2,
            ckpt_every=100,
            on_step=interrupt,
        )
    assert len(losses(tmp_path / "cut")) == 3
    train(recipe, data, out=tmp_path / "cut", val=val, device="cpu", val_every=2, resume=True)

    assert len(losses(tmp_path / "full")) == 6
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    full = read_tensors(tmp_path / "full" / "final.safetensors")
    cut = read_tensors(tmp_path / "cut" / "final.safetensors")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    lrs = [float(r["lr"]) for r in read_log(tmp_path / "full" / "log.csv")]
    assert lrs == [1e-2] * 4 + [5e-3] * 2


def test_gradient_accumulation_matches_the_full_batch(tmp_path: Path) -> None:
    data = tiny_data()
    recipe = TinyRecipe(iterations=2)
    train(recipe, data, out=tmp_path / "a1", device="cpu")
    train(recipe, data, out=tmp_path / "a2", device="cpu", accum=2)
    one, two = losses(tmp_path / "a1"), losses(tmp_path / "a2")
    assert float(one[0]) == pytest.approx(float(two[0]), rel=1e-6)
    w1 = read_tensors(tmp_path / "a1" / "final.safetensors")
    w2 = read_tensors(tmp_path / "a2" / "final.safetensors")
    assert all(torch.allclose(w1[k], w2[k], atol=1e-6) for k in w1)
    with pytest.raises(UsageError, match="divisible"):
        train(recipe, data, out=tmp_path / "a3", device="cpu", accum=3)


def test_export_writes_loadable_weights_and_a_manifest_record(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train(
        TinyRecipe(iterations=4), tiny_data(), out=run, val=tiny_data(2, seed=3), device="cpu", val_every=2
    )
    record = summary.record
    path = run / "final.safetensors"
    assert record["sha256"] == sha256_file(path) and record["size"] == path.stat().st_size
    parsed = parse_manifest({"schema_version": 1, "weights": [record]})  # pasteable into weights_manifest.json
    assert parsed.records[record["id"]].format == "defocus-safetensors"
    meta = read_metadata(path)
    assert meta["method"] == "tiny" and meta["hparams"] == {"width": 8} and meta["step"] == 4
    assert meta["recipe"]["recipe"] == "tiny" and "val_psnr" in meta["metrics"]
    net = TinyNet(**meta["hparams"])
    net.load_state_dict(read_tensors(path), strict=True)
    vals = read_log(run / "val.csv")
    assert [int(r["step"]) for r in vals] == [0, 2, 4]
    assert (run / "best.safetensors").is_file() and (run / "best.json").is_file()
    assert summary.best_psnr == pytest.approx(max(float(r["psnr"]) for r in vals[1:]), abs=1e-3)


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(tmp_path: Path) -> None:
    recipe = TinyRecipe(iterations=1)
    train(recipe, tiny_data(), out=tmp_path / "r", device="cpu")
    with pytest.raises(UsageError, match="already holds a run"):
        train(recipe, tiny_data(), out=tmp_path / "r", device="cpu")
    with pytest.raises(UsageError, match="nothing to resume"):
        train(recipe, tiny_data(), out=tmp_path / "other", device="cpu", resume=True)


def test_stream_is_sharded_across_ranks_and_resumable() -> None:
    def take(s: StreamSampler, k: int) -> list[tuple[int, int]]:
        it = iter(s)
        return [next(it) for _ in range(k)]

    single = take(StreamSampler(7, seed=3), 12)
    r0, r1 = (
        take(StreamSampler(7, seed=3, rank=0, world=2), 6),
        take(StreamSampler(7, seed=3, rank=1, world=2), 6),
    )
    assert [x for pair in zip(r0, r1, strict=True) for x in pair] == single
    assert sorted(i for i, _ in single[:7]) == list(range(7))  # every item once per epoch
    assert take(StreamSampler(7, seed=3, start=5), 7) == single[5:12]
    assert take(StreamSampler(7, seed=4), 7) != single[:7]


def test_augment_is_deterministic_and_scales_the_defocus_map() -> None:
    sharp = torch.rand(3, 40, 40)
    sample = {"blur": sharp.clone(), "sharp": sharp, "defocus": torch.full((1, 40, 40), 4.0)}
    aug = Augment(crop=16, noise_p=1.0, scale_p=1.0, scale_range=(0.5, 0.5))
    a, b = apply(sample, aug, 11), apply(sample, aug, 11)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["blur"].shape == (3, 16, 16)
    assert torch.allclose(a["defocus"], torch.full((1, 16, 16), 2.0))
    assert not torch.equal(a["blur"], a["sharp"])  # noise on the input only
    with pytest.raises(DataError, match="smaller than"):
        apply(sample, Augment(crop=64), 0)


def test_noise_is_one_field_on_every_view_and_greyscale_brightens_like_ifan() -> None:
    base = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    sample = {"blur": base, "left": base, "right": base, "sharp": base, "defocus": torch.full((1, 24, 24), 3.0)}
    noisy = apply(sample, Augment(crop=0, noise_p=1.0), 2)
    assert torch.equal(noisy["blur"], noisy["left"]) and torch.equal(noisy["blur"], noisy["right"])
    assert not torch.equal(noisy["blur"], base) and torch.equal(noisy["sharp"], base)  # the target stays clean
    grey = apply(sample, Augment(crop=0, gray_p=1.0), 2)
    for key in ("blur", "sharp"):
        assert torch.equal(grey[key][0], grey[key][1]) and torch.equal(grey[key][1], grey[key][2])
    assert float(grey["sharp"].mean()) > float(base.mean())  # luma of sRGB values, sRGB-encoded again
    assert torch.equal(grey["defocus"], sample["defocus"])


def test_soften_blurs_input_and_target_alike_and_keeps_the_defocus_map() -> None:
    step = torch.zeros(3, 32, 32)
    step[..., 16:] = 1.0
    blurred = step * 0.8 + 0.1
    sample = {"blur": blurred, "sharp": step, "defocus": torch.full((1, 32, 32), 2.0)}
    soft = apply(sample, Augment(crop=0, soften_p=1.0, soften_sigma=(0.8, 0.8)), 5)
    plain = apply(sample, Augment(crop=0), 5)
    assert torch.equal(plain["sharp"], step) and torch.equal(plain["defocus"], sample["defocus"])
    assert torch.equal(soft["defocus"], sample["defocus"])
    # the same Gaussian on both: a linear map, so the input stays 0.8 x target + 0.1
    assert torch.allclose(soft["blur"], soft["sharp"] * 0.8 + 0.1, atol=1e-6)
    row = soft["sharp"][0, 0]
    assert torch.allclose(row[:13], torch.zeros(13), atol=1e-4) and 0.0 < float(row[15]) < 0.5 < float(row[16]) < 1.0
    assert torch.allclose(row.sum(), torch.tensor(16.0), atol=1e-4)  # no light lost at the edges
    # its draws come from a stream of their own: crop, flips, turns and noise stay those of the unsoftened patch
    texture = {"blur": torch.rand(3, 48, 48), "sharp": torch.rand(3, 48, 48), "defocus": torch.rand(1, 48, 48)}
    kw: dict[str, Any] = {"crop": 24, "flips": True, "rot90": True, "noise_p": 1.0, "soften_sigma": (0.8, 0.8)}
    for seed in range(4):
        on, off = apply(texture, Augment(soften_p=1.0, **kw), seed), apply(texture, Augment(**kw), seed)
        assert torch.equal(on["defocus"], off["defocus"])
        assert torch.allclose(on["sharp"], gaussian(off["sharp"][None], 0.8)[0], atol=1e-5)


def test_horizontal_flip_swaps_dual_pixel_views_and_rotation_is_refused() -> None:
    base = torch.rand(3, 24, 24)
    sample = {"blur": base, "sharp": base, "left": base * 0.5, "right": base * 0.25}
    aug = Augment(crop=0, flips=True)
    for seed in range(20):  # find a draw that flips horizontally only
        out = apply(sample, aug, seed)
        if torch.equal(out["blur"], base.flip(-1)):
            break
    else:
        pytest.fail("no horizontal-only flip in 20 draws")
    assert torch.equal(out["left"], sample["right"].flip(-1))
    assert torch.equal(out["right"], sample["left"].flip(-1))
    with pytest.raises(DataError, match="dual-pixel"):
        for seed in range(20):
            apply(sample, Augment(crop=0, rot90=True), seed)


def _live(size: int = 32) -> Any:
    skimage = pytest.importorskip("skimage")
    from training.synth.live import LiveSynth
    from training.synth.sample import SynthConfig

    src = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    return LiveSynth.from_folders([src], config=SynthConfig(size=size, max_coc=6.0, n_layers=4), seed=3)


def test_live_batches_equal_the_per_item_patches() -> None:
    """The loop's batched path for live data is the DataLoader path (``Patches`` per item), rendered at once."""
    from training.engine.augment import BatchSource, Patches

    live = _live()
    assert isinstance(live, BatchSource) and not isinstance(tiny_data(), BatchSource)
    aug, keys = Augment(crop=16, flips=True, noise_p=1.0, gray_p=0.5, scale_p=0.5), ("blur", "sharp", "defocus")
    items = [pair for pair, _ in zip(StreamSampler(len(live), seed=1, start=8), range(3), strict=False)]
    batch = live.batch(items, aug=aug, keys=keys, device=torch.device("cpu"))
    single = Patches(live, aug, keys=keys)
    for j, item in enumerate(items):
        one = single[item]
        for k in keys:
            assert batch[k].shape[0] == 3 and batch[k][j].shape == one[k].shape
            diff = (batch[k][j] - one[k]).abs()  # batched FFT rounding may tip a rare photon count by one
            assert float((diff > 1e-4).double().mean()) < 0.01 and float(diff.max()) < 0.05
    assert not torch.equal(batch["blur"][0], batch["blur"][1])
    # what the loop calls: the same batches, drawn ahead by a worker process
    ahead = live.batches(
        StreamSampler(len(live), seed=1, start=8), 3, aug=aug, keys=keys, device=torch.device("cpu"), workers=1
    )
    for start in (8, 11):
        group = [pair for pair, _ in zip(StreamSampler(len(live), seed=1, start=start), range(3), strict=False)]
        want, got = live.batch(group, aug=aug, keys=keys, device=torch.device("cpu")), next(ahead)
        assert all(torch.equal(got[k], want[k]) for k in keys)
    with pytest.raises(DataError, match="lacks"):
        live.batch(items, aug=aug, keys=("blur", "depth"), device=torch.device("cpu"))


def test_run_on_live_data_resumes_bit_exactly(tmp_path: Path) -> None:
    live, recipe = _live(), TinyRecipe(iterations=2, batch=2, crop=16, milestone=1)
    train(recipe, live, out=tmp_path / "full", device="cpu")

    def interrupt(info: StepInfo) -> None:
        if info.step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, live, out=tmp_path / "cut", device="cpu", ckpt_every=100, on_step=interrupt)
    train(recipe, live, out=tmp_path / "cut", device="cpu", resume=True)
    assert len(losses(tmp_path / "full")) == 2
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    full = read_tensors(tmp_path / "full" / "final.safetensors")
    cut = read_tensors(tmp_path / "cut" / "final.safetensors")
    assert all(torch.equal(full[k], cut[k]) for k in full)
