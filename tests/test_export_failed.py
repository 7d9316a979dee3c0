"""`bench-ir export` of a failed run says that it failed and why, and exits with 1; a path that is no run folder (one
that does not exist, a file of a run) is named for what it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_ir.cli import app

runner = CliRunner(env={"COLUMNS": "300"})
ERROR = "ImageReadError: /data/rain/rain-001.png: corrupt or truncated image (broken data stream)"
RECORD = {"task": "derain", "image": "rain-002.png", "psnr": 30.5, "ssim": 0.9, "lpips": None, "height": 8,
          "width": 8, "seconds": 0.1, "nonfinite": False}


def _run(folder: Path, status: str, records: int = 0, **manifest) -> Path:
    """A run directory whose manifest has ``status`` and plans 5 derain images, with ``records`` of them scored."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "run_id": folder.name, "status": status, "protocol": {"name": "5deg", "tasks": [{"name": "derain"}]},
        "model": {"name": "input", "display_name": "Input"}, "planned": {"derain": 5}, **manifest}))
    lines = [json.dumps({**RECORD, "image": f"rain-{n:03}.png"}) + "\n" for n in range(2, 2 + records)]
    (folder / "records.jsonl").write_text("".join(lines))
    return folder


def _warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("format", ["csv", "json"])
def test_a_failed_run_without_records_warns_with_its_status_and_error_and_exits_with_1(tmp_path, format):
    run_dir = _run(tmp_path / "failed", "failed", error=ERROR)
    result = runner.invoke(app, ["export", str(run_dir), "--format", format])
    assert result.exit_code == 1
    header = "task,image,psnr,ssim,lpips,height,width,seconds,nonfinite"
    assert json.loads(result.stdout) == [] if format == "json" else result.stdout.strip() == header
    assert _warnings(result)[0] == (
        f"warning: {run_dir}: the run failed (status failed: {ERROR}); only the 0 image(s) scored before it stopped "
        f"are exported; once the cause is fixed, the command that made it plus --resume --run-dir {run_dir} "
        "continues it")
    assert _warnings(result)[1] == f"warning: {run_dir}: incomplete: 0 of 5 images (derain 0 of 5)"


def test_a_failed_run_still_exports_the_records_it_has(tmp_path):
    run_dir = _run(tmp_path / "failed", "failed", records=2, error=ERROR)
    result = runner.invoke(app, ["export", str(run_dir), "--format", "json"])
    assert result.exit_code == 1
    assert [row["image"] for row in json.loads(result.stdout)] == ["rain-002.png", "rain-003.png"]
    assert "only the 2 image(s) scored before it stopped are exported" in _warnings(result)[0]


def test_a_failed_run_that_recorded_no_error_says_so(tmp_path):
    result = runner.invoke(app, ["export", str(_run(tmp_path / "failed", "failed"))])
    assert result.exit_code == 1 and "the run failed (status failed: no error recorded)" in result.stderr


@pytest.mark.parametrize("status", ["complete", "interrupted"])
def test_a_run_that_did_not_fail_exits_with_0_without_a_failure_warning(tmp_path, status):
    result = runner.invoke(app, ["export", str(_run(tmp_path / "run", status, records=5))])
    assert result.exit_code == 0 and "failed" not in result.stderr


def test_the_export_help_documents_the_exit_code_of_a_failed_run():
    result = runner.invoke(app, ["export", "--help"])
    assert "1 when the run failed" in result.stdout


def test_a_path_that_does_not_exist_is_named_as_missing(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'nope'}: no such run directory (the path does not exist)")
    assert "no manifest.json" not in result.stderr


@pytest.mark.parametrize("name", ["records.jsonl", "manifest.json"])
def test_a_file_of_a_run_says_to_give_its_run_folder(tmp_path, name):
    run_dir = _run(tmp_path / "run", "complete", records=5)
    result = runner.invoke(app, ["export", str(run_dir / name)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {run_dir / name} is a file of the run {run_dir}, not a run directory: "
                                     f"give its run folder {run_dir}")


def test_a_file_outside_any_run_is_named_as_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = runner.invoke(app, ["export", str(tmp_path / "notes.txt")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'notes.txt'} is a file, not a bench-ir run directory" in result.stderr
