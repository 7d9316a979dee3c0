"""Launchers decide where and when cells run, never how: every cell is ``execute_cell(suite_dir, name)``.

* ``LocalLauncher``: one process, cells in plan order.
* ``NodeLauncher``: one worker process per GPU (spawned), each worker pinned to its GPU through
  ``CUDA_VISIBLE_DEVICES`` before CUDA starts; cells are handed out one at a time, one cell on one GPU. On a machine
  without GPUs the workers run on the CPU. Ctrl-C or SIGTERM to the launching process stops its workers before it
  returns: the signal is forwarded, each worker's cell is recorded interrupted, and a worker that has not ended
  within ``stop_timeout`` seconds is killed.
* ``SlurmLauncher``: one Slurm job per cell or one job array, through submitit (``bench-ir[slurm]``); see
  bench_ir.suite.slurm.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_ir.runner import RunTerminated
from bench_ir.suite.execute import (
    CellResult,
    SuiteEvents,
    execute_cell,
    interrupt_reason,
    interrupted_error,
    record_cell_state,
    terminated,
)
from bench_ir.suite.plan import SuitePlan

__all__ = ["Launcher", "LocalLauncher", "NodeLauncher", "LAUNCHERS", "STOP_TIMEOUT_S"]

LAUNCHERS = ("local", "node", "slurm")
# how long a node worker is given to record its cell interrupted after the forwarded signal, before it is killed:
# well inside the 30 s a scheduler waits between its SIGTERM and SIGKILL
STOP_TIMEOUT_S = 20.0


class Launcher:
    """Runs the named cells of a saved plan and returns their results (in completion order)."""

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        raise NotImplementedError


class LocalLauncher(Launcher):
    """Every cell in this process, in plan order; Ctrl-C (or SIGTERM) stops after marking the running cell
    interrupted."""

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        return [execute_cell(plan.suite_dir, name, events) for name in names]


# ------------------------------------------------------------------------------------------------ node workers
class _WorkerStop:
    """A node worker's SIGINT and SIGTERM handler. The first signal stops the cell in progress as it stops a run
    (KeyboardInterrupt, or RunTerminated for SIGTERM: the cell is recorded interrupted with that reason) and the
    worker after it; between cells it only ends the worker. Later signals change nothing: the launching process
    forwards what it receives, and a terminal's Ctrl-C or a scheduler may have signalled the worker already."""

    def __init__(self) -> None:
        self.stopping = False
        self.in_cell = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.in_cell:
            if signum == signal.SIGTERM:
                raise RunTerminated(f"signal {signal.Signals(signum).name}")
            raise KeyboardInterrupt


def _worker(suite_dir: str, device: int, conn: multiprocessing.connection.Connection) -> None:
    """A node worker: sees only GPU ``device``; runs the cells named on ``conn`` one by one and sends back each
    result (None for a cell it was stopped before starting), until None, the end of ``conn`` or a signal."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(device)  # before anything initialises CUDA
    stop = _WorkerStop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # execute_cell (and the run) keep this handler
        if signal.getsignal(signum) is not signal.SIG_IGN:  # ignored by the launching process (a background job)
            signal.signal(signum, stop)
    while not stop.stopping:
        try:
            name = conn.recv()
        except (EOFError, OSError):  # the launching process closed its end, or is gone
            return
        if name is None:
            return
        result: CellResult | None = None
        try:
            stop.in_cell = True
            if not stop.stopping:
                result = execute_cell(suite_dir, name)
        except KeyboardInterrupt as err:  # execute_cell recorded the cell interrupted (unless it stopped before)
            result = getattr(err, "cell_result", None) or CellResult(
                name, "interrupted", error=interrupted_error(interrupt_reason(err)))
        except Exception as err:  # before the cell could start (an unreadable plan.json, say): it failed
            result = CellResult(name, "failed", error=f"{type(err).__name__}: {err}")
        finally:
            stop.in_cell = False
        try:
            conn.send(result)
        except OSError:
            return


@dataclass
class _Worker:
    device: int
    process: Any  # multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection  # the launching process's end
    cell: str | None = None  # the cell it runs now


def _where(worker: _Worker) -> dict[str, Any]:
    """The process and GPU of a worker, for a cells/<cell>.json this process writes in the worker's stead."""
    return {"pid": worker.process.pid, "cuda_visible_devices": str(worker.device)}


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _send(conn: multiprocessing.connection.Connection, message: str | None) -> bool:
    try:
        conn.send(message)
        return True
    except OSError:  # the worker is gone
        return False


@contextlib.contextmanager
def _repeated_signals() -> Iterator[Callable[[], bool]]:
    """While workers are being stopped, a further Ctrl-C or SIGTERM to this process does not abandon them: it only
    asks to kill them at once. Yields a function telling whether one came (main thread only; elsewhere never)."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {signum: signal.signal(signum, lambda signum, frame: came.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(came)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class NodeLauncher(Launcher):
    """``gpus`` worker processes, worker i sees only GPU i (``CUDA_VISIBLE_DEVICES=i``). Ctrl-C or SIGTERM to this
    process is forwarded to the workers, which record their cells interrupted and end; a worker still alive after
    ``stop_timeout`` seconds is killed (its cell recorded interrupted by this process). Only then does the interrupt
    propagate (and `suite run` release the suite lock). A worker that dies (out of memory, say) fails its cell and
    is replaced."""

    gpus: int = 1
    stop_timeout: float = STOP_TIMEOUT_S

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        if self.gpus < 1:
            raise ValueError(f"--gpus must be at least 1, got {self.gpus}")
        context = multiprocessing.get_context("spawn")
        suite_dir = str(Path(plan.suite_dir).resolve())
        todo, results = list(names), []
        workers: list[_Worker] = []

        def start(device: int) -> _Worker:
            ours, theirs = context.Pipe()
            # not a daemon: a cell's run may start DataLoader workers of its own
            process = context.Process(target=_worker, args=(suite_dir, device, theirs),
                                      name=f"bench-ir suite worker {device}")
            workers.append(_Worker(device, process, ours))  # listed before it starts: an interrupt stops it too
            process.start()
            theirs.close()
            return workers[-1]

        def finished(worker: _Worker, result: CellResult) -> None:
            worker.cell = None
            results.append(result)
            events.cell_finished(result)

        try:
            for device in range(min(self.gpus, len(todo))):
                start(device)
            while todo or any(w.cell for w in workers):
                for worker in list(workers):
                    if worker.cell is not None or not todo:
                        continue
                    if not worker.process.is_alive():  # died between cells: a new worker for its GPU
                        workers.remove(worker)
                        worker.conn.close()
                        worker = start(worker.device)
                    worker.cell = todo.pop(0)
                    if not _send(worker.conn, worker.cell):
                        finished(worker, CellResult(worker.cell, "failed", error="worker process failed: "
                                                    f"{_exit_text(worker.process.exitcode)}"))
                        continue
                    events.cell_started(worker.cell)
                busy = [w for w in workers if w.cell is not None]
                multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                                timeout=1.0)
                for worker in busy:
                    result = self._result(plan, worker)
                    if result is not None:
                        finished(worker, result)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM as `suite run` raises it: stop the workers first
            self._stop(plan, workers, err, finished)
            raise
        finally:
            self._end(workers)
        return results

    @staticmethod
    def _result(plan: SuitePlan, worker: _Worker) -> CellResult | None:
        """The result of the worker's cell when there is one: what it sent, or, when it died, a failure (recorded in
        cells/<cell>.json here: the worker could not)."""
        name = worker.cell
        assert name is not None
        try:
            if worker.conn.poll():
                sent = worker.conn.recv()
                return sent if sent is not None else CellResult(name, "interrupted", error="not started")
        except (EOFError, OSError):
            pass
        else:
            if worker.process.is_alive():
                return None
        worker.process.join(timeout=5)
        result = CellResult(name, "failed", error=f"worker process failed: {_exit_text(worker.process.exitcode)}")
        record_cell_state(plan, plan.cell(name), **result.to_dict(), **_where(worker))
        return result

    def _stop(self, plan: SuitePlan, workers: list[_Worker], err: BaseException,
              finished: Callable[[_Worker, CellResult], None]) -> None:
        """Forward the interrupt to every worker and wait up to ``stop_timeout`` seconds for them to end (a further
        signal: not longer); kill what is left and record its cell interrupted."""
        signum, reason = (signal.SIGTERM if terminated(err) else signal.SIGINT), interrupt_reason(err)
        with _repeated_signals() as repeated:
            for worker in workers:
                if worker.process.pid is not None and worker.process.is_alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.process.pid, signum)
                _send(worker.conn, None)  # read once its cell is over: a worker between cells ends at once
            deadline = time.monotonic() + self.stop_timeout
            while not repeated() and time.monotonic() < deadline:
                alive = [w for w in workers if w.process.is_alive()]
                if not alive:
                    break
                waiting = [w.conn for w in alive if w.cell is not None] + [w.process.sentinel for w in alive]
                multiprocessing.connection.wait(waiting, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                for worker in [w for w in workers if w.cell is not None]:
                    with contextlib.suppress(EOFError, OSError):
                        if worker.conn.poll():
                            sent = worker.conn.recv()
                            if sent is not None:
                                finished(worker, sent)
            for worker in workers:
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                    if worker.cell is not None:
                        error = (f"{interrupted_error(reason)}: its worker process (PID {worker.process.pid}) did not "
                                 f"stop within {self.stop_timeout:g} s and was killed")
                        record_cell_state(plan, plan.cell(worker.cell), status="interrupted", reason=reason,
                                          error=error, **_where(worker))
                        finished(worker, CellResult(worker.cell, "interrupted", error=error))

    def _end(self, workers: list[_Worker]) -> None:
        """Let every worker end (None: no more cells) and reap it; one that does not end in time is killed."""
        for worker in workers:
            _send(worker.conn, None)
        deadline = time.monotonic() + self.stop_timeout
        for worker in workers:
            if worker.process.pid is not None:
                worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
            worker.conn.close()
