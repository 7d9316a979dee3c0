"""`bench-ir report --protocol P FOLDER`: a folder that holds runs stands for its runs made with P."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.report.run_folders import expand_run_folders

STORE = Path(__file__).parent / "fixtures" / "store"  # three 5deg runs and two 3deg runs (with profiles)
RUNS_5DEG = [STORE / "5deg-mirage-t", STORE / "5deg-mynet", STORE / "5deg-sample"]
runner = CliRunner(env={"COLUMNS": "300"})


@pytest.fixture
def runs_folder(tmp_path) -> Path:
    """The fixture runs beside what else a runs folder holds: a profile run, a training run and an unreadable run."""
    folder = tmp_path / "runs"
    shutil.copytree(STORE, folder, ignore=shutil.ignore_patterns("*.py"))
    (folder / "profile-run").mkdir()
    (folder / "profile-run/manifest.json").write_text(json.dumps({"kind": "profile",
                                                                  "protocol": {"name": "efficiency"}}))
    (folder / "train/some-training").mkdir(parents=True)
    (folder / "train/some-training/train_manifest.json").write_text("{}")
    (folder / "torn").mkdir()
    (folder / "torn/manifest.json").write_text('{"protocol": ')
    return folder


def test_a_folder_of_runs_stands_for_its_runs_on_the_protocol_in_name_order(runs_folder):
    runs, folders = expand_run_folders([runs_folder], "5deg")
    assert [run.name for run in runs] == ["5deg-mirage-t", "5deg-mynet", "5deg-sample"]
    assert folders[0].other_protocols == 3 and folders[0].unreadable == 1  # two 3deg runs and the profile run
    assert folders[0].describe("5deg") == f"{runs_folder}: 3 run(s) on 5deg (3 on other protocols, 1 unreadable " \
                                          "left out)"


def test_the_efficiency_table_takes_a_folders_3deg_runs_and_profile_runs(runs_folder):
    runs, _ = expand_run_folders([runs_folder], "efficiency")
    assert [run.name for run in runs] == ["3deg-mirage-t-limit", "3deg-mynet", "profile-run"]


def test_run_directories_are_kept_as_given_and_a_run_named_twice_is_placed_once(runs_folder):
    runs, folders = expand_run_folders([runs_folder / "5deg-mynet", runs_folder], "5deg")
    assert [run.name for run in runs] == ["5deg-mynet", "5deg-mirage-t", "5deg-sample"]
    assert len(folders) == 1


def test_a_folder_of_runs_with_none_on_the_protocol_is_an_error_saying_what_it_holds(runs_folder):
    with pytest.raises(ValueError, match=r"holds 7 run\(s\), none made with protocol 'udc' \(`bench-ir list runs "
                                         r"--runs-root .*runs` lists them\)"):
        expand_run_folders([runs_folder], "udc")


def test_cli_report_of_a_folder_equals_the_report_of_its_runs_and_says_what_it_took(runs_folder):
    by_folder = runner.invoke(app, ["report", "--protocol", "5deg", str(runs_folder), "--format", "csv"])
    by_runs = runner.invoke(app, ["report", "--protocol", "5deg", "--format", "csv",
                                  *[word for run in RUNS_5DEG for word in ("--runs", str(runs_folder / run.name))]])
    assert by_folder.exit_code == 0 and by_runs.exit_code == 0, by_folder.output
    assert by_folder.stdout == by_runs.stdout
    assert f"note: {runs_folder}: 3 run(s) on 5deg (3 on other protocols, 1 unreadable left out)" in by_folder.stderr


def test_a_folder_that_holds_no_run_is_still_refused_as_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", "--protocol", "5deg", str(tmp_path / "empty")])
    assert result.exit_code != 0 and "not a bench-ir run directory" in result.output


def test_a_suite_directory_stands_for_the_runs_of_its_cells(tmp_path):
    suite_dir = tmp_path / "suite-mine"
    shutil.copytree(STORE, suite_dir / "runs", ignore=shutil.ignore_patterns("*.py"))
    (suite_dir / "plan.json").write_text("{}")
    runs, folders = expand_run_folders([suite_dir], "5deg")
    assert [run.name for run in runs] == ["5deg-mirage-t", "5deg-mynet", "5deg-sample"]
    assert folders[0].folder == suite_dir / "runs"
