"""Training with the published recipes: `bench-ir train` and its library API.

Modules: ``recipes`` (registry/recipes/*.yaml -> Recipe, TrainPlan), ``data`` (training sets, deterministic
patches, epoch sampler), ``schedule`` (learning-rate factors), ``objectives`` (losses and optimizers),
``checkpointing`` (resumable state, safetensors export), ``evaluation`` (periodic validation), ``logs``,
``distributed`` (torchrun/DDP), ``session`` and ``trainer`` (the loop), ``stop_request`` (Ctrl-C and SIGTERM stop
at a step boundary), ``command`` (the CLI function).
Names below are imported lazily::

    from bench_ir.train import train
    outcome = train("sample", "mirage-t", max_steps=20, device="cpu")
"""

from __future__ import annotations

from bench_ir.lazy_exports import lazy_exports

_EXPORTS = {
    "train": "bench_ir.train.trainer",
    "TrainOutcome": "bench_ir.train.trainer",
    "TrainProgress": "bench_ir.train.trainer",
    "NonFiniteLossError": "bench_ir.train.trainer",
    "TrainingStopped": "bench_ir.train.stop_request",
    "TrainResumeError": "bench_ir.train.session",
    "Recipe": "bench_ir.train.recipes",
    "load_recipe": "bench_ir.train.recipes",
    "list_recipes": "bench_ir.train.recipes",
    "resolve_plan": "bench_ir.train.recipes",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
