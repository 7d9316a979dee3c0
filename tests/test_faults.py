"""Fault injection on the result store: real `python -m bench_ir run` processes killed with SIGKILL, SIGTERM and
SIGINT, torn and corrupt record lines, duplicate records, two writers, a failed append, a failed final manifest
write and an input that breaks before the first record. Each test states the guarantee of docs/reliability.md
that it proves; the data are small PNG folders cut from a scikit-image photo, scored with the `input` card."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.results import RecordWarning, RunStore, load_run
from bench_ir.resume import RunLock, RunLockedError, lock_holder
from bench_ir.runner import RunConfig, RunNotFinalizedError, folder_protocol, run_protocol

# one thread, as the `bench-ir run` processes below get it: a thread pool only costs time on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
IMAGES, SIZE = 24, 384  # killed runs: enough work (over half a second on a fast CPU) that a signal lands mid-run
FEW, SMALL = 6, 96  # damaged-file runs: small and quick


def _write_folders(root: Path, n: int = IMAGES, size: int = SIZE) -> tuple[Path, Path]:
    photo = skdata.astronaut()
    inputs, targets = root / "in", root / "gt"
    inputs.mkdir(parents=True)
    targets.mkdir()
    for i in range(n):
        rng = np.random.default_rng(i)
        y, x = (int(v) for v in rng.integers(0, photo.shape[0] - size + 1, 2))
        clean = photo[y:y + size, x:x + size]
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(targets / f"{i:03d}.png", compress_level=0)  # uncompressed: quick to write
        Image.fromarray(noisy).save(inputs / f"{i:03d}.png", compress_level=0)
    return inputs, targets


def _config(folders: tuple[Path, Path], run_dir: Path, **kwargs) -> RunConfig:
    return RunConfig(protocol=folder_protocol(*folders), model="input", run_dir=run_dir, device="cpu", **kwargs)


def _export(run_dir: Path) -> pd.DataFrame:
    """`bench-ir export` of a run without the timing column, in (task, image) order."""
    result = runner.invoke(app, ["export", str(run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout)).drop(columns=["seconds"])
    return frame.sort_values(["task", "image"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    return _write_folders(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory) -> pd.DataFrame:
    """The export of an uninterrupted run on ``folders``."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_protocol(_config(folders, run_dir))
    return _export(run_dir)


@pytest.fixture(scope="module")
def few(tmp_path_factory) -> tuple[Path, Path]:
    return _write_folders(tmp_path_factory.mktemp("few"), n=FEW, size=SMALL)


@pytest.fixture(scope="module")
def few_reference(few, tmp_path_factory) -> pd.DataFrame:
    """The export of an uninterrupted run on ``few``."""
    run_dir = tmp_path_factory.mktemp("few-reference") / "run"
    run_protocol(_config(few, run_dir))
    return _export(run_dir)


def _start(folders: tuple[Path, Path], run_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench_ir", "run", "--model", "input", "--input-dir", str(folders[0]),
               "--target-dir", str(folders[1]), "--run-dir", str(run_dir), "--device", "cpu", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=run_dir.parent)


def _signal_once_scoring(runs: list[tuple[Path, subprocess.Popen, int]], timeout: float = 180.0) -> None:
    """Send each ``(run folder, process, signal)`` its signal as soon as the folder's records.jsonl holds a complete
    record (the process is then scoring); return when every one was sent."""
    waiting, deadline = list(runs), time.monotonic() + timeout
    while waiting:
        for run in list(waiting):
            run_dir, process, signum = run
            records = run_dir / "records.jsonl"
            if records.is_file() and b"\n" in records.read_bytes():
                process.send_signal(signum)
                waiting.remove(run)
            elif process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"the run ended before its first record:\n{out}\n{err}")
        if waiting and time.monotonic() > deadline:
            raise AssertionError(f"no record within {timeout} s in {', '.join(str(r[0]) for r in waiting)}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def stopped_runs(folders, tmp_path_factory) -> Iterator[dict[int, tuple[Path, subprocess.Popen]]]:
    """signal -> (run folder, process) of three `bench-ir run` processes on ``folders``, started together (their
    start-ups overlap) and each sent its signal once it scores: SIGTERM, SIGINT (Ctrl-C), and SIGSTOP, which
    freezes a run mid-way with its lock held (the kill -9 test's). Processes left at the end are killed."""
    root = tmp_path_factory.mktemp("stopped")
    runs = {signum: (root / signum.name, _start(folders, root / signum.name))
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGSTOP)}
    try:
        _signal_once_scoring([(run_dir, process, signum) for signum, (run_dir, process) in runs.items()])
        yield runs
    finally:
        for _, process in runs.values():
            if process.poll() is None:
                process.kill()
            process.communicate()


# ------------------------------------------------------------------------------------------- killed processes
@pytest.mark.parametrize(("signum", "reason", "code"), [
    (signal.SIGTERM, "SIGTERM", 143),
    (signal.SIGINT, "SIGINT (Ctrl-C)", 130),
])
def test_sigterm_and_sigint_mark_the_run_interrupted_and_it_resumes_to_the_uninterrupted_export(
        folders, reference, stopped_runs, signum, reason, code):
    run_dir, process = stopped_runs[signum]
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "--resume" in err and "Traceback" not in err
    stopped = load_run(run_dir)
    assert stopped.manifest["status"] == "interrupted", "the run finished before the signal: make it slower"
    assert stopped.manifest["reason"] == reason and 0 < len(stopped.records) < IMAGES
    resumed = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(folders[0]), "--target-dir",
                                  str(folders[1]), "--run-dir", str(run_dir), "--resume", "--device", "cpu"])
    assert resumed.exit_code == 0, resumed.output
    assert load_run(run_dir).manifest["status"] == "complete"
    pd.testing.assert_frame_equal(_export(run_dir), reference)


def test_a_second_writer_is_refused_and_after_kill_9_the_run_resumes_to_the_uninterrupted_export(
        folders, reference, stopped_runs):
    run_dir, process = stopped_runs[signal.SIGSTOP]  # frozen mid-run, holding its lock
    try:
        second = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(folders[0]), "--target-dir",
                                     str(folders[1]), "--run-dir", str(run_dir), "--resume", "--device", "cpu"])
        assert second.exit_code == 2
        assert f"PID {process.pid}" in second.output and "Traceback" not in second.output
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    killed = load_run(run_dir)
    assert killed.manifest["status"] == "running", "the run finished before it was stopped: make it slower"
    assert 0 < len(killed.records) < IMAGES
    assert lock_holder(run_dir) == process.pid and not RunLock.is_held(run_dir)  # the kernel released the lock
    outcome = run_protocol(_config(folders, run_dir, resume=True))  # so the stale lock file does not block
    assert outcome.manifest["status"] == "complete"
    pd.testing.assert_frame_equal(_export(run_dir), reference)


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with RunLock(tmp_path), pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released on exit
        assert RunLock.is_held(tmp_path)


def test_a_lock_held_for_an_instant_by_a_status_probe_is_waited_for_not_refused(tmp_path):
    import fcntl
    import threading

    RunLock(tmp_path).acquire().release()  # the lock file exists, as once a run has started
    probe = os.open(tmp_path / "run.lock", os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what RunLock.is_held holds for an instant
    threading.Timer(0.1, os.close, args=[probe]).start()
    with RunLock(tmp_path):
        assert RunLock.is_held(tmp_path)


# ------------------------------------------------------------------------------------- damaged records files
def _lines(run_dir: Path) -> list[str]:
    return (run_dir / "records.jsonl").read_text().splitlines(keepends=True)


def test_a_torn_last_line_is_rescored_on_resume(few, few_reference, tmp_path):
    run_dir = tmp_path / "run"
    run_protocol(_config(few, run_dir))
    lines = _lines(run_dir)
    (run_dir / "records.jsonl").write_text("".join(lines[:5]) + lines[5][:20])  # an append cut by kill -9
    assert len(load_run(run_dir).records) == 5
    run_protocol(_config(few, run_dir, resume=True))
    assert len(_lines(run_dir)) == FEW
    pd.testing.assert_frame_equal(_export(run_dir), few_reference)


def test_a_corrupt_middle_line_costs_only_its_own_record_with_one_warning(few, few_reference, tmp_path):
    run_dir = tmp_path / "run"
    run_protocol(_config(few, run_dir))
    lines = _lines(run_dir)
    lines[2] = "\x00\x00garbage{\n"
    lines[4] = '{"task": "folder"}\n'  # JSON, but not a record
    (run_dir / "records.jsonl").write_text("".join(lines))
    with pytest.warns(RecordWarning) as caught:
        run = load_run(run_dir)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(run_dir / "records.jsonl") in message and "line 3, 5" in message
    assert len(run.records) == FEW - 2
    assert run.incomplete() == f"incomplete: {FEW - 2} of {FEW} images (folder {FEW - 2} of {FEW})"
    with pytest.warns(RecordWarning):  # only the two lost images are scored again
        run_protocol(_config(few, run_dir, resume=True))
    assert len(_lines(run_dir)) == FEW  # the complete run's records were rewritten without the unreadable lines
    pd.testing.assert_frame_equal(_export(run_dir), few_reference)  # quiet: nothing left to warn of
    run_protocol(_config(few, run_dir, resume=True))  # a second resume scores nothing more
    assert len(_lines(run_dir)) == FEW


def test_a_duplicate_record_never_counts_twice(few, tmp_path):
    run_dir = tmp_path / "run"
    outcome = run_protocol(_config(few, run_dir))
    first = json.loads(_lines(run_dir)[0])
    with open(run_dir / "records.jsonl", "a") as handle:  # what a second writer used to add
        handle.write(json.dumps({**first, "psnr": first["psnr"] + 10.0}) + "\n")
    with pytest.warns(RecordWarning, match="1 duplicate record"):
        run = load_run(run_dir)
    assert len(run.records) == FEW and run.summary().loc["folder", "images"] == FEW
    kept = run.records.set_index("image").loc[first["image"], "psnr"]
    assert kept == pytest.approx(first["psnr"] + 10.0)  # the last record of a key wins, consistently
    expected = outcome.summary.loc["folder", "psnr"] + 10.0 / FEW
    assert run.summary().loc["folder", "psnr"] == pytest.approx(expected)
    with pytest.warns(RecordWarning):
        assert len(_export(run_dir)) == FEW


def test_export_and_compare_say_when_records_do_not_cover_the_manifest(few, tmp_path):
    run_dir = tmp_path / "run"
    run_protocol(_config(few, run_dir))
    (run_dir / "records.jsonl").write_text("".join(_lines(run_dir)[:4]))
    exported = runner.invoke(app, ["export", str(run_dir)])
    assert exported.exit_code == 0 and f"incomplete: 4 of {FEW} images" in exported.stderr
    compared = runner.invoke(app, ["compare", str(run_dir), str(run_dir), "--n-boot", "10"])
    assert compared.exit_code == 0 and f"incomplete: 4 of {FEW} images" in compared.output
    from rich.console import Console

    from bench_ir.listing import runs_table

    console = Console(width=200, record=True)
    console.print(runs_table(tmp_path))
    assert f"incomplete 4/{FEW}" in console.export_text()


# --------------------------------------------------------------------------------------------- failing writes
def test_a_failed_append_marks_the_run_failed_and_it_resumes(few, few_reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    append = RunStore.append
    calls = {"n": 0}

    def full_disk_after_three(self, record):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        append(self, record)

    monkeypatch.setattr(RunStore, "append", full_disk_after_three)
    with pytest.raises(OSError, match="No space left"):
        run_protocol(_config(few, run_dir))
    monkeypatch.setattr(RunStore, "append", append)
    manifest = load_run(run_dir).manifest
    assert manifest["status"] == "failed" and "No space left" in manifest["error"]
    run_protocol(_config(few, run_dir, resume=True))
    pd.testing.assert_frame_equal(_export(run_dir), few_reference)


def test_a_failed_final_manifest_write_leaves_the_run_resumable_and_says_so(few, few_reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    write = RunStore.write_manifest

    def fail_when_complete(self, manifest):
        if manifest.get("status") == "complete":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, manifest)

    monkeypatch.setattr(RunStore, "write_manifest", fail_when_complete)
    with pytest.raises(RunNotFinalizedError, match="stays resumable.*--resume --run-dir"):
        run_protocol(_config(few, run_dir))
    monkeypatch.setattr(RunStore, "write_manifest", write)
    assert load_run(run_dir).manifest["status"] == "running"
    listed = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path)])
    assert "stopped" in listed.output
    outcome = run_protocol(_config(few, run_dir, resume=True))
    assert outcome.manifest["status"] == "complete" and len(_lines(run_dir)) == FEW
    pd.testing.assert_frame_equal(_export(run_dir), few_reference)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions do not stop root's writes")
def test_a_read_only_run_directory_is_refused_before_scoring(few, tmp_path):
    run_dir = tmp_path / "run"
    run_protocol(_config(few, run_dir, limit=None))
    (run_dir / "records.jsonl").write_text("".join(_lines(run_dir)[:3]))
    run_dir.chmod(0o555)
    try:
        with pytest.raises(OSError):
            run_protocol(_config(few, run_dir, resume=True))
    finally:
        run_dir.chmod(0o755)
    assert len(load_run(run_dir).records) == 3  # nothing lost


def test_an_input_that_breaks_before_the_first_record_leaves_a_failed_run(tmp_path):
    inputs, targets = _write_folders(tmp_path / "data", n=2, size=64)
    good = (inputs / "000.png").read_bytes()
    (inputs / "000.png").write_bytes(good[:60])  # a valid header, then nothing: decoding fails
    run_dir = tmp_path / "runs" / "broken"
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(inputs), "--target-dir",
                                 str(targets), "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code != 0
    manifest = load_run(run_dir).manifest
    assert manifest["status"] == "failed" and manifest["error"]
    assert len(load_run(run_dir).records) == 0
    listed = runner.invoke(app, ["list", "runs", "--runs-root", str(tmp_path / "runs")])
    assert "failed" in listed.output and "interrupted" not in listed.output


def test_report_marks_a_run_whose_records_do_not_cover_the_manifest(tmp_path):
    from bench_ir.report import build_report

    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r"))
    (tmp_path / "r" / "records.jsonl").write_text("".join(_lines(tmp_path / "r")[:2]))
    text = build_report("derain", [tmp_path / "r"], fmt="markdown")
    assert "incomplete: 2 of 5 images (derain 2 of 5): not comparable with published numbers" in text


class _FrozenClock:
    """Stands in for the ``datetime`` module of bench_ir.atomic: every ``now()`` is the same second."""

    class datetime:  # noqa: N801 (the name of the class it replaces)
        @staticmethod
        def now():
            import datetime

            return datetime.datetime(2026, 12, 1, 9, 30, 0)


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    """Guarantee: a run never writes into another run's directory; without --run-dir each run claims a new folder
    (it was `<second>-<model>-<protocol>`, shared by two runs started in that second: the second failed, or with
    both running, wrote beside the first)."""
    import bench_ir.atomic

    monkeypatch.setattr(bench_ir.atomic, "_dt", _FrozenClock)
    command = ["run", "--protocol", "5deg", "--sample", "--model", "input", "--limit", "1", "--task", "derain",
               "--runs-root", str(tmp_path)]
    for _ in range(2):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["20261201-093000-input-5deg-sample", "20261201-093000-input-5deg-sample-2"]
    assert all(len(load_run(tmp_path / name).records) == 1 for name in folders)


def test_concurrent_claims_of_the_same_name_never_share_a_folder(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import bench_ir.atomic

    monkeypatch.setattr(bench_ir.atomic, "_dt", _FrozenClock)
    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(lambda _: bench_ir.atomic.claim_new_dir(tmp_path, "mirage-t-5deg"), range(16)))
    assert len(set(claimed)) == 16 and all(folder.is_dir() for folder in claimed)


def test_a_run_folder_name_from_a_name_with_a_path_separator_is_one_folder(tmp_path):
    """A recipe or card named ``a/b`` (or with spaces) gets one folder under the runs root, not a path into a
    folder that does not exist."""
    import bench_ir.atomic

    folder = bench_ir.atomic.claim_new_dir(tmp_path / "train", "my/net-sample recipe")
    assert folder.parent == tmp_path / "train" and folder.name.endswith("-my-net-sample-recipe")
