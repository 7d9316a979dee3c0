"""`bench-ir list runs` says what it found where it lists no run (a file, records without a manifest) and shows a
run's --model-arg overrides beside its model."""

from __future__ import annotations

from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cli import app

TASK = [{"name": "derain", "label": "Rain100L"}]
RECORDS = [("derain", "r1", 30.0, 0.9)]
OVERRIDDEN = {"name": "mirage-t", "display_name": "MIRAGE-T", "args_overrides": {"dim": 6, "num_blocks": [1, 1]}}
runner = CliRunner(env={"COLUMNS": "200"})


def _listed(root) -> str:
    """The output of `list runs --runs-root root` on one line, words separated by single spaces."""
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(root)])
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def _records_without_manifest(folder):
    write_scored_run(folder, TASK, RECORDS)
    (folder / "manifest.json").unlink()


def test_a_runs_root_that_is_a_file_is_named_as_a_file(tmp_path):
    (tmp_path / "runs.txt").write_text("not a folder")
    assert f"no runs in {tmp_path / 'runs.txt'}: it is a file, not a folder; --runs-root names the folder runs are " \
           "stored in" in _listed(tmp_path / "runs.txt")


def test_folders_with_records_but_no_manifest_are_counted_and_named_when_there_is_no_run(tmp_path):
    _records_without_manifest(tmp_path / "copied")
    assert (f"no runs in {tmp_path}; 1 folder(s) hold records.jsonl without a manifest.json (copied): not runs "
            "bench-ir can read, since the manifest says what was run; copy each run folder whole, with its "
            "manifest.json, or run it again") in _listed(tmp_path)


def test_folders_with_records_but_no_manifest_are_named_under_the_table_of_the_other_runs(tmp_path):
    write_scored_run(tmp_path / "a-run", TASK, RECORDS)
    _records_without_manifest(tmp_path / "copied")
    listed = _listed(tmp_path)
    assert "a-run" in listed and "1 folder(s) hold records.jsonl without a manifest.json (copied)" in listed


def test_a_runs_model_arg_overrides_are_shown_beside_its_model(tmp_path):
    write_scored_run(tmp_path / "small", TASK, RECORDS, model=OVERRIDDEN)
    assert "mirage-t (dim=6, num_blocks=[1, 1]) · 3deg" in _listed(tmp_path)


def test_a_profile_runs_model_arg_overrides_are_shown_beside_its_model(tmp_path):
    write_scored_run(tmp_path / "small-profile", [], [], model=OVERRIDDEN, kind="profile",
                     protocol={"name": "efficiency", "tasks": [], "average": []})
    assert "mirage-t (dim=6, num_blocks=[1, 1]) · efficiency" in _listed(tmp_path)


def test_a_run_without_overrides_shows_its_model_alone(tmp_path):
    write_scored_run(tmp_path / "plain", TASK, RECORDS, model={"name": "mirage-t", "args_overrides": None})
    assert "mirage-t · 3deg" in _listed(tmp_path)
