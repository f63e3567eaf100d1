"""The defocus map ``--bokeh keep`` reads: disc blur radius per pixel, from how edges flatten across a pyramid.

Why a pyramid: a single re-blur ratio (Zhuo & Sim's gradient ratio with one Gaussian, as ``classic`` uses for
its deconvolution) is only sensitive to blur of about the re-blur's own width. Narrower than that, every edge
looks sharp; wider, the ratio is flat and noise decides, so a 12 px disc read as 4 px. Here the same two-scale
ratio ``|grad(L * g_fine)| / |grad(L * g_coarse)|`` is taken at the edge ridges of every level of a 2x pyramid;
level ``k`` reads blur of about ``2^k`` to ``4 x 2^k`` full-resolution px. The levels are combined coarse to
fine: a finer level speaks where the coarser estimate says the blur is within its range, or where its own
reading says so. Evidence of sharpness thus wins (blur never adds detail, while a smooth ramp reads as blur at
a coarse level), and a fine level's saturated reading ("wider than I can see") leaves the coarse estimate be,
so noise and fine texture cannot pull a wide blur down.

Each level's edge votes carry the edge's *contrast* as their weight, not its raw gradient, so a sharp subject's
steep edges do not outvote the soft edges of the background next to them. Votes are spread by a robust
normalized convolution within a few level pixels, each level's vote density says how much it is trusted, and a
guided filter snaps the final map to the photo's edges.

Natural edges are not ideal steps (lines, texture, noise), so the ratio -> radius tables are measured on photos
disc-blurred by known radii (``CALIBRATION_RATIOS``), and so is a last correction of the combined reading
(``READING_TO_RADIUS``); ``python benchmarks/classic_map.py --calibrate`` measures both on tuning photos that
the accuracy report never uses. Ideal blurred steps, put through the very same operators, give only each
level's gradient per unit contrast and its noise response. Units: blur radius in full-resolution px, clamped to
``[0, MAX_RADIUS]``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from deblurcli.engine.color import linear_to_srgb, srgb_to_linear

#: widest blur radius reported, px
MAX_RADIUS = 16.0
#: pyramid levels above full resolution (each halves the size); level k reads blur of about 2^k to 4 x 2^k px
LEVELS = 2
#: Gaussian widths (level px) of the two-scale ratio; level 0 takes its fine gradient unsmoothed, since small
#: blur (0-2 px) only shows in the raw differences
SIGMA_FINE = 1.0
SIGMA_COARSE = 2.0
#: level k is read within HAND_OVER x 2^k full-resolution px: there it speaks where the coarser estimate or
#: its own reading falls (fading out over the next half of that)
HAND_OVER = 3.0
#: highest radius each level's table may return; beyond it the level's ratio no longer changes with blur
LEVEL_TOP: tuple[float, ...] = (4.0, 12.0, 24.0)
#: an edge votes when its contrast (linear luminance) and its coarse gradient stand this far above noise
MIN_CONTRAST = 0.01
NOISE_FACTOR = 4.0
#: a pixel with any channel at or above CLIP_LEVEL (sRGB) is clipped; ridges within CLIP_REACH level px of
#: one do not vote (the coarse gradient's Gaussian reaches about that far)
CLIP_LEVEL = 0.99
CLIP_REACH = 4
#: robust spreading of votes (level px): Gaussian widths and their weights; outliers beyond OUTLIER_PX x 2^k
SPREAD_SIGMAS: tuple[float, ...] = (2.0, 6.0)
SPREAD_WEIGHTS: tuple[float, ...] = (1.0, 0.3)
OUTLIER_PX = 0.75
#: spread vote density (contrast per level px^2) at which a level is trusted half (chosen on the synthetic
#: scenes 22-43 of the bokeh benchmark, ``benchmarks/bokeh_synth.py --skip 22 --limit 22``)
DENSITY_HALF = 0.0001
#: guided filter (full-resolution px, grey sRGB^2) that snaps the map to the photo's edges
GUIDE_RADIUS = 8
GUIDE_EPS = 1e-3
#: median fine/coarse ratio at edge ridges per level, measured on disc-blurred photos of known radius (the
#: tuning photos of ``python benchmarks/classic_map.py --calibrate``, never the ones it reports on). Natural
#: edges are not ideal steps (lines, texture, noise), so these differ from an ideal step's ratios by up to 0.5.
CALIBRATION_RADII: tuple[float, ...] = (0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24)
# fmt: off
CALIBRATION_RATIOS: tuple[tuple[float, ...], ...] = (
    (3.1059, 3.1059, 2.5538, 2.3962, 2.0947, 1.895, 1.7083, 1.4828, 1.3817,
     1.34, 1.3149, 1.2981, 1.284, 1.2763, 1.2805, 1.2834, 1.2892, 1.2988),
    (1.853, 1.853, 1.8248, 1.8096, 1.7672, 1.7305, 1.6796, 1.5808, 1.4868,
     1.4005, 1.3306, 1.2765, 1.2086, 1.1725, 1.152, 1.1354, 1.1137, 1.0989),
    (1.8166, 1.8166, 1.8113, 1.8093, 1.7964, 1.7851, 1.7723, 1.7387, 1.6985,
     1.6567, 1.6117, 1.563, 1.4665, 1.385, 1.3068, 1.2464, 1.1785, 1.1477),
)
# fmt: on

#: the combined map's median reading (on the same tuning photos, edge pixels) -> the true radius: spreading,
#: level hand-over and the guided filter compress the range (a 12 px disc read 9.6 px), which this undoes
# fmt: off
READING_TO_RADIUS: tuple[tuple[float, float], ...] = (
    (0.58, 0), (1.15, 1), (2.39, 2), (3.5, 3), (4.12, 4), (4.82, 5),
    (5.63, 6), (7.53, 8), (8.61, 10), (9.62, 12), (11.3, 14), (13.29, 16),
)
# fmt: on

_LUMA = (0.2126, 0.7152, 0.0722)


def reflect_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works when the pad exceeds the tile (reflect, then replicate the rest)."""
    h, w = x.shape[-2:]
    rt, rb, rl, rr = min(top, h - 1), min(bottom, h - 1), min(left, w - 1), min(right, w - 1)
    if rt or rb or rl or rr:
        x = F.pad(x, (rl, rr, rt, rb), mode="reflect")
    if (top - rt) or (bottom - rb) or (left - rl) or (right - rr):
        x = F.pad(x, (left - rl, right - rr, top - rt, bottom - rb), mode="replicate")
    return x


def gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel, reflect borders, truncated at 3 sigma.

    Each pass runs as a depthwise convolution with one image row per channel: the CPU convolution backend
    pads a single channel to a block of 16, which made a one-channel 24 MP map cost 16 times its size.
    """
    k = max(1, math.ceil(3 * sigma))
    t = torch.arange(-k, k + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).view(1, 1, 1, -1)
    n, c, h, w = x.shape
    xp = reflect_pad(x, k, k, k, k)
    rows = xp.reshape(1, -1, 1, w + 2 * k)
    across = F.conv2d(rows, g.expand(rows.shape[1], 1, 1, -1), groups=rows.shape[1]).view(n, c, h + 2 * k, w)
    del xp, rows
    cols = across.transpose(-1, -2).reshape(1, -1, 1, h + 2 * k)
    del across
    down = F.conv2d(cols, g.expand(cols.shape[1], 1, 1, -1), groups=cols.shape[1]).view(n, c, w, h)
    return down.transpose(-1, -2).contiguous()


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (per px) with reflect borders, so a flat border reads as zero gradient."""
    xp = reflect_pad(x, 1, 1, 1, 1)
    return 0.5 * (xp[..., 1:-1, 2:] - xp[..., 1:-1, :-2]), 0.5 * (xp[..., 2:, 1:-1] - xp[..., :-2, 1:-1])


def _down(x: torch.Tensor) -> torch.Tensor:
    """Next pyramid level: a light anti-alias blur, then the mean of each 2x2 block (odd sizes padded)."""
    h, w = x.shape[-2:]
    x = reflect_pad(gaussian(x, 0.5), 0, h % 2, 0, w % 2)
    return F.avg_pool2d(x, 2)


def _pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    levels = [x]
    for _ in range(LEVELS):
        levels.append(_down(levels[-1]))
    return levels


def ridges(mag: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Where ``mag`` is a ridge: at least both neighbours across the edge, the gradient direction (gx, gy)
    quantised to 0, 45, 90 or 135 degrees (non-maximum suppression). Boolean masks keep it at a few bytes per
    pixel on a 24 MP photo's estimate."""
    ax, ay = gx.abs(), gy.abs()
    tan = math.tan(math.pi / 8)
    across_x = ay <= ax * tan  # gradient along x: compare left and right
    across_y = ax <= ay * tan
    same_sign = (gx * gy) > 0
    del ax, ay
    h, w = mag.shape[-2:]
    mp = reflect_pad(mag, 1, 1, 1, 1)
    ridge = torch.ones_like(mag, dtype=torch.bool)
    diagonal = ~(across_x | across_y)
    for (dy, dx), where in (
        ((0, 1), across_x),
        ((1, 0), across_y),
        ((1, 1), diagonal & same_sign),
        ((1, -1), diagonal & ~same_sign),
    ):
        a = mp[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        b = mp[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        ridge &= ~(where & ((mag < a) | (mag < b)))
    return ridge


def _measure(level: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fine and coarse gradient magnitudes and the coarse gradient's ridge."""
    fx, fy = gradients(gaussian(level, SIGMA_FINE) if k > 0 else level)
    fine = torch.sqrt(fx * fx + fy * fy)
    del fx, fy
    cx, cy = gradients(gaussian(level, SIGMA_COARSE))
    coarse = torch.sqrt(cx * cx + cy * cy)
    return fine, coarse, ridges(coarse, cx, cy)


def _step_edge(radius: float, width: int, position: float) -> torch.Tensor:
    """A unit step at ``position`` blurred by a uniform disc of ``radius`` px, pixel-integrated (1, W)."""
    sub = 16
    x = (torch.arange(width * sub, dtype=torch.float64) + 0.5) / sub - position
    if radius <= 0:
        profile = (x >= 0).to(torch.float64)
    else:
        d = x.clamp(-radius, radius)
        area = d * torch.sqrt(radius * radius - d * d) + radius * radius * torch.asin(d / radius)
        profile = 0.5 + area / (math.pi * radius * radius)
    return profile.view(width, sub).mean(1).view(1, -1)


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[torch.Tensor, torch.Tensor]:
    """Per level and calibration radius: the coarse ridge gradient of a unit step, and per level the coarse
    gradient's median response to unit white noise; measured through the same operators, averaged over
    sub-pixel edge phases. They turn a ridge gradient into the edge's contrast and set the noise floor."""
    width = 2 ** (LEVELS + 1) * 48
    peaks = torch.zeros(LEVELS + 1, len(CALIBRATION_RADII), dtype=torch.float64)
    phases = [p / 8 for p in range(8)]
    for i, r in enumerate(CALIBRATION_RADII):
        for p in phases:
            edge = _step_edge(r, width, width / 2 + p * 2**LEVELS).expand(4 * 2**LEVELS, -1)
            for k, level in enumerate(_pyramid(edge[None, None].contiguous())):
                coarse = _measure(level, k)[1]
                peaks[k, i] += float(coarse[0, 0, level.shape[-2] // 2].amax()) / len(phases)
    noise = torch.randn(1, 1, 512, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gain = torch.tensor([float(_measure(lv, k)[1].median()) for k, lv in enumerate(_pyramid(noise))])
    return peaks, gain.to(torch.float64)


def interp(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, *, extrapolate: bool = False) -> torch.Tensor:
    """Piecewise-linear ``y(x)`` through knots ``xs`` (non-decreasing): clamped to the end values outside them,
    or extended by the end segments' slopes with ``extrapolate``. On a flat stretch of ``xs`` (equal knots) it
    takes the last knot's ``y``."""
    xs, ys = xs.to(x), ys.to(x)
    if not extrapolate:
        x = x.clamp(float(xs[0]), float(xs[-1]))
    i = torch.searchsorted(xs, x.contiguous(), right=True).clamp(1, xs.numel() - 1)
    t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]).clamp_min(1e-12)
    return ys[i - 1] + t * (ys[i] - ys[i - 1])


def to_radius(k: int, ratio: torch.Tensor) -> torch.Tensor:
    """Level ``k``'s fine/coarse ratio -> blur radius (full-resolution px), by the calibrated table."""
    n = sum(1 for r in CALIBRATION_RADII if r <= LEVEL_TOP[k])
    table = torch.cummin(torch.tensor(CALIBRATION_RATIOS[k][:n], dtype=torch.float64), dim=0).values
    radii = torch.tensor(CALIBRATION_RADII[:n], dtype=torch.float64)
    # ratios fall with blur: read the table backwards; on its flat tail this gives the smallest radius
    return interp(ratio, table.flip(0), radii.flip(0))


def _noise_sigma(luma: torch.Tensor) -> float:
    """Robust white-noise sigma of the image: median absolute 4-neighbour Laplacian residual, rescaled."""
    xp = reflect_pad(luma, 1, 1, 1, 1)
    resid = luma - 0.25 * (xp[..., :-2, 1:-1] + xp[..., 2:, 1:-1] + xp[..., 1:-1, :-2] + xp[..., 1:-1, 2:])
    return float(resid.abs().median()) * 1.4826 / math.sqrt(1.25)


def level_votes(
    level: torch.Tensor, k: int, noise: float, clipped: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse ratio votes of pyramid level ``k`` and their weights (the edge's contrast; 0 off edges).

    A ridge votes when its coarse gradient stands ``NOISE_FACTOR`` above the noise's and its contrast (the
    ridge gradient over that of a unit step of the radius it reads) above ``MIN_CONTRAST``. The table
    lookups run on the ridge pixels only. ``clipped`` (bool, this level's grid) marks where a clipped highlight
    is within reach of the gradients: clipping flattens a blurred highlight into a plateau with a steep rim, an
    edge that reads sharp however blurred the light was, so such ridges do not vote.
    """
    peaks, noise_gain = _tables()
    fine, coarse, ridge = _measure(level, k)
    ok = ridge & (coarse > NOISE_FACTOR * noise * float(noise_gain[k]))
    del ridge
    if clipped is not None:
        ok &= ~clipped
    ratio = fine[ok] / coarse[ok].clamp_min(1e-12)
    grid = torch.tensor(CALIBRATION_RADII, dtype=ratio.dtype, device=ratio.device)
    idx = torch.searchsorted(grid, to_radius(k, ratio).contiguous()).clamp(0, grid.numel() - 1)
    contrast = coarse[ok] / peaks[k].to(ratio)[idx]
    strong = contrast > MIN_CONTRAST
    values = torch.zeros_like(fine)
    weight = torch.zeros_like(fine)
    del fine, coarse
    where = ok.nonzero(as_tuple=True)
    where = tuple(i[strong] for i in where)
    values[where] = ratio[strong]
    weight[where] = contrast[strong]
    return values, weight


def _spread(k: int, values: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust normalized convolution of ratio votes: the dense radius and the spread vote density.

    Ratios are averaged, not radii: the table clamps at radius 0, so averaging radii would bias sharp
    regions upwards, while the ratio of a sharp edge scatters evenly about its calibrated value. Votes far
    from the first dense estimate (crowded or noisy edges) then lose weight: a local median, roughly.
    """

    def blur2(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        """The spread ratio (num / den), written over ``num``; ``den`` becomes the spread density."""
        acc_n, acc_d = torch.zeros_like(num), torch.zeros_like(den)
        for sigma, w in zip(SPREAD_SIGMAS, SPREAD_WEIGHTS, strict=True):
            acc_n.add_(gaussian(num, sigma), alpha=w)
            acc_d.add_(gaussian(den, sigma), alpha=w)
        den.copy_(acc_d)
        return acc_n.div_(acc_d.clamp_min_(1e-20))

    votes = weight > 0
    dense = to_radius(k, blur2(values * weight, weight.clone()))
    radius = to_radius(k, values[votes])
    agree = torch.exp(-0.5 * ((radius - dense[votes]) / (OUTLIER_PX * 2**k)) ** 2)
    del dense
    robust = torch.zeros_like(weight)
    robust[votes] = weight[votes] * agree
    spread = blur2(values * robust, robust)
    return to_radius(k, spread), robust


def box_mean(x: torch.Tensor, reach: int) -> torch.Tensor:
    """Mean over a (2 reach + 1) square, reflect borders, as two 1-D pools (cost linear in ``reach``)."""
    size = 2 * reach + 1
    rows = F.avg_pool2d(reflect_pad(x, reach, reach, reach, reach), (1, size), stride=1)
    return F.avg_pool2d(rows, (size, 1), stride=1)


def guided(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter with a grey guide: smooths ``src`` but keeps the guide's edges."""
    mean_g, mean_s = box_mean(guide, radius), box_mean(src, radius)
    a = box_mean(guide * src, radius).sub_(mean_g * mean_s)
    a.div_(box_mean(guide * guide, radius).sub_(mean_g * mean_g).add_(eps))
    b = mean_s.sub_(a * mean_g)
    del mean_g
    return box_mean(a, radius).mul_(guide).add_(box_mean(b, radius))


def _below(x: torch.Tensor, limit: float) -> torch.Tensor:
    """1 below ``limit``, 0 from 1.5 x ``limit``, a smoothstep between."""
    t = ((x - limit) / (0.5 * limit)).clamp(0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def estimate_defocus(srgb: torch.Tensor) -> torch.Tensor:
    """Blur radius map (1, 1, H, W) in full-resolution px for an sRGB tile (1, 3, H, W) in [0, 1]."""
    luma = sum(w * srgb_to_linear(srgb[:, c : c + 1].float()) for c, w in enumerate(_LUMA))
    size = luma.shape[-2:]
    noise = _noise_sigma(luma)
    levels = _pyramid(luma)
    clipped = (srgb.amax(dim=1, keepdim=True) >= CLIP_LEVEL).float()
    any_clipped = bool(clipped.any())
    estimate = torch.zeros_like(luma)
    for k in reversed(range(LEVELS + 1)):
        near = _near(clipped, k, levels[k].shape[-2:]) if any_clipped else None
        dense, density = _spread(k, *level_votes(levels[k], k, noise, near))
        trust = density.div_(density + DENSITY_HALF)
        trust = F.interpolate(trust, size=size, mode="bilinear", align_corners=False)
        if k < LEVELS:
            # A finer level speaks where the coarser levels say the blur is within its range, or where it
            # reads so itself: its evidence of sharpness outranks a coarse level reading a smooth ramp as
            # blur, while its saturated readings ("wider than I can see") leave the coarse estimate alone.
            limit = HAND_OVER * 2**k
            own = F.interpolate(_below(dense, limit), size=size, mode="bilinear", align_corners=False)
            trust.mul_(torch.maximum(_below(estimate, limit), own))
            del own
        dense = F.interpolate(dense, size=size, mode="bilinear", align_corners=False)
        estimate.add_(trust.mul_(dense.sub_(estimate)))
        del dense, trust
    del levels
    reading = guided(linear_to_srgb(luma), estimate, GUIDE_RADIUS, GUIDE_EPS)
    return _recalibrate(reading).clamp_(0.0, MAX_RADIUS)


def _near(clipped: torch.Tensor, k: int, size: torch.Size) -> torch.Tensor:
    """Level ``k`` pixels within ``CLIP_REACH`` level px of a clipped full-resolution pixel."""
    f = 2**k
    h, w = clipped.shape[-2:]
    grid = F.max_pool2d(reflect_pad(clipped, 0, (-h) % f, 0, (-w) % f), f) if f > 1 else clipped
    grid = grid[..., : size[0], : size[1]]
    r = CLIP_REACH
    return F.max_pool2d(reflect_pad(grid, r, r, r, r), 2 * r + 1, stride=1) > 0


def _recalibrate(reading: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``READING_TO_RADIUS``, extended by its end slopes beyond its first and last points."""
    xs = torch.tensor([p[0] for p in READING_TO_RADIUS], dtype=reading.dtype, device=reading.device)
    ys = torch.tensor([p[1] for p in READING_TO_RADIUS], dtype=reading.dtype, device=reading.device)
    return interp(reading, xs, ys, extrapolate=True)
