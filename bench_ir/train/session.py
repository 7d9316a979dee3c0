"""Everything a training run holds, built in a fixed order: recipe and card, data (fails fast), run directory,
model, optimizer, objective; plus the run's provenance (train_manifest.json) and resume checks.

A run's identity (:func:`run_identity`, stored in every checkpoint) is what a resume must not change: recipe, model,
seed, plan, dtype, the initial weights (sha256) and the training data (the names of its files relative to the data
root, with their sizes in bytes; the same files under another data root are the same data). A fine-tune continues
from its checkpoint without its --init-weights file: the run's manifest records which weights it started from."""

from __future__ import annotations

import dataclasses
import json
import random
import shlex
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from bench_ir.acceleration import ExecutionPlan, compile_for_training, plan_execution
from bench_ir.atomic import claim_new_dir, write_text_atomic
from bench_ir.cards import ModelCard, count_parameters, factory_from, get_card, model_record, with_model_args
from bench_ir.checkpoints import create_model
from bench_ir.counts import check_counts
from bench_ir.cpus import available_cpus, cpus_per_process, local_process_count
from bench_ir.data.datasets import DatasetNotFoundError
from bench_ir.data.roots import env_data_root_note
from bench_ir.engine import resolve_device
from bench_ir.folder_names import RUN_CARD_NAME, TRAIN_CHECKPOINT_NAME, TRAIN_MANIFEST_NAME
from bench_ir.manifest import device_info, environment_info, git_revision, now_iso, portable_command, portable_path
from bench_ir.results import write_json_atomic
from bench_ir.resume import mapping_changes
from bench_ir.shortlist import shortlist
from bench_ir.train.data import (
    EpochBatchSampler,
    TrainingSet,
    build_training_set,
    conversion_notices,
    training_data_root,
)
from bench_ir.train.data_check import validation_data_check
from bench_ir.train.distributed import DistContext, join, wrap_model
from bench_ir.train.evaluation import check_validation_data
from bench_ir.train.objectives import Objective, build_objective, build_optimizer
from bench_ir.train.plan_notices import plan_notices, process_split_notices
from bench_ir.train.recipes import DESCRIPTIVE_FIELDS, Recipe, TrainPlan, load_recipe, recipe_sha256, resolve_plan
from bench_ir.train.schedule import remember_initial_lr, short_run_notices

__all__ = ["TrainOptions", "TrainSession", "TrainResumeError", "ValidationDataNotFoundError", "open_session",
           "check_resumable", "run_identity", "previous_manifest", "batch_dependent_terms", "MANIFEST_NAME",
           "CHECKPOINT_NAME"]

MANIFEST_NAME = TRAIN_MANIFEST_NAME
CHECKPOINT_NAME = TRAIN_CHECKPOINT_NAME
_DTYPES = {"fp32": None, "bf16": torch.bfloat16}
_SHOWN_FILES = 3  # files named per kind of change when a resume finds other training data
_RESTORING_OPTIONS = {"patch_size": "--patch-size", "batch_size": "--batch-size", "loss_from": "--loss-from",
                      "seed": "--seed", "dtype": "--dtype"}
"""The option that gives back a run's value of an identity (or plan) key, named when a resume changed it."""


class TrainResumeError(ValueError):
    """--resume was asked for a run directory whose checkpoint belongs to a different run."""


class ValidationDataNotFoundError(DatasetNotFoundError):
    """The test sets the recipe validates on are missing; the advice names the `bench-ir data check --protocol`
    command that checks them (not the training sets' check)."""


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

    @cached_property
    def data_files(self) -> dict[str, int | None]:
        """The training files by name (relative to the data root) and size (:meth:`TrainingSet.files`), read
        once per session."""
        return self.dataset.files(self.options.data_root)

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
    advice = f"`{_training_data_check(recipe_ref, options)}` lists every problem"
    # one reader of the headers under torchrun; its error reaches every rank
    conversions = context.on_main(lambda: dataset.check_files(advice, options.data_root)) or {}
    dataset.conversions_stated = True  # once, in the notices (rank 0's), not per read in every worker and epoch
    if options.validate:
        _check_validation_data(recipe, options.val_data_root or options.data_root)
    sampler = EpochBatchSampler(len(dataset), plan.batch_size, options.seed, context.rank, context.world_size)
    if sampler.steps_per_epoch == 0:
        raise ValueError(f"batch size {plan.batch_size} is larger than the training set of recipe '{recipe.name}' "
                         f"({len(dataset)} items after repeats); lower --batch-size")
    planned = plan.steps if plan.steps is not None else plan.epochs * sampler.steps_per_epoch  # type: ignore[operator]
    total_steps = min(planned, options.max_steps) if options.max_steps is not None else planned
    notices = [*plan_notices(recipe, plan, sampler.steps_per_epoch), *dataset.notices, *conversion_notices(conversions)]
    if root_from_env:
        notices.append(env_data_root_note(options.data_root))
    if total_steps < planned:
        notices.append(f"--max-steps {options.max_steps}: training stops at step {total_steps} of the recipe's "
                       f"{planned}")
        notices += [f"--max-steps {options.max_steps}: {text}"
                    for text in short_run_notices(recipe.schedule, total_steps, sampler.steps_per_epoch)]
    if any(spec.layout == "sample" for spec in recipe.data):
        notices.append("sample (synthetic) training data: built-in photos with synthetic degradations")
    num_workers, workers_notice = loader_workers(options.num_workers, recipe.num_workers, available_cpus(),
                                                 local_process_count())
    if workers_notice is not None:
        notices.append(workers_notice)

    if options.run_dir is not None:
        _check_run_dir(Path(options.run_dir), options.resume)
    init_weights, init_record = _init_weights(options)
    _seed_everything(options.seed)
    module = execution.place_module(create_model(card, checkpoint=init_weights).to(device).train())
    if context.rank:
        torch.manual_seed(options.seed + 1_000_003 * context.rank)  # own stochastic-depth stream per process
    optimizer = build_optimizer(plan, recipe.optimizer, module, fused=execution.fused_optimizer)
    remember_initial_lr(optimizer)
    notices += process_split_notices(plan.batch_size, context.world_size, batch_dependent_terms(module, card, plan))
    trained = compile_for_training(wrap_model(module, context, device, plan.find_unused_parameters), execution)
    run_dir = _run_dir(card, recipe, options, context)  # a new folder only once the model and optimizer are built
    session = TrainSession(recipe=recipe, card=card, plan=plan, options=options, context=context, device=device,
                           autocast_dtype=_DTYPES[options.dtype], dataset=dataset, sampler=sampler,
                           total_steps=total_steps, run_dir=run_dir, model=module, trained=trained,
                           optimizer=optimizer, objective=build_objective(plan), manifest={}, notices=notices,
                           execution=execution, num_workers=num_workers)
    session.manifest = _manifest(session, planned, init_record)
    if context.is_main and options.model_args:
        _write_card(card, run_dir / RUN_CARD_NAME)
    return session


def batch_dependent_terms(model: nn.Module, card: ModelCard, plan: TrainPlan) -> list[str]:
    """What a training step of ``model`` computes over the images of a process's batch rather than image by image,
    so that it changes when torchrun splits the global batch: the statistics of BatchNorm layers (not synchronised
    across processes: MIRAGE's gated-CNN branch, AirNet's encoders), the negatives of the SPD contrastive term
    (the other images of the batch; a card with an ``spd_weight`` option, MIRAGE's, trained by the built-in
    objective with a weight above 0), a mixture of experts' load-balancing loss (``balance_weight`` above 0,
    MoCE-IR) and a queue of contrastive negatives kept as a buffer (AirNet's MoCo ``queue``: under DDP each process
    enqueues its own keys, then DDP overwrites every process's buffers with rank 0's before the next forward).
    Empty for a model whose loss is a mean of per-image terms (the split then changes nothing but
    float rounding and random draws)."""
    terms = []
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
           for m in model.modules()):
        terms.append("BatchNorm statistics")
    builtin = plan.objective is None
    if builtin and plan.spd_weight > 0 and "spd_weight" in card.options:
        terms.append("the SPD contrastive negatives")
    if builtin and plan.balance_weight > 0:
        terms.append("the experts' load-balancing loss")
    if any(isinstance(getattr(m, "queue", None), torch.Tensor) for m in model.modules()):
        terms.append("the MoCo queue's negatives (rank 0's keys only: DDP copies its buffers to every process)")
    return terms


def _training_data_check(recipe_ref: str, options: TrainOptions) -> str:
    """The `bench-ir data check --recipe` command that checks the training data as this run reads it (its data
    root and, when given, its patch size)."""
    words = ["bench-ir", "data", "check", "--recipe", recipe_ref]
    if options.data_root is not None:
        words += ["--data-root", str(options.data_root)]
    if options.patch_size is not None:
        words += ["--patch-size", str(options.patch_size)]
    return shlex.join(words)


def _check_validation_data(recipe: Recipe, data_root: str | Path | None) -> None:
    """:func:`check_validation_data`; a missing test set raises ValidationDataNotFoundError, whose advice ends with
    the `bench-ir data check --protocol` command for the validation's test sets."""
    try:
        check_validation_data(recipe.validation, data_root)
    except DatasetNotFoundError as err:
        command = validation_data_check(recipe, data_root)
        check = f" `{command}` checks the test sets validation scores." if command else ""
        raise ValidationDataNotFoundError(err.finding, err.tried, advice=f"{err.advice}{check}") from err


def _init_weights(options: TrainOptions) -> tuple[Path | None, dict[str, str] | None]:
    """The weights to load before training (None: a fresh initialisation, or a resume whose checkpoint holds the
    weights) and the manifest's ``init_weights`` record (path and sha256); see :func:`_resumed_init_weights`."""
    given = Path(options.init_weights).expanduser() if options.init_weights is not None else None
    if given is not None and not given.is_file():
        raise FileNotFoundError(f"--init-weights {given}: {'not a file' if given.exists() else 'no such file'}; "
                                "give the weights to start from (a checkpoint the model card reads, e.g. a training "
                                "run's final.safetensors), or train without --init-weights from a fresh "
                                "initialisation")
    record = _init_weights_record(given)
    previous = previous_manifest(Path(options.run_dir)) if options.resume and options.run_dir is not None else {}
    if not previous:  # a new run (or one whose manifest is gone: the checkpoint's identity decides)
        return given, record
    return _resumed_init_weights(Path(str(options.run_dir)), given, record, previous.get("init_weights"))


def _resumed_init_weights(run_dir: Path, given: Path | None, record: dict[str, str] | None,
                          recorded: dict[str, str] | None) -> tuple[Path | None, dict[str, str] | None]:
    """A resumed run keeps the ``recorded`` init weights of its start: without --init-weights (``given``) it
    continues from its checkpoint, so the file may be gone since; a file of other weights (``record``) is refused.
    Only a run that stopped before its first checkpoint needs the file again, to start again from it."""
    has_checkpoint = (run_dir / CHECKPOINT_NAME).is_file()
    if given is None or record is None:
        if recorded is not None and not has_checkpoint:
            raise FileNotFoundError(f"{run_dir}: the run stopped before its first checkpoint, so it starts again from "
                                    f"the weights it started from: give them with --init-weights ({recorded['path']}, "
                                    f"sha256 {recorded['sha256']})")
        return None, recorded
    if recorded is None:
        raise TrainResumeError(f"{run_dir}: cannot resume with --init-weights {given}: the run started from a fresh "
                               "initialisation (its manifest records no init_weights); resume without "
                               "--init-weights, or use a new --run-dir to fine-tune from these weights")
    if recorded.get("sha256") != record["sha256"]:
        raise TrainResumeError(f"{run_dir}: cannot resume with --init-weights {given} (sha256 "
                               f"{record['sha256'][:12]}…): the run started from {recorded.get('path')} (sha256 "
                               f"{recorded.get('sha256')}); "
                               "resume without --init-weights (its checkpoint holds the weights) or with that file, "
                               "or use a new --run-dir to fine-tune from these weights")
    return (None if has_checkpoint else given), recorded


def previous_manifest(run_dir: Path) -> dict[str, Any]:
    """The training manifest ``run_dir`` holds, or {} when it holds none."""
    path = Path(run_dir) / MANIFEST_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# fields of a card that describe the network of its own args: false for one built with --model-arg overrides
_OWN_NETWORK_FIELDS = ("expected_params", "inference_params", "default_checkpoint", "official_checkpoints",
                       "published", "leaderboard_key", "parity")


def _write_card(card: ModelCard, path: Path) -> None:
    """``card`` (with the run's --model-arg overrides: :func:`with_model_args`) as model-card.yaml, without the
    fields that describe the network of the card's own args (parameter counts, checkpoints, published figures,
    parity, leaderboard row: a report of a run of this card matches no published row), and with a description that
    says so. The ``paper`` stays: it describes the architecture."""
    data = {k: v for k, v in dataclasses.asdict(card).items() if k not in ("source", *_OWN_NETWORK_FIELDS)}
    data["factory"] = factory_from(card, path.parent)  # a module beside the card is not beside this file
    data["description"] = (f"{card.display_name}: the network of model card '{card.name}' with --model-arg overrides, "
                           "written by a training run. It is not the network that card describes: that card's "
                           "parameter counts, checkpoints, published figures, parity and leaderboard row are left out.")
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def _manifest(session: TrainSession, planned_steps: int, init_weights: dict[str, str] | None) -> dict[str, Any]:
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
        "init_weights": init_weights,
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
    """The checkpoint must come from the same recipe (its words about itself aside: :func:`_only_words_changed`),
    model, seed, plan (only the step budget may change), dtype, initial weights and training data, and be no further
    than this call's last step (``--max-steps`` below the steps done would go nowhere). Every difference is named in
    one error, with the options that give back the run's values; a checkpoint from before the data's files were
    recorded is compared by its number of items only."""
    identity = payload.get("identity", {})
    changes, options, other_data = [], [], False
    for key, value in run_identity(session).items():
        if key not in identity and key == "data_files":
            continue
        before = identity.get(key)
        if before == value or (key == "recipe_sha256" and _only_words_changed(session)):
            continue
        if key == "plan" and isinstance(before, dict):
            changed = [k for k in dict.fromkeys([*before, *value]) if before.get(k) != value.get(k)]
            changes.append("plan: " + ", ".join(f"{k} {before.get(k)} -> {value.get(k)}" for k in changed))
            options += [f"{_RESTORING_OPTIONS[k]} {before[k]}" for k in changed
                        if k in _RESTORING_OPTIONS and before.get(k) is not None]
        elif key == "data_files":
            changes.append(_data_files_change(before, value))
            other_data = True
        else:
            changes.append(f"{key} was {before!r}, now {value!r}")
            if key in _RESTORING_OPTIONS and before is not None:
                options.append(f"{_RESTORING_OPTIONS[key]} {before}")
    if changes:
        restore = [" ".join(options)] if options else []
        restore += ["the --data-root that holds the run's files"] if other_data else []
        advice = f"resume with {' and '.join(restore)}, or use" if restore else "use"
        raise TrainResumeError(f"{session.run_dir}: cannot resume: {'; '.join(changes)}; {advice} a new --run-dir for "
                               "the new setup")
    done = int(payload.get("step", 0))
    if done > session.total_steps:
        raise TrainResumeError(f"{session.run_dir}: cannot resume with --max-steps {session.options.max_steps}: the "
                               f"run has done {done} steps already; give a larger --max-steps, or none for the "
                               "recipe's whole schedule")


def _only_words_changed(session: TrainSession) -> bool:
    """Whether the recipe differs from the one the run recorded (its manifest's resolved recipe) only in what it says
    about itself (its title and :data:`DESCRIPTIVE_FIELDS`), as a recipe that included another one's description
    before includes stopped inheriting it: the training is the same, so the run resumes, with a notice."""
    resolved = (previous_manifest(session.run_dir).get("recipe") or {}).get("resolved")
    if not isinstance(resolved, dict):
        return False
    current = session.recipe.to_dict()
    words = ("title", *DESCRIPTIVE_FIELDS)

    def training(recipe: dict[str, Any]) -> str:
        return recipe_sha256({key: value for key, value in recipe.items() if key not in words})

    if training(resolved) != training(current):
        return False
    changed = [word for word in words if resolved.get(word, "") != current.get(word, "")]
    session.notices.append(f"the recipe's {' and '.join(changed)} differ from the run's start; its training is the "
                           "same, so the run resumes")
    return True


def _data_files_change(before: dict[str, int | None], after: dict[str, int | None]) -> str:
    """'training data: not the run's (...): changed size: a.png ...; missing now: ...; new: ...' naming the first
    files of each kind of change."""
    changed, missing, new = mapping_changes(before, after)
    found = [f"{label} {shortlist(names, _SHOWN_FILES)}" for label, names in
             (("changed size:", changed), ("missing now:", missing), ("new:", new)) if names]
    return (f"training data: not the files the run was trained on ({len(before)} files -> {len(after)}; names "
            f"relative to the data root): {'; '.join(found)}")


def run_identity(session: TrainSession) -> dict[str, Any]:
    """What a checkpoint records about its run, compared by :func:`check_resumable`: ``data_files`` are the
    training files' names (relative to the data root) and sizes."""
    return {"recipe_sha256": session.recipe.sha256, "model": session.card.name,
            "model_args": dict(session.card.args), "seed": session.options.seed,
            "plan": session.plan.fingerprint(), "dataset_items": len(session.dataset), "dtype": session.options.dtype,
            "init_weights": (session.manifest.get("init_weights") or {}).get("sha256"),
            "data_files": session.data_files}
