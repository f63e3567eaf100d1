"""The ``defocus`` command line. Command modules import torch only inside their functions, so that
``defocus --version`` and ``--help`` answer in a fraction of a second."""

from __future__ import annotations

import sys

import typer

from deblurcli import __version__
from deblurcli.cli import bench, data, deblur, models, train

app = typer.Typer(
    name="defocus",
    help="Remove defocus (out-of-focus) blur from photographs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"defocus {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Remove defocus (out-of-focus) blur from photographs."""


app.command(name="deblur", no_args_is_help=True)(deblur.deblur)
app.command(name="bench", no_args_is_help=True)(bench.bench)
app.command(name="train", no_args_is_help=True)(train.train)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")


def main() -> None:
    """Console-script entry point; usage errors exit with 2 (click's convention, which we keep)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
