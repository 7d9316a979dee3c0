"""`bench-ir list runs --model M --protocol P`: only the runs of a model and/or on a protocol."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cli import app

TASK = [{"name": "derain", "label": "Rain100L"}]
RECORDS = [("derain", "r1", 30.0, 0.9)]
runner = CliRunner(env={"COLUMNS": "120"})


def _runs(root):
    for name, model, protocol in (("a-mirage-3deg", "mirage-t", "3deg"), ("b-mirage-5deg", "mirage-t", "5deg"),
                                  ("c-mynet-3deg", "mynet", "3deg")):
        write_scored_run(root / name, TASK, RECORDS, model={"name": model, "display_name": model},
                         protocol={"name": protocol, "tasks": TASK, "average": ["derain"]})
    return root


def _listed(root, *options: str) -> list[str]:
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(root), *options])
    assert result.exit_code == 0, result.output
    return [name for name in ("a-mirage-3deg", "b-mirage-5deg", "c-mynet-3deg") if name in result.stdout]


def test_model_keeps_the_runs_of_that_model(tmp_path):
    assert _listed(_runs(tmp_path), "--model", "mirage-t") == ["a-mirage-3deg", "b-mirage-5deg"]


def test_model_is_matched_as_run_takes_it_in_any_letter_case_or_by_display_name(tmp_path):
    write_scored_run(tmp_path / "d-mirage-s", TASK, RECORDS, model={"name": "mirage-s", "display_name": "MIRAGE-S"},
                     protocol={"name": "3deg", "tasks": TASK, "average": ["derain"]})
    assert _listed(_runs(tmp_path), "--model", "MIRAGE-T") == ["a-mirage-3deg", "b-mirage-5deg"]
    assert _listed(tmp_path, "--model", "MyNet") == ["c-mynet-3deg"]  # not registered: its recorded name, any case
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path), "--model", "Mirage-S"])
    assert "d-mirage-s" in result.stdout and "a-mirage-3deg" not in result.stdout


def test_protocol_is_matched_by_name_or_by_its_file(tmp_path):
    protocol_file = Path(__file__).resolve().parents[1] / "protocols" / "3deg.yaml"
    assert _listed(_runs(tmp_path), "--protocol", str(protocol_file)) == ["a-mirage-3deg", "c-mynet-3deg"]
    assert _listed(tmp_path, "--protocol", "3DEG") == ["a-mirage-3deg", "c-mynet-3deg"]


def test_training_runs_follow_the_model_filter_in_any_letter_case(tmp_path):
    (tmp_path / "train" / "t-mirage").mkdir(parents=True)
    (tmp_path / "train" / "t-mirage" / "train_manifest.json").write_text(json.dumps(
        {"model": {"name": "mirage-t"}, "recipe": {"name": "5deg"}, "status": "complete", "steps_done": 1,
         "steps_target": 1}))
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path), "--model", "MIRAGE-T"])
    assert "t-mirage" in result.stdout


def test_protocol_keeps_the_runs_on_that_protocol(tmp_path):
    assert _listed(_runs(tmp_path), "--protocol", "3deg") == ["a-mirage-3deg", "c-mynet-3deg"]


def test_model_and_protocol_together_keep_the_runs_matching_both(tmp_path):
    assert _listed(_runs(tmp_path), "--model", "mirage-t", "--protocol", "3deg") == ["a-mirage-3deg"]


def test_no_match_says_what_was_asked_and_how_many_runs_there_are(tmp_path):
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(_runs(tmp_path)), "--model", "restormer"])
    assert result.exit_code == 0
    assert f"no runs of model restormer in {tmp_path}; it holds 3 other run(s)" in " ".join(result.stdout.split())


def test_an_unreadable_run_is_shown_whatever_the_filter(tmp_path):
    (_runs(tmp_path) / "a-mirage-3deg" / "manifest.json").write_text("[]")
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path), "--model", "mynet"])
    assert "a-mirage-3deg" in result.stdout and "unreadable" in result.stdout and "c-mynet-3deg" in result.stdout


def test_training_runs_follow_the_model_filter_and_are_left_out_with_protocol(tmp_path):
    for name, model in (("t-mirage", "mirage-t"), ("t-mynet", "mynet")):
        (tmp_path / "train" / name).mkdir(parents=True)
        (tmp_path / "train" / name / "train_manifest.json").write_text(json.dumps(
            {"model": {"name": model}, "recipe": {"name": "5deg"}, "status": "complete", "steps_done": 1,
             "steps_target": 1}))
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path), "--model", "mynet"])
    assert "t-mynet" in result.stdout and "t-mirage" not in result.stdout
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path), "--protocol", "3deg"])
    assert "Training runs" not in result.stdout


def test_the_filters_apply_to_list_runs_only():
    result = runner.invoke(app, ["list", "models", "--protocol", "3deg"])
    assert result.exit_code == 2 and "--protocol applies to `list runs`, not `list models`" in result.output


def test_a_failed_run_says_why_on_its_row(tmp_path):
    write_scored_run(tmp_path / "broken", TASK, [], model={"name": "mirage-t", "display_name": "MIRAGE-T"},
                     protocol={"name": "5deg", "tasks": TASK, "average": ["derain"]}, status="failed",
                     error="OSError: [Errno 28] No space left on device")
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    assert result.exit_code == 0 and "failed" in result.stdout
    assert "OSError: [Errno 28] No space left on device" in result.stdout


def test_a_failed_training_run_says_why_on_its_row(tmp_path):
    (tmp_path / "train" / "t-oom").mkdir(parents=True)
    (tmp_path / "train" / "t-oom" / "train_manifest.json").write_text(json.dumps(
        {"model": {"name": "mirage-t"}, "recipe": {"name": "5deg"}, "status": "failed", "steps_done": 7,
         "steps_target": 100, "failure": "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"}))
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    assert "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in " ".join(result.stdout.split())


def test_training_runs_are_listed_under_train_and_directly_under_the_runs_root(tmp_path):
    """`train --run-dir runs/my-finetune` is listed as well as the default runs/train/<time>-<model>-<recipe>."""
    for folder in (tmp_path / "train" / "20261201-mirage-t-5deg", tmp_path / "my-finetune"):
        folder.mkdir(parents=True)
        (folder / "train_manifest.json").write_text(json.dumps(
            {"model": {"name": "mirage-t"}, "recipe": {"name": "5deg"}, "status": "complete", "steps_done": 1,
             "steps_target": 1}))
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    first_cells = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") > 3]
    assert "train/20261201-mirage-t-5deg" in first_cells and "my-finetune" in first_cells


def test_a_runs_label_is_shown_beside_its_model_and_protocol(tmp_path):
    write_scored_run(tmp_path / "labelled", TASK, RECORDS, label="step 153",
                     model={"name": "mirage-t", "display_name": "MIRAGE-T"},
                     protocol={"name": "5deg", "tasks": TASK, "average": ["derain"]})
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    assert 'mirage-t · 5deg · "step 153"' in result.stdout


def test_a_run_with_a_nan_task_mean_shows_no_average_rather_than_the_mean_of_the_other_tasks(tmp_path):
    tasks = [{"name": "derain", "label": "Rain100L"}, {"name": "dehaze", "label": "SOTS"}]
    nan = float("nan")
    write_scored_run(tmp_path / "nan-out", tasks, [("derain", "r1", 30.0, 0.9), ("dehaze", "h1", nan, nan)],
                     model={"name": "mynet", "display_name": "MyNet"},
                     protocol={"name": "3deg", "tasks": tasks, "average": ["derain", "dehaze"]})
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    row = next(line for line in result.stdout.splitlines() if "nan-out" in line)
    assert [cell.strip() for cell in row.split("│")[-3:-1]] == ["–", "–"], row


def test_a_run_of_part_of_its_protocols_tasks_says_how_many(tmp_path):
    resolved = {"tasks": [{"name": "derain"}, {"name": "dehaze"}, {"name": "denoise"}]}
    write_scored_run(tmp_path / "subset", TASK, RECORDS, model={"name": "mynet", "display_name": "MyNet"},
                     protocol={"name": "3deg", "tasks": TASK, "average": ["derain", "dehaze", "denoise"],
                               "resolved": resolved})
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)], terminal_width=200)
    assert "mynet · 3deg · 1 of 3 tasks" in result.stdout


def test_a_full_run_on_a_test_set_smaller_than_expected_says_so(tmp_path):
    task = [{"name": "derain", "label": "Rain100L", "expected_count": 100}]
    write_scored_run(tmp_path / "short", task, RECORDS, model={"name": "mynet", "display_name": "MyNet"},
                     protocol={"name": "3deg", "tasks": task, "average": ["derain"]})
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)], terminal_width=200)
    assert "short test sets (Rain100L 1/100)" in result.stdout
