"""Jobs a test starts in a session of its own (conftest.popen_in_own_session, as the signal tests start `bench-ir`
jobs) never outlive it: not when the test fails before it waits for them, and not when pytest itself is stopped by
SIGTERM while the test runs. One inner pytest run (with the project's conftest) shows both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import process_alive

TESTS = Path(__file__).resolve().parent

INNER_TESTS = '''
import time
from pathlib import Path

from conftest import popen_in_own_session, process_alive

FOLDER = Path(__file__).parent


def test_a_fails_before_it_waits_for_its_job():
    job = popen_in_own_session(["sleep", "300"])
    (FOLDER / "first.pid").write_text(str(job.pid))
    assert False, "a test that fails with its job still running"


def test_b_starts_a_job_and_is_stopped_by_sigterm():
    first = int((FOLDER / "first.pid").read_text())
    (FOLDER / "first-alive-after-its-test.txt").write_text(str(process_alive(first)))
    job = popen_in_own_session(["sleep", "300"])
    (FOLDER / "second.pid").write_text(str(job.pid))
    time.sleep(120)
'''


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The inner tests run by a pytest that is sent SIGTERM once the second test has started its job."""
    folder = tmp_path_factory.mktemp("inner")
    (folder / "test_inner.py").write_text(INNER_TESTS, encoding="utf-8")
    python_path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                                "test_inner.py"], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONPATH": python_path})
    deadline = time.monotonic() + 120
    while not (folder / "second.pid").is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the inner tests never started their second job: {process.communicate()[0]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return folder, subprocess.CompletedProcess(process.args, process.returncode, output)


def test_a_job_left_running_by_a_failing_test_is_killed_when_that_test_ends(inner_run):
    folder, _ = inner_run
    assert (folder / "first-alive-after-its-test.txt").read_text() == "False"


def test_a_pytest_stopped_by_sigterm_kills_the_job_of_its_running_test_before_it_ends(inner_run):
    folder, done = inner_run
    assert done.returncode == -signal.SIGTERM, done.stdout
    deadline = time.monotonic() + 10  # the orphaned job's exit is reaped by init
    while process_alive(int((folder / "second.pid").read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(int((folder / "second.pid").read_text()))
