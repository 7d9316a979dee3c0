"""Launchers decide where and when cells run, never how: every cell is ``execute_cell(suite_dir, name)``.

* ``LocalLauncher``: one process, cells in plan order.
* ``NodeLauncher``: one worker process per GPU (``concurrent.futures.ProcessPoolExecutor``, spawned), each
  worker pinned to its GPU through ``CUDA_VISIBLE_DEVICES`` before CUDA starts; the pool hands the cells out,
  one cell on one GPU at a time. On a machine without GPUs the workers run on the CPU.
* ``SlurmLauncher``: one Slurm job per cell or one job array, through submitit (``bench-ir[slurm]``); see
  bench_ir.suite.slurm.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

from bench_ir.suite.execute import CellResult, SuiteEvents, execute_cell
from bench_ir.suite.plan import SuitePlan

__all__ = ["Launcher", "LocalLauncher", "NodeLauncher", "LAUNCHERS"]

LAUNCHERS = ("local", "node", "slurm")


class Launcher:
    """Runs the named cells of a saved plan and returns their results (in completion order)."""

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        raise NotImplementedError


class LocalLauncher(Launcher):
    """Every cell in this process, in plan order; Ctrl-C stops after marking the running cell interrupted."""

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        return [execute_cell(plan.suite_dir, name, events) for name in names]



def _claim_device(queue) -> None:
    """Pool initializer: take one GPU index for this worker for its whole life (before CUDA is initialised)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def _execute(suite_dir: str, name: str) -> CellResult:
    return execute_cell(suite_dir, name)


@dataclass
class NodeLauncher(Launcher):
    """``gpus`` worker processes, worker i sees only GPU i (``CUDA_VISIBLE_DEVICES=i``)."""

    gpus: int = 1

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        if self.gpus < 1:
            raise ValueError(f"--gpus must be at least 1, got {self.gpus}")
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        for index in range(self.gpus):
            queue.put(index)
        results: list[CellResult] = []
        with futures.ProcessPoolExecutor(max_workers=self.gpus, mp_context=context, initializer=_claim_device,
                                         initargs=(queue,)) as pool:
            pending = {pool.submit(_execute, str(Path(plan.suite_dir).resolve()), name): name for name in names}
            started: set[str] = set()
            try:
                while pending:
                    done, _ = futures.wait(pending, timeout=0.5, return_when=futures.FIRST_COMPLETED)
                    for future, name in pending.items():
                        if name not in started and (future.running() or future in done):
                            started.add(name)
                            events.cell_started(name)
                    for future in done:
                        name = pending.pop(future)
                        try:
                            result = future.result()
                        except Exception as err:  # the worker process died (e.g. out of memory)
                            result = CellResult(name, "failed", error=f"worker process failed: "
                                                f"{type(err).__name__}: {err}")
                        results.append(result)
                        events.cell_finished(result)
            except KeyboardInterrupt:  # cells not started are dropped; running ones end as their workers decide
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return results
