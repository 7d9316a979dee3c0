"""`bench-ir train --max-minutes`: a wall-time cap that stops at a step boundary with a resumable checkpoint."""

from __future__ import annotations

import json
import shlex
import sys

import pytest
import torch
from conftest import FAST_TRAINING as FAST
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_spent_time_budget_stops_after_the_current_step_and_resume_continues_bit_exactly(tmp_path):
    straight = train("sample", "mirage-t", None, tmp_path / "straight", max_steps=3, **FAST)
    capped = train("sample", "mirage-t", None, tmp_path / "capped", max_steps=3, max_minutes=1e-9, **FAST)
    assert capped.steps == 1
    manifest = json.loads((tmp_path / "capped/train_manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["stopped"]["step"] == 1
    assert manifest["max_minutes"] == 1e-9
    assert torch.load(tmp_path / "capped/checkpoints/last.pt", weights_only=True)["step"] == 1
    assert (tmp_path / "capped/final.safetensors").is_file()
    resumed = train("sample", "mirage-t", None, tmp_path / "capped", max_steps=3, resume=True, **FAST)
    assert resumed.steps == 3
    assert json.loads((tmp_path / "capped/train_manifest.json").read_text())["status"] == "complete"
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_ample_time_budget_changes_nothing(tmp_path):
    outcome = train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, max_minutes=60, **FAST)
    assert outcome.steps == 2 and outcome.manifest["status"] == "complete" and "stopped" not in outcome.manifest


def test_the_cli_rejects_a_non_positive_budget(tmp_path):
    result = CliRunner().invoke(app, ["train", "--recipe", "sample", "--device", "cpu", "--max-minutes", "0",
                                      "--run-dir", str(tmp_path / "run"), "--no-val", "--no-tensorboard"])
    assert result.exit_code == 2 and "--max-minutes must be > 0" in result.output
    assert not (tmp_path / "run").exists()


def test_the_cli_says_a_capped_run_stopped_early_and_prints_the_command_that_continues_it(tmp_path, monkeypatch):
    args = ["train", "--recipe", "sample", "--device", "cpu", "--max-steps", "3", "--max-minutes", "1e-9",
            "--batch-size", "2", "--patch-size", "16", "--workers", "0", "--no-val", "--no-tensorboard",
            "--model-arg", "dim=6", "--model-arg", "num_blocks=[1,1,1,1]", "--model-arg", "num_refinement_blocks=1"]
    args += ["--run-dir", str(tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", ["bench-ir", *args])  # what the manifest records as the command
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "stopped by --max-minutes 1e-09 at step 1 of 3; final losses:" in result.stdout
    assert "done:" not in result.stdout
    continue_line = next(line for line in result.stdout.splitlines() if line.startswith("continue: "))
    assert continue_line.endswith(f"--run-dir {tmp_path / 'run'} --resume")
    resumed = CliRunner(env={"COLUMNS": "400"}).invoke(app, shlex.split(continue_line)[2:])  # past "continue: bench-ir"
    assert resumed.exit_code == 0, resumed.output
    assert "stopped by --max-minutes 1e-09 at step 2 of 3" in resumed.stdout  # the same budget again: one more step
    again = next(line for line in resumed.stdout.splitlines() if line.startswith("continue: "))
    assert shlex.split(again).count("--resume") == 1 and shlex.split(again).count("--run-dir") == 1


def test_the_continue_command_of_a_run_on_several_processes_launches_torchrun_again(tmp_path):
    from bench_ir.train.command import continue_command

    line = continue_command(["bench-ir", "train", "--recipe", "5deg", "--run-dir", "runs/x"], tmp_path, world_size=4)
    assert line == "torchrun --nproc-per-node 4 -m bench_ir train --recipe 5deg --run-dir runs/x --resume"
