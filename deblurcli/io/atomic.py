"""Write-then-rename, so that an interrupted or failed write never leaves a half file under the final name.

The temporary file sits in the destination folder (``os.replace`` is only atomic within one file system) and
keeps the destination's suffix, because some encoders pick the format from it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place on success, delete it on any exception.

    ``BaseException`` is caught on purpose: Ctrl-C in the middle of a large TIFF must not leave a
    ``.tmp`` file behind either. The temporary file is not created here, so the writer creates it with the
    user's usual permissions.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
