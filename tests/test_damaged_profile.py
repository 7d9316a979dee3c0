"""A damaged profile.json (truncated or invalid JSON) is an error naming the file where the run is asked for, and never
blocks a report or a listing that does not need it."""

from __future__ import annotations

import json

import pytest
from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.report import ReportWarning, build_report
from bench_ir.report.profiles import find_profile_runs
from bench_ir.results import ManifestError, load_run

TASK = [{"name": "derain", "label": "Rain100L"}]
RECORDS = [("derain", "r1", 30.0, 0.9)]
DAMAGED = '{\n  "params": 1000,\n  "flops": 2000,\n  "device": "cpu",\n  "dtype": "fp'  # cut off mid-string
runner = CliRunner(env={"COLUMNS": "200"})


def _damaged_profile_run(root):
    """``root/prof``: a profile run whose profile.json was cut off while written."""
    run_dir = write_scored_run(root / "prof", [], [], kind="profile",
                               protocol={"name": "efficiency", "tasks": [], "average": []})
    (run_dir / "profile.json").write_text(DAMAGED)
    return run_dir


def test_load_run_names_the_damaged_profile_file(tmp_path):
    run_dir = _damaged_profile_run(tmp_path)
    with pytest.raises(ManifestError, match=r"prof/profile\.json: unreadable profile \(truncated or invalid JSON: "
                                            r"Unterminated string starting at line 5 column \d+\)"):
        load_run(run_dir)


def test_a_profile_json_that_is_not_an_object_is_an_error_naming_the_file(tmp_path):
    run_dir = _damaged_profile_run(tmp_path)
    (run_dir / "profile.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ManifestError, match=r"prof/profile\.json: unreadable profile \(expected a JSON object"):
        load_run(run_dir)


def test_finding_profiles_skips_a_damaged_one_with_a_warning_naming_the_file(tmp_path):
    damaged = _damaged_profile_run(tmp_path)
    with pytest.warns(ReportWarning, match=rf"{damaged / 'profile.json'}: unreadable profile .*no report joins this "
                                           r"profile: repair or remove the file"):
        assert find_profile_runs([], tmp_path) == []


def test_a_damaged_profile_under_the_runs_root_does_not_block_a_protocol_table(tmp_path):
    run_dir = write_scored_run(tmp_path / "run", TASK, RECORDS)
    _damaged_profile_run(tmp_path)
    with pytest.warns(ReportWarning, match="profile.json: unreadable profile"):
        text = build_report("3deg", [run_dir], fmt="csv", runs_root=tmp_path)
    assert "Toy" in text


def test_report_in_a_folder_with_a_damaged_profile_under_runs_renders_and_warns(tmp_path, monkeypatch):
    run_dir = write_scored_run(tmp_path / "runs" / "run", TASK, RECORDS)
    _damaged_profile_run(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)  # report looks for profiles under ./runs when it exists
    with pytest.warns(ReportWarning):
        result = runner.invoke(app, ["report", "--protocol", "3deg", "--runs", str(run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "Toy" in result.stdout
    assert "warning: runs/prof/profile.json: unreadable profile" in " ".join(result.stderr.split())


def test_list_runs_names_the_damaged_profile_file_in_its_unreadable_note(tmp_path):
    damaged = _damaged_profile_run(tmp_path)
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.stdout
    folded = "".join(result.stdout.replace("│", "").split())  # the cell folds the path over lines
    assert f"{damaged / 'profile.json'}:unreadableprofile" in folded
