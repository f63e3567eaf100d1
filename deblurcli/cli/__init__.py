"""The ``defocus`` command line. Command modules import torch only inside their functions, so that
``defocus --version`` and ``--help`` answer in a fraction of a second."""

from __future__ import annotations

import sys

import typer

from deblurcli import __version__, interrupts
from deblurcli.cli import bench, data, deblur, models, train
from deblurcli.cli.common import EXIT_CODES_HELP, conventional_help

app = typer.Typer(
    name="defocus",
    help="Remove defocus (out-of-focus) blur from photographs.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
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


app.command(name="deblur", no_args_is_help=True, epilog=EXIT_CODES_HELP)(deblur.deblur)
app.command(name="bench", no_args_is_help=True)(bench.bench)
app.command(name="train", no_args_is_help=True)(train.train)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")


def main() -> None:
    """Console-script entry point; usage errors exit with 2 (click's convention, which we keep).

    Ctrl-C exits 130 wherever it lands: click turns a ``KeyboardInterrupt`` into "Aborted!" and exit 1, and
    some import-time code swallows it altogether, so the signal is recorded (:mod:`deblurcli.interrupts`) and
    the recorded fact decides the exit code.
    """
    interrupts.install()
    try:
        command = typer.main.get_command(app)
        conventional_help(command)
        command.main(prog_name="defocus")
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit:
        if interrupts.requested():
            _interrupted()
        raise


def _interrupted() -> None:
    sys.stderr.write("\ninterrupted\n")
    sys.exit(130)
