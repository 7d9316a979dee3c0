"""Where stderr is no terminal (a log file, Slurm), `suite run` writes a line per finished cell with the reason the
overview table gives (the NaN/Inf images of a complete cell, the error of a failed one), and `suite report`'s
index.html lists every cell's reason, a complete cell's included."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from test_suite_nonfinite import NAN_REASON, _flat_pairs_protocol, _NanOnBright
from typer.testing import CliRunner

from bench_ir.cli import app

FAILURE = "RuntimeError: this model always fails"


class _AlwaysFails(torch.nn.Module):
    """A model whose forward raises: its cell fails with that error."""

    def forward(self, x):
        raise RuntimeError("this model always fails")


def _card(root, name: str, factory: type) -> str:
    path = root / f"{name}.yaml"
    path.write_text(f"name: {name}\ndisplay_name: {name}\nfactory: {factory.__module__}:{factory.__name__}\n"
                    "expected_params: 0\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def reason_suite(tmp_path_factory):
    """`suite run` (CLI, stderr no terminal) of a NaN-on-bright, a failing and the input entry on the flat protocol,
    then `suite report --no-pdf`: (run result, index.html text)."""
    root = tmp_path_factory.mktemp("reason-suite")
    entries = [{"model": _card(root, "nan-on-bright", _NanOnBright), "name": "nan"},
               {"model": _card(root, "always-fails", _AlwaysFails), "name": "fails"}, {"model": "input"}]
    suite = {"name": "reasons", "protocols": [_flat_pairs_protocol(root)], "options": {"device": "cpu"},
             "entries": entries, "profile": {"enabled": False}}
    (root / "suite.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    runner = CliRunner(env={"COLUMNS": "400"})
    run = runner.invoke(app, ["suite", "run", str(root / "suite.yaml"), "--out", str(root / "out"),
                              "--data-root", str(root)])
    assert run.exit_code == 1, run.output  # the failing cell
    report = runner.invoke(app, ["suite", "report", str(root / "out"), "--no-pdf"])
    assert report.exit_code == 0, report.output
    return run, (root / "out" / "report" / "index.html").read_text(encoding="utf-8")


def _finished_line(log: str, cell: str, state: str) -> str:
    """The log line that says ``cell`` ended in ``state``."""
    return next(line for line in log.splitlines() if line.startswith(f"cell {cell}: {state}, "))


def _index_reason(index: str, cell: str) -> str:
    """The reason column of ``cell``'s row in index.html."""
    row = next(row for row in re.findall(r"<tr>.*?</tr>", index, re.DOTALL) if f"<code>{cell}</code>" in row)
    return re.findall(r"<td>(.*?)</td>", row, re.DOTALL)[-1]


def test_the_log_line_of_a_complete_cell_with_nan_scores_ends_with_the_non_finite_images(reason_suite):
    assert _finished_line(reason_suite[0].stderr, "nan__flat", "complete").endswith(f"; {NAN_REASON}")


def test_the_log_line_of_a_failed_cell_ends_with_its_error(reason_suite):
    assert _finished_line(reason_suite[0].stderr, "fails__flat", "failed").endswith(f"; {FAILURE}")


def test_the_log_line_of_a_complete_cell_with_finite_scores_has_no_reason(reason_suite):
    assert ";" not in _finished_line(reason_suite[0].stderr, "input__flat", "complete")


def test_the_index_shows_the_non_finite_images_of_a_complete_cell(reason_suite):
    assert _index_reason(reason_suite[1], "nan__flat") == NAN_REASON


def test_the_index_shows_the_error_of_a_failed_cell(reason_suite):
    assert _index_reason(reason_suite[1], "fails__flat").startswith(FAILURE)


def test_the_index_shows_no_reason_for_a_complete_cell_with_finite_scores(reason_suite):
    assert _index_reason(reason_suite[1], "input__flat") == ""
