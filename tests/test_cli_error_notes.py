"""An error that reaches the CLI's last handler (a file-system error while a run scores: a full disk, a file made
read-only or immutable) prints its notes too: the runner notes how the stopped run continues, and the hint for a
full disk does not send the researcher to a new run folder."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

import bench_ir.runner
from bench_ir import cli

runner = CliRunner(env={"COLUMNS": "400"})
CONTINUE = "the run is kept in runs/x with the 21 image(s) scored so far; once the cause is fixed, the same command " \
           "plus --resume --run-dir runs/x continues it"


def _run_failing_with(monkeypatch: pytest.MonkeyPatch, error: BaseException):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(bench_ir.runner, "run_protocol", fail)
    return runner.invoke(cli.app, ["run", "--protocol", "5deg", "--sample", "--model", "input"])


def _os_error(code: int) -> OSError:
    error = OSError(code, "the system's words", "runs/x/records.jsonl")
    error.add_note(CONTINUE)
    return error


def test_a_full_disk_while_scoring_says_how_the_run_continues(monkeypatch):
    result = _run_failing_with(monkeypatch, _os_error(errno.ENOSPC))
    assert result.exit_code == 2
    assert "runs/x/records.jsonl: no space left on device; free space there, then run the same command again" in (
        result.output)
    assert CONTINUE in result.output
    assert "choose another --run-dir" not in result.output


def test_a_file_made_unwritable_while_scoring_says_how_the_run_continues(monkeypatch):
    result = _run_failing_with(monkeypatch, _os_error(errno.EACCES))
    assert result.exit_code == 2
    assert "runs/x/records.jsonl: permission denied" in result.output and CONTINUE in result.output


def test_an_immutable_file_is_named_as_such(monkeypatch):
    result = _run_failing_with(monkeypatch, _os_error(errno.EPERM))
    assert "runs/x/records.jsonl: operation not permitted (an immutable file" in result.output
    assert CONTINUE in result.output


def test_an_unexpected_error_prints_its_notes_too(monkeypatch):
    error = ArithmeticError("boom")
    error.add_note(CONTINUE)
    result = _run_failing_with(monkeypatch, error)
    assert result.exit_code == 1
    assert "unexpected ArithmeticError: boom" in result.output and CONTINUE in result.output
