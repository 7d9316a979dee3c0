"""What defines an evaluation run (:class:`RunConfig`), importable without torch: a suite plans its cells with
it, and `suite status` and `list runs` compare a finished run with the plan. :mod:`bench_ir.runner` runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_ir.cards import ModelCard
from bench_ir.protocol import Protocol

__all__ = ["RunConfig"]


@dataclass
class RunConfig:
    """Everything that defines a run. ``protocol`` and ``model`` are names or YAML paths."""

    protocol: str | Path | Protocol
    model: str | Path | ModelCard = "mirage-t"
    model_args: dict[str, Any] = field(default_factory=dict)  # card argument overrides (with_model_args)
    checkpoint: str | Path | None = None
    data_root: str | Path | None = None
    sample: bool = False
    run_dir: str | Path | None = None
    runs_root: str | Path = "runs"
    resume: bool = False
    limit: int | None = None
    tasks: list[str] | None = None
    convention: str | None = None
    lpips: str | None = None  # None (off), "default" (the convention's backbone), "alex" or "vgg"
    lpips_weights: str | Path | None = None
    device: str = "auto"
    dtype: str = "fp32"
    batch_size: int | None = None  # None: 1, or FAST_CUDA_BATCH on the fast CUDA path
    exact: bool = False  # the reference computation (eager fp32, deterministic cuDNN); see bench_ir.acceleration
    compile: str = "auto"  # torch.compile: auto (on CUDA unless exact), on, off
    num_workers: int | None = None  # None: 0 on CPU (no gain), cpus.default_eval_workers() on CUDA
    tile: int | None = None
    tile_overlap: int = 32
    pad: str | None = None
    save_images: bool = False
    label: str | None = None
    noise_order: str = "sorted"  # reference noise stream order: sorted file names, or os.listdir's (official loop)
    command: list[str] | None = None
    registry: str | Path | None = None
    random_weights: bool = False  # allow a randomly initialised model on real data (never silently)
    seed: int = 0  # seed of the random initialisation (recorded; the same command gives the same numbers)
