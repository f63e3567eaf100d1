"""Our own multiply-accumulate counter, run on meta tensors so 1280x720 costs no memory and no time.

It counts at the level of torch operators, so it sees what module hooks miss: IFAN's IAC and DRBNet's
per-pixel kernels are written as shifted views multiplied and accumulated (``mul``/``addcmul``), not as
modules. Counted as one MAC each:

* convolution and transposed convolution: output elements x (input channels / groups) x kernel area
  (for transposed: input elements x output channels / groups x kernel area);
* matrix products (mm, bmm, addmm, baddbmm): m x n x k;
* element-wise products of two tensors (``mul`` of two non-scalar tensors, ``addcmul``): one per output
  element. This is how adaptive filters (IAC, FAC, dynamic kernels) and SFT modulation spend their time.

Additions, activations, pooling, interpolation and normalisation are not counted, as in ptflops/thop
conventions used by the papers (research/ifan.md section 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


def _numel(shape: Any) -> int:  # noqa: ANN401
    return math.prod(int(s) for s in shape)


def _conv(args: tuple[Any, ...], out: Any) -> int:  # noqa: ANN401
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    groups = int(args[8]) if len(args) > 8 else 1
    kernel_area = _numel(w.shape[2:])
    if transposed:
        # weight is (in, out/groups, kh, kw): every input element scatters into out/groups x area outputs
        return _numel(x.shape) * int(w.shape[1]) * kernel_area
    return _numel(out.shape) * (int(x.shape[1]) // groups) * kernel_area


def _mm(args: tuple[Any, ...], out: Any) -> int:  # noqa: ANN401
    a = args[-2]
    return _numel(out.shape) * int(a.shape[-1])


def _elementwise(args: tuple[Any, ...], out: Any) -> int:  # noqa: ANN401
    tensors = [a for a in args[:3] if isinstance(a, torch.Tensor) and a.dim() > 0]
    return _numel(out.shape) if len(tensors) >= 2 else 0


_RULES: dict[Any, Callable[[tuple[Any, ...], Any], int]] = {
    aten.convolution.default: _conv,
    aten.mm.default: _mm,
    aten.bmm.default: _mm,
    aten.addmm.default: _mm,
    aten.baddbmm.default: _mm,
    aten.mul.Tensor: _elementwise,
    aten.mul_.Tensor: _elementwise,
    aten.addcmul.default: _elementwise,
    aten.addcmul_.default: _elementwise,
}


class MacCounter(TorchDispatchMode):
    """Dispatch mode that adds up MACs of every operator it knows (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        rule = _RULES.get(func)
        if rule is not None:
            self.macs += rule(args, out)
        return out


def count_macs(build: Callable[[], nn.Module], run: Callable[[nn.Module, torch.Tensor], Any], height: int,
               width: int) -> int:
    """MACs of one forward pass at ``height`` x ``width``, computed on the meta device (no real work)."""
    with torch.device("meta"):
        module = build()
    module.eval()
    x = torch.empty(1, 3, height, width, device="meta")
    counter = MacCounter()
    with torch.no_grad(), counter:
        run(module, x)
    return counter.macs
