"""DRBNet (Ruan et al., CVPR 2022): coarse-to-fine deblurring with dynamic residual blocks.

Module and parameter names reproduce the released state dict key for key and in order (a bare state dict,
no prefix), so the authors' ``.pth`` files load strictly. Behaviour follows the authors' code, because the
weights were trained that way:

* the network works on images in [-1, 1] and clips only its final output;
* a feature U-Net (encoder ``conv*``, decoder ``upconv{3,2,1}_*``) runs beside an image pyramid; at each
  scale s in 8, 4, 2, 1 a dynamic residual block (DRB) refines the current image estimate I_s as
  ``I_s + FAC(I_s, K) + R``, where K (49 channels, linear, *not* normalised) is one 7x7 kernel per pixel,
  shared by the three colour channels and read row-major, applied with replicate padding, and R comes from a
  head whose last 1x1 conv keeps its LeakyReLU (hence the key ``upconvX_res.2.0.*``);
* only the 1/8 DRB sees the input itself (8x8 average pooling, i.e. ``interpolate(mode="area")``); finer DRBs
  see the previous estimate upsampled by nearest x2 (what ``mode="area"`` does when enlarging), so detail
  reaches the output through K and R only.

Input height and width must be multiples of 8 (the engine pads).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: LeakyReLU slope of every activation in the authors' helpers
SLOPE = 0.1
#: size of the per-pixel dynamic kernel
KERNEL = 7
#: width of the feature U-Net at full, 1/2, 1/4 and 1/8 scale
WIDTHS = (32, 64, 128, 256)
#: per DRB scale: image-feature widths (a, b, c), first width of both heads, last widths of the K and R heads
DRB_SHAPES: dict[str, tuple[tuple[int, int, int], int, int, int]] = {
    "8": ((64, 128, 256), 256, 128, 64),
    "4": ((64, 128, 128), 128, 128, 64),
    "2": ((64, 64, 64), 64, 64, 64),
    "1": ((64, 64, 32), 64, 64, 64),
}
#: DRB scale -> index of its heads in the checkpoint names (``upconv{index}_kernel``)
HEAD_INDEX = {"8": "3", "4": "2", "2": "1", "1": "0"}


def _conv(cin: int, cout: int, *, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (zero padding, bias) + LeakyReLU; a Sequential so that keys read ``name.0.weight``."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2), nn.LeakyReLU(SLOPE, inplace=True))


def _upconv(cin: int, cout: int) -> nn.Sequential:
    """x2 transposed conv (k4 s2 p1) + LeakyReLU, used for features only."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(SLOPE, inplace=True))


class ResBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))``, no activation after the sum (unlike IFAN's block of the same name).

    The single sub-block sits in a one-element ModuleList because the checkpoint keys read ``stem.0.{0,2}``.
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.stem = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(channels, channels, 3, 1, 1),
                    nn.LeakyReLU(SLOPE, inplace=True),
                    nn.Conv2d(channels, channels, 3, 1, 1),
                )
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.stem[0](x)


def apply_dynamic_kernel(image: Tensor, kernel: Tensor) -> Tensor:
    """``sum_{i,j} kernel[:, 7i+j] * image_pad[:, :, y+i, x+j]`` with replicate padding by 3.

    One kernel per pixel, shared by all channels of ``image``; channel ``7i+j`` is the tap at row offset
    ``i-3`` and column offset ``j-3``. A shift-and-add loop keeps memory at a few image-sized buffers instead
    of the 49x larger unfolded tensor; the sum accumulates in place, so no tap allocates anything.
    """
    n, _, h, w = image.shape
    if kernel.shape != (n, KERNEL * KERNEL, h, w):
        raise ValueError(f"kernel of shape {tuple(kernel.shape)} does not fit image {tuple(image.shape)}")
    half = KERNEL // 2
    # Planar (NCHW) operands: in channels_last, each tap would read every 49th float of the kernel map
    # (measured: the sum takes 1.6x as long, more than the two copies cost). A no-op for NCHW inputs.
    image, kernel = image.contiguous(), kernel.contiguous()
    padded = F.pad(image, (half, half, half, half), mode="replicate")
    out = kernel[:, 0:1] * padded[:, :, 0:h, 0:w]
    for t in range(1, KERNEL * KERNEL):
        i, j = divmod(t, KERNEL)
        out.addcmul_(kernel[:, t : t + 1], padded[:, :, i : i + h, j : j + w])
    return out


def _image_features(widths: tuple[int, int, int]) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(_conv(3, a), _conv(a, b), _conv(b, c))


def _kernel_head(cin: int, first: int, mid: int) -> nn.Sequential:
    """Two 3x3 convs then a *linear* 1x1 conv to the 49 kernel taps (key ``.2.weight``)."""
    return nn.Sequential(_conv(cin, first), _conv(first, mid), nn.Conv2d(mid, KERNEL * KERNEL, 1))


def _residual_head(cin: int, first: int, mid: int) -> nn.Sequential:
    """Two 3x3 convs then a 1x1 conv to RGB that keeps its LeakyReLU (key ``.2.0.weight``)."""
    return nn.Sequential(_conv(cin, first), _conv(first, mid), _conv(mid, 3, kernel=1))


class DRBNet(nn.Module):
    """The authors' ``DRBNet_single`` (or ``DeblurNet_dual`` with ``dual_pixel=True``).

    Args:
        dual_pixel: the feature encoder reads the two dual-pixel views ``cat[R, L]`` (6 channels); the image
            pyramid still starts from the combined image C.
    """

    def __init__(self, *, dual_pixel: bool = False) -> None:
        super().__init__()
        self.dual_pixel = dual_pixel
        c1, c2, c3, c4 = WIDTHS
        # Registration order is the checkpoint's key order: encoder, then per scale decoder + DRB modules.
        self.conv1_1 = _conv(6 if dual_pixel else 3, c1)
        self.conv1_2 = _conv(c1, c1)
        self.conv1_3 = _conv(c1, c1)
        self.conv2_1 = _conv(c1, c2, stride=2)
        self.conv2_2 = _conv(c2, c2)
        self.conv2_3 = _conv(c2, c2)
        self.conv3_1 = _conv(c2, c3, stride=2)
        self.conv3_2 = _conv(c3, c3)
        self.conv3_3 = _conv(c3, c3)
        self.conv4_1 = _conv(c3, c4, stride=2)
        self.conv4_2 = _conv(c4, c4)
        self.conv4_3 = _conv(c4, c4)
        self.conv4_4 = nn.Sequential(_conv(c4, c4), ResBlock(channels=c4), ResBlock(channels=c4), _conv(c4, c4))
        self._decoder_stage("3", c4, c3)
        self._image_branch("8")
        self._heads("8", c4)
        self._decoder_stage("2", c3, c2)
        self._image_branch("4")
        self._heads("4", c3)
        self._image_branch("2")
        self._decoder_stage("1", c2, c1)
        self._image_branch("1")
        self._heads("2", c2)
        self._heads("1", c1)

    def _decoder_stage(self, index: str, cin: int, cout: int) -> None:
        self.add_module(f"upconv{index}_u", _upconv(cin, cout))
        self.add_module(f"upconv{index}_1", ResBlock(channels=cout))
        self.add_module(f"upconv{index}_2", ResBlock(channels=cout))

    def _image_branch(self, scale: str) -> None:
        self.add_module(f"img_d{scale}_feature", _image_features(DRB_SHAPES[scale][0]))

    def _heads(self, scale: str, channels: int) -> None:
        """The K and R heads of the DRB at ``scale``, reading ``cat[decoder feature, image feature]``."""
        widths, first, kernel_mid, res_mid = DRB_SHAPES[scale]
        z = channels + widths[2]
        self.add_module(f"upconv{HEAD_INDEX[scale]}_kernel", _kernel_head(z, first, kernel_mid))
        self.add_module(f"upconv{HEAD_INDEX[scale]}_res", _residual_head(z, first, res_mid))

    def _apply_drb(self, scale: str, feat: Tensor, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One DRB: the refined estimate, its kernel map and its residual."""
        g = getattr(self, f"img_d{scale}_feature")(image)
        z = torch.cat([feat, g], dim=1)
        kernel = getattr(self, f"upconv{HEAD_INDEX[scale]}_kernel")(z)
        residual = getattr(self, f"upconv{HEAD_INDEX[scale]}_res")(z)
        return image + apply_dynamic_kernel(image, kernel) + residual, kernel, residual

    def _decode(self, index: str, feat: Tensor, skip: Tensor) -> Tensor:
        feat = getattr(self, f"upconv{index}_u")(feat) + skip
        return getattr(self, f"upconv{index}_2")(getattr(self, f"upconv{index}_1")(feat))

    def _encoder_input(self, image: Tensor, views: Tensor | None) -> Tensor:
        if self.dual_pixel:
            if views is None or views.shape[1] != 6:
                raise ValueError("a dual-pixel DRBNet needs views=cat([R, L], dim=1) with 6 channels")
            return views
        if views is not None:
            raise ValueError("views are only used by a dual-pixel DRBNet")
        return image

    def forward_heads(self, image: Tensor, views: Tensor | None = None) -> dict[str, Tensor]:
        """The clipped output plus the kernel and residual maps at 1/8 and full scale (for checks)."""
        h, w = image.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"DRBNet needs height and width divisible by 8, got {h}x{w}")
        x = self._encoder_input(image, views)
        f1 = self.conv1_3(self.conv1_2(self.conv1_1(x)))
        f2 = self.conv2_3(self.conv2_2(self.conv2_1(f1)))
        f3 = self.conv3_3(self.conv3_2(self.conv3_1(f2)))
        f = self.conv4_4(self.conv4_3(self.conv4_2(self.conv4_1(f3))))

        est, kernel_d8, residual_d8 = self._apply_drb("8", f, F.avg_pool2d(image, 8))
        f = self._decode("3", f, f3)
        est, _, _ = self._apply_drb("4", f, _up2(est))
        f = self._decode("2", f, f2)
        est, _, _ = self._apply_drb("2", f, _up2(est))
        f = self._decode("1", f, f1)
        est, kernel_d1, residual_d1 = self._apply_drb("1", f, _up2(est))
        return {
            "output": est.clamp(-1.0, 1.0),
            "kernel_d8": kernel_d8,
            "residual_d8": residual_d8,
            "kernel_d1": kernel_d1,
            "residual_d1": residual_d1,
        }

    def forward(self, image: Tensor, views: Tensor | None = None) -> Tensor:
        """Deblur ``image`` (N, 3, H, W) in [-1, 1]; returns the estimate clipped to [-1, 1]."""
        return self.forward_heads(image, views)["output"]


def _up2(image: Tensor) -> Tensor:
    """Nearest x2: equal to the authors' ``interpolate(scale_factor=2, mode="area")``."""
    return F.interpolate(image, scale_factor=2.0, mode="nearest")
