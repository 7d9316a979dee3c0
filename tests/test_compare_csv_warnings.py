"""`bench-ir compare --format csv` keeps stdout pure CSV and prints what its columns do not say (the paired
comparison's warnings, why a run is not ranked) as `warning:` lines on stderr."""

from __future__ import annotations

import csv
import io

from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.compare import compare_runs, rank_against_leaderboard
from bench_ir.compare_output import csv_warnings

TASKS = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
runner = CliRunner(env={"COLUMNS": "400"})  # one line per warning


def _run(run_dir, psnr: float = 30.0, **manifest):
    return write_scored_run(run_dir, TASKS, [("dehaze", "a.png", psnr, 0.9)], average=[], **manifest)


def test_csv_warnings_are_the_paired_comparisons_warnings(tmp_path):
    paired = compare_runs(_run(tmp_path / "a"), _run(tmp_path / "b", 31.0), n_boot=100)
    assert paired.attrs["warnings"] and csv_warnings(paired=paired) == paired.attrs["warnings"]


def test_csv_warnings_say_why_a_run_is_not_ranked(tmp_path):
    ranked = rank_against_leaderboard(_run(tmp_path / "run", sample=True))
    assert csv_warnings(ranked=ranked) == [
        "Toy is not ranked: its numbers are not comparable with the published ones because of sample (synthetic) "
        "data."]


def test_a_comparable_run_has_no_csv_warning(tmp_path):
    assert csv_warnings(ranked=rank_against_leaderboard(_run(tmp_path / "run"))) == []


def test_compare_csv_prints_the_warnings_on_stderr_and_only_csv_on_stdout(tmp_path):
    result = runner.invoke(app, ["compare", str(_run(tmp_path / "a")), str(_run(tmp_path / "b", 31.0)),
                                 "--n-boot", "100", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert list(csv.DictReader(io.StringIO(result.stdout)))[0]["task"] == "dehaze"
    assert "warning" not in result.stdout
    assert ("warning: few paired images in dehaze (n=1): a bootstrap CI over fewer than 20 images says little; read "
            "these intervals with care") in result.stderr.splitlines()


def test_compare_leaderboard_csv_prints_why_the_run_is_not_ranked_on_stderr(tmp_path):
    result = runner.invoke(app, ["compare", str(_run(tmp_path / "run", sample=True)), "--leaderboard", "--format",
                                 "csv"])
    assert result.exit_code == 0, result.output
    assert {row["comparable"] for row in csv.DictReader(io.StringIO(result.stdout))} == {"False"}
    assert result.stderr.splitlines() == [
        "warning: Toy is not ranked: its numbers are not comparable with the published ones because of sample "
        "(synthetic) data."]
