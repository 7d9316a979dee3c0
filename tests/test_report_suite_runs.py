"""`bench-ir report --protocol P SUITE_DIR/runs` (or SUITE_DIR) reports the suite's complete cells only, as
`bench-ir suite report` does: a failed, unfinished or outdated cell is left out and named with its state and why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import write_one_pair_protocol
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.report.run_folders import expand_run_folders
from bench_ir.suite import plan_suite, run_suite

runner = CliRunner(env={"COLUMNS": "400"})
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny inputs: a thread pool only costs time on a shared CPU


def _write_suite(folder: Path, toy: Path, **options) -> Path:
    """Two `input` entries (cells a__toy and b__toy) on the one-pair protocol file ``toy``, on real data."""
    data = {"name": "lab", "protocols": [str(toy)], "options": {"device": "cpu", **options},
            "entries": [{"model": "input", "name": "a", "label": "A"}, {"model": "input", "name": "b", "label": "B"}],
            "profile": {"enabled": False}}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ran_suite(tmp_path_factory, one_thread) -> Path:
    """A suite directory whose two cells are complete (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("suite")
    toy = write_one_pair_protocol(folder / "data", "toy")
    run_suite(_write_suite(folder, toy), suite_dir=folder / "out", data_root=folder / "data")
    return folder / "out"


@pytest.fixture
def suite_dir(ran_suite, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(ran_suite, copy)
    return copy


def _data_root(suite_dir: Path) -> Path:
    return Path(json.loads((suite_dir / "plan.json").read_text())["data_root"])


def _fail_cell(suite_dir: Path, cell: str) -> None:
    """Make ``cell`` what a failed attempt leaves: a run that is not complete and a cell state with the error."""
    manifest = suite_dir / "runs" / cell / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "failed"}), encoding="utf-8")
    (suite_dir / "cells" / f"{cell}.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom"}))


def _outdate_cells(suite_dir: Path) -> None:
    """What `suite run` does first with a suite file edited to another metric convention: a new plan, whose cells
    the runs no longer match."""
    data_root = _data_root(suite_dir)
    edited = suite_dir.parent / "edited"
    edited.mkdir()
    plan_suite(_write_suite(edited, data_root / "toy.yaml", convention="M2"), suite_dir, data_root=data_root).save()


def test_a_suites_runs_folder_leaves_out_a_failed_cell_and_names_it_with_its_error(suite_dir):
    _fail_cell(suite_dir, "b__toy")
    runs, (folder,) = expand_run_folders([suite_dir / "runs"], "toy")
    assert [run.name for run in runs] == ["a__toy"]
    assert folder.not_complete == ["b__toy failed (RuntimeError: boom)"]


def test_a_suite_directory_stands_for_its_complete_cells_alike(suite_dir):
    _fail_cell(suite_dir, "b__toy")
    runs, _ = expand_run_folders([suite_dir], "toy")
    assert [run.name for run in runs] == ["a__toy"]


def test_a_run_that_is_no_cell_of_the_suites_plan_is_left_out(suite_dir):
    shutil.copytree(suite_dir / "runs" / "b__toy", suite_dir / "runs" / "old-cell")
    runs, (folder,) = expand_run_folders([suite_dir / "runs"], "toy")
    assert [run.name for run in runs] == ["a__toy", "b__toy"]
    assert folder.not_complete == ["old-cell: no cell of the suite's plan now"]


def test_report_of_a_suites_runs_folder_prints_the_complete_cells_and_a_note_naming_the_others(suite_dir):
    _fail_cell(suite_dir, "b__toy")
    toy = _data_root(suite_dir) / "toy.yaml"
    result = runner.invoke(app, ["report", "--protocol", str(toy), "--runs", str(suite_dir / "runs"),
                                 "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert [line.split(",")[0] for line in result.stdout.splitlines()[1:]] == ["A"]
    assert (f"note: {suite_dir / 'runs'}: 1 run(s) on toy; 1 run(s) that are no complete cell of the suite left "
            "out, as `bench-ir suite report` does: b__toy failed (RuntimeError: boom) (`bench-ir suite status "
            f"{suite_dir}` shows each cell's state") in result.stderr


def test_report_of_a_suite_whose_cells_are_all_outdated_is_an_error_that_says_why(suite_dir):
    _outdate_cells(suite_dir)
    toy = _data_root(suite_dir) / "toy.yaml"
    result = runner.invoke(app, ["report", "--protocol", str(toy), "--runs", str(suite_dir / "runs")])
    assert result.exit_code != 0
    assert "no complete cell of its suite made with protocol 'toy'" in result.output
    assert "a__toy outdated (convention: M1" in result.output and "→ M2" in result.output


def test_a_suite_folder_whose_plan_cannot_be_read_takes_every_run_and_says_its_cells_were_not_checked(suite_dir):
    (suite_dir / "plan.json").write_text("{}")
    runs, (folder,) = expand_run_folders([suite_dir / "runs"], "toy")
    assert [run.name for run in runs] == ["a__toy", "b__toy"]
    assert "the suite's plan cannot be read" in folder.describe("toy")
