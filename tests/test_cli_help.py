"""`--help` of every bench-ir command reads cleanly: flags show no value type."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bench_ir.cli import app

runner = CliRunner()


def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):  # a group (typer >= 0.26 carries its own copy of click)
        for name, sub in sorted(command.commands.items()):
            paths += _command_paths(sub, (*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def test_every_command_is_covered():
    assert {("run",), ("data", "check"), ("profile",), ("list",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "bench-ir" for p in COMMANDS])
def test_help_shows_no_type_after_a_flag(path):
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output


def test_run_help_names_every_pairing_rule():
    from bench_ir.protocol import PAIRING_RULES

    text = " ".join(runner.invoke(app, ["run", "--help"], terminal_width=200).output.split())
    assert all(rule in text for rule in PAIRING_RULES)


def _summaries(command, prefix: str = ""):
    yield prefix, (command.help or "").split("\n\n")[0]
    for name, sub in getattr(command, "commands", {}).items():
        yield from _summaries(sub, f"{prefix} {name}".strip())


def test_every_command_summary_is_one_line_so_the_command_list_does_not_break_it_mid_sentence():
    """Rich keeps a newline of a docstring's first paragraph: the list of commands showed 'resumes' + line break."""
    broken = [name for name, summary in _summaries(typer.main.get_command(app)) if "\n" in summary]
    assert broken == []


def _params(command):
    yield from getattr(command, "params", [])
    for sub in getattr(command, "commands", {}).values():
        yield from _params(sub)


def test_no_option_help_holds_square_brackets_that_rich_would_take_for_markup():
    """'[default: runs]' in a help string is swallowed as a markup tag by the rich help; say 'default runs'."""
    bracketed = [f"{p.name}: {p.help}" for p in _params(typer.main.get_command(app)) if "[" in (p.help or "")]
    assert bracketed == []


def test_every_data_root_option_names_its_environment_default():
    helps = [p.help for p in _params(typer.main.get_command(app)) if p.name == "data_root"]
    assert len(helps) == 4  # run, data check, suite run, train
    assert all("$BENCH_IR_DATA_ROOT" in text for text in helps)


def test_a_default_written_in_the_help_text_is_shown():
    text = " ".join(CliRunner(env={"COLUMNS": "300"}).invoke(app, ["report", "--help"]).output.split())
    assert "profile runs; default runs" in text


def test_every_command_has_a_row_in_the_readme_commands_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `bench-ir ")]
    leaves = [path for path in COMMANDS if path and not any(other[:len(path)] == path and other != path
                                                             for other in COMMANDS)]
    missing = [" ".join(path) for path in leaves if not any(f"bench-ir {' '.join(path)}" in row for row in rows)]
    assert missing == []


def test_version_names_bench_ir_its_revision_and_the_library_versions_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom bench_ir.cli import app\n"
            "result = CliRunner().invoke(app, ['--version'])\n"
            "assert result.exit_code == 0, result.output\n"
            "print(result.stdout)\nprint('torch imported' if 'torch' in sys.modules else 'torch not imported')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from importlib import metadata

    first, libraries = done.stdout.splitlines()[:2]
    assert first.startswith(f"bench-ir {metadata.version('bench-ir')}")
    assert f"torch {metadata.version('torch')}" in libraries and "python " in libraries
    assert done.stdout.splitlines()[-1] == "torch not imported"


def test_version_names_the_compilers_torch_compile_needs_or_says_they_are_missing(monkeypatch):
    import shutil

    from bench_ir.manifest import compilers_text

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/gcc" if name == "gcc" else None)
    assert compilers_text() == "compilers for torch.compile: C /usr/bin/gcc, no C++ compiler (c++, g++, clang++)"
    result = CliRunner().invoke(app, ["--version"])
    assert result.stdout.splitlines()[-1] == compilers_text()
