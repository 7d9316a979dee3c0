"""The CPUs a process may use, and how many DataLoader workers an evaluation starts from them.

A Slurm job or a container is often given a share of a machine: ``os.cpu_count()`` counts the whole machine, the
process's affinity mask counts its share. torchrun's processes on one machine share it again.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus", "local_process_count", "cpus_per_process", "default_eval_workers"]

MAX_EVAL_WORKERS = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one, else every CPU)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_process_count() -> int:
    """Processes of this job on this machine: torchrun's ``LOCAL_WORLD_SIZE``, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def cpus_per_process(cpus: int, local_processes: int) -> int:
    """This process's share of ``cpus`` among the ``local_processes`` of this machine, at least 1."""
    return max(1, cpus // max(1, local_processes))


def default_eval_workers(cpus: int | None = None, local_processes: int | None = None) -> int:
    """DataLoader workers of an evaluation on CUDA when none are requested: this process's share of the ``cpus``
    (default: :func:`available_cpus`) among the ``local_processes`` (default: :func:`local_process_count`), less one
    core for the process itself, at most 8 (decoding a pair of 1280x720 PNGs takes tens of milliseconds per core,
    so a fast GPU needs several decoding processes)."""
    cpus = available_cpus() if cpus is None else cpus
    local_processes = local_process_count() if local_processes is None else local_processes
    return min(MAX_EVAL_WORKERS, cpus_per_process(cpus, local_processes) - 1)
