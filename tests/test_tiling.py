"""The tiler: balanced partitions, exactness for overlap >= receptive field, maps, and OOM recovery."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.engine.device import BASE_BYTES, PHOTO_BYTES_PER_PIXEL, choose_tile, memory_budget, relative_speed
from deblurcli.engine.tiling import (
    TileTooSmallError,
    count_tiles,
    plan_cores,
    run_tiled,
    split_axis,
    tiling_overhead,
)


def conv_stack(layers: int, *, seed: int = 0) -> nn.Module:
    """``layers`` 3x3 convolutions: receptive field radius == layers."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate"), nn.Tanh() if i % 2 else nn.Identity()]
    return nn.Sequential(*mods).eval()


def as_fn(net: nn.Module):  # noqa: ANN201
    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"image": net(t)}

    return fn


@pytest.mark.parametrize(
    ("length", "core_max", "m"), [(1200, 1024, 1), (1000, 300, 8), (17, 4, 1), (8, 100, 8), (1001, 64, 16)]
)
def test_split_axis_is_balanced_and_on_grid(length: int, core_max: int, m: int) -> None:
    parts = split_axis(length, core_max, m)
    assert parts[0][0] == 0 and parts[-1][1] == length
    assert all(a == prev_b for (a, _), (_, prev_b) in zip(parts[1:], parts[:-1], strict=True))
    sizes = [b - a for a, b in parts]
    assert all(s <= max(core_max // m * m, m) for s in sizes[:-1])
    assert all(a % m == 0 for a, _ in parts)
    # balanced: all but the border-clipped last interval within one grid step of each other
    assert max(sizes[:-1] or sizes) - min(sizes[:-1] or sizes) <= m
    assert sizes[-1] > max(sizes) // 2 - m  # never a thin last tile


def test_split_axis_example_from_the_docs() -> None:
    assert split_axis(1200, 1024, 1) == [(0, 600), (600, 1200)]


@pytest.mark.parametrize(("h", "w"), [(203, 157), (64, 64), (1, 90), (33, 1)])
@pytest.mark.parametrize("overlap", [0, 5, 16])
def test_pointwise_function_is_reproduced_exactly(h: int, w: int, overlap: int) -> None:
    x = torch.rand(1, 3, h, w)
    out = run_tiled(lambda t: {"image": t * 2 - 0.5}, x, tile=40, overlap=overlap) if 2 * overlap < 40 else None
    if out is None:
        pytest.skip("tile too small for this overlap")
    torch.testing.assert_close(out["image"], x * 2 - 0.5, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("overlap", "rf"), [(6, 6), (10, 6), (24, 6)])
def test_conv_stack_equal_to_full_frame_when_overlap_covers_receptive_field(overlap: int, rf: int) -> None:
    net = conv_stack(rf)
    x = torch.rand(1, 3, 150, 211)
    with torch.no_grad():
        full = net(x)
    tiled = run_tiled(as_fn(net), x, tile=64, overlap=overlap, receptive_field=rf)["image"]
    assert count_tiles(150, 211, tile=64, overlap=overlap) > 4
    assert (tiled - full).abs().max().item() < 1e-5


def test_conv_stack_differs_when_overlap_is_too_small() -> None:
    """The exactness test above can fail: with too little context the seams show."""
    net = conv_stack(8)
    x = torch.rand(1, 3, 120, 120)
    with torch.no_grad():
        full = net(x)
    tiled = run_tiled(as_fn(net), x, tile=48, overlap=2, receptive_field=2)["image"]
    assert (tiled - full).abs().max().item() > 1e-3


def test_lower_resolution_maps_are_assembled_on_their_grid() -> None:
    """A 1/8-scale map output (IFAN's disparity) lands on the same pixels as on the full frame."""
    x = torch.rand(1, 3, 203, 157)

    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        assert t.shape[-2] % 8 == 0 and t.shape[-1] % 8 == 0
        return {"image": t.flip(1), "disparity": F.avg_pool2d(t[:, :1], 8)}

    out = run_tiled(fn, x, tile=64, overlap=8, multiple_of=8)
    padded = F.pad(x, (0, (-157) % 8, 0, (-203) % 8), mode="reflect")
    torch.testing.assert_close(out["image"], x.flip(1))
    assert out["disparity"].shape == (1, 1, 26, 20)
    torch.testing.assert_close(out["disparity"], F.avg_pool2d(padded[:, :1], 8), atol=1e-6, rtol=0)


def test_out_of_memory_halves_the_tile_and_keeps_going() -> None:
    net = conv_stack(4)
    x = torch.rand(1, 3, 200, 260)
    sizes: list[int] = []
    totals: list[int] = []

    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        edge = max(t.shape[-2:])
        sizes.append(edge)
        if edge > 100 and len(sizes) > 2:  # the first two tiles fit, then memory "runs out"
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        with torch.no_grad():
            return {"image": net(t)}

    out = run_tiled(fn, x, tile=160, overlap=8, receptive_field=4, progress=lambda d, t: totals.append(t))
    with torch.no_grad():
        full = net(x)
    assert (out["image"] - full).abs().max().item() < 1e-5
    assert max(sizes[3:]) <= 80  # after the failure every tile is at most half the original edge
    assert totals[-1] > totals[0]  # progress total grew when the remaining work was re-split


def test_cpu_allocation_failure_counts_as_out_of_memory() -> None:
    calls = {"n": 0}

    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if max(t.shape[-2:]) > 64:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return {"image": t}

    x = torch.rand(1, 3, 100, 100)
    torch.testing.assert_close(run_tiled(fn, x, tile=128, overlap=4)["image"], x)


def test_other_errors_are_not_swallowed() -> None:
    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_tiled(fn, torch.rand(1, 3, 50, 50), tile=32, overlap=4)


def test_too_small_tile_is_a_usage_error() -> None:
    with pytest.raises(TileTooSmallError):
        run_tiled(lambda t: {"image": t}, torch.rand(1, 3, 100, 100), tile=16, overlap=8)


def test_oom_at_smallest_tile_gives_up_cleanly() -> None:
    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(TileTooSmallError, match="smallest tile"):
        run_tiled(fn, torch.rand(1, 3, 100, 100), tile=64, overlap=8)


def test_whole_frame_when_no_tile() -> None:
    seen: list[tuple[int, ...]] = []

    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append(tuple(t.shape))
        return {"image": t}

    run_tiled(fn, torch.rand(1, 3, 37, 41), tile=None, overlap=16, multiple_of=8)
    assert seen == [(1, 3, 40, 48)]  # padded to the size rule, never cropped


def test_plan_cores_cover_the_image_exactly_once() -> None:
    cores = plan_cores(301, 199, core_max=64, multiple_of=8)
    cover = torch.zeros(301, 199)
    for c in cores:
        cover[c.y0 : c.y1, c.x0 : c.x1] += 1
    assert torch.equal(cover, torch.ones_like(cover))


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "m"),
    [(6000, 1024, 192, 8), (4000, 512, 96, 8), (1283, 256, 40, 1), (721, 300, 64, 8), (5000, 200, 0, 4)],
)
def test_grid_uses_the_fewest_equal_tiles(length: int, tile: int, overlap: int, m: int) -> None:
    """Border cores are ``overlap`` wider (context on one side only), every tile is the same size up to one grid
    step and at most ``tile``, and one tile fewer could not cover the axis."""
    parts = split_axis(length, tile - 2 * overlap, m, overlap)
    n = len(parts)
    assert parts[0][0] == 0 and parts[-1][1] == length and all(a % m == 0 for a, _ in parts)
    boxes = [(max(0, a - overlap), min(length, b + overlap)) for a, b in parts]
    sizes = [-(-(b - a) // m) * m for a, b in boxes]  # padded to the size rule, as the method sees them
    assert max(sizes) <= tile and max(sizes) - min(sizes) <= m
    assert (n - 1) * (tile // m * m - 2 * overlap) + 2 * overlap < length  # n - 1 tiles are too few
    if overlap:
        inner = [b - a for a, b in parts[1:-1]]
        assert n < 3 or parts[0][1] - parts[0][0] >= max(inner) + overlap - m


def test_grid_area_is_the_minimum_for_the_tile_count() -> None:
    """Along each axis n tiles cost length + 2 * overlap * (n - 1): the least any grid of n tiles spends."""
    o = tiling_overhead(4000, 6000, tile=1024, overlap=192, multiple_of=8)
    rows, cols = 6, 9  # ceil((4000 - 384) / 640), ceil((6000 - 384) / 640); the old rule gave 7 x 10
    assert o.tiles == rows * cols and o.largest <= 1024
    assert o.area_ratio == pytest.approx((4000 + 384 * (rows - 1)) * (6000 + 384 * (cols - 1)) / 24e6)


def test_photo_no_larger_than_the_tile_is_one_tile() -> None:
    """A 1280x720 frame with a 1280 px tile runs whole: context is only needed at inner tile boundaries."""
    o = tiling_overhead(720, 1280, tile=1280, overlap=192, multiple_of=8)
    assert (o.tiles, o.area_ratio, o.largest) == (1, 1.0, 1280)


@pytest.mark.parametrize(("h", "w", "tile", "overlap", "m"), [(203, 157, 64, 8, 8), (150, 211, 64, 10, 1)])
def test_overhead_matches_what_run_tiled_feeds(h: int, w: int, tile: int, overlap: int, m: int) -> None:
    fed: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> dict[str, torch.Tensor]:
        fed.append((t.shape[-2], t.shape[-1]))
        return {"image": t}

    x = torch.rand(1, 3, h, w)
    out = run_tiled(fn, x, tile=tile, overlap=overlap, multiple_of=m)["image"]
    torch.testing.assert_close(out, x)
    o = tiling_overhead(h, w, tile=tile, overlap=overlap, multiple_of=m)
    assert o.tiles == len(fed) == count_tiles(h, w, tile=tile, overlap=overlap, multiple_of=m)
    assert o.area_ratio == pytest.approx(sum(a * b for a, b in fed) / (h * w))
    assert o.largest == max(max(s) for s in fed) <= tile


def _auto(h: int, w: int, budget: int, speed: tuple[tuple[int, float], ...] = (), bpp: int = 1024) -> int:
    return choose_tile(h, w, overlap=96, multiple_of=8, bytes_per_pixel=bpp, tile_speed=speed, budget_bytes=budget)


def test_auto_tile_fits_the_budget_with_the_photo_buffers() -> None:
    budget = 2 * 10**9
    tile = _auto(4000, 6000, budget)
    largest = tiling_overhead(4000, 6000, tile=tile, overlap=96, multiple_of=8).largest
    assert BASE_BYTES + PHOTO_BYTES_PER_PIXEL * 24e6 + 1024 * largest**2 <= budget


def test_auto_tile_with_flat_speed_spends_the_least_area_that_fits() -> None:
    """Speed independent of the tile: the pick wastes no more area than the largest tile that fits, and
    it is the smallest tile that does so (less memory for the same time)."""
    budget = 2 * 10**9
    tile = _auto(4000, 6000, budget)
    room = budget - BASE_BYTES - PHOTO_BYTES_PER_PIXEL * 24e6
    largest_fit = int((room / 1024) ** 0.5) // 8 * 8
    area = tiling_overhead(4000, 6000, tile=tile, overlap=96, multiple_of=8).area_ratio
    assert area == tiling_overhead(4000, 6000, tile=largest_fit, overlap=96, multiple_of=8).area_ratio
    assert tiling_overhead(4000, 6000, tile=tile - 8, overlap=96, multiple_of=8).area_ratio > area


def test_auto_tile_follows_the_measured_speed() -> None:
    """A method much faster per pixel on small tiles gets smaller tiles than one with flat speed."""
    budget = 4 * 10**9
    flat = _auto(4000, 6000, budget)
    steep = _auto(4000, 6000, budget, speed=((256, 1.0), (512, 1.2), (1024, 3.0)))
    assert steep < flat
    assert relative_speed(((256, 1.0), (512, 2.0)), 384) == pytest.approx(1.5)
    assert relative_speed(((256, 1.0), (512, 2.0)), 4096) == 2.0


def test_auto_tile_is_the_whole_frame_when_it_fits_and_the_smallest_when_nothing_does() -> None:
    assert _auto(720, 1280, 10**10) == 1280
    assert _auto(4000, 6000, 10**8) == 2 * 96 + 64


def test_memory_budget_is_two_gb_unless_less_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import deblurcli.engine.device as device

    monkeypatch.delenv("DEFOCUS_CPU_BUDGET_BYTES", raising=False)
    monkeypatch.setattr(device, "free_memory_bytes", lambda _d: 16 << 30)
    assert memory_budget(torch.device("cpu")) == 2 * 10**9
    monkeypatch.setattr(device, "free_memory_bytes", lambda _d: 10**9)
    assert memory_budget(torch.device("cpu")) == int(10**9 * device.FREE_SHARE)
    monkeypatch.setenv("DEFOCUS_CPU_BUDGET_BYTES", str(5 * 10**8))
    assert memory_budget(torch.device("cpu")) == 5 * 10**8


def test_cli_tile_auto_plans_per_photo_within_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--tile auto`` reaches the run: a budget below the process's own size leaves the smallest useful tile
    (2 x 64 px context + a 64 px core for classic), so a 300x200 photo runs as 2 x 3 tiles instead of one."""
    import json

    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from deblurcli.cli import app

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    monkeypatch.setenv("DEFOCUS_CPU_BUDGET_BYTES", str(10**8))
    runs = {}
    for tile in ("auto", None):
        args = ["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "out"), "--method", "classic"]
        args += ["--overwrite", "-q", "--json", *(["--tile", tile] if tile else [])]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs[tile] = json.loads(result.stdout)["files"][0]["tiles"]
    assert runs == {"auto": count_tiles(200, 300, tile=192, overlap=64), None: 1}
    assert runs["auto"] == 6
