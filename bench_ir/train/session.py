"""Everything a training run holds, built in a fixed order: recipe and card, data (fails fast), run directory,
model, optimizer, objective; plus the run's provenance (train_manifest.json) and resume checks."""

from __future__ import annotations

import dataclasses
import random
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from bench_ir.acceleration import ExecutionPlan, compile_for_training, plan_execution
from bench_ir.atomic import claim_new_dir, write_text_atomic
from bench_ir.cards import ModelCard, count_parameters, get_card, model_record, with_model_args
from bench_ir.checkpoints import create_model
from bench_ir.counts import check_counts
from bench_ir.cpus import available_cpus, cpus_per_process, local_process_count
from bench_ir.data.roots import env_data_root_note
from bench_ir.engine import resolve_device
from bench_ir.folder_names import TRAIN_CHECKPOINT_NAME, TRAIN_MANIFEST_NAME
from bench_ir.manifest import device_info, environment_info, git_revision, now_iso, portable_command, portable_path
from bench_ir.results import write_json_atomic
from bench_ir.train.data import EpochBatchSampler, TrainingSet, build_training_set, training_data_root
from bench_ir.train.distributed import DistContext, join, wrap_model
from bench_ir.train.evaluation import check_validation_data
from bench_ir.train.objectives import Objective, build_objective, build_optimizer
from bench_ir.train.recipes import Recipe, TrainPlan, load_recipe, resolve_plan
from bench_ir.train.schedule import remember_initial_lr

__all__ = ["TrainOptions", "TrainSession", "TrainResumeError", "open_session", "check_resumable", "run_identity",
           "MANIFEST_NAME", "CHECKPOINT_NAME"]

MANIFEST_NAME = TRAIN_MANIFEST_NAME
CHECKPOINT_NAME = TRAIN_CHECKPOINT_NAME
_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


class TrainResumeError(ValueError):
    """--resume was asked for a run directory whose checkpoint belongs to a different run."""


@dataclass
class TrainOptions:
    """Arguments of :func:`bench_ir.train.train` other than recipe and model (see its docstring)."""

    data_root: str | Path | None = None
    run_dir: str | Path | None = None
    runs_root: str | Path = "runs"
    max_steps: int | None = None
    max_minutes: float | None = None  # stop at the first step boundary after this much training wall time
    device: str = "auto"
    dtype: str = "fp32"
    exact: bool = False
    compile: str = "auto"
    resume: bool = False
    seed: int = 0
    epochs_from: str = "code"
    loss_from: str = "code"
    model_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    patch_size: int | None = None
    num_workers: int | None = None
    validate: bool = True
    val_data_root: str | Path | None = None
    val_limit: int | None = None
    checkpoint_every: int | None = None
    log_every: int | None = None
    tensorboard: bool = True
    registry: str | Path | None = None
    command: list[str] | None = None
    init_weights: str | Path | None = None  # start from these weights (fine-tuning) instead of a fresh init


@dataclass
class TrainSession:
    recipe: Recipe
    card: ModelCard
    plan: TrainPlan
    options: TrainOptions
    context: DistContext
    device: torch.device
    autocast_dtype: torch.dtype | None
    dataset: TrainingSet
    sampler: EpochBatchSampler
    total_steps: int
    run_dir: Path
    model: nn.Module
    trained: nn.Module  # the model as trained (DDP wrapper under torchrun, compiled on the fast CUDA path)
    optimizer: torch.optim.Optimizer
    objective: Objective
    manifest: dict[str, Any]
    notices: list[str]
    execution: ExecutionPlan
    num_workers: int = 0  # DataLoader workers per process

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def write_manifest(self) -> None:
        if self.context.is_main:
            write_json_atomic(self.run_dir / MANIFEST_NAME, self.manifest)


def _effective_card(model: str | Path | ModelCard, options: TrainOptions) -> ModelCard:
    return with_model_args(get_card(model, options.registry), options.model_args)


def _run_dir(card: ModelCard, recipe: Recipe, options: TrainOptions, context: DistContext) -> Path:
    if options.run_dir is not None:
        return Path(options.run_dir)
    if not context.is_main:  # rank 0 claims the folder, the others take its name
        return Path(context.broadcast(None))
    return Path(context.broadcast(str(claim_new_dir(Path(options.runs_root) / "train", f"{card.name}-{recipe.name}"))))


def loader_workers(requested: int | None, recipe_workers: int, cpus: int, local_processes: int = 1,
                   ) -> tuple[int, str | None]:
    """DataLoader workers per process and the notice when the recipe's number is lowered: ``requested``
    (--workers) as given; else the recipe's, at most ``cpus`` shared by the ``local_processes`` of this machine
    (more workers than CPUs only compete for them; the batches do not depend on the number of workers)."""
    if requested is not None:
        return requested, None
    fitting = cpus_per_process(cpus, local_processes)
    if recipe_workers <= fitting:
        return recipe_workers, None
    return fitting, (f"DataLoader workers: the recipe's {recipe_workers} per process lowered to {fitting}, the "
                     f"{cpus} CPUs of this machine over {local_processes} process(es) (--workers sets them; the "
                     "batches do not depend on it)")


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    """--resume needs a training run in ``run_dir``: its checkpoint, or only its manifest when it stopped before
    the first checkpoint (it then starts again from step 0); without --resume the folder must hold no run."""
    exists = (run_dir / CHECKPOINT_NAME).is_file() or (run_dir / MANIFEST_NAME).is_file()
    if resume and not exists:
        raise FileNotFoundError(f"--resume: no checkpoint {run_dir / CHECKPOINT_NAME} to continue from")
    if exists and not resume:
        raise FileExistsError(f"{run_dir} already holds a training run; pass --resume to continue it or choose "
                              "another --run-dir")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_session(recipe: str | Path | Recipe, model: str | Path | ModelCard, options: TrainOptions) -> TrainSession:
    """Build the session; data is resolved before any model work so a missing folder fails fast."""
    recipe_ref = recipe.name if isinstance(recipe, Recipe) else str(recipe)  # as the user named it
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if options.dtype not in _DTYPES:
        raise ValueError(f"unknown training dtype '{options.dtype}'; choose fp32 or bf16")
    check_counts([("--max-steps", options.max_steps, 1), ("--batch-size", options.batch_size, 1),
                  ("--patch-size", options.patch_size, 1), ("--workers", options.num_workers, 0),
                  ("--val-limit", options.val_limit, 1), ("--checkpoint-every", options.checkpoint_every, 1),
                  ("--log-every", options.log_every, 1)])
    if options.max_minutes is not None and not options.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {options.max_minutes}")
    if options.resume and options.run_dir is None:
        raise ValueError(f"--resume continues a training run: give its folder with --run-dir (the `continue:` "
                         f"line of a stopped run is the whole command, and `bench-ir list runs --runs-root "
                         f"{options.runs_root}` lists the runs)")
    card = _effective_card(model, options)
    plan = resolve_plan(recipe, card, options.epochs_from, options.loss_from,  # type: ignore[arg-type]
                        batch_size=options.batch_size, patch_size=options.patch_size)
    context, device = join(resolve_device(options.device))
    execution = plan_execution(device, exact=options.exact, compile=options.compile,  # type: ignore[arg-type]
                               training=True, dtype=options.dtype)
    root_from_env = options.data_root is None and recipe.needs_data_root
    options = dataclasses.replace(options, data_root=training_data_root(recipe, options.data_root))  # or the env's
    dataset = build_training_set(recipe, options.data_root, plan.patch_size, options.seed)
    root = f" --data-root {shlex.quote(str(options.data_root))}" if options.data_root is not None else ""
    advice = f"`bench-ir data check --recipe {shlex.quote(recipe_ref)}{root}` lists every problem"
    # one reader of the headers under torchrun; its error reaches every rank
    context.on_main(lambda: dataset.check_files(advice))
    if options.validate:
        check_validation_data(recipe.validation, options.val_data_root or options.data_root)
    sampler = EpochBatchSampler(len(dataset), plan.batch_size, options.seed, context.rank, context.world_size)
    if sampler.steps_per_epoch == 0:
        raise ValueError(f"batch size {plan.batch_size} is larger than the training set of recipe '{recipe.name}' "
                         f"({len(dataset)} items after repeats); lower --batch-size")
    planned = plan.steps if plan.steps is not None else plan.epochs * sampler.steps_per_epoch  # type: ignore[operator]
    total_steps = min(planned, options.max_steps) if options.max_steps is not None else planned
    notices = list(dataset.notices)
    if root_from_env:
        notices.append(env_data_root_note(options.data_root))
    if total_steps < planned:
        notices.append(f"--max-steps {options.max_steps}: training stops at step {total_steps} of the recipe's "
                       f"{planned}")
    if any(spec.layout == "sample" for spec in recipe.data):
        notices.append("sample (synthetic) training data: built-in photos with synthetic degradations")
    num_workers, workers_notice = loader_workers(options.num_workers, recipe.num_workers, available_cpus(),
                                                 local_process_count())
    if workers_notice is not None:
        notices.append(workers_notice)

    if options.run_dir is not None:
        _check_run_dir(Path(options.run_dir), options.resume)
    _seed_everything(options.seed)
    module = execution.place_module(create_model(card, checkpoint=options.init_weights).to(device).train())
    if context.rank:
        torch.manual_seed(options.seed + 1_000_003 * context.rank)  # own stochastic-depth stream per process
    optimizer = build_optimizer(plan, recipe.optimizer, module, fused=execution.fused_optimizer)
    remember_initial_lr(optimizer)
    trained = compile_for_training(wrap_model(module, context, device, plan.find_unused_parameters), execution)
    run_dir = _run_dir(card, recipe, options, context)  # a new folder only once the model and optimizer are built
    session = TrainSession(recipe=recipe, card=card, plan=plan, options=options, context=context, device=device,
                           autocast_dtype=_DTYPES[options.dtype], dataset=dataset, sampler=sampler,
                           total_steps=total_steps, run_dir=run_dir, model=module, trained=trained,
                           optimizer=optimizer, objective=build_objective(plan), manifest={}, notices=notices,
                           execution=execution, num_workers=num_workers)
    session.manifest = _manifest(session, planned)
    if context.is_main and options.model_args:
        _write_card(card, run_dir / "model-card.yaml")
    return session


def _write_card(card: ModelCard, path: Path) -> None:
    data = {k: v for k, v in dataclasses.asdict(card).items() if k != "source"}
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def _manifest(session: TrainSession, planned_steps: int) -> dict[str, Any]:
    recipe, card, options, context = session.recipe, session.card, session.options, session.context
    return {
        "kind": "training",
        "run_id": session.run_dir.name,
        "command": portable_command(options.command if options.command is not None else sys.argv),
        "created": now_iso(),
        "status": "running",
        "recipe": {"name": recipe.name, "title": recipe.title, "version": recipe.version,
                   "source": portable_path(recipe.source),
                   "sha256": recipe.sha256, "resolved": {**recipe.to_dict(), "source": portable_path(recipe.source)}},
        "plan": dataclasses.asdict(session.plan),
        "model": model_record(card, count_parameters(session.model), dict(options.model_args)),
        "data": {"root": str(Path(options.data_root).resolve()) if options.data_root else None,
                 "items": len(session.dataset), "parts": session.dataset.describe(),
                 "steps_per_epoch": session.steps_per_epoch, "workers_per_process": session.num_workers},
        "seed": options.seed,
        "init_weights": _init_weights_record(options.init_weights),
        "world_size": context.world_size,
        "global_batch": session.plan.batch_size,
        "per_process_batch": session.plan.batch_size // context.world_size,
        "steps_planned": planned_steps,
        "steps_target": session.total_steps,
        "max_steps": options.max_steps,
        "max_minutes": options.max_minutes,
        "device": device_info(session.device),
        "dtype": options.dtype,
        "execution": session.execution.describe(),
        "versions": environment_info(),
        "git_revision": git_revision(),
        "notices": session.notices,
    }


def _init_weights_record(path: str | Path | None) -> dict[str, str] | None:
    from bench_ir.checkpoints import sha256_file

    return None if path is None else {"path": portable_path(path), "sha256": sha256_file(path)}


def check_resumable(session: TrainSession, payload: dict[str, Any]) -> None:
    """The checkpoint must come from the same recipe, model, seed and plan (only the step budget may change), and
    be no further than this call's last step (``--max-steps`` below the steps done would go nowhere)."""
    identity = payload.get("identity", {})
    expected = run_identity(session)
    for key, value in expected.items():
        if identity.get(key) != value:
            raise TrainResumeError(f"{session.run_dir}: cannot resume: {key} was {identity.get(key)!r}, now "
                                   f"{value!r}; use a new --run-dir")
    done = int(payload.get("step", 0))
    if done > session.total_steps:
        raise TrainResumeError(f"{session.run_dir}: cannot resume with --max-steps {session.options.max_steps}: the "
                               f"run has done {done} steps already; give a larger --max-steps, or none for the "
                               "recipe's whole schedule")


def run_identity(session: TrainSession) -> dict[str, Any]:
    """What a checkpoint records about its run, compared by :func:`check_resumable`."""
    return {"recipe_sha256": session.recipe.sha256, "model": session.card.name,
            "model_args": dict(session.card.args), "seed": session.options.seed,
            "plan": session.plan.fingerprint(), "dataset_items": len(session.dataset), "dtype": session.options.dtype,
            "init_weights": (session.manifest.get("init_weights") or {}).get("sha256")}
