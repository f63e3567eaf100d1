"""Ctrl-C that cannot be lost.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be. During the first
second of a run that is usually inside ``import torch``, and some import-time code swallows the exception: the
batch then went on as if nothing had happened. So the signal is also *recorded* here, and the code paths that
matter (between photos, before a temporary file is renamed into place, when the command ends) ask
:func:`check`, which raises again when the user pressed Ctrl-C at any point, swallowed or not.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested = threading.Event()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Record every SIGINT from now on. A SIGINT the parent set to "ignore" (``nohup``, ``cmd &`` in a
    script) stays ignored, as it would without us; only the main thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    signal.signal(signal.SIGINT, _on_sigint)


def requested() -> bool:
    """Whether Ctrl-C was pressed since :func:`install` (or :func:`reset`)."""
    return _requested.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed, even if something swallowed it at the time."""
    if _requested.is_set():
        raise KeyboardInterrupt


def reset() -> None:
    """Forget a recorded Ctrl-C (tests run many commands in one process)."""
    _requested.clear()
