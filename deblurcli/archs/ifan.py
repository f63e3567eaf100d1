"""IFAN (Lee et al., CVPR 2021): iterative filter adaptive network for single-image defocus deblurring.

Module and parameter names reproduce the released ``IFAN.pytorch`` state dict key for key (after dropping
the ``module.Network.`` prefix), so the authors' checkpoints load strictly. Behaviour follows the authors'
code where it departs from the paper, because the weights were trained that way (see ``iac.py`` for the IAC
quirks): ``out_res`` ends in LeakyReLU before the global residual, and residual blocks with more than one sub-block add
their input once more at the end.

Data flow: a feature encoder (``conv*``) takes the blurry image C to 1/8 scale (e_B); a filter encoder
(``kconv*``, its own weights) and the disparity estimator (``DME``) feed the filter predictor (``conv4_4``,
``F``), whose 1x1 head emits N x 896 per-pixel filter channels; IAC applies them to e_B N times; a U-Net
decoder with skips f1..f3 returns the residual added to C.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.archs.iac import SLOPE, bias_rows, filter_channels, iac, iac_step, tap_rows

#: channels at full, 1/2, 1/4 and 1/8 scale
WIDTHS = (32, 64, 128, 128)
#: IAC filter size
KERNEL = 3
#: iterations used by the reblurring network of each released variant (the authors' ``RBF_num``)
REBLUR_ITERATIONS = {8: 8, 17: 17, 26: 9, 35: 17, 44: 17}


def _act() -> nn.LeakyReLU:
    """In place: every activation follows a conv, whose backward never needs its own output, and a
    full-resolution 32-channel temporary is 118 MB at 1280x720."""
    return nn.LeakyReLU(SLOPE, inplace=True)


def _conv(cin: int, cout: int, *, stride: int = 1) -> nn.Sequential:
    """3x3 conv (zero padding, bias) + LeakyReLU; a Sequential so that keys read ``name.0.weight``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), _act())


def _upconv(cin: int, cout: int) -> nn.Sequential:
    """x2 transposed conv (k4 s2 p1) + LeakyReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), _act())


class ResBlock(nn.Module):
    """``blocks`` residual sub-blocks ``x = lrelu(x + conv(lrelu(conv(x))))``.

    With more than one sub-block the input is added once more at the end, without activation: the authors'
    block does this and the trained weights rely on it.
    """

    def __init__(self, *, channels: int, blocks: int) -> None:
        super().__init__()
        self.stem = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), _act(), nn.Conv2d(channels, channels, 3, 1, 1))
            for _ in range(blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for sub in self.stem:
            y = F.leaky_relu_(sub(y).add_(y), SLOPE)  # in place on the fresh conv output
        return y + x if len(self.stem) > 1 else y


def _stage(head: nn.Module, tail: nn.Module, *, channels: int) -> nn.Sequential:
    """``head``, two ResBlock(2), ``tail``: the shape of DME, conv4_4 and F."""
    blocks = [ResBlock(channels=channels, blocks=2) for _ in range(2)]
    return nn.Sequential(head, *blocks, tail)


class IFAN(nn.Module):
    """The deblurring network (inference part of the authors' ``DeblurNet``).

    Args:
        iterations: IAC iterations N; the released variants use 8, 17 (default), 26, 35 and 44.
        dual_pixel: the filter encoder reads the two dual-pixel views ``cat[R, L]`` (6 channels) instead of C.

    Input height and width must be multiples of 8 (the engine pads).
    """

    def __init__(self, *, iterations: int = 17, dual_pixel: bool = False) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be positive, got {iterations}")
        self.iterations = iterations
        self.dual_pixel = dual_pixel
        c1, c2, c3, c4 = WIDTHS
        # Registration order matters: it is the order of the official state dict.
        self._encoder("conv", 3)
        self.conv4_4 = _stage(_conv(2 * c4, c4), _conv(c4, c4), channels=c4)
        self.conv_res = nn.Sequential(_conv(c4, c4), ResBlock(channels=c4, blocks=3), _conv(c4, c4))
        for level, (cin, cout) in zip((3, 2, 1), ((c4, c3), (c3, c2), (c2, c1)), strict=True):
            setattr(self, f"upconv{level}_u", _upconv(cin, cout))
            setattr(self, f"upconv{level}_1", ResBlock(channels=cout, blocks=1))
            setattr(self, f"upconv{level}_2", ResBlock(channels=cout, blocks=1))
        self.out_res = nn.Sequential(nn.Conv2d(c1, 3, 3, 1, 1), _act())
        self._encoder("kconv", 6 if dual_pixel else 3)
        self.DME = _stage(_conv(c4, c4), nn.Conv2d(c4, 1, 3, 1, 1), channels=c4)
        self.conv_DME = _conv(1, c4)
        self.F = _stage(
            _conv(c4, c4),
            nn.Conv2d(c4, filter_channels(channels=c4, iterations=iterations, kernel_size=KERNEL), 1),
            channels=c4,
        )

    def _encoder(self, prefix: str, cin: int) -> None:
        """Twelve convs, three per scale, stride 2 at the first conv of scales 1/2, 1/4 and 1/8."""
        for level, cout in enumerate(WIDTHS, start=1):
            for j in (1, 2, 3):
                stride = 2 if level > 1 and j == 1 else 1
                setattr(self, f"{prefix}{level}_{j}", _conv(cin, cout, stride=stride))
                cin = cout

    def _run_encoder(self, prefix: str, x: Tensor) -> list[Tensor]:
        feats = []
        for level in range(1, len(WIDTHS) + 1):
            for j in (1, 2, 3):
                x = getattr(self, f"{prefix}{level}_{j}")(x)
            feats.append(x)
        return feats

    # -- the pieces, public so that training and tests can reach the intermediates --------------------------

    def encode(self, image: Tensor) -> list[Tensor]:
        """Feature encoder on C: [f1, f2, f3, e_B] at scales 1, 1/2, 1/4, 1/8."""
        return self._run_encoder("conv", image)

    def estimate_disparity(self, views: Tensor) -> Tensor:
        """Filter encoder + DME: horizontal disparity (1/8-scale pixels) at 1/8 scale, (B, 1, H/8, W/8).

        Training runs this a second time on the right view R (``cat[R, L]`` for dual-pixel) for the warping
        loss; see ``warp_by_disparity``.
        """
        return self.DME(self._run_encoder("kconv", views)[-1])

    def filter_context(self, views: Tensor) -> tuple[Tensor, Tensor]:
        """Everything of the filter predictor before its 1x1 head: (128-channel context, disparity)."""
        e_f = self._run_encoder("kconv", views)[-1]
        disparity = self.DME(e_f)
        ctx = self.conv4_4(torch.cat([e_f, self.conv_DME(disparity)], dim=1))
        return self.F[:3](ctx), disparity

    def filters(self, context: Tensor) -> Tensor:
        """The full filter tensor (B, N*896, H/8, W/8); only training needs it (reblurring loss)."""
        return self.F[3](context)

    def adaptive_filtering(self, e_b: Tensor, context: Tensor) -> Tensor:
        """IAC without ever building the full filter tensor: each iteration's taps and biases are computed
        from ``context`` just before use (2/3 of the 1x1 head's work, 1/N of its memory)."""
        head: nn.Conv2d = self.F[3]
        c = e_b.shape[1]
        out = e_b
        for i in range(self.iterations):
            rows_t = tap_rows(i, channels=c, kernel_size=KERNEL)
            rows_b = bias_rows(i, channels=c, iterations=self.iterations, kernel_size=KERNEL)
            taps = F.conv2d(context, head.weight[rows_t], head.bias[rows_t])
            bias = F.conv2d(context, head.weight[rows_b], head.bias[rows_b])
            out = iac_step(out, taps, bias, activate=True)
        return out

    def decode(self, e_bs: Tensor, skips: list[Tensor], image: Tensor) -> Tensor:
        """Reconstructor: 1/8-scale filtered features + skips f1..f3 -> unclipped image ``out_res(f) + C``."""
        f1, f2, f3 = skips[:3]
        h = self.conv_res(e_bs)
        for level, skip in zip((3, 2, 1), (f3, f2, f1), strict=True):
            h = getattr(self, f"upconv{level}_u")(h) + skip
            h = getattr(self, f"upconv{level}_2")(getattr(self, f"upconv{level}_1")(h))
        return self.out_res(h) + image

    def _views(self, image: Tensor, views: Tensor | None) -> Tensor:
        if self.dual_pixel:
            if views is None or views.shape[1] != 6:
                raise ValueError("a dual-pixel IFAN needs views=cat([R, L], dim=1) with 6 channels")
            return views
        if views is not None:
            raise ValueError("views are only used by a dual-pixel IFAN")
        return image

    def forward(self, image: Tensor, views: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(unclipped output, disparity at 1/8) for C in [0, 1], (B, 3, H, W) with H, W multiples of 8."""
        feats = self.encode(image)
        context, disparity = self.filter_context(self._views(image, views))
        return self.decode(self.adaptive_filtering(feats[-1], context), feats, image), disparity

    def forward_with_filters(
        self, image: Tensor, views: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Training forward: also returns the full filter tensor that ``IFANReblur`` consumes.

        The filter tensor is not detached: the reblurring loss trains the filter predictor, kernel2 included.
        """
        feats = self.encode(image)
        context, disparity = self.filter_context(self._views(image, views))
        filters = self.filters(context)
        e_bs = iac(feats[-1], filters, iterations=self.iterations, kernel_size=KERNEL)
        return self.decode(e_bs, feats, image), disparity, filters


class IFANReblur(nn.Module):
    """The reblurring network (RBN, training only): predicts from IFAN's filter tensor how to blur the
    sharp image back, which pushes the filters to encode the blur (``reblurNet`` in the checkpoints).

    Args:
        iterations: IAC iterations of the IFAN whose filter tensor it reads.
        reblur_iterations: its own IAC iterations on RGB; None takes the released variant's value.
    """

    def __init__(self, *, iterations: int = 17, reblur_iterations: int | None = None) -> None:
        super().__init__()
        if reblur_iterations is None:
            if iterations not in REBLUR_ITERATIONS:
                raise ValueError(f"no released reblur setting for N={iterations}; pass reblur_iterations")
            reblur_iterations = REBLUR_ITERATIONS[iterations]
        self.reblur_iterations = reblur_iterations
        c4 = WIDTHS[3]
        cin = filter_channels(channels=c4, iterations=iterations, kernel_size=KERNEL)
        cout = filter_channels(channels=3, iterations=reblur_iterations, kernel_size=KERNEL)
        self.RBF = _stage(_conv(cin, c4), nn.Conv2d(c4, cout, 3, 1, 1), channels=c4)

    def forward(self, filters: Tensor, sharp: Tensor) -> Tensor:
        """Reblurred 1/8-scale image, to be compared with the area-downsampled blurry input.

        The sharp image is subsampled by picking pixel (8i, 8j), as the authors' nearest interpolation does;
        the last IAC iteration has no activation and a global residual follows.
        """
        small = sharp[:, :, ::8, ::8]
        rb = self.RBF(filters)
        out = iac(small, rb, iterations=self.reblur_iterations, kernel_size=KERNEL, activate_last=False)
        return out + small


def downsample8(image: Tensor) -> Tensor:
    """Area downsampling by 8, the targets of the warping and reblurring losses."""
    return F.avg_pool2d(image, 8)


def warp_by_disparity(image: Tensor, disparity: Tensor) -> Tensor:
    """Backward-warp ``image`` horizontally: output(y, x) = image(y, x + disparity(y, x)), bilinear, zeros
    outside, in the sampling convention of the authors' warping loss (grid_sample, align_corners=True)."""
    b, _, h, w = image.shape
    ys = torch.linspace(-1.0, 1.0, h, device=image.device, dtype=image.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=image.device, dtype=image.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gx = gx.expand(b, h, w) + disparity[:, 0] / ((w - 1) / 2)
    grid = torch.stack([gx, gy.expand(b, h, w)], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
