"""A suite cell whose run manifest says complete but whose records lost a line since (a torn last line after a
full disk) is not complete: `suite status` says what is missing and the same `suite run` scores it again."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_sample_suite

from bench_ir.results import RunStore
from bench_ir.suite import LocalLauncher, SuitePlan, cell_status_reason, run_suite

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU


def _suite(folder: Path) -> Path:
    return write_sample_suite(folder, "torn", ["derain"], limit=2)


def _tear_last_record(records: Path) -> None:
    lines = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])


def test_a_complete_cell_whose_records_lost_a_line_is_unfinished_and_the_next_suite_run_scores_it(tmp_path):
    suite, out = _suite(tmp_path), tmp_path / "out"
    assert not run_suite(suite, suite_dir=out, launcher=LocalLauncher()).failed
    plan = SuitePlan.load(out)
    (cell,) = plan.cells
    records = plan.run_dir(cell) / "records.jsonl"
    planned = len(RunStore(plan.run_dir(cell)).scored_keys())
    _tear_last_record(records)

    status, reason = cell_status_reason(plan, cell)
    assert status == "interrupted"
    assert f"its records hold {planned - 1} of the {planned} planned images" in reason

    assert not run_suite(suite, suite_dir=out, launcher=LocalLauncher()).failed
    assert len(RunStore(plan.run_dir(cell)).scored_keys()) == planned
    assert cell_status_reason(SuitePlan.load(out), cell)[0] == "complete"
