"""``make_launcher``: a launcher by name. Its own module so that imports point one way: slurm builds on
launchers (the Launcher base), and this module on both."""

from __future__ import annotations

from bench_ir.suite.launchers import LAUNCHERS, Launcher, LocalLauncher, NodeLauncher

__all__ = ["make_launcher"]


def _flags(slurm: dict[str, object]) -> list[str]:
    """The command-line flags of SlurmLauncher keyword options, as given: ``{"partition": "gpu", "array": False}``
    -> ``["--partition", "--no-array"]`` (a False switch is its ``--no-`` form)."""
    return [f"--{'no-' if value is False else ''}{name.replace('_', '-')}" for name, value in slurm.items()]


def make_launcher(kind: str, gpus: int = 1, **slurm: object) -> Launcher:
    """``local`` | ``node`` (``gpus`` workers) | ``slurm`` (submitit; ``gpus`` per job and the ``slurm`` keyword
    options of SlurmLauncher). Slurm options with another launcher are refused (ValueError), never ignored."""
    if kind not in LAUNCHERS:
        raise ValueError(f"unknown launcher '{kind}'; expected one of {', '.join(LAUNCHERS)}")
    if kind != "slurm" and slurm:
        flags = _flags(slurm)
        apply, them = ("applies", "it") if len(flags) == 1 else ("apply", "them")
        raise ValueError(f"{', '.join(flags)} only {apply} to --launcher slurm, not --launcher {kind}; leave {them} "
                         "out, or run with --launcher slurm.")
    if kind == "local":
        return LocalLauncher()
    if kind == "node":
        return NodeLauncher(gpus=gpus)
    from bench_ir.suite.slurm import SlurmLauncher  # needs submitit only when chosen

    return SlurmLauncher(gpus=gpus, **slurm)  # type: ignore[arg-type]
