"""Image quality metrics, defined exactly as the papers' evaluation scripts compute them.

Inputs are float tensors (3, H, W) or (1, 3, H, W) in [0, 1], unquantised and clipped; the papers report on
that (DPDD/RealDOF protocol, research/field.md section 7). SSIM reproduces scikit-image's defaults
(``structural_similarity(..., channel_axis, data_range=1)``): 7x7 uniform window, sample covariance,
K1 = 0.01, K2 = 0.03, the window-radius border excluded, mean over channels. Training uses ``psnr`` too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _chw(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError("metrics take one image at a time")
        x = x[0]
    if x.dim() != 3:
        raise ValueError(f"expected (C, H, W), got {tuple(x.shape)}")
    return x.to(torch.float64)


def psnr(output: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; ``inf`` for identical images."""
    mse = torch.mean((_chw(output) - _chw(target)) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def mae(output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error over all pixels and channels."""
    return torch.mean(torch.abs(_chw(output) - _chw(target))).item()


def ssim(output: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, win_size: int = 7) -> float:
    """Structural similarity with scikit-image's defaults (see module docstring), computed in float64."""
    x, y = _chw(output)[:, None], _chw(target)[:, None]  # channels as batch: each channel on its own
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images must be at least {win_size} px on each side for SSIM")
    n = win_size * win_size
    cov_norm = n / (n - 1.0)  # sample covariance, as scikit-image's default

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    # avg_pool without padding yields exactly the interior that scikit-image keeps after cropping
    return s.mean(dim=(1, 2, 3)).mean().item()
