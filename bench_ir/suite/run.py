"""`bench-ir suite run` as a library call: plan, check, then hand the unfinished cells to a launcher.

Running the same call again is how a suite continues: complete cells are skipped (no model is built for
them), interrupted ones resume inside their run directory, failed ones are tried again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_ir.results import RunStore
from bench_ir.resume import RunLock
from bench_ir.runner import sigterm_as_interrupt
from bench_ir.suite.execute import CellResult, SuiteEvents, record_cell_state
from bench_ir.suite.launchers import Launcher, LocalLauncher
from bench_ir.suite.plan import (
    PLAN_FILE,
    Cell,
    SuiteCheckError,
    SuitePlan,
    cell_status,
    cell_status_reason,
    check_cells,
    nonfinite_reason,
    plan_suite,
)
from bench_ir.suite.spec import Suite, load_suite

__all__ = ["SuiteOutcome", "SuiteProgress", "OtherSuiteError", "check_same_suite", "run_suite", "default_suite_dir"]


@dataclass
class SuiteOutcome:
    plan: SuitePlan
    results: list[CellResult]
    skipped: list[str] = field(default_factory=list)  # complete before this call
    missing: dict[str, list[str]] = field(default_factory=dict)  # problem -> cells (with skip_missing)
    running: list[str] = field(default_factory=list)  # run by another process now: not started again
    # handed to a launcher that returned without following them to their end (Slurm --no-wait): `suite status` says
    # how they end
    submitted: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CellResult]:
        return [r for r in self.results if r.status != "complete"]

    @property
    def complete(self) -> bool:
        """Whether every cell of the plan is complete after this call: none failed, was skipped as missing, is run by
        another process or was submitted without being followed to its end."""
        return not (self.failed or self.missing_cells or self.running or self.submitted)

    @property
    def missing_cells(self) -> list[str]:
        """The cells skipped because a dataset or checkpoint is missing (``skip_missing``), in plan order."""
        hit = {name for cells in self.missing.values() for name in cells}
        return [cell.name for cell in self.plan.cells if cell.name in hit]

    @property
    def statuses(self) -> dict[str, str]:
        return {cell.name: cell_status(self.plan, cell) for cell in self.plan.cells}


class SuiteProgress(SuiteEvents):
    """Cell states and an ETA for an overview: states start from the suite directory and follow the events.

    ETA = images left / images scored per second so far in this call. A cell reports its images one by one when
    it runs in this process; when it finishes, wherever it ran (node workers, Slurm jobs), its count becomes what its
    run directory holds, so the images of every attempt count (a requeued Slurm job's earlier attempts, the records
    a killed job kept), not only the last attempt's. Cells running in parallel simply raise the observed rate."""

    def __init__(self, plan: SuitePlan, names: list[str] | None = None) -> None:
        self.plan = plan
        self.cells = {cell.name: cell for cell in plan.cells}
        states = {cell.name: cell_status_reason(plan, cell) for cell in plan.cells}
        self.status = {name: status for name, (status, _) in states.items()}
        # why a cell is not complete (what makes it outdated, who runs it, the error of its last attempt), or what
        # a complete one scored NaN
        self.errors: dict[str, str] = {name: reason for name, (_, reason) in states.items() if reason}
        self.scored = {cell.name: _scored(plan, cell) for cell in plan.cells}  # images in the run directory
        self.session = 0  # images scored during this call (the ETA's rate)
        self.todo = list(names if names is not None else [])
        self.start = time.perf_counter()

    def cell_started(self, name: str) -> None:
        self.status[name] = "running"
        self.errors.pop(name, None)  # the reason of the state it leaves

    def cell_record(self, name: str, record: dict[str, Any]) -> None:
        self.scored[name] += 1
        self.session += 1

    def cell_finished(self, result: CellResult) -> None:
        self.status[result.name] = result.status
        held = _scored(self.plan, self.cells[result.name])  # every attempt's images, wherever they ran
        self.session += max(0, held - self.scored[result.name])  # those no record event reported
        self.scored[result.name] = held
        if result.error:
            self.errors[result.name] = result.error
        elif result.status == "complete" and (nonfinite := nonfinite_reason(self.plan, self.cells[result.name])):
            self.errors[result.name] = nonfinite

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.status.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def images_left(self) -> int:
        left = 0
        for name in self.todo:
            if self.status[name] in ("pending", "running", "interrupted", "outdated"):
                left += max(0, (self.cells[name].images or 0) - self.scored[name])
        return left

    def eta_seconds(self) -> float | None:
        """Seconds until the cells of this call are done at the rate seen so far; None before any image."""
        elapsed = time.perf_counter() - self.start
        if self.session == 0 or elapsed <= 0:
            return None
        return self.images_left() / (self.session / elapsed)


def _scored(plan: SuitePlan, cell: Cell) -> int:
    """Images already scored in a run cell's directory (0 for profiles and cells not started)."""
    if cell.kind != "run" or not plan.run_dir(cell).is_dir():
        return 0
    return len(RunStore(plan.run_dir(cell), create=False).scored_keys())


def default_suite_dir(suite: Suite) -> Path:
    """runs/suite-<name>: where a suite writes when no --out is given."""
    return Path("runs") / f"suite-{suite.name}"


class OtherSuiteError(FileExistsError):
    """The suite directory holds the plan of another suite (another ``name``)."""


def check_same_suite(suite: Suite, suite_dir: Path) -> None:
    """Refuse (OtherSuiteError) a suite directory whose plan.json is another suite's: saving this suite's plan would
    replace it, and the other suite's cells would vanish from status and report though their runs stay there."""
    try:
        held = json.loads((suite_dir / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no plan yet (or one that cannot be read: SuitePlan.load says what is wrong)
        return
    other = held.get("suite") if isinstance(held, dict) else None
    if other is not None and other != suite.name:
        raise OtherSuiteError(
            f"{suite_dir} holds suite '{other}' (from {held.get('source') or 'an unknown file'}); suite "
            f"'{suite.name}' (from {suite.source or 'an unknown file'}) cannot run into it: its plan.json would "
            f"replace the cells of '{other}'. Choose another --out for '{suite.name}' (default "
            f"{default_suite_dir(suite)})")


def run_suite(suite: Suite | str | Path, suite_dir: str | Path | None = None, data_root: str | Path | None = None,
              checkpoint_dir: str | Path | None = None, launcher: Launcher | None = None,
              skip_missing: bool = False, overrides: dict[str, Any] | None = None,
              events: SuiteEvents | None = None,
              on_plan: Callable[[SuitePlan, list[str]], None] | None = None) -> SuiteOutcome:
    """Plan ``suite`` into ``suite_dir``, check every dataset and checkpoint of the unfinished cells (raising
    SuiteCheckError listing all problems, unless ``skip_missing``), save plan.json, then run the unfinished cells
    with ``launcher`` (default local). A ``suite_dir`` that holds another suite is refused (OtherSuiteError).
    ``on_plan(plan, names)`` is called before the first cell runs (the CLI starts its overview there).

    Ctrl-C, and SIGTERM alike (raised as bench_ir.runner.RunTerminated, a KeyboardInterrupt), stops the call: the
    running cell is recorded ``interrupted`` with the reason, node workers are stopped first (NodeLauncher), the
    suite lock is released and the interrupt propagates; the same call continues the suite."""
    with sigterm_as_interrupt():  # SIGTERM (what schedulers send) is Ctrl-C for the whole call, between cells too
        return _run_suite(suite, suite_dir, data_root, checkpoint_dir, launcher, skip_missing, overrides, events,
                          on_plan)


def _run_suite(suite: Suite | str | Path, suite_dir: str | Path | None, data_root: str | Path | None,
               checkpoint_dir: str | Path | None, launcher: Launcher | None, skip_missing: bool,
               overrides: dict[str, Any] | None, events: SuiteEvents | None,
               on_plan: Callable[[SuitePlan, list[str]], None] | None) -> SuiteOutcome:
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    suite_dir = Path(suite_dir) if suite_dir is not None else default_suite_dir(suite)
    check_same_suite(suite, suite_dir)
    plan = plan_suite(suite, suite_dir, data_root=data_root, checkpoint_dir=checkpoint_dir, overrides=overrides)
    statuses = {cell.name: cell_status(plan, cell) for cell in plan.cells}
    skipped = [name for name, status in statuses.items() if status == "complete"]
    # a cell another process runs now (a Slurm job of an earlier --no-wait call, say) is left to it
    running = [name for name, status in statuses.items() if status == "running"]
    todo = [cell for cell in plan.cells if statuses[cell.name] not in ("complete", "running")]
    problems = check_cells(plan, todo)
    if problems and not skip_missing:
        raise SuiteCheckError(problems, plan.data_root)
    suite_dir.mkdir(parents=True, exist_ok=True)
    # one `suite run` per suite directory at a time: a second would rewrite plan.json and mark the cells the first
    # is running as failed (their run directories are locked)
    with RunLock(suite_dir, then="run the same command again"):
        check_same_suite(suite, suite_dir)  # again: another suite may have planned here since the first check
        plan.save()
        for cell in todo:
            if cell.problems:
                record_cell_state(plan, cell, status="missing", error="; ".join(cell.problems))
        names = [cell.name for cell in todo if not cell.problems]
        if on_plan is not None:
            on_plan(plan, names)
        results = (launcher or LocalLauncher()).launch(plan, names, events or SuiteEvents())
    finished = {result.name for result in results}
    return SuiteOutcome(plan=plan, results=results, skipped=skipped, missing=problems, running=running,
                        submitted=[name for name in names if name not in finished])
