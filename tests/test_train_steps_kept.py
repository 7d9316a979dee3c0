"""A training run that ends before its target records the steps it keeps (its checkpoint's step, what `--resume`
continues from), not the steps it did: after a second Ctrl-C or an error the steps done since the last checkpoint
are lost, and the manifest and `list runs` say so."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FAST_TRAINING as FAST
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.train.trainer import TrainProgress, train

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner(env={"COLUMNS": "160"})


class _StopsAt(TrainProgress):
    """Raises ``error`` when step ``at`` is logged (before its checkpoint) or, with ``on_checkpoint``, when its
    checkpoint is written, as a second Ctrl-C does (at once, mid-run)."""

    def __init__(self, at: int, error: BaseException, on_checkpoint: bool = False) -> None:
        self.at, self.error, self.on_checkpoint = at, error, on_checkpoint

    def step(self, row):
        if row["step"] == self.at and not self.on_checkpoint:
            raise self.error

    def checkpoint(self, step, path):
        if step == self.at and self.on_checkpoint:
            raise self.error


def _stopped_after_its_checkpoint(run_dir, error: BaseException) -> dict:
    """Train to step 3 of 6 with a checkpoint every 2 steps, stopped by ``error``: step 3 is lost. The manifest."""
    with pytest.raises(type(error)):
        train("sample", "mirage-t", None, run_dir, progress=_StopsAt(3, error), max_steps=6, log_every=1,
              checkpoint_every=2, **FAST)
    return json.loads((run_dir / "train_manifest.json").read_text())


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple:
    run_dir = tmp_path_factory.mktemp("runs") / "train" / "interrupted"
    return run_dir, _stopped_after_its_checkpoint(run_dir, KeyboardInterrupt())


def test_an_interrupted_run_records_its_checkpoints_step_as_the_steps_done_and_the_later_ones_as_lost(interrupted):
    run_dir, manifest = interrupted
    checkpoint = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert manifest["status"] == "interrupted" and checkpoint["step"] == 2
    assert manifest["steps_done"] == 2 and manifest["steps_lost"] == 1


def test_an_interrupted_runs_last_losses_are_those_of_the_step_it_keeps(interrupted):
    run_dir, manifest = interrupted
    checkpoint = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert manifest["last_losses"] == checkpoint["losses"] and manifest["last_losses"]["total"] > 0


def test_list_runs_shows_the_steps_a_resume_continues_from_and_the_steps_lost(interrupted):
    run_dir, _ = interrupted
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(run_dir.parents[1])])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "train/interrupted" in line)
    assert "interrupted" in row and "2/6" in row and "3/6" not in result.stdout
    assert "1 lost" in result.stdout


def test_a_run_that_fails_after_its_checkpoint_records_the_steps_it_keeps(tmp_path):
    manifest = _stopped_after_its_checkpoint(tmp_path / "run", RuntimeError("CUDA out of memory (simulated)"))
    assert manifest["status"] == "failed" and manifest["steps_done"] == 2 and manifest["steps_lost"] == 1


def test_a_run_interrupted_as_its_checkpoint_is_written_keeps_that_step_and_records_no_steps_lost(tmp_path):
    progress = _StopsAt(2, KeyboardInterrupt(), on_checkpoint=True)
    with pytest.raises(KeyboardInterrupt):
        train("sample", "mirage-t", None, tmp_path / "run", progress=progress, max_steps=6, log_every=1,
              checkpoint_every=2, **FAST)
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["steps_done"] == 2 and "steps_lost" not in manifest
