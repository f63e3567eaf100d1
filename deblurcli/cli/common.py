"""Pieces every command shares: the one stderr console and the way errors become exit codes."""

from __future__ import annotations

from functools import cache
from typing import NoReturn

import typer
from rich.console import Console

from deblurcli.errors import DefocusError


@cache
def stderr_console() -> Console:
    """The single rich console of the process; stdout stays free for results and JSON."""
    return Console(stderr=True, highlight=False)


def fail(err: DefocusError) -> NoReturn:
    """Report a user error on one line and exit with its code."""
    stderr_console().print(f"[red]error:[/] {err}", markup=True, soft_wrap=True)
    raise typer.Exit(err.exit_code)
