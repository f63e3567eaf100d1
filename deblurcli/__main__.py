"""``defocus`` and ``python -m deblurcli``: the entry point, kept to the standard library until Ctrl-C is handled.

The console script starts here rather than in ``deblurcli.cli`` because importing the command line (typer, rich)
takes a few tenths of a second, and a Ctrl-C in that window would otherwise end in a traceback. Until the
command line is running, Ctrl-C ends the process at once with 130: nothing has been written yet.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _early_sigint(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"\ninterrupted\n")
    os._exit(130)


def main() -> None:
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _early_sigint)
    from deblurcli.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    sys.exit(main())
