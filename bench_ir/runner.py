"""`bench-ir run` as a library call: protocol + model -> run directory with manifest and per-image records.

All datasets are resolved before the model is built, so a missing folder fails fast. Records are appended
as they are produced; ``resume=True`` skips images already scored in ``run_dir``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench_ir.acceleration import AcceleratedForward, plan_execution, precision_settings
from bench_ir.cards import ModelCard, check_card_args, count_parameters, get_card, with_model_args
from bench_ir.checkpoints import create_model
from bench_ir.distributed import dist_context
from bench_ir.engine import EvalOptions, evaluate_task, resolve_device, resolve_dtype
from bench_ir.geometry import fit_policy
from bench_ir.manifest import device_info, environment_info, git_revision, now_iso, portable_path
from bench_ir.protocol import CropSpec, LayoutSpec, Protocol, TaskSpec, load_protocol
from bench_ir.resources import registry_dir
from bench_ir.results import RunStore, aggregate, protocol_average

__all__ = ["RunConfig", "RunOutcome", "ProgressHook", "run_protocol", "folder_protocol", "ResumeError",
           "RunInterrupted", "next_commands", "FAST_CUDA_BATCH"]

FAST_CUDA_BATCH = 8  # images per forward on the fast CUDA path when --batch-size is not given


class ResumeError(ValueError):
    """--resume was asked for a run directory that belongs to a different run."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another KeyboardInterrupt) while images were scored; ``run_dir`` keeps the scored images and
    continues with ``--resume --run-dir run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


class ProgressHook:
    """Receives progress events; the CLI renders them, the library never prints."""

    def start_task(self, task: TaskSpec, total: int, done: int) -> None: ...

    def resumed(self, task: TaskSpec, records: list[dict[str, Any]]) -> None:
        """After ``start_task`` of a resumed run: the ``done`` records of this task scored before (optional)."""

    def record(self, record: dict[str, Any]) -> None: ...

    def end_task(self, task: TaskSpec) -> None: ...


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
    num_workers: int | None = None  # None: 0 on CPU (no gain), default_workers() on CUDA
    tile: int | None = None
    tile_overlap: int = 32
    pad: str | None = None
    save_images: bool = False
    label: str | None = None
    noise_order: str = "sorted"  # reference noise stream order: sorted file names, or os.listdir's (official loop)
    command: list[str] | None = None
    registry: str | Path | None = None


@dataclass
class RunOutcome:
    run_dir: Path
    manifest: dict[str, Any]
    summary: pd.DataFrame
    average: pd.Series | None
    notices: list[str] = field(default_factory=list)
    rank: int = 0


def folder_protocol(input_dir: str | Path, target_dir: str | Path, pairing: str = "same_name",
                    crop: CropSpec | None = None, convention: str = "M1") -> Protocol:
    """An ad-hoc one-task protocol for ``--input-dir/--target-dir`` runs (3deg/5deg conventions by default:
    centre crop to a multiple of 16, metric M1)."""
    input_dir, target_dir = Path(input_dir).resolve(), Path(target_dir).resolve()
    task = TaskSpec(name="folder", label=input_dir.name, dataset="folder",
                    layouts=[LayoutSpec(target=str(target_dir), input=str(input_dir), pairing=pairing,
                                        source="--input-dir/--target-dir")])
    return Protocol(name="folders", title=f"{input_dir} vs {target_dir}", version=1, tasks=[task],
                    convention=convention, crop=crop or CropSpec(rule="center_multiple", base=16),
                    reference="ad-hoc folder pair", source="command line")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _default_checkpoint(card: ModelCard, sample: bool) -> Path | None:
    """A card's shipped default checkpoint is used for sample runs only; its path is relative to the card file's
    folder (the registry for built-in cards)."""
    if not sample or not card.default_checkpoint:
        return None
    card_dir = Path(card.source).parent if card.source and Path(card.source).is_file() else registry_dir()
    path = (card_dir / card.default_checkpoint).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model card '{card.name}' names the sample checkpoint {path} "
                                f"(default_checkpoint: {card.default_checkpoint}) but the file is missing; reinstall "
                                "bench-ir or pass --checkpoint")
    return path


def _protocol_manifest(protocol: Protocol, tasks: list[TaskSpec]) -> dict[str, Any]:
    return {
        "name": protocol.name, "title": protocol.title, "version": protocol.version,
        "sha256": protocol.sha256, "source": portable_path(protocol.source),
        "leaderboard_table": protocol.leaderboard_table,
        "paper_table": protocol.paper_table, "average": list(protocol.average),
        "crop": dataclasses.asdict(protocol.crop),
        "tasks": [{"name": t.name, "label": t.label, "dataset": t.dataset, "leaderboard": t.leaderboard,
                   "expected_count": t.expected_count,
                   "noise": dataclasses.asdict(t.noise) if t.noise else None,
                   "sample_degradations": list(t.sample.degradations)} for t in tasks],
    }


def _check_resume(existing: dict[str, Any], manifest: dict[str, Any], run_dir: Path) -> None:
    keys = [("protocol", "sha256"), ("model", "name"), ("model", "args_overrides"), ("checkpoint", "sha256"),
            ("convention", "name"), ("sample", None), ("dtype", None), ("execution", "mode"), ("noise_order", None)]
    existing = {"noise_order": "sorted", **existing}  # runs made before --noise-order drew in sorted order
    for key, sub in keys:
        old, new = existing.get(key), manifest.get(key)
        if sub is not None:
            old = old.get(sub) if isinstance(old, dict) else old
            new = new.get(sub) if isinstance(new, dict) else new
        if old != new:
            raise ResumeError(f"{run_dir}: cannot resume: {key}{'.' + sub if sub else ''} was {old!r}, "
                              f"now {new!r}; use a new --run-dir")


def run_protocol(config: RunConfig, progress: ProgressHook | None = None,
                 on_model: Callable[[torch.nn.Module], None] | None = None) -> RunOutcome:
    """Run ``config.model`` on every task of ``config.protocol``; see the module docstring."""
    from bench_ir.cards import card_record
    from bench_ir.checkpoints import sha256_file
    from bench_ir.data.datasets import build_task_dataset
    from bench_ir.data.sample import build_sample_task_dataset
    from bench_ir.metrics.conventions import get_convention

    progress = progress or ProgressHook()
    protocol = config.protocol if isinstance(config.protocol, Protocol) else load_protocol(config.protocol)
    tasks = protocol.tasks
    if config.tasks:
        unknown = [t for t in config.tasks if t not in {x.name for x in protocol.tasks}]
        if unknown:
            raise KeyError(f"protocol '{protocol.name}' has no task(s) {unknown}; tasks: "
                           f"{[t.name for t in protocol.tasks]}")
        tasks = [t for t in protocol.tasks if t.name in config.tasks]
    convention = get_convention(config.convention or protocol.convention)
    card = with_model_args(get_card(config.model, config.registry), config.model_args)
    check_card_args(card)  # unknown card args / --model-arg fail here, before any data or model work

    # 1. every dataset first: a missing folder fails before any model work
    if not config.sample and config.data_root is None and protocol.name != "folders":
        raise FileNotFoundError(f"protocol '{protocol.name}' needs --data-root (the folder holding its test sets) "
                                "or --sample for the built-in sample data")
    datasets = {}
    for task in tasks:
        dataset = (build_sample_task_dataset(protocol, task, noise_order=config.noise_order) if config.sample
                   else build_task_dataset(protocol, task, data_root=config.data_root,
                                           noise_order=config.noise_order))  # type: ignore[arg-type]
        if config.limit is not None:
            dataset = dataset.limit(config.limit)
        datasets[task.name] = dataset

    # 2. the model (under torchrun each rank takes its own GPU and a share of every task's images)
    checkpoint = Path(config.checkpoint) if config.checkpoint else _default_checkpoint(card, config.sample)
    requested = resolve_device(config.device)
    dctx = dist_context(requested.type)
    device = dctx.device(requested)
    if not dctx.is_main:
        progress = ProgressHook()
    resolve_dtype(config.dtype)
    if config.exact and config.dtype != "fp32":
        raise ValueError(f"--exact is the float32 reference computation; it cannot run with --dtype {config.dtype}")
    plan = plan_execution(device, exact=config.exact, compile=config.compile)  # type: ignore[arg-type]
    batch_size = config.batch_size or (FAST_CUDA_BATCH if plan.mode == "fast" and device.type == "cuda" else 1)
    model = create_model(card, checkpoint=checkpoint, registry=config.registry).to(device)
    if on_model is not None:
        on_model(model)
    random_weights = checkpoint is None and count_parameters(model) > 0
    notices = []
    if config.sample:
        notices.append("sample (synthetic) data: built-in photos with synthetic degradations, not the benchmark")
    if random_weights:
        notices.append(f"random weights: no checkpoint given for {card.display_name}")
    if config.limit is not None:
        images = "image" if config.limit == 1 else "images"
        notices.append(f"--limit {config.limit}: at most {config.limit} {images} per task, not the full test sets")

    # 3. the run directory and manifest
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "-sample" if config.sample else ""
    run_dir = Path(config.run_dir) if config.run_dir else (
        Path(config.runs_root) / f"{stamp}-{_slug(card.name)}-{_slug(protocol.name)}{suffix}")
    run_dir = dctx.broadcast(run_dir)
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "label": config.label,
        "command": config.command if config.command is not None else sys.argv,
        "created": now_iso(),
        "status": "running",
        "protocol": _protocol_manifest(protocol, tasks),
        "convention": {"id": convention.id, "name": convention.name, "description": convention.describe()},
        "model": {"name": card.name, "display_name": card.display_name, "params": count_parameters(model),
                  "args_overrides": dict(config.model_args) or None,
                  "card": card_record(card)},
        "checkpoint": ({"path": str(checkpoint), "sha256": sha256_file(checkpoint)} if checkpoint else None),
        "random_weights": random_weights,
        "sample": config.sample,
        "limit": config.limit,
        "data_root": str(Path(config.data_root).resolve()) if config.data_root else None,
        "seed": {t.name: t.noise.seed for t in tasks if t.noise},
        "device": device_info(device),
        "dtype": config.dtype,
        "noise_order": config.noise_order,
        "execution": plan.describe(),
        "batch_size": batch_size,
        "tile": config.tile,
        "lpips": config.lpips,
        "world_size": dctx.world_size,
        "versions": environment_info(),
        "git_revision": git_revision(),
        "notices": notices,
    }
    store = RunStore(run_dir)
    done: set[tuple[str, str]] = set()
    scored_before: list[dict[str, Any]] = []
    if store.manifest_path.exists():
        if not config.resume:
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                                  "another --run-dir")
        _check_resume(store.read_manifest(), manifest, run_dir)
        scored_before = store.scored_records()
        done = {(r["task"], r["image"]) for r in scored_before}
        manifest["created"] = store.read_manifest().get("created", manifest["created"])
        manifest["resumed"] = now_iso()
    dctx.barrier()  # every rank has read the old state before anything is written
    writer = RunStore(run_dir, shard=dctx.rank) if dctx.active else store
    writer.repair()
    if dctx.is_main:
        store.write_manifest(manifest)

    # 4. scoring
    scorer = _make_scorer(convention, config, device)
    workers = config.num_workers if config.num_workers is not None else (
        default_workers() if device.type == "cuda" else 0)
    accelerated = AcceleratedForward(model, plan)
    options = EvalOptions(device=device, dtype=config.dtype, batch_size=batch_size,
                          num_workers=workers, tile=config.tile, tile_overlap=config.tile_overlap,
                          save_images=(run_dir / "images") if config.save_images else None, forward=accelerated)
    try:
        for task in tasks:
            dataset = datasets[task.name]
            skip = {image for (name, image) in done if name == task.name}
            crop = protocol.crop_for(task)
            policy = fit_policy(card.input_multiple, card.pad_mode, crop.rule, crop.base, crop.pad_mode, config.pad)
            progress.start_task(task, len(dataset), len(skip & set(dataset.names)))
            if skip and hasattr(progress, "resumed"):  # running means cover the images scored before, too
                names = set(dataset.names)
                progress.resumed(task, [r for r in scored_before if r["task"] == task.name and r["image"] in names])
            todo = [name for name in dataset.names if name not in skip]
            others = set(todo) - set(dctx.shard(todo))  # images scored by the other ranks
            with precision_settings(plan):
                for record in evaluate_task(model, task.name, dataset, policy, scorer, options,
                                            skip=skip | others):
                    writer.append(record)
                    progress.record(record)
            progress.end_task(task)
        manifest["execution"] = accelerated.describe()
    except BaseException as err:
        if dctx.is_main:
            manifest["status"] = "interrupted"
            manifest["interrupted"] = now_iso()
            store.write_manifest(manifest)
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunInterrupted):
            raise RunInterrupted(run_dir) from err
        raise
    dctx.barrier()
    if dctx.is_main:
        store.merge_shards(order=[(t.name, name) for t in tasks for name in datasets[t.name].names])
        manifest["status"] = "complete"
        manifest["finished"] = now_iso()
        store.write_manifest(manifest)
    dctx.barrier()
    summary = aggregate(pd.DataFrame(list(store.iter_records())))
    average = protocol_average(summary, manifest["protocol"]["average"])
    return RunOutcome(run_dir=run_dir, manifest=manifest, summary=summary, average=average, notices=notices,
                      rank=dctx.rank)


def next_commands(run_dir: str | Path, protocol: str | Path | Protocol | None = None) -> list[str]:
    """The commands a user runs after ``run_dir`` is complete, with the run directory filled in (shell-quoted):
    the paper table (for a protocol run), the rank among the published rows, a paired comparison."""
    run = shlex.quote(str(run_dir))
    name = protocol.name if isinstance(protocol, Protocol) else protocol
    commands = []
    if name is not None and str(name) != "folders":
        commands.append(f"bench-ir report --protocol {shlex.quote(str(name))} --runs {run} --format markdown")
        commands.append(f"bench-ir compare {run} --leaderboard")
    commands.append(f"bench-ir compare OTHER_RUN {run}")
    return commands


def _make_scorer(convention, config: RunConfig, device: torch.device):
    """PSNR/SSIM with the convention; LPIPS (when asked) with the backbone given or the convention's own, and
    the convention's input mapping (x*2-1 for MIRAGE's lpips package call, raw [0,1] for DiffUIR)."""
    from bench_ir.metrics.conventions import score_pair_batch

    lpips = None
    if config.lpips:
        from bench_ir.metrics.lpips import LPIPSScorer

        net = convention.lpips_net if config.lpips == "default" else config.lpips
        lpips = LPIPSScorer(net=net, weights=config.lpips_weights, device=device,
                            input_mapping=convention.lpips_input)

    def scorer(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return score_pair_batch(pred, target, convention, lpips=lpips)

    return scorer


def default_workers() -> int:
    """DataLoader workers used on CUDA when none are requested: up to 8, leaving one core free (decoding a pair of
    1280x720 PNGs takes tens of milliseconds per core, so a fast GPU needs several decoding processes)."""
    return min(8, max(0, (os.cpu_count() or 1) - 1))
