"""DMSFT (Ye, Suganuma, Okatani 2022): defocus map -> condition features -> SFT-modulated deblurring.

The paper gives the three sub-networks and the SFT formula but no code; every choice it leaves open is
decided here, staying as close as possible to its two sources (DID-ANet, whose map estimator it reuses and
whose training it follows, and SFT-GAN, whose modulation it adapts) so that the paper's comparison with
DID-ANet (5,213,188 parameters) stays a like-for-like one. Our default model has 5,284,899 parameters.

1. Map estimator ``dme``: DID-ANet's, unchanged and identically named (see ``didanet_dme``), so its
   released weights can initialise it. Output linear, in DED map units; the condition network reads it raw
   (clamping would stop the gradient of stage 2 wherever the estimate dips below zero).
2. Condition network ``cond``, three convs at full resolution: 3x3 1->64, LReLU(0.1), 3x3 64->64,
   LReLU(0.1), 1x1 64->32 (linear). 32 condition channels and the 0.1 slope are SFT-GAN's; the two 3x3 convs
   let a condition see the map's neighbourhood (blur edges), the last 1x1 only mixes.
3. SFT layer: ``SFT(F) = gamma * F + beta`` (the paper's eq. 2, not SFT-GAN's ``(1 + gamma)``), with
   ``gamma = gamma_c (C x 1 x 1) * gamma_s (1 x H x W)``, a product because the paper calls it a
   decomposition of gamma into channel and spatial factors (channel/spatial attention are products too).
   Each of gamma and beta has its own 1x1 conv 32->32 + LReLU(0.1) trunk on the conditions (SFT-GAN);
   gamma_c = 1x1 conv 32->C on the global average of its trunk (SE-style, but unbounded: no sigmoid),
   gamma_s = 1x1 conv 32->1 on the trunk, beta = 1x1 conv 32->C on its trunk (full C x H x W, never
   decomposed, as the paper's ablation requires). The three output convs start with zero weights and
   biases 1, 1, 0, so every SFT layer is exactly the identity at initialisation: an untrained DMSFT is the
   paper's "baseline" ResNet, and training learns how much to trust the map.
4. Deblurring network, full resolution, DID-ANet's width: 3x3 conv 3->128 (the image only: the map enters
   through SFT, not by concatenation), 15 conditioned residual blocks ``x + s * conv(relu(SFT(conv(relu(SFT(
   x))))))`` (SFT-GAN's order), then SFT, 3x3 conv 128->128, a long skip from the first conv's features, a
   3x3 conv 128->3 and the input image added back. ``s`` is 1 for the first 4 blocks and 0.1 after, as in
   DID-ANet; 15 blocks (not 16) pay for the 32 SFT layers and the condition net.

Every SFT layer has its own parameters; the condition features are computed once and shared. No layer
changes resolution, so any height and width work (``multiple_of`` 1). Note that gamma_c pools over the whole
input: a tiled run computes it per tile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.archs.didanet_dme import DidanetDME

#: LeakyReLU slope in the condition net and the SFT trunks (SFT-GAN's)
SLOPE = 0.1


class ConditionNet(nn.Sequential):
    """Defocus map (N, 1, H, W) -> condition features (N, cond_channels, H, W): three convs."""

    def __init__(self, *, hidden: int = 64, cond_channels: int = 32) -> None:
        super().__init__(
            nn.Conv2d(1, hidden, 3, 1, 1),
            nn.LeakyReLU(SLOPE, inplace=True),
            nn.Conv2d(hidden, hidden, 3, 1, 1),
            nn.LeakyReLU(SLOPE, inplace=True),
            nn.Conv2d(hidden, cond_channels, 1),
        )


class SFTLayer(nn.Module):
    """``F * (gamma_c * gamma_s) + beta``, the modulation parameters generated from the conditions."""

    def __init__(self, *, channels: int, cond_channels: int = 32) -> None:
        super().__init__()
        self.gamma_trunk = nn.Conv2d(cond_channels, cond_channels, 1)
        self.gamma_channel = nn.Conv2d(cond_channels, channels, 1)
        self.gamma_spatial = nn.Conv2d(cond_channels, 1, 1)
        self.beta_trunk = nn.Conv2d(cond_channels, cond_channels, 1)
        self.beta = nn.Conv2d(cond_channels, channels, 1)
        # Identity at initialisation (see the module docstring, item 3).
        for conv, bias in ((self.gamma_channel, 1.0), (self.gamma_spatial, 1.0), (self.beta, 0.0)):
            nn.init.zeros_(conv.weight)
            nn.init.constant_(conv.bias, bias)

    def modulation(self, cond: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(gamma_c (N, C, 1, 1), gamma_s (N, 1, H, W), beta (N, C, H, W)) for conditions (N, 32, H, W)."""
        g = F.leaky_relu(self.gamma_trunk(cond), SLOPE)
        gamma_c = self.gamma_channel(g.mean(dim=(2, 3), keepdim=True))
        gamma_s = self.gamma_spatial(g)
        beta = self.beta(F.leaky_relu(self.beta_trunk(cond), SLOPE))
        return gamma_c, gamma_s, beta

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma_c, gamma_s, beta = self.modulation(cond)
        # (x * gamma_s) * gamma_c never materialises the full C x H x W gamma.
        return torch.addcmul(beta, x * gamma_s, gamma_c)


class CondResBlock(nn.Module):
    """``x + scale * conv(relu(SFT(conv(relu(SFT(x))))))``: SFT-GAN's conditioned residual block."""

    def __init__(self, *, channels: int, cond_channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.sft0 = SFTLayer(channels=channels, cond_channels=cond_channels)
        self.conv0 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.sft1 = SFTLayer(channels=channels, cond_channels=cond_channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        y = self.conv0(F.relu(self.sft0(x, cond)))
        y = self.conv1(F.relu(self.sft1(y, cond)))
        return x + self.scale * y


class DMSFT(nn.Module):
    """Blurry image (N, 3, H, W) in [0, 1] -> (deblurred image, defocus map in DED map units).

    Hyperparameters (keyword-only): ``dme_channels``/``dme_blocks`` size the DID-ANet estimator (64/4 to load
    its weights); ``channels``/``blocks`` the deblurring trunk; ``cond_channels`` the condition features;
    ``cond_hidden`` the condition net's inner width; blocks after the first ``full_scale_blocks`` add their
    residual scaled by ``res_scale``.
    """

    def __init__(
        self,
        *,
        dme_channels: int = 64,
        dme_blocks: int = 4,
        channels: int = 128,
        blocks: int = 15,
        cond_channels: int = 32,
        cond_hidden: int = 64,
        full_scale_blocks: int = 4,
        res_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.dme = DidanetDME(channels=dme_channels, blocks=dme_blocks)
        self.cond = ConditionNet(hidden=cond_hidden, cond_channels=cond_channels)
        self.head = nn.Conv2d(3, channels, 3, 1, 1)
        self.body = nn.ModuleList(
            CondResBlock(
                channels=channels,
                cond_channels=cond_channels,
                scale=1.0 if i < full_scale_blocks else res_scale,
            )
            for i in range(blocks)
        )
        self.body_sft = SFTLayer(channels=channels, cond_channels=cond_channels)
        self.body_conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.tail = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward_with_map(self, x: Tensor, defocus_map: Tensor) -> Tensor:
        """The deblurring path alone, fed with a given map (stage 1 feeds the ground truth)."""
        if defocus_map.shape[-2:] != x.shape[-2:] or defocus_map.shape[1] != 1:
            raise ValueError(
                f"defocus map must be (N, 1, H, W) matching the image {tuple(x.shape)}, "
                f"got {tuple(defocus_map.shape)}"
            )
        cond = self.cond(defocus_map)
        feat = self.head(x)
        y = feat
        for block in self.body:
            y = block(y, cond)
        y = self.body_conv(self.body_sft(y, cond)) + feat
        return x + self.tail(y)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        defocus_map = self.dme(x)
        return self.forward_with_map(x, defocus_map), defocus_map
