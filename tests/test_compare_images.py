"""`bench-ir compare A B --images N`: the paired images where B loses and gains most, per task."""

from __future__ import annotations

import json

import pytest
from conftest import write_scored_run
from test_report_paper import SCHEMA, _check_schema
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.compare import IMAGE_CHANGE_COLUMNS, largest_image_changes
from bench_ir.results import RunStore

TASKS = [{"name": "derain", "label": "Rain100L"}, {"name": "dehaze", "label": "SOTS"}]
runner = CliRunner()


def _pair(tmp_path, b_psnr: dict[str, float]):
    """Run A scores 30 dB on images r1..r5 of derain and 20 dB on h1, h2 of dehaze; run B as ``b_psnr`` says
    (the same as A where it says nothing)."""
    a = {("derain", f"r{i}"): 30.0 for i in range(1, 6)} | {("dehaze", "h1"): 20.0, ("dehaze", "h2"): 20.0}
    b = {key: b_psnr.get(key[1], value) for key, value in a.items()}
    run_a = write_scored_run(tmp_path / "a", TASKS, [(t, i, v, 0.9) for (t, i), v in a.items()])
    run_b = write_scored_run(tmp_path / "b", TASKS, [(t, i, v, 0.9) for (t, i), v in b.items()])
    return run_a, run_b


def test_losses_come_first_largest_first_then_gains_largest_first(tmp_path):
    run_a, run_b = _pair(tmp_path, {"r1": 29.0, "r2": 27.5, "r3": 31.0, "r4": 33.0, "h1": 20.5})
    frame = largest_image_changes(run_a, run_b, n=2)
    assert list(frame.columns) == IMAGE_CHANGE_COLUMNS
    assert [(r.task, r.change, r.image) for r in frame.itertuples()] == [
        ("derain", "loss", "r2"), ("derain", "loss", "r1"), ("derain", "gain", "r4"), ("derain", "gain", "r3"),
        ("dehaze", "gain", "h1")]
    assert frame.iloc[0][["a", "b", "delta"]].tolist() == [30.0, 27.5, -2.5]


def test_n_limits_each_side_and_unchanged_images_are_neither(tmp_path):
    run_a, run_b = _pair(tmp_path, {"r1": 29.0, "r2": 27.5, "r3": 28.0})
    frame = largest_image_changes(run_a, run_b, n=1)
    assert [(r.change, r.image) for r in frame.itertuples()] == [("loss", "r2")]


def test_for_lpips_lower_is_better(tmp_path):
    for name, lpips in (("a", 0.20), ("b", 0.10)):
        store = RunStore(tmp_path / name)
        store.write_manifest({"run_id": name, "protocol": {"name": "3deg", "tasks": TASKS[:1], "average": []},
                              "model": {"name": name, "display_name": name.upper()}})
        store.extend([{"task": "derain", "image": "r1", "psnr": 30.0, "ssim": 0.9, "lpips": lpips, "height": 8,
                       "width": 8, "seconds": 0.0, "nonfinite": False}])
    frame = largest_image_changes(tmp_path / "a", tmp_path / "b", n=3, metric="LPIPS")
    assert frame[["change", "image"]].values.tolist() == [["gain", "r1"]]
    assert frame["delta"].iloc[0] == pytest.approx(-0.10)


def test_a_metric_one_run_did_not_score_is_an_error(tmp_path):
    run_a, run_b = _pair(tmp_path, {})
    with pytest.raises(ValueError, match="LPIPS was not scored in both runs"):
        largest_image_changes(run_a, run_b, metric="LPIPS")


def test_the_cli_prints_the_image_table_after_the_paired_table(tmp_path):
    run_a, run_b = _pair(tmp_path, {"r2": 27.5, "r4": 33.0})
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["compare", str(run_a), str(run_b), "--images", "1",
                                                           "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.index("B - A: Toy vs Toy") < text.index("Largest per-image PSNR changes, B - A")
    assert "(up to 1 loss and 1 gain per task)" in " ".join(text.split())
    assert any(line.split() == ["derain", "loss", "r2", "30.00", "27.50", "-2.50"] for line in text.splitlines())
    assert any(line.split() == ["gain", "r4", "30.00", "33.00", "+3.00"] for line in text.splitlines())


def test_the_cli_json_has_the_images_and_follows_the_schema(tmp_path):
    run_a, run_b = _pair(tmp_path, {"r2": 27.5})
    result = runner.invoke(app, ["compare", str(run_a), str(run_b), "--images", "2", "--image-metric", "PSNR",
                                 "--n-boot", "100", "--format", "json"])
    document = json.loads(result.stdout)
    _check_schema(document, SCHEMA)
    assert document["images"]["n"] == 2 and document["images"]["rows"][0]["image"] == "r2"
    plain = json.loads(runner.invoke(app, ["compare", str(run_a), str(run_b), "--n-boot", "100", "--format",
                                           "json"]).stdout)
    assert "images" not in plain  # the document without --images is unchanged


def test_the_cli_csv_adds_the_images_as_a_last_block(tmp_path):
    run_a, run_b = _pair(tmp_path, {"r2": 27.5})
    result = runner.invoke(app, ["compare", str(run_a), str(run_b), "--images", "1", "--n-boot", "100", "--format",
                                 "csv"])
    last_block = result.stdout.strip().split("\n\n")[-1].splitlines()
    assert last_block == ["task,change,image,metric,a,b,delta", "derain,loss,r2,PSNR,30.0,27.5,-2.5"]


def test_images_needs_two_runs(tmp_path):
    run_a, _ = _pair(tmp_path, {})
    result = runner.invoke(app, ["compare", str(run_a), "--images", "2", "--leaderboard"])
    assert result.exit_code == 2 and "--images lists per-image changes between two runs: give RUN_B" in result.output


def test_images_needs_a_positive_count(tmp_path):
    run_a, run_b = _pair(tmp_path, {})
    result = runner.invoke(app, ["compare", str(run_a), str(run_b), "--images", "0"])
    assert result.exit_code == 2 and "error: --images must be at least 1, got 0" in result.output


def test_the_table_says_where_the_saved_images_are_or_how_to_save_them(tmp_path):
    run_a, run_b = _pair(tmp_path, {"r2": 27.5})
    args = ["compare", str(run_a), str(run_b), "--images", "1", "--n-boot", "100"]
    wide = CliRunner(env={"COLUMNS": "300"})
    assert "score the runs with `bench-ir run ... --save-images`." in wide.invoke(app, args).stdout
    for run in (run_a, run_b):
        (run / "images" / "derain").mkdir(parents=True)
    assert f"A {run_a / 'images'}/<task>/, B {run_b / 'images'}/<task>/" in wide.invoke(app, args).stdout
