"""The defocus-map estimator of DID-ANet (Ma et al., TIP 2021), which Ye et al. 2022 reuse unchanged.

Ye et al. state that their map estimator is "the same network" as DID-ANet's, so we rebuild exactly that
sub-network (334,721 parameters) and name every parameter as DID-ANet's checkpoint does. The mapping rule is
therefore the identity: DID-ANet key ``conv01a.weight`` is our ``DidanetDME`` key ``conv01a.weight`` (and
``dme.conv01a.weight`` inside ``DMSFT``). DID-ANet's deblurring half carries the suffix ``b`` (``conv01b``,
``convRes01b`` …) and is dropped by ``didanet_dme_state``.

Structure, as in the authors' network (input: sRGB image in [0, 1]):

* ``conv01a``: 3x3 conv 3 -> C, *no* activation (DID-ANet's plain convs are bare ``Conv2d``s);
* ``convRes01a`` … ``convRes0Na``: residual blocks ``x + conv(relu(conv(x)))``, nothing after the sum;
* ``conv02a``: 3x3 conv C -> C, then ``conv03a``: 3x3 conv C -> 1; the output is linear (unclamped), in the
  units of DED's ground-truth maps (8-bit PNG / 256, so [0, 1) for every target it was trained on).

Everything runs at full resolution, so any input size works.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

#: suffix that marks DID-ANet's deblurring half in its checkpoint (``conv01b``, ``convRes16b`` …)
DEBLUR_SUFFIX = "b"


class DidanetResBlock(nn.Sequential):
    """``x + conv(relu(conv(x)))`` with nothing after the sum.

    DID-ANet stores the block as ``convRes01a.0.weight`` / ``convRes01a.2.weight``: the residual Sequential
    *is* the named module, so we subclass Sequential (keeping those keys) and add the skip in ``forward``.
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


class DidanetDME(nn.Module):
    """Image (N, 3, H, W) in [0, 1] -> defocus map (N, 1, H, W) in DED map units (linear output).

    Parameters are registered as attributes named like DID-ANet's (``convRes01a`` …) rather than in a
    ModuleList, because the official names are what lets the released checkpoint load without renaming.
    """

    def __init__(self, *, channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        if not 1 <= blocks <= 99:
            raise ValueError(f"blocks must be in 1..99, got {blocks}")
        self.blocks = blocks
        self.conv01a = nn.Conv2d(3, channels, 3, 1, 1)
        for i in range(1, blocks + 1):
            self.add_module(_res_name(i), DidanetResBlock(channels=channels))
        self.conv02a = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv03a = nn.Conv2d(channels, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv01a(x)
        for i in range(1, self.blocks + 1):
            y = getattr(self, _res_name(i))(y)
        return self.conv03a(self.conv02a(y))


def _res_name(i: int) -> str:
    return f"convRes{i:02d}a"


def didanet_dme_state(state: Mapping[str, object]) -> dict[str, object]:
    """The DME part of a DID-ANet state dict: every key except the deblurring half's (``*b.``) ones.

    Unknown keys are kept, not silently dropped, so that ``load_strict`` names them.
    """
    return {k: v for k, v in state.items() if not k.split(".", 1)[0].endswith(DEBLUR_SUFFIX)}
