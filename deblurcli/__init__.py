"""defocus: remove defocus blur from photographs.

The Python API (see the README, section *Python API*)::

    import deblurcli
    sharp = deblurcli.deblur(array)                       # numpy or Pillow in, the same dtype and layout out
    method = deblurcli.load_method("ifan", device="cuda")  # build once, reuse for many images
    deblurcli.deblur_file("photo.jpg", "out/", method=method, bokeh="remove")

The names are resolved on first use (module ``__getattr__``), so that ``import deblurcli``, ``defocus --version``
and ``--help`` answer without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "deblur", "deblur_file", "load_method"]

if TYPE_CHECKING:
    from deblurcli.api import deblur, deblur_file, load_method


def __getattr__(name: str) -> Any:
    if name in ("deblur", "deblur_file", "load_method"):
        from deblurcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'deblurcli' has no attribute {name!r}")
