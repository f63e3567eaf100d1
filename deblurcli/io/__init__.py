"""Photo input and output: decode to a ``Photo``, convert colour, encode results and maps atomically.

Submodules are imported directly by their users (``deblurcli.io.decode`` etc.), so importing this package
stays cheap and pulls in neither tifffile nor rawpy.
"""

from __future__ import annotations
