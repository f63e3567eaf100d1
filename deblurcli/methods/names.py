"""Method names, kept apart from the registry so that ``--help`` can list them without importing torch."""

from __future__ import annotations

METHOD_NAMES: tuple[str, ...] = ("refocus", "classic", "ifan", "drbnet", "dmsft", "kpac")
DEFAULT_METHOD = "classic"
