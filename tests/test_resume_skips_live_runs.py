"""A run another process is writing is not free to continue: `--resume` without `--run-dir` passes over it to an
older stopped run of the same setup, and refuses, naming it, when it is the only one; `report` calls a run that no
process holds any more (killed) "stopped", as `list runs` does, never "running". A held lock is simulated by a
RunLock taken in the test process (flock locks conflict between open files, even within one process)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import write_scored_run
from PIL import Image

from bench_ir.report import build_table, render
from bench_ir.results import RunStore, load_run
from bench_ir.resume import RunLock, RunLockedError, run_status
from bench_ir.runner import RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")

PROTOCOL = """\
name: tiny
title: A tiny one-task protocol
version: 1
convention: M1
crop: {rule: center_multiple, base: 16}
average: [a]
tasks:
  - {name: a, label: A, dataset: a, layouts: [{input: a/in, target: a/gt, pairing: same_name}]}
"""


class _StopAfterOne:
    def start_task(self, task, total, done): ...

    def end_task(self, task): ...

    def record(self, record):
        raise KeyboardInterrupt


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    """A one-task protocol file and its data root (two 16-pixel pairs)."""
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(PROTOCOL)
    root = tmp_path / "data"
    for folder in ("in", "gt"):
        (root / "a" / folder).mkdir(parents=True)
    for i in range(2):
        image = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "a" / "gt" / f"{i}.png")
        Image.fromarray(255 - image).save(root / "a" / "in" / f"{i}.png")
    return protocol, root


def _config(tiny, **kwargs) -> RunConfig:
    protocol, root = tiny
    return RunConfig(protocol=str(protocol), model="input", data_root=root, device="cpu", **kwargs)


def _unfinished(tiny, run_dir: Path) -> Path:
    """A run of the tiny setup stopped after its first image, marked ``running`` as a killed run's manifest is."""
    with pytest.raises(KeyboardInterrupt):
        run_protocol(_config(tiny, run_dir=run_dir), progress=_StopAfterOne())
    store = RunStore(run_dir)
    store.write_manifest({**store.read_manifest(), "status": "running"})
    return run_dir


# ------------------------------------------------------------------------------------ --resume without --run-dir
def test_resume_passes_over_a_run_being_written_and_continues_the_older_stopped_one(tiny, tmp_path):
    runs = tmp_path / "runs"
    stopped, live = _unfinished(tiny, runs / "0-stopped"), _unfinished(tiny, runs / "1-live")
    with RunLock(live):  # stands in for the process still writing the newer run
        outcome = run_protocol(_config(tiny, runs_root=runs, resume=True))
    assert outcome.run_dir == stopped and outcome.manifest["status"] == "complete"
    assert load_run(live).manifest["status"] == "running"


def test_resume_when_the_only_run_of_the_setup_is_being_written_names_it_and_its_writer(tiny, tmp_path):
    runs = tmp_path / "runs"
    live = _unfinished(tiny, runs / "live")
    with RunLock(live), pytest.raises(RunLockedError) as caught:
        run_protocol(_config(tiny, runs_root=runs, resume=True))
    message = str(caught.value)
    assert f"{live} (PID {os.getpid()}) is being written by another bench-ir process" in message
    assert "--resume again once it stops" in message and "without --resume to start a new run" in message
    assert sorted(p.name for p in runs.iterdir()) == ["live"]  # nothing was started


# ----------------------------------------------------------------------------------------- the status of a run
def test_run_status_calls_a_running_run_that_no_process_holds_stopped(tmp_path):
    RunLock(tmp_path).acquire().release()  # the lock file a killed run leaves
    assert run_status(tmp_path, {"status": "running"}) == "stopped"
    with RunLock(tmp_path):
        assert run_status(tmp_path, {"status": "running"}) == "running"


TASKS_3DEG = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]


def _running_run(run_dir: Path) -> Path:
    write_scored_run(run_dir, TASKS_3DEG, [("dehaze", "a.png", 30.0, 0.9)], status="running")
    RunLock(run_dir).acquire().release()  # a lock file as the writer left it
    return run_dir


def test_the_report_calls_a_killed_run_stopped_as_list_runs_does(tmp_path):
    text = render(build_table("3deg", [_running_run(tmp_path / "killed")]), "markdown")
    assert "run stopped, not complete" in text and "run running" not in text


def test_the_report_calls_a_run_still_being_written_running(tmp_path):
    run_dir = _running_run(tmp_path / "live")
    with RunLock(run_dir):
        text = render(build_table("3deg", [run_dir]), "markdown")
    assert "run running, not complete" in text
