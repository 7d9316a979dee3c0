"""A process forked while a run lock is held (a DataLoader worker) does not keep the lock: once the parent lets go
(or is killed), the run is free though the child lives on."""

from __future__ import annotations

import os
import signal
import time

from bench_ir.resume import RunLock


def _fork_sleeping_child() -> int:
    pid = os.fork()
    if pid == 0:  # the child: outlive the parent's hold on the lock, then leave without cleanup
        time.sleep(30)
        os._exit(0)
    return pid


def test_a_forked_child_does_not_hold_the_parents_run_lock(tmp_path):
    lock = RunLock(tmp_path).acquire()
    child = _fork_sleeping_child()
    try:
        time.sleep(0.2)  # the child has run its at-fork hooks
        assert RunLock.is_held(tmp_path)  # the parent still holds it
        lock.release()
        assert not RunLock.is_held(tmp_path)
        RunLock(tmp_path).acquire().release()  # a resume would get it
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_a_lock_taken_after_the_fork_is_held_as_before(tmp_path):
    child = _fork_sleeping_child()
    try:
        with RunLock(tmp_path):
            assert RunLock.is_held(tmp_path)
        assert not RunLock.is_held(tmp_path)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
