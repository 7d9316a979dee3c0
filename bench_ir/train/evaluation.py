"""Periodic validation during training: the recipe's protocol through ``run_protocol`` on the current weights.

Each validation is an ordinary run directory ``<run_dir>/val/step-<step>/`` (manifest + per-image records, so
``bench-ir report``/``compare`` read it). The weights are copied from memory into the model ``run_protocol``
builds; its manifest names the training run and step instead of a checkpoint file. Per-task means are
appended to ``<run_dir>/val.csv``. Global random generators are left exactly as they were. Under torchrun every
process takes part, as in a sharded ``bench-ir run``: each scores its share of the images, rank 0 merges them
(a validation on rank 0 alone waited forever for the other ranks).
"""

from __future__ import annotations

import csv
import hashlib
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench_ir.cards import ModelCard
from bench_ir.distributed import DistContext
from bench_ir.results import RunStore
from bench_ir.train.checkpointing import preserved_rng
from bench_ir.train.recipes import ValidationSpec

__all__ = ["ValidationResult", "state_sha256", "check_validation_data", "run_validation", "evaluation_command"]

_VAL_FIELDS = ["step", "epoch", "task", "psnr", "ssim", "images"]


@dataclass(frozen=True)
class ValidationResult:
    """Per-task mean PSNR (dB) / SSIM and the protocol's Average (None when it has none)."""

    step: int
    epoch: int
    run_dir: Path
    tasks: dict[str, dict[str, float]]
    average: dict[str, float] | None


def state_sha256(model: nn.Module) -> str:
    """SHA-256 over the state_dict's names, dtypes, shapes and bytes (identifies in-memory weights)."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_validation_data(spec: ValidationSpec, data_root: str | Path | None) -> None:
    """Fail before training when the validation test sets cannot be found (a folder listing per task)."""
    from bench_ir.data.datasets import DatasetNotFoundError, resolve_layout
    from bench_ir.protocol import load_protocol

    if spec.protocol is None or spec.sample:
        return
    if data_root is None:
        raise FileNotFoundError(f"validation on protocol '{spec.protocol}' needs its test sets: give --val-data-root "
                                "(or a --data-root that holds them), or train without validation (--no-val)")
    protocol = load_protocol(spec.protocol)
    for task in protocol.tasks:
        if spec.tasks and task.name not in spec.tasks:
            continue
        try:
            resolve_layout(task, data_root, protocol.name)
        except DatasetNotFoundError as err:
            raise DatasetNotFoundError(f"validation on protocol '{protocol.name}': {err.finding}", err.tried,
                                       advice="Give --val-data-root, or train without validation (--no-val).") from err


def evaluation_command(validation: dict[str, Any] | None, model: str | Path, weights: str | Path,
                       data_root: str | Path | None = None, registry: str | Path | None = None) -> str:
    """The `bench-ir run` that scores trained ``weights`` on the whole protocol the recipe validated on
    (``validation``: the resolved recipe's validation block): ``--sample`` when it validated on sample data,
    else ``--data-root`` with ``data_root`` or the placeholder DATA_ROOT; ``--protocol PROTOCOL`` when the recipe
    names none; ``--registry`` when the model card came from one. Arguments are shell-quoted."""
    protocol = (validation or {}).get("protocol")
    words = ["bench-ir", "run", "--protocol", shlex.quote(str(protocol)) if protocol else "PROTOCOL"]
    if protocol and validation.get("sample"):
        words.append("--sample")
    else:
        words += ["--data-root", shlex.quote(str(data_root)) if data_root is not None else "DATA_ROOT"]
    words += ["--model", shlex.quote(str(model)), "--checkpoint", shlex.quote(str(weights))]
    if registry is not None:
        words += ["--registry", shlex.quote(str(registry))]
    return " ".join(words)


def run_validation(model: nn.Module, card: ModelCard, spec: ValidationSpec, run_dir: Path, step: int, epoch: int,
                   device: torch.device, data_root: str | Path | None, limit: int | None = None,
                   label: str = "", context: DistContext | None = None, exact: bool = False,
                   compile: str = "auto") -> ValidationResult:
    """Score the weights of ``model`` on ``spec.protocol``; see the module docstring. ``context``: the process
    group of the training; every one of its processes calls this (the result is the same on each). ``exact`` and
    ``compile``: the training's execution choices, so that a ``train --exact`` validates on the reference
    computation and a ``--compile off`` training does not compile its validations."""
    from bench_ir.runner import RunConfig, run_protocol

    if spec.protocol is None:
        raise ValueError("the recipe names no validation protocol")
    context = context or DistContext()
    val_dir = run_dir / "val" / f"step-{step:07d}"

    def clear() -> None:
        if val_dir.exists():  # left by steps after the last checkpoint of an interrupted run
            shutil.rmtree(val_dir)

    context.on_main(clear)  # the other processes wait for it
    state = {k: v.detach() for k, v in model.state_dict().items()}

    def load_current_weights(fresh: nn.Module) -> None:
        fresh.load_state_dict(state)

    config = RunConfig(protocol=spec.protocol, model=card, data_root=None if spec.sample else data_root,
                       sample=spec.sample, run_dir=val_dir, limit=limit if limit is not None else spec.limit,
                       tasks=list(spec.tasks) or None, device=str(device), dtype="fp32", exact=exact,
                       compile=compile,
                       command=["bench-ir train (validation)", str(run_dir), f"step {step}"],
                       label=label or f"{run_dir.name} step {step}",
                       random_weights=True)  # the weights are the training state, loaded by on_model below
    with preserved_rng():
        outcome = run_protocol(config, on_model=load_current_weights)  # every rank's summary is the merged one

    if context.is_main:
        store = RunStore(val_dir)
        manifest = store.read_manifest()
        manifest["checkpoint"] = {"path": None, "sha256": state_sha256(model),
                                  "training_run": str(run_dir), "step": step, "epoch": epoch}
        manifest["random_weights"] = False
        manifest["notices"] = [n for n in manifest.get("notices", []) if not n.startswith("random weights")]
        store.write_manifest(manifest)

    tasks = {str(task): {"psnr": float(row["psnr"]), "ssim": float(row["ssim"]), "images": int(row["images"])}
             for task, row in outcome.summary.iterrows()}
    average = None
    if outcome.average is not None:
        average = {"psnr": float(outcome.average["psnr"]), "ssim": float(outcome.average["ssim"])}
    if context.is_main:
        _append_rows(run_dir / "val.csv", step, epoch, tasks, average)
    return ValidationResult(step, epoch, val_dir, tasks, average)


def _append_rows(path: Path, step: int, epoch: int, tasks: dict[str, dict[str, Any]],
                 average: dict[str, float] | None) -> None:
    new_file = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_VAL_FIELDS)
        if new_file:
            writer.writeheader()
        for task, values in tasks.items():
            writer.writerow({"step": step, "epoch": epoch, "task": task, **values})
        if average is not None:
            writer.writerow({"step": step, "epoch": epoch, "task": "Average", **average, "images": ""})
