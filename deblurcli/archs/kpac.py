"""KPAC (Son et al., ICCV 2021): kernel-sharing parallel atrous convolutions for defocus deblurring.

A re-statement of the authors' TensorFlow 1 / TensorLayer graph (``Defocus_Deblur_Net6_ms`` = 2 levels,
``_ds`` = 3 levels, ``_ds_dual`` = 3 levels on dual-pixel views). Parameter names are our own (they mirror
the TF layer names so the checkpoint mapping in ``methods/kpac.py`` stays readable); what must
match the TF graph is the arithmetic, which departs from PyTorch defaults where the trained weights need it:

* convolutions use TF ``SAME`` padding: stride-2 3x3 convs on even sizes pad 0 before and 1 after, not 1/1;
* every activation is LeakyReLU with slope 0.2 (``tf.nn.leaky_relu``), except two sigmoids and the linear
  output conv;
* the 4x4 stride-2 ``SAME`` deconvolutions are exactly ``ConvTranspose2d(4, 2, 1)``.

KPAC block: one bias-free 5x5 kernel is applied at dilations 1..5 (five branches of 48 channels, each with
LeakyReLU); a per-pixel scale attention (5 sigmoid maps, map k scaling all channels of branch k) and a global
shape attention (48 sigmoid weights from the spatial mean, shared by the five branches) multiply the
branches before a 3x3 fusion conv. Because of that spatial mean the result of a tile depends slightly on the
whole tile, so tiled and whole-image results can differ a little.

I/O: images in [-1, 1]; the output is the network residual plus the (central) input, not clipped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: LeakyReLU slope (TensorFlow's default for ``tf.nn.leaky_relu``)
SLOPE = 0.2
#: base width, atrous kernel size, number of KPAC blocks and of parallel dilations
CH = 48
KS = 5
BLOCKS = 2
RATES = (1, 2, 3, 4, 5)


def same_padding(size: int, *, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) along one axis: the output is ``ceil(size / stride)`` and any odd
    total padding puts the extra pixel after, which is why stride-2 convs pad 0/1 on even sizes."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding, computed from the input size at each call."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, 0, dilation)

    def forward(self, x: Tensor) -> Tensor:
        k, s, d = self.kernel_size[0], self.stride[0], self.dilation[0]
        top, bottom = same_padding(x.shape[-2], kernel=k, stride=s, dilation=d)
        left, right = same_padding(x.shape[-1], kernel=k, stride=s, dilation=d)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0, self.dilation)


def _lrelu(x: Tensor) -> Tensor:
    """In place: every call takes a fresh conv output, which neither the forward nor a conv's backward
    reads again, so a 48-240 channel temporary per call is saved."""
    return F.leaky_relu_(x, SLOPE)


class KPACBlock(nn.Module):
    """One kernel-sharing parallel atrous block (96 channels in, 96 out; no residual, as in the release)."""

    def __init__(self, *, channels: int = 2 * CH, branch: int = CH) -> None:
        super().__init__()
        self.branch = branch
        # the one kernel shared by all dilations; TF created it without bias
        self.kernel = nn.Parameter(torch.empty(branch, channels, KS, KS))
        nn.init.kaiming_uniform_(self.kernel, a=math.sqrt(5))
        widths = (channels, 32, 32, 16, 16)
        self.scale_att = nn.ModuleList(
            [SameConv2d(a, b, 5, dilation=2) for a, b in zip(widths[:-1], widths[1:], strict=True)]
            + [SameConv2d(widths[-1], len(RATES), 5)]
        )
        self.shape_att = nn.ModuleList([nn.Conv2d(channels, branch // 4, 1), nn.Conv2d(branch // 4, branch, 1)])
        self.fuse = SameConv2d(branch * len(RATES), channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        half = KS // 2
        branches = torch.cat([_lrelu(F.conv2d(x, self.kernel, None, 1, half * r, r)) for r in RATES], dim=1)
        scale = x
        for conv in self.scale_att[:-1]:
            scale = _lrelu(conv(scale))
        scale = torch.sigmoid(self.scale_att[-1](scale))  # (N, 5, H, W): map k weighs branch k
        shape = x.mean(dim=(2, 3), keepdim=True)
        shape = torch.sigmoid(self.shape_att[1](_lrelu(self.shape_att[0](shape))))  # (N, 48, 1, 1)
        # weights[:, 48k + c] = scale[:, k] * shape[:, c], broadcast instead of two repeated copies
        weights = (scale.unsqueeze(2) * shape.unsqueeze(1)).flatten(1, 2)
        return _lrelu(self.fuse(branches.mul_(weights)))


class KPAC(nn.Module):
    """The KPAC deblurring network.

    Args:
        levels: 2 (KPAC blocks at 1/4 scale, the 1.58M-parameter model) or 3 (blocks at 1/8, 2.06M).
        dual_pixel: the encoder reads the two dual-pixel views ``cat[L, R]`` (6 channels, left view first,
            as the authors' graph does); the residual is added to the combined image C.

    Input height and width must be multiples of ``2 ** levels`` (the engine pads).
    """

    def __init__(self, *, levels: int = 2, dual_pixel: bool = False) -> None:
        super().__init__()
        if levels not in (2, 3):
            raise ValueError(f"KPAC has 2 or 3 levels, not {levels}")
        self.levels = levels
        self.dual_pixel = dual_pixel
        wide = 2 * CH
        self.c0 = SameConv2d(6 if dual_pixel else 3, CH, 5)
        self.c0_2 = SameConv2d(CH, CH, 3)
        self.c2 = SameConv2d(CH, CH, 3, stride=2)
        self.c2_2 = SameConv2d(CH, CH, 3)
        self.c3 = SameConv2d(CH, wide, 3, stride=2)
        self.c3_2 = SameConv2d(wide, wide, 3)
        if levels == 3:
            self.c4 = SameConv2d(wide, wide, 3, stride=2)
            self.c4_2 = SameConv2d(wide, wide, 3)
        self.blocks = nn.ModuleList(KPACBlock() for _ in range(BLOCKS))
        self.cm_1 = SameConv2d(wide * (BLOCKS + 1), wide, 3)
        self.cm_2 = SameConv2d(wide, wide, 3)
        if levels == 3:
            self.d0 = nn.ConvTranspose2d(wide, wide, 4, 2, 1)
            self.d0_2 = SameConv2d(2 * wide, wide, 3)
        self.d1 = nn.ConvTranspose2d(wide, CH, 4, 2, 1)
        self.d1_2 = SameConv2d(2 * CH, CH, 3)
        self.d2 = nn.ConvTranspose2d(CH, CH, 4, 2, 1)
        self.d2_2 = SameConv2d(2 * CH, 3, 5)

    @property
    def multiple_of(self) -> int:
        return 2**self.levels

    def forward(self, image: Tensor, views: Tensor | None = None) -> Tensor:
        """Deblur ``image`` (N, 3, H, W) in [-1, 1]; ``views`` = ``cat[L, R]`` for the dual-pixel model."""
        h, w = image.shape[-2:]
        if h % self.multiple_of or w % self.multiple_of:
            raise ValueError(f"KPAC ({self.levels} levels) needs sizes divisible by {self.multiple_of}, got {h}x{w}")
        if self.dual_pixel != (views is not None):
            raise ValueError("a dual-pixel KPAC needs views=cat([L, R], dim=1); a single-image KPAC takes none")
        x = views if views is not None else image
        f1 = _lrelu(self.c0_2(_lrelu(self.c0(x))))
        f2 = _lrelu(self.c2_2(_lrelu(self.c2(f1))))
        f3 = _lrelu(self.c3_2(_lrelu(self.c3(f2))))
        n = f3 if self.levels == 2 else _lrelu(self.c4_2(_lrelu(self.c4(f3))))
        stack = [n]
        for block in self.blocks:
            n = block(n)
            stack.append(n)
        n = _lrelu(self.cm_2(_lrelu(self.cm_1(torch.cat(stack, dim=1)))))
        if self.levels == 3:
            n = _lrelu(self.d0_2(torch.cat([_lrelu(self.d0(n)), f3], dim=1)))
        n = _lrelu(self.d1_2(torch.cat([_lrelu(self.d1(n)), f2], dim=1)))
        n = self.d2_2(torch.cat([_lrelu(self.d2(n)), f1], dim=1))
        return n + image
