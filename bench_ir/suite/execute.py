"""Run one cell of a suite, wherever a launcher put it: an ordinary resumable run (or one profile) into the
cell's directory, with the outcome recorded in ``cells/<cell>.json``. A failing cell raises nothing: its error
(a ResumeError, a held lock, a missing file, a crash of the model) is its result. Ctrl-C or SIGTERM marks it
interrupted (with the reason a run's manifest gives: ``SIGINT (Ctrl-C)`` or ``SIGTERM``) and propagates.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_ir.manifest import now_iso
from bench_ir.results import write_json_atomic
from bench_ir.resume import RunLock
from bench_ir.runner import ProgressHook, RunTerminated, sigterm_as_interrupt
from bench_ir.suite.plan import Cell, SuitePlan

__all__ = ["CellResult", "SuiteEvents", "execute_cell", "record_cell_state", "interrupt_reason", "interrupted_error",
           "terminated"]


@dataclass
class CellResult:
    """The outcome of one attempt at a cell: status complete | failed | interrupted | missing."""

    name: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    images: int = 0  # images scored by this attempt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SuiteEvents:
    """Receives suite progress events; the CLI renders them (the library never prints)."""

    def cell_started(self, name: str) -> None: ...

    def cell_record(self, name: str, record: dict[str, Any]) -> None: ...

    def cell_finished(self, result: CellResult) -> None: ...


class _CellProgress(ProgressHook):
    def __init__(self, name: str, events: SuiteEvents) -> None:
        self.name, self.events, self.count = name, events, 0

    def record(self, record: dict[str, Any]) -> None:
        self.count += 1
        self.events.cell_record(self.name, record)


def terminated(err: BaseException) -> bool:
    """Whether the interrupt ``err`` came from SIGTERM (RunTerminated, or a RunInterrupted of a run it stopped)."""
    return isinstance(err, RunTerminated) or bool(getattr(err, "terminated", False))


def interrupt_reason(err: BaseException) -> str:
    """What stopped a cell, in the words of a run manifest's ``reason``: ``SIGTERM`` or ``SIGINT (Ctrl-C)``."""
    return "SIGTERM" if terminated(err) else "SIGINT (Ctrl-C)"


def interrupted_error(reason: str) -> str:
    """The ``error`` of an interrupted cell: ``interrupted (Ctrl-C)`` or ``interrupted (SIGTERM)``."""
    return "interrupted (SIGTERM)" if reason == "SIGTERM" else "interrupted (Ctrl-C)"


def record_cell_state(plan: SuitePlan, cell: Cell, **state: Any) -> None:
    """Write cells/<cell>.json (where and how the last attempt ran) atomically."""
    info = {"name": cell.name, "kind": cell.kind, "run_dir": cell.run_dir, "host": socket.gethostname(),
            "pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), **state}
    write_json_atomic(plan.suite_dir / "cells" / f"{cell.name}.json", info)


def _profile(plan: SuitePlan, cell: Cell) -> None:
    """Profile the cell's model into its run directory, holding that directory's lock as a run does (one writer at
    a time; `suite status` tells a running cell by the lock)."""
    from bench_ir.cards import get_card, with_model_args
    from bench_ir.profile_run import profile_and_store

    opts, profile = plan.options, plan.profile
    run_dir = plan.run_dir(cell)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir, then="run the same command again"):
        profile_and_store(with_model_args(get_card(cell.model), cell.model_args), size=profile["size"],
                          repeats=profile["repeats"], warmup=profile["warmup"], device=opts["device"],
                          dtype=opts["dtype"], run_dir=run_dir, command=plan.command(cell), exact=opts["exact"])


def _cell_error(err: Exception) -> str:
    """A failed cell's error in the suite's terms: a run that cannot resume (made with another setup) asks for a
    new suite directory, since a suite names its run directories itself."""
    from bench_ir.runner import ResumeError

    text = f"{type(err).__name__}: {err}"
    if isinstance(err, ResumeError):
        text = text.replace("Use a new --run-dir for the new setup", "Run the suite with another --out for the new "
                            "setup (its cells are new run directories)")
    return text


def execute_cell(suite_dir: str | Path, name: str, events: SuiteEvents | None = None) -> CellResult:
    """Run cell ``name`` of the suite in ``suite_dir`` (plan.json) and record the outcome; see the module doc.

    SIGTERM is Ctrl-C here (bench_ir.runner.sigterm_as_interrupt: where the caller installed a SIGTERM handler of its
    own, as `suite run`, a node worker or submitit do, that one is kept)."""
    plan = SuitePlan.load(suite_dir)
    cell = plan.cell(name)
    events = events or SuiteEvents()
    hook = _CellProgress(name, events)
    started, start = now_iso(), time.perf_counter()
    with sigterm_as_interrupt():
        try:
            record_cell_state(plan, cell, status="running", started=started)
            events.cell_started(name)
            if cell.kind == "profile":
                _profile(plan, cell)
            else:
                from bench_ir.runner import run_protocol

                run_protocol(plan.run_config(cell), progress=hook)
            result = CellResult(name, "complete", images=hook.count)
        except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the cell stays resumable, the caller stops
            reason = interrupt_reason(err)
            result = CellResult(name, "interrupted", time.perf_counter() - start, interrupted_error(reason),
                                hook.count)
            record_cell_state(plan, cell, **result.to_dict(), reason=reason, started=started, finished=now_iso())
            events.cell_finished(result)
            err.cell_result = result  # type: ignore[attr-defined]  # for a launcher that reports it elsewhere
            raise
        except Exception as err:  # a failing cell never stops the others
            result = CellResult(name, "failed", error=_cell_error(err), images=hook.count)
        result.seconds = time.perf_counter() - start
        record_cell_state(plan, cell, **result.to_dict(), started=started, finished=now_iso())
        events.cell_finished(result)
    return result
