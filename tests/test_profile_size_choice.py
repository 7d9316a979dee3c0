"""`report --profile --profile-size S` gives every run a profile measured at S pixels: a stored profile of another
size is not the one asked for."""

from __future__ import annotations

import json

from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cards import get_card, model_record
from bench_ir.cli import app
from bench_ir.report import measure_runs

TASK = [{"name": "derain", "label": "Rain100L"}]
RECORDS = [("derain", "r1", 30.0, 0.9)]
runner = CliRunner(env={"COLUMNS": "200"})


def _run(tmp_path):
    """A stored run of the `input` card (no parameters: profiled in a moment) with its card recorded, as `run`
    records it."""
    return write_scored_run(tmp_path / "run", TASK, RECORDS, model=model_record(get_card("input"), 0, None))


def _profiled_at(run_dir, profiles, size: int):
    """The profile run joined to ``run_dir`` by `report --profile --profile-size size`, and its profile.json."""
    (measured,) = measure_runs([run_dir], profiles, profile=True, profile_size=size)
    return measured.profile_run.run_dir, measured.profile


def test_a_stored_profile_of_another_size_is_not_reused(tmp_path):
    run_dir, profiles = _run(tmp_path), tmp_path / "profiles"
    small, _ = _profiled_at(run_dir, profiles, 32)
    large, profile = _profiled_at(run_dir, profiles, 64)
    assert large != small and profile["size"] == 64 and profile["input_shape"] == [1, 3, 64, 64]
    assert sorted(folder.name for folder in profiles.iterdir()) == sorted([small.name, large.name])


def test_a_stored_profile_of_the_asked_size_is_reused_even_when_a_newer_one_has_another_size(tmp_path):
    run_dir, profiles = _run(tmp_path), tmp_path / "profiles"
    large, _ = _profiled_at(run_dir, profiles, 64)
    manifest = json.loads((large / "manifest.json").read_text())
    (large / "manifest.json").write_text(json.dumps({**manifest, "created": "2020-01-01T00:00:00+00:00"}))
    small, _ = _profiled_at(run_dir, profiles, 32)  # now the newest profile of the run's model
    again, profile = _profiled_at(run_dir, profiles, 64)
    assert again == large and profile["size"] == 64
    assert sorted(folder.name for folder in profiles.iterdir()) == sorted([small.name, large.name])  # none new


def test_report_profile_size_decides_the_size_the_efficiency_table_shows(tmp_path):
    run_dir, profiles = _run(tmp_path), tmp_path / "profiles"
    _profiled_at(run_dir, profiles, 32)
    result = runner.invoke(app, ["report", "--protocol", "efficiency", "--runs", str(run_dir), "--profile",
                                 "--profile-size", "64", "--runs-root", str(profiles)])
    assert result.exit_code == 0, result.output
    assert "profiled at 64 px, not the 224 px of the published FLOPs" in result.stdout
    assert "input_shape [1, 3, 64, 64]" in result.stdout.replace("\\_", "_")
