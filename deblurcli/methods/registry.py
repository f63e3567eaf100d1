"""The explicit registry: one line per method, no import-time scanning.

Each method module defines ``SPEC``; adding a method means writing that module and adding it here and to
``names.METHOD_NAMES`` (a test checks the two agree).
"""

from __future__ import annotations

from deblurcli.errors import UnknownMethodError
from deblurcli.methods.spec import MethodSpec


def _specs() -> dict[str, MethodSpec]:
    from deblurcli.methods import classic, dmsft, drbnet, ifan, kpac, refocus

    specs = [refocus.SPEC, classic.SPEC, ifan.SPEC, drbnet.SPEC, dmsft.SPEC, kpac.SPEC]
    return {s.name: s for s in specs}


def all_methods() -> dict[str, MethodSpec]:
    """All registered methods by name, in registry order."""
    return _specs()


def get_method(name: str) -> MethodSpec:
    """The spec for ``name``.

    Raises:
        UnknownMethodError: listing the known names.
    """
    specs = _specs()
    if name not in specs:
        raise UnknownMethodError(f"unknown method {name!r}; choose one of: {', '.join(specs)}")
    return specs[name]
