"""Pieces every command shares: the one stderr console, the way errors become exit codes, and the help text
conventions (metavars, exit codes) applied to every command."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from deblurcli.errors import DefocusError

#: every exit code the tool uses; shown by ``--help`` and kept in step with the README's table
EXIT_CODES = {
    0: "all done (skipped outputs that already exist count as done)",
    1: "some photos failed (each is listed on stderr and in --json)",
    2: "usage error: bad option or name template, unknown method or id, nothing to do",
    3: "a photo the command cannot do without is unreadable (bench)",
    4: "cannot write: output folder unusable, disk full",
    5: "weights missing, unreadable or not matching the method",
    6: "download failed",
    7: "dataset folder incomplete or pairs do not match",
    130: "interrupted (Ctrl-C); no partial file is left",
}
EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."

#: conventional metavars by Python type (click's own upper-case words, as most CLIs print them)
_METAVARS = {int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH"}


@cache
def stderr_console() -> Console:
    """The single rich console of the process; stdout stays free for results and JSON."""
    return Console(stderr=True, highlight=False)


def one_line(err: BaseException) -> str:
    """The first line of an error's message: reasons (and the messages of libraries they quote) must never
    spread over a screen."""
    lines = str(err).strip().splitlines()
    return lines[0].strip() if lines else type(err).__name__


def fail(err: DefocusError) -> NoReturn:
    """Report a user error on one line and exit with its code."""
    stderr_console().print(f"[red]error:[/] {escape(one_line(err))}", markup=True, soft_wrap=True)
    raise typer.Exit(err.exit_code)


def conventional_help(command: Any) -> None:
    """Give every option of ``command`` and its sub-commands a conventional metavar, in place.

    Typer prints ``<bool>`` beside flags, which reads as "takes a value" (users then write ``-r true`` and
    get a photo named "true"), and ``<int range>``-style types elsewhere. Flags get no metavar; other options
    the upper-case type word (INTEGER, FLOAT, TEXT, PATH) or their choices; explicit metavars are kept.
    """
    ctx = typer.Context(command, info_name=command.name)
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if param.metavar is None:
            param.metavar = _metavar(param)
        if param.param_type_name == "argument":
            # typer appends "<list[str]>"-style types to arguments whatever the metavar; the metavar says it all
            param.display_type_rich = _no_type
    for sub in getattr(command, "commands", {}).values():
        conventional_help(sub)


def _metavar(param: Any) -> str:
    """The conventional metavar of one typer parameter ("" for flags)."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:  # older typer releases build plain click parameters
        choices = getattr(param.type, "choices", None)
        if choices:
            return "[" + "|".join(str(c) for c in choices) + "]"
        return str(param.type.name).replace(" range", "").upper()
    if desc.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices or ()) + "]"
    annotation = desc.annotation
    many = getattr(annotation, "__origin__", None) is list
    if many:
        annotation = annotation.__args__[0]
    word = "PATH" if desc.is_path else _METAVARS.get(annotation, getattr(annotation, "__name__", "VALUE").upper())
    return word + ("..." if many and param.param_type_name == "argument" else "")


def _no_type(ctx: Any) -> str:
    return ""
