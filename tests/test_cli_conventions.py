"""Command-line conventions: help text, option names shared by every command, documented exit codes and
environment variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from deblurcli.cli import app
from deblurcli.cli.common import EXIT_CODES, conventional_help
from deblurcli.methods.names import METHOD_NAMES

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["deblur"], ["bench"], ["train"], ["models"], ["models", "import"], ["data", "synth"]]


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    """Each command's --help as the installed entry point prints it, in one subprocess."""
    code = (
        "import sys\n"
        "from deblurcli.__main__ import main\n"
        "for argv in sys.argv[1:]:\n"
        "    sys.argv = ['defocus', *argv.split(), '--help']\n"
        "    print('=== ' + argv)\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, *(" ".join(c) for c in COMMANDS)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    parts = out.stdout.split("=== ")[1:]
    return {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts}


def test_help_uses_conventional_metavars(helps: dict[str, str]) -> None:
    for name, text in helps.items():
        assert "<bool>" not in text, name
        assert not re.search(r"<(int|float|str|path|list)", text), name
    deblur = helps["deblur"]
    methods = "[" + "|".join(METHOD_NAMES) + "]"
    for expected in ("--recursive", methods, "INTEGER [1<=x<=100]", "[default: 95]"):
        assert expected in deblur
    flag_line = next(line for line in deblur.splitlines() if "--recursive" in line)
    assert "BOOL" not in flag_line.upper().replace("--RECURSIVE", "")


def test_completion_and_exit_codes_in_help(helps: dict[str, str]) -> None:
    assert "--install-completion" in helps[""]
    for text in (helps[""], helps["deblur"]):
        flat = " ".join(text.split())
        for code in EXIT_CODES:
            assert f" {code} " in flat


def test_output_dir_means_the_same_everywhere() -> None:
    command = typer.main.get_command(app)
    conventional_help(command)
    groups = command.commands  # type: ignore[attr-defined]
    cases = {
        "deblur": (groups["deblur"], ["x.jpg"]),
        "bench": (groups["bench"], ["set"]),
        "train": (groups["train"], ["--recipe", "ifan", "--data", "synth:d"]),
        "synth": (groups["data"].commands["synth"], ["--src", "s"]),
    }
    for name, (cmd, base) in cases.items():
        for spelling in ("-o", "--output-dir", "--out"):
            ctx = cmd.make_context(name, [*base, spelling, "results"])
            values = {k: v for k, v in ctx.params.items() if k in ("out", "output_dir")}
            assert [str(v) for v in values.values()] == ["results"], (name, spelling)
    synth = groups["data"].commands["synth"]
    for spelling in ("-n", "--count", "--n"):
        assert synth.make_context("synth", ["--src", "s", "-o", "d", spelling, "7"]).params["n"] == 7


def test_readme_documents_every_exit_code_and_environment_variable() -> None:
    readme = (REPO / "README.md").read_text()
    exit_table = readme.split("### Exit codes", 1)[1].split("\n### ", 1)[0]
    for code in EXIT_CODES:
        assert f"| `{code}` |" in exit_table
    env_table = readme.split("### Environment variables", 1)[1].split("\n## ", 1)[0]
    used: set[str] = set()
    for path in [*(REPO / "deblurcli").rglob("*.py"), *(REPO / "training").rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r"environ(?:\.get)?[(\[]\s*[\"']([A-Z][A-Z0-9_]+)[\"']", text))
        used |= set(re.findall(r"_ENV\s*=\s*[\"']([A-Z][A-Z0-9_]+)[\"']", text))
    assert {"DEFOCUS_CACHE", "DEFOCUS_MANIFEST", "DEFOCUS_CPU_BUDGET_BYTES"} <= used
    for name in used:
        assert f"`{name}`" in env_table, name


def test_shell_completion_answers() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "_DEFOCUS_COMPLETE": "complete_bash"}
    env.update(COMP_WORDS="defocus deb", COMP_CWORD="1")
    out = subprocess.run(
        [sys.executable, "-c", "from deblurcli.__main__ import main; main()"], capture_output=True, text=True, env=env
    )
    assert out.stdout.split() == ["deblur"], out.stderr
