"""Refocus: our own defocus-deblurring network, small enough to ship and to run on a laptop CPU.

Why this shape. Defocus blur spreads light over up to a dozen pixels, so the network needs a wide receptive
field, but a CPU pays for every full-resolution multiply. Measured on a 2-core CPU, depthwise convolutions and
per-pixel normalisation (NAFNet style) ran far below the matmul peak, while dense 3x3 convolutions run close to
it. So the network is a plain U-Net of dense 3x3 convolutions that never works at full resolution: the input is
pixel-unshuffled to half scale (3 -> 12 channels), the trunk runs at 1/2, 1/4 and 1/8 scale with channels
doubling as the scale halves (every level then costs about the same per conv), the decoder goes back up by
bilinear upsampling (``Up``), and the output is a residual pixel-shuffled back to full scale and added to the
input. Most of the depth sits at 1/8 scale, where one 3x3 conv sees +-8 px of the photo.

Two outputs: the deblurred image and a per-pixel defocus map (blur *radius* in px, the unit ``classic`` and
``dmsft`` report), read off the last decoder level. The map is a by-product for ``--maps`` and for bokeh
protection; the image path does not depend on it.

Initialisation makes the untrained network the identity (zero output convs, small residual branches), so
training starts at the input's PSNR and in-focus content is left alone from step one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: LeakyReLU slope: keeps gradients alive in a small network trained from scratch
SLOPE = 0.1
#: input height and width must be multiples of this (1/2 scale, then two stride-2 levels)
MULTIPLE_OF = 8


def _conv(cin: int, cout: int, *, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """x + conv(act(conv(x))): two dense 3x3 convolutions; the second starts small so depth is cheap to train."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels)
        self.act = nn.LeakyReLU(SLOPE)
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)
            self.conv2.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Up(nn.Module):
    """1x1 conv at the coarse scale, then bilinear 2x upsampling: nothing in it can print a grid.

    A 1x1 conv to 4x the channels followed by a pixel shuffle (what this was) gives each of the four pixels of
    a 2x2 block its own linear map of the same coarse feature: a learned kernel-2, stride-2 transposed conv.
    Trained, it printed the coarse cells into smooth skies as a faint 8 px (and 4 px) grid that the single
    3x3 block after it could not smooth away. Bilinear upsampling is smooth by construction, and since a 1x1
    conv commutes with it, running the conv first costs a quarter of the multiplies.
    """

    def __init__(self, *, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)


def _stack(n: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels=channels) for _ in range(n)))


class Refocus(nn.Module):
    """U-Net over 1/2, 1/4 and 1/8 scale; returns ``(image, defocus_radius_px)`` at full resolution.

    Args:
        width: channels at 1/2 scale; 1/4 and 1/8 scale use 2x and 4x.
        enc_blocks: residual blocks at 1/2 and 1/4 scale on the way down.
        mid_blocks: residual blocks at 1/8 scale.
        dec_blocks: residual blocks at 1/4 and 1/2 scale on the way up.

    Input: (N, 3, H, W) sRGB in [0, 1], H and W multiples of 8. Output image: the input plus a residual
    (not clipped); map: (N, 1, H, W) blur radius in px (not clamped; callers clamp at zero).
    """

    def __init__(
        self,
        *,
        width: int = 32,
        enc_blocks: tuple[int, int] = (1, 1),
        mid_blocks: int = 3,
        dec_blocks: tuple[int, int] = (1, 1),
    ) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.unshuffle = nn.PixelUnshuffle(2)
        self.head = _conv(12, w1)
        self.enc1 = _stack(enc_blocks[0], w1)
        self.down1 = _conv(w1, w2, stride=2)
        self.enc2 = _stack(enc_blocks[1], w2)
        self.down2 = _conv(w2, w3, stride=2)
        self.mid = _stack(mid_blocks, w3)
        self.up2 = Up(cin=w3, cout=w2)
        self.dec2 = _stack(dec_blocks[0], w2)
        self.up1 = Up(cin=w2, cout=w1)
        self.dec1 = _stack(dec_blocks[1], w1)
        self.tail = _conv(w1, 12)
        self.map_head = _conv(w1, 4)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.LeakyReLU(SLOPE)
        with torch.no_grad():
            self.tail.weight.zero_()
            self.tail.bias.zero_()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h1 = self.enc1(self.act(self.head(self.unshuffle(x - 0.5))))
        h2 = self.enc2(self.act(self.down1(h1)))
        h3 = self.mid(self.act(self.down2(h2)))
        d2 = self.dec2(self.up2(h3) + h2)
        d1 = self.dec1(self.up1(d2) + h1)
        image = x + self.shuffle(self.tail(d1))
        radius = self.shuffle(self.map_head(d1))
        return image, radius
