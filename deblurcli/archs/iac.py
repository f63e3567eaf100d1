"""Iterative adaptive convolution (IAC), computed exactly as the released IFAN checkpoints expect.

An IAC iteration filters every channel of a feature map with its own per-pixel separable 3-tap kernel: a
vertical pass, then a horizontal pass, then a per-pixel bias and LeakyReLU(0.1). Two quirks of the authors'
code are kept because every released checkpoint was trained with them:

* the horizontal pass reuses the *vertical* taps (``kernel1``); the ``kernel2`` channels of the filter
  tensor are never read;
* borders are replicate-padded, not zero-padded.

The filter tensor is the largest activation of the whole network (15232 channels at 1/8 scale, 877 MB at
1280x720), so nothing here copies it or unfolds the features: each tap multiplies a *shifted view* of the
padded features by a *view* of the taps and accumulates in place. The only temporaries are the padded
features and one output per pass, each the size of the feature map.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

#: LeakyReLU slope used everywhere in IFAN
SLOPE = 0.1


def filter_channels(*, channels: int, iterations: int, kernel_size: int = 3) -> int:
    """Channels of a filter tensor for ``iterations`` iterations over ``channels`` features.

    Per iteration: ``channels * kernel_size`` vertical taps, as many (unused) horizontal taps, ``channels``
    biases; 17 x (128 x 3 x 2 + 128) = 15232 for IFAN.
    """
    return iterations * channels * (2 * kernel_size + 1)


def iac_step(features: Tensor, taps: Tensor, bias: Tensor, *, activate: bool = True) -> Tensor:
    """One IAC iteration with the same taps on both passes.

    Args:
        features: (B, C, H, W).
        taps: (B, C * k, H, W), index ``channel * k + t`` holds the tap at offset ``t - k // 2``
            (cross-correlation order). A channel slice of a larger tensor is fine: it is only viewed.
        bias: (B, C, H, W).
        activate: apply LeakyReLU(0.1) at the end (the deblurring net always does, the reblurring net
            skips it after its last iteration).
    """
    b, c, h, w = features.shape
    k = taps.shape[1] // c
    if taps.shape[1] != c * k or k % 2 == 0:
        raise ValueError(f"taps have {taps.shape[1]} channels, not an odd multiple of {c}")
    r = k // 2
    kern = taps.unflatten(1, (c, k))

    padded = F.pad(features, (0, 0, r, r), mode="replicate")
    vert = kern[:, :, 0] * padded[:, :, 0:h]
    for t in range(1, k):
        vert.addcmul_(kern[:, :, t], padded[:, :, t : t + h])

    padded = F.pad(vert, (r, r, 0, 0), mode="replicate")
    out = kern[:, :, 0] * padded[:, :, :, 0:w]
    for t in range(1, k):
        out.addcmul_(kern[:, :, t], padded[:, :, :, t : t + w])
    out.add_(bias)
    if activate:
        F.leaky_relu_(out, SLOPE)
    return out


def tap_rows(iteration: int, *, channels: int, kernel_size: int = 3) -> slice:
    """Rows of the filter tensor holding iteration ``iteration``'s vertical taps (``kernel1``).

    The layout is [N blocks of (C*k kernel1 | C*k kernel2)] then [N blocks of C biases], not interleaved per
    iteration as the paper's figure draws it.
    """
    start = iteration * 2 * channels * kernel_size
    return slice(start, start + channels * kernel_size)


def bias_rows(iteration: int, *, channels: int, iterations: int, kernel_size: int = 3) -> slice:
    """Rows of the filter tensor holding iteration ``iteration``'s biases."""
    start = iterations * 2 * channels * kernel_size + iteration * channels
    return slice(start, start + channels)


def iac(
    features: Tensor, filters: Tensor, *, iterations: int, kernel_size: int = 3, activate_last: bool = True
) -> Tensor:
    """Run all IAC iterations with a full filter tensor (as training needs it, for the reblurring loss).

    Inference does not need the full tensor at all: ``IFAN.forward`` computes each iteration's rows on the
    fly through ``iac_step``.
    """
    c = features.shape[1]
    expected = filter_channels(channels=c, iterations=iterations, kernel_size=kernel_size)
    if filters.shape[1] != expected:
        raise ValueError(f"filter tensor has {filters.shape[1]} channels, expected {expected}")
    out = features
    for i in range(iterations):
        taps = filters[:, tap_rows(i, channels=c, kernel_size=kernel_size)]
        bias = filters[:, bias_rows(i, channels=c, iterations=iterations, kernel_size=kernel_size)]
        out = iac_step(out, taps, bias, activate=activate_last or i < iterations - 1)
    return out
