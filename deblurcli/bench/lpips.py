"""LPIPS v0.1 with the AlexNet backbone, the variant the defocus papers report, computed only from real weights.

Two files are needed and both come through the weights manifest: torchvision's ImageNet AlexNet
(``alexnet-owt-7be5be79.pth``, record ``alexnet-imagenet``) and the LPIPS v0.1 linear heads (``alex.pth``,
record ``lpips-alex-v0.1``). Without them there is no LPIPS: a distance from any other backbone is a
different metric, and printing it under this name would make our tables incomparable with the papers'.

The computation (Zhang et al. 2018): map [0, 1] to [-1, 1], shift and scale per channel, take AlexNet's five
ReLU outputs, normalise each feature vector to unit length, square the differences, weight channels with the
1x1 heads, average over space and sum over layers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deblurcli.zoo.state import load_strict, read_tensors

# channel statistics of LPIPS's input scaling layer (values from the LPIPS paper's code release)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_CHANNELS = (64, 192, 384, 256, 256)


class AlexFeatures(nn.Module):
    """torchvision's ``alexnet().features`` layer layout (indices kept so its state_dict keys load)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = {1, 4, 7, 9, 11}  # relu1 .. relu5
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 (AlexNet); ``forward`` takes two (N, 3, H, W) images in [0, 1] and returns (N,) distances."""

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexFeatures()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.net(((a * 2 - 1) - self.shift) / self.scale)
        fb = self.net(((b * 2 - 1) - self.shift) / self.scale)
        total = torch.zeros(a.shape[0], device=a.device)
        for head, xa, xb in zip(self.heads, fa, fb, strict=True):
            na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips(alexnet: Path, heads: Path) -> LPIPSAlex:
    """Build LPIPS from the two official files, strictly checked key for key."""
    model = LPIPSAlex()
    backbone = {k: v for k, v in read_tensors(alexnet).items() if k.startswith("features.")}
    load_strict(model.net, backbone, source=str(alexnet))
    lin = read_tensors(heads)
    head_state = {f"{i}.weight": lin[f"lin{i}.model.1.weight"] for i in range(5) if f"lin{i}.model.1.weight" in lin}
    load_strict(model.heads, head_state, source=str(heads))
    return model.eval().requires_grad_(False)
