"""Signals to a real `python -m bench_ir suite run` process: SIGTERM (what schedulers send) behaves as Ctrl-C does,
for the local launcher (a run cell or a profile cell in progress) and for the node launcher (whose worker processes
are stopped before the command exits and releases its locks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import popen_in_own_session, process_alive, write_sample_suite

from bench_ir.resume import RunLock
from bench_ir.suite import SuitePlan, cell_status

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _suite(folder: Path, entries: list[dict], limit: int = 2, profile: dict | None = None) -> Path:
    return write_sample_suite(folder, "signals", ["5deg"], entries, limit, profile=profile or {"enabled": False})


def _start(suite: Path, out: Path, *options: str) -> subprocess.Popen:
    """`bench-ir suite run SUITE --out OUT ...` in a session of its own (a signal to it reaches nothing else)."""
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return popen_in_own_session([sys.executable, "-m", "bench_ir", "suite", "run", str(suite), "--out", str(out),
                                 *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1"})


def _wait_until(process: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"never {what}: {process.communicate()}")
        time.sleep(0.05)


def _scored(records: Path) -> int:
    return records.read_text().count("\n") if records.is_file() else 0


def _state(out: Path, cell: str) -> dict:
    return json.loads((out / "cells" / f"{cell}.json").read_text())


def test_sigterm_while_a_cell_scores_records_it_interrupted_by_sigterm_and_exits_143(tmp_path, wide_tiny_unet):
    out = tmp_path / "out"
    process = _start(_suite(tmp_path, [{**wide_tiny_unet, "name": "slow"}]), out)
    records = out / "runs" / "slow__5deg" / "records.jsonl"
    _wait_until(process, lambda: _scored(records) >= 1, "scored an image")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert f"interrupted (SIGTERM): scored images are kept in {out}; run the same command to continue" in err
    state = _state(out, "slow__5deg")
    assert (state["status"], state["reason"], state["error"]) == ("interrupted", "SIGTERM", "interrupted (SIGTERM)")
    manifest = json.loads((out / "runs" / "slow__5deg" / "manifest.json").read_text())
    assert (manifest["status"], manifest["reason"]) == ("interrupted", "SIGTERM")
    assert 1 <= _scored(records) < 14


def test_sigterm_while_a_profile_cell_runs_records_it_interrupted_and_exits_143(tmp_path, wide_tiny_unet):
    out = tmp_path / "out"
    profile = {"enabled": True, "size": 64, "repeats": 1_000_000, "warmup": 0}  # runs until it is stopped
    process = _start(_suite(tmp_path, [{**wide_tiny_unet, "name": "slow"}], profile=profile), out)

    def profiling() -> bool:
        if not (out / "plan.json").is_file():
            return False
        plan = SuitePlan.load(out)
        (cell,) = [c for c in plan.cells if c.kind == "profile"]
        return cell_status(plan, cell) == "running"

    _wait_until(process, profiling, "started profiling")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "run the same command to continue" in err
    plan = SuitePlan.load(out)
    (cell,) = [c for c in plan.cells if c.kind == "profile"]
    state = _state(out, cell.name)
    assert (state["status"], state["reason"], state["error"]) == ("interrupted", "SIGTERM", "interrupted (SIGTERM)")
    assert cell_status(plan, cell) == "interrupted"


@pytest.mark.parametrize("signum, code, reason, group", [
    (signal.SIGTERM, 143, "SIGTERM", False),  # SIGINT takes the same path (its code and reason: the local tests)
    (signal.SIGTERM, 143, "SIGTERM", True),
], ids=["SIGTERM", "SIGTERM-to-group"])
def test_a_signal_to_a_node_suite_run_stops_its_workers_before_it_exits(tmp_path, wide_tiny_unet, signum, code, reason,
                                                                         group):
    """The signal is sent to the launching process alone (`kill -TERM PID`), or to its process group as a scheduler
    does: its workers stop their cells (recorded interrupted with the signal's reason) and are gone, their run locks
    and the suite lock free, when it exits."""
    out = tmp_path / "out"
    entries = [{**wide_tiny_unet, "name": "a"}, {**wide_tiny_unet, "name": "b"}]
    process = _start(_suite(tmp_path, entries, limit=4), out, "--launcher", "node", "--gpus", "2")
    records = [out / "runs" / f"{name}__5deg" / "records.jsonl" for name in ("a", "b")]
    _wait_until(process, lambda: all(_scored(r) >= 1 for r in records), "scored an image in both cells")
    workers = [_state(out, f"{name}__5deg")["pid"] for name in ("a", "b")]
    assert process.pid not in workers and len(set(workers)) == 2
    try:
        (os.killpg if group else os.kill)(process.pid, signum)
        _, err = process.communicate(timeout=120)
        assert process.returncode == code, err
        assert not [pid for pid in workers if process_alive(pid)]
        assert not RunLock.is_held(out) and not any(RunLock.is_held(r.parent) for r in records)
        for name, record_file in zip(("a", "b"), records, strict=True):
            state = _state(out, f"{name}__5deg")
            assert (state["status"], state["reason"]) == ("interrupted", reason), state
            assert 1 <= _scored(record_file) < 28
    finally:
        for pid in workers:  # what a failing launcher leaves behind
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


_NODE_SUITE_RUN = """\
import sys
from bench_ir.suite import NodeLauncher, run_suite
try:
    run_suite(sys.argv[1], suite_dir=sys.argv[2], launcher=NodeLauncher(gpus=1, stop_timeout=float(sys.argv[3])))
except KeyboardInterrupt:
    sys.exit(143)
"""


def test_a_node_worker_that_does_not_stop_in_time_is_killed_and_its_cell_recorded_interrupted(tmp_path, wide_tiny_unet):
    out = tmp_path / "out"
    suite = _suite(tmp_path, [{**wide_tiny_unet, "name": "slow"}], limit=4)
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    process = popen_in_own_session([sys.executable, "-c", _NODE_SUITE_RUN, str(suite), str(out), "0"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1"})
    records = out / "runs" / "slow__5deg" / "records.jsonl"
    _wait_until(process, lambda: _scored(records) >= 1, "scored an image")
    worker = _state(out, "slow__5deg")["pid"]
    try:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 143, err
        assert not process_alive(worker)
        state = _state(out, "slow__5deg")
        assert (state["status"], state["reason"], state["error"]) == (
            "interrupted", "SIGTERM",
            f"interrupted (SIGTERM): its worker process (PID {worker}) did not stop within 0 s and was killed")
        assert state["pid"] == worker and not RunLock.is_held(records.parent)
    finally:
        if process_alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_node_worker_killed_during_a_cell_fails_that_cell_only_and_a_new_worker_runs_the_others(tmp_path,
                                                                                                   wide_tiny_unet):
    out = tmp_path / "out"
    others = [{"model": "input", "name": name, "protocols": ["derain"]} for name in ("b", "c")]  # 4 images each
    process = _start(_suite(tmp_path, [{**wide_tiny_unet, "name": "slow"}, *others], limit=4), out, "--launcher",
                     "node", "--gpus", "1")
    records = out / "runs" / "slow__5deg" / "records.jsonl"
    _wait_until(process, lambda: _scored(records) >= 1, "scored an image")
    worker = _state(out, "slow__5deg")["pid"]
    os.kill(worker, signal.SIGKILL)  # as the kernel's out-of-memory killer does
    _, err = process.communicate(timeout=180)
    assert process.returncode == 1, err
    assert "1 cell(s) did not complete: slow__5deg" in err
    state = _state(out, "slow__5deg")
    assert (state["status"], state["error"], state["pid"]) == (
        "failed", "worker process failed: killed by SIGKILL", worker)
    assert [_state(out, f"{name}__derain")["status"] for name in ("b", "c")] == ["complete", "complete"]
    assert _state(out, "b__derain")["pid"] != worker
