"""``make_launcher``: a launcher by name. Its own module so that imports point one way: slurm builds on
launchers (the Launcher base), and this module on both."""

from __future__ import annotations

from bench_ir.suite.launchers import LAUNCHERS, Launcher, LocalLauncher, NodeLauncher

__all__ = ["make_launcher"]


def make_launcher(kind: str, gpus: int = 1, **slurm: object) -> Launcher:
    """``local`` | ``node`` (``gpus`` workers) | ``slurm`` (submitit; ``gpus`` per job and the ``slurm`` keyword
    options of SlurmLauncher)."""
    if kind == "local":
        return LocalLauncher()
    if kind == "node":
        return NodeLauncher(gpus=gpus)
    if kind == "slurm":
        from bench_ir.suite.slurm import SlurmLauncher  # needs submitit only when chosen

        return SlurmLauncher(gpus=gpus, **slurm)  # type: ignore[arg-type]
    raise ValueError(f"unknown launcher '{kind}'; expected one of {', '.join(LAUNCHERS)}")
