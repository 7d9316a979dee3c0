"""The Slurm launcher: cells as Slurm jobs through submitit (optional extra ``bench-ir[slurm]``).

Each job runs one cell, i.e. that cell's `bench-ir run ... --resume` into its run directory, so a preempted or
timed-out job is simply requeued by submitit (``Checkpointable``) and continues where it stopped. Jobs are
submitted as one job array (default) or one job per cell; every submission is appended to ``jobs.json`` in the
suite directory (cell, job id, time), and submitit keeps its logs under ``slurm/<job id>/``. ``cluster="local"`` runs
the same jobs as local processes (submitit's local executor), which is how the launcher is tested without Slurm.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_ir.atomic import atomic_write
from bench_ir.manifest import now_iso
from bench_ir.suite.execute import CellResult, SuiteEvents, execute_cell
from bench_ir.suite.launchers import Launcher
from bench_ir.suite.plan import SuitePlan

__all__ = ["SlurmLauncher", "CellJob", "CLUSTERS", "JOBS_FILE", "read_jobs"]

JOBS_FILE = "jobs.json"
# --cluster: Slurm jobs (the default, also when None), or the same jobs as local processes (the Slurm path tried on a
# machine without Slurm)
CLUSTERS = ("slurm", "local")
JOB_ID_FOLDER = "%j"  # submitit's placeholder for the job id in its log folder: SUITE_DIR/slurm/<job id>/


def _submitit():
    try:
        import submitit
    except ImportError as err:
        raise RuntimeError("the slurm launcher needs submitit: pip install 'bench-ir[slurm]'") from err
    return submitit


class CellJob:
    """A picklable job that runs one cell; on preemption or timeout submitit requeues it (it resumes)."""

    def __init__(self, suite_dir: str, name: str) -> None:
        self.suite_dir, self.name = suite_dir, name

    def __call__(self) -> dict[str, Any]:
        remove_placeholder_folder(Path(self.suite_dir))
        return execute_cell(self.suite_dir, self.name).to_dict()

    def checkpoint(self) -> Any:
        """submitit's preemption hook: resubmit the same cell (its run resumes from the scored images)."""
        return _submitit().helpers.DelayedSubmission(CellJob(self.suite_dir, self.name))


def log_folder(suite_dir: str | Path) -> Path:
    """submitit's log folder of a suite, with its job id placeholder: SUITE_DIR/slurm/%j (one folder per job)."""
    return Path(suite_dir).resolve() / "slurm" / JOB_ID_FOLDER


def remove_placeholder_folder(suite_dir: str | Path) -> None:
    """Remove SUITE_DIR/slurm/%j when it is empty: submitit's local executor makes the folder of the unexpanded
    placeholder before it starts each job (its logs go to slurm/<job id>/), so each job removes it once it runs."""
    with contextlib.suppress(OSError):  # absent, not empty, or removed by another job meanwhile
        log_folder(suite_dir).rmdir()


def read_jobs(suite_dir: str | Path) -> list[dict[str, Any]]:
    """Every recorded submission of the suite: [{cell, job_id, submitted, cluster}, ...]."""
    path = Path(suite_dir) / JOBS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _record_jobs(suite_dir: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(suite_dir / JOBS_FILE, "w", encoding="utf-8") as handle:
        json.dump([*read_jobs(suite_dir), *rows], handle, indent=1)
        handle.write("\n")


@dataclass
class SlurmLauncher(Launcher):
    """Submit cells through submitit. ``time`` in minutes; ``gpus`` per job; ``cluster`` None = Slurm (an error
    where submitit finds none, rather than its silent fallback to local processes), ``local`` = local processes.
    With ``wait`` the call follows the jobs to the end."""

    partition: str | None = None
    account: str | None = None
    time: int = 240
    gpus: int = 1
    cpus: int | None = None
    mem_gb: float | None = None
    array: bool = True
    parallelism: int | None = None  # at most this many array tasks at once
    cluster: str | None = None
    wait: bool = True
    poll_seconds: float = 2.0

    def __post_init__(self) -> None:  # before the suite is planned: submitit would fail, or run the jobs here
        if self.cluster is not None and self.cluster not in CLUSTERS:
            raise ValueError(f"--cluster {self.cluster}: unknown cluster; use slurm (the default: Slurm jobs) or local "
                             "(the same jobs as local processes, to try the Slurm path without Slurm).")
        if self.cluster in (None, "slurm") and _submitit().AutoExecutor.which() != "slurm":
            raise RuntimeError("--launcher slurm: no Slurm on this machine (submitit finds no sbatch on PATH); run "
                               "it on a Slurm login node, or use --launcher local (or node: one worker per GPU) here")

    def executor(self, plan: SuitePlan):
        submitit = _submitit()
        executor = submitit.AutoExecutor(folder=log_folder(plan.suite_dir), cluster=self.cluster)
        params: dict[str, Any] = {"name": f"bench-ir-{plan.suite}", "timeout_min": self.time,
                                  "gpus_per_node": self.gpus, "cpus_per_task": self.cpus, "mem_gb": self.mem_gb,
                                  "tasks_per_node": 1, "nodes": 1, "slurm_partition": self.partition,
                                  "slurm_account": self.account, "slurm_array_parallelism": self.parallelism}
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return executor

    def submit(self, plan: SuitePlan, names: list[str]) -> list[Any]:
        """Submit ``names`` (one array or one job each) and record their job ids; returns the submitit jobs."""
        executor = self.executor(plan)
        suite_dir = str(Path(plan.suite_dir).resolve())
        jobs_for = [CellJob(suite_dir, name) for name in names]
        if self.array and len(jobs_for) > 1:
            with executor.batch():
                jobs = [executor.submit(job) for job in jobs_for]
        else:
            jobs = [executor.submit(job) for job in jobs_for]
        submitted = now_iso()
        rows = [{"cell": name, "job_id": str(job.job_id), "submitted": submitted, "cluster": executor.cluster}
                for name, job in zip(names, jobs, strict=True)]
        _record_jobs(Path(plan.suite_dir), rows)
        return jobs

    def launch(self, plan: SuitePlan, names: list[str], events: SuiteEvents) -> list[CellResult]:
        if not names:
            return []
        jobs = dict(zip(names, self.submit(plan, names), strict=True))
        for name in names:
            events.cell_started(name)
        if not self.wait:
            return []
        results: list[CellResult] = []
        while jobs:
            for name, job in list(jobs.items()):
                if not job.done():
                    continue
                del jobs[name]
                try:
                    result = CellResult(**job.result())
                except Exception as err:  # the job itself failed (killed, out of memory, node failure)
                    result = CellResult(name, "failed", error=f"job {job.job_id}: {type(err).__name__}: {err}")
                results.append(result)
                events.cell_finished(result)
            if jobs:
                time.sleep(self.poll_seconds)
        remove_placeholder_folder(plan.suite_dir)  # a job killed before it started leaves it
        return results
