"""Ctrl-C during `bench-ir train`: the first stops at the next step boundary with a checkpoint of that step, a
second stops at once; either way the printed command continues the run."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import FAST_TRAINING as FAST
from conftest import TINY_MIRAGE_ARGS as TINY
from conftest import signal_training_job
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.train.stop_request import ignore_interrupts
from bench_ir.train.trainer import TrainingStopped, TrainProgress, train

pytestmark = pytest.mark.usefixtures("one_thread")


class _CtrlC(TrainProgress):
    """Presses Ctrl-C ``times`` times (``signum`` to this process) when the logged step reaches ``at``."""

    def __init__(self, at: int, times: int = 1, signum: int = signal.SIGINT) -> None:
        self.at, self.times, self.signum, self.requests = at, times, signum, []

    def step(self, row):
        if row["step"] == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)

    def stop_requested(self, reason):
        self.requests.append(reason)


def _checkpoint_step(run_dir) -> int:
    return torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["step"]


def test_ctrl_c_stops_after_the_current_step_and_writes_its_checkpoint(tmp_path):
    progress = _CtrlC(at=2)
    with pytest.raises(TrainingStopped) as stopped:
        train("sample", "mirage-t", None, tmp_path / "run", progress=progress, max_steps=4, log_every=1,
              checkpoint_every=100, **FAST)
    assert progress.requests == ["SIGINT (Ctrl-C)"]
    assert _checkpoint_step(tmp_path / "run") == 2 and stopped.value.checkpoint_step == 2
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["steps_done"] == 2
    assert manifest["reason"] == "SIGINT (Ctrl-C)"
    assert manifest["last_losses"]["total"] > 0  # the loss of step 2, which `list runs` shows


def test_a_run_stopped_by_ctrl_c_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = train("sample", "mirage-t", None, tmp_path / "straight", max_steps=4, **FAST)
    with pytest.raises(TrainingStopped):
        train("sample", "mirage-t", None, tmp_path / "split", progress=_CtrlC(at=2), max_steps=4, log_every=1,
              checkpoint_every=100, **FAST)
    resumed = train("sample", "mirage-t", None, tmp_path / "split", max_steps=4, resume=True, **FAST)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert resumed.steps == 4 and all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt) as interrupted:
        train("sample", "mirage-t", None, tmp_path / "run", progress=_CtrlC(at=3, times=2), max_steps=6, log_every=1,
              checkpoint_every=2, **FAST)
    assert not isinstance(interrupted.value, TrainingStopped)
    assert _checkpoint_step(tmp_path / "run") == 2 and interrupted.value.checkpoint_step == 2


def test_sigterm_stops_after_the_current_step_like_ctrl_c_and_is_recorded_as_the_reason(tmp_path):
    progress = _CtrlC(at=2, signum=signal.SIGTERM)
    with pytest.raises(TrainingStopped) as stopped:
        train("sample", "mirage-t", None, tmp_path / "run", progress=progress, max_steps=4, log_every=1,
              checkpoint_every=100, **FAST)
    assert stopped.value.terminated and progress.requests == ["SIGTERM"]
    assert _checkpoint_step(tmp_path / "run") == 2
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["reason"] == "SIGTERM"


def test_training_restores_the_previous_signal_handlers(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, **FAST)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_an_error_during_training_marks_the_run_failed_with_the_error_not_interrupted(tmp_path, monkeypatch):
    from bench_ir.train import trainer

    def out_of_memory(self, batch, objective):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(trainer._Loop, "train_step", out_of_memory)
    with pytest.raises(RuntimeError):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, **FAST)
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["failure"] == "RuntimeError: CUDA out of memory (simulated)"


def test_a_run_interrupted_before_its_first_checkpoint_continues_from_step_zero(tmp_path):
    """It used to be a dead end: without --resume the folder 'already holds a training run', with --resume there
    was 'no checkpoint to continue from'."""
    with pytest.raises(KeyboardInterrupt):
        train("sample", "mirage-t", None, tmp_path / "run", progress=_CtrlC(at=1, times=2), max_steps=2,
              log_every=1, checkpoint_every=100, **FAST)
    assert not (tmp_path / "run/checkpoints/last.pt").exists()
    straight = train("sample", "mirage-t", None, tmp_path / "straight", max_steps=2, **FAST)
    again = train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, resume=True, log_every=1, **FAST)
    a, b = straight.model.state_dict(), again.model.state_dict()
    assert again.steps == 2 and all(torch.equal(a[k], b[k]) for k in a)
    assert any("starts again from step 0" in notice for notice in again.manifest["notices"])
    assert [int(line.split(",")[0]) for line in (tmp_path / "run/train_log.csv").read_text().splitlines()[1:]] == \
        [1, 2]


def test_the_cli_names_the_step_of_the_checkpoint_and_prints_the_command_that_continues(tmp_path, monkeypatch):
    from bench_ir.train import command

    monkeypatch.setattr(command.RichTrainProgress, "step", lambda self, row: _CtrlC(at=2).step(row))
    args = ["train", "--recipe", "sample", "--device", "cpu", "--max-steps", "4", "--batch-size", "2",
            "--patch-size", "16", "--workers", "0", "--no-val", "--no-tensorboard", "--log-every", "1",
            "--checkpoint-every", "100", *[f"--model-arg={k}={v}" for k, v in TINY.items()],
            "--run-dir", str(tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", ["bench-ir", *args])  # the command the continue line is built from
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, args)
    assert result.exit_code == 130, result.output
    assert "SIGINT (Ctrl-C): training stops after this step and writes its checkpoint" in result.output
    assert f"interrupted at step 2: its checkpoint is written to {tmp_path / 'run'}" in result.output
    evaluate = next(line for line in result.output.splitlines() if line.startswith("evaluate step 2: "))
    assert evaluate.endswith(f"--checkpoint {tmp_path / 'run/checkpoints/last.pt'}")
    scored = CliRunner(env={"COLUMNS": "400"}).invoke(app, [*shlex.split(evaluate.split(": ", 1)[1])[1:], "--limit",
                                                           "1", "--task", "derain", "--runs-root",
                                                           str(tmp_path / "runs")])
    assert scored.exit_code == 0, scored.output
    continue_line = next(line for line in result.output.splitlines() if line.startswith("continue: "))
    resumed = CliRunner(env={"COLUMNS": "400"}).invoke(app, shlex.split(continue_line)[2:])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((tmp_path / "run/train_manifest.json").read_text())["steps_done"] == 4


def test_a_training_job_sent_sigterm_exits_143_with_a_checkpoint_of_its_last_step(tmp_path):
    """A real `python -m bench_ir train` process with DataLoader workers, stopped as a scheduler stops a job: SIGTERM
    to every process of its group (the workers used to die of it and fail the run)."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "bench_ir", "train", "--recipe", "sample", "--device", "cpu", "--max-steps", "500",
               "--batch-size", "2", "--patch-size", "16", "--workers", "2", "--no-val", "--no-tensorboard",
               "--log-every", "1", "--checkpoint-every", "1000", *[f"--model-arg={k}={v}" for k, v in TINY.items()],
               "--run-dir", str(run_dir)]
    process, err = signal_training_job(command, run_dir, signal.SIGTERM)
    assert process.returncode == 143, err
    assert "Traceback" not in err and "interrupted at step" in err
    manifest = json.loads((run_dir / "train_manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["reason"] == "SIGTERM"
    assert 2 <= manifest["steps_done"] < 500 and _checkpoint_step(run_dir) == manifest["steps_done"]


def _loader_worker(ready) -> None:
    ignore_interrupts(0)
    ready.set()
    time.sleep(60)


@pytest.mark.skipif(not hasattr(signal, "sigwaitinfo"), reason="needs signal.sigwaitinfo (Linux)")
def test_a_loader_worker_outlives_ctrl_c_and_a_schedulers_sigterm_but_ends_on_its_trainers():
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_loader_worker, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(30)
    for signum in (signal.SIGINT, signal.SIGTERM):  # sent by another process, as a terminal or a scheduler does
        subprocess.run([sys.executable, "-c", f"import os; os.kill({worker.pid}, {int(signum)})"], check=True)
    worker.join(1.0)
    assert worker.is_alive()
    worker.terminate()  # SIGTERM from the trainer's process, as the loader and Python's exit send it
    worker.join(10)
    assert worker.exitcode == 0


def test_validations_are_recorded_as_they_go_and_a_stop_defers_the_one_due_to_the_resume(tmp_path, monkeypatch):
    import dataclasses

    from bench_ir.train import trainer
    from bench_ir.train.recipes import ValidationSpec, load_recipe

    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(
        protocol="5deg", sample=True, limit=1, tasks=["derain"], every_steps=1, every_epochs=None))
    options = {**FAST, "validate": True, "log_every": 1, "checkpoint_every": 100}
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(recipe, "mirage-t", None, run_dir, progress=_CtrlC(at=2), max_steps=3, **options)
    steps = lambda: [v["step"] for v in json.loads((run_dir / "train_manifest.json").read_text())["validation"]]  # noqa: E731
    # a stopped run keeps its validations (they were only written at the end); the one due at the step it stopped
    # after is not made then (minutes, where a scheduler kills 30 s after its SIGTERM) but when the run continues
    assert steps() == [1] and _checkpoint_step(run_dir) == 2
    train(recipe, "mirage-t", None, run_dir, max_steps=3, resume=True, **options)
    assert steps() == [1, 2, 3]  # the earlier ones were dropped by a resume
    calls = []
    original = trainer.run_validation
    monkeypatch.setattr(trainer, "run_validation", lambda *a, **k: calls.append(a) or original(*a, **k))
    train(recipe, "mirage-t", None, run_dir, max_steps=3, resume=True, **options)
    assert steps() == [1, 2, 3] and calls == []  # a complete run resumed is not validated again


def test_a_repeat_of_the_signal_within_the_window_is_the_same_request_and_a_later_one_stops_at_once(monkeypatch):
    """Under torchrun a process gets each signal twice (the terminal's or the scheduler's, then torchrun's forward)."""
    import bench_ir.train.stop_request as stop_request

    now = [100.0]
    monkeypatch.setattr(stop_request.time, "monotonic", lambda: now[0])
    with stop_request.StopRequest(same_request_within=5.0) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        now[0] += 0.01
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun's forward: no KeyboardInterrupt
        assert stop.requested and stop.terminated
        now[0] += 10.0
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(("world_size", "second"), [(1, "a second signal stops at once"),
                                                    (2, "a signal more than 5 s after this one stops at once")])
def test_the_stop_notice_says_which_signal_stops_at_once(world_size, second):
    from rich.console import Console

    from bench_ir.train.command import RichTrainProgress

    console = Console(record=True, width=300, file=io.StringIO())
    progress = RichTrainProgress(console)
    progress.start({"model": "MIRAGE-T", "recipe": "sample", "params": 1, "items": 1, "steps_per_epoch": 1,
                    "global_batch": 4, "world_size": world_size, "run_dir": "run", "notices": [], "total_steps": 2,
                    "start_step": 0})
    progress.stop_requested("SIGTERM")
    progress.stop()
    assert second in console.export_text()


def test_a_signal_during_a_validation_stops_right_after_it_with_that_steps_checkpoint(tmp_path, monkeypatch):
    import dataclasses

    from bench_ir.train import trainer
    from bench_ir.train.recipes import ValidationSpec, load_recipe

    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(
        protocol="5deg", sample=True, limit=1, tasks=["derain"], every_steps=2, every_epochs=None))
    original = trainer.run_validation

    def validation_interrupted_by_ctrl_c(*args, **kwargs):
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(trainer, "run_validation", validation_interrupted_by_ctrl_c)
    with pytest.raises(TrainingStopped):
        train(recipe, "mirage-t", None, tmp_path / "run", max_steps=6, log_every=1, checkpoint_every=100,
              **{**FAST, "validate": True})
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["steps_done"] == 2 and _checkpoint_step(tmp_path / "run") == 2
    assert [v["step"] for v in manifest["validation"]] == [2]
