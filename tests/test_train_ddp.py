"""Data-parallel training under torchrun: two gloo processes on CPU split each global batch and stay in sync."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_MIRAGE_ARGS, signal_training_job

SCRIPT = """
import dataclasses, json, os, sys, torch
from bench_ir.train import train
from bench_ir.train.objectives import RestorationObjective
from bench_ir.train.recipes import ValidationSpec, load_recipe

out_dir = sys.argv[1]
rank = int(os.environ["RANK"])
batches = []
standard = RestorationObjective()

def recording_objective(model, lq, gt, step):
    batches.append(int(lq.shape[0]))
    return standard(model, lq, gt, step)

recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(
    protocol="5deg", sample=True, limit=1, tasks=["derain", "denoise-25"], every_steps=2, every_epochs=None))
outcome = train(recipe, "mirage-t", None, os.path.join(out_dir, "run"), max_steps=2, device="cpu", batch_size=4,
                patch_size=16, num_workers=0, validate=True, tensorboard=False,
                model_args={"dim": 6, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1},
                objective=recording_objective)
torch.save(outcome.model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
json.dump({"batches": batches, "losses": outcome.final_losses}, open(os.path.join(out_dir, f"rank{rank}.json"), "w"))
"""


def _torchrun_two_processes(code: str, out_dir: Path) -> None:
    """Run ``code`` (a script taking the output folder as its argument) as 2 gloo processes under torchrun."""
    script = out_dir / "ddp_script.py"
    script.write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
               str(out_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """One 2-step training of a tiny MIRAGE-T as 2 gloo processes, validating at its last step (one torchrun
    launch, about 13 s, shared by the tests below)."""
    out_dir = tmp_path_factory.mktemp("ddp")
    _torchrun_two_processes(SCRIPT, out_dir)
    return out_dir


@pytest.mark.slow
def test_two_processes_split_the_global_batch_and_end_with_identical_weights(two_process_run):
    ranks = [json.loads((two_process_run / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["batches"] for r in ranks] == [[2, 2], [2, 2]]  # global batch 4 = 2 per process, 2 steps
    assert ranks[0]["losses"] == ranks[1]["losses"]  # logged terms are the mean over processes
    weights = [torch.load(two_process_run / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    manifest = json.loads((two_process_run / "run/train_manifest.json").read_text())
    assert (manifest["world_size"], manifest["global_batch"], manifest["per_process_batch"]) == (2, 4, 2)
    assert manifest["status"] == "complete"
    exported = torch.load(two_process_run / "run/checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(exported[k], weights[0][k]) for k in exported)


@pytest.mark.slow
def test_validation_under_torchrun_is_scored_by_every_process_and_the_run_completes(two_process_run):
    """It hung: rank 0 ran the validation as a sharded run whose other shard nobody scored, while rank 1 waited at a
    barrier (the recipes validate every epoch by default). The last step is a validation step, so the end of the
    run decides about its final validation on every rank alike."""
    manifest = json.loads((two_process_run / "run/train_manifest.json").read_text())
    assert manifest["status"] == "complete" and [v["step"] for v in manifest["validation"]] == [2]
    assert {task: v["images"] for task, v in manifest["validation"][0]["tasks"].items()} == {"derain": 1,
                                                                                          "denoise-25": 1}
    validation = json.loads((two_process_run / "run/val/step-0000002/manifest.json").read_text())
    assert validation["status"] == "complete"


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "reason", "rank"), [
    (signal.SIGTERM, "SIGTERM", None),  # Ctrl-C to the group takes the same path (its reason: test_train_interrupt)
    (signal.SIGTERM, "SIGTERM", 1),  # one worker alone: the other learns of it at the step boundary
], ids=["sigterm-to-the-group", "sigterm-to-rank-1"])
def test_a_torchrun_job_stopped_by_a_signal_writes_the_checkpoint_of_its_last_step(tmp_path, signum, reason, rank):
    """`torchrun ... -m bench_ir train` stopped as Slurm (SIGTERM) or a terminal's Ctrl-C (SIGINT) stops it: the
    signal reaches every process of the group, and torchrun forwards it to its workers once more. Both processes
    agree on the step to stop after, and its checkpoint is written (before, every step since the last one was lost)."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "bench_ir",
               "train", "--recipe", "sample", "--device", "cpu", "--max-steps", "500", "--batch-size", "4",
               "--patch-size", "16", "--workers", "0", "--no-val", "--no-tensorboard", "--log-every", "1",
               "--checkpoint-every", "1000", *[f"--model-arg={k}={v}" for k, v in TINY_MIRAGE_ARGS.items()],
               "--run-dir", str(run_dir)]
    _, err = signal_training_job(command, run_dir, signum, env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                                 rank=rank)
    manifest = json.loads((run_dir / "train_manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["reason"] == reason, err[-3000:]
    assert "interrupted at step" in err and f"{reason}: training stops after this step" in err  # rank 0 says so
    checkpoint = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert 2 <= manifest["steps_done"] < 500 and checkpoint["step"] == manifest["steps_done"]
