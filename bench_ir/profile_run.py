"""`bench-ir profile` as a library call: profile a model and store the figures in the result store.

A profile run directory holds ``manifest.json`` (model, checkpoint, device, versions; protocol name
``efficiency``) and ``profile.json`` (ProfileResult.to_dict()), so `bench-ir report --protocol efficiency`
can place it beside the paper's efficiency table.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_ir.acceleration import plan_execution
from bench_ir.atomic import claim_new_dir
from bench_ir.cards import ModelCard, count_parameters, get_card, model_record
from bench_ir.checkpoints import create_model
from bench_ir.engine import resolve_device, resolve_dtype
from bench_ir.manifest import device_info, environment_info, git_revision, now_iso
from bench_ir.profiling import ProfileResult, check_size, count_flops, inference_parameter_count, profile_model
from bench_ir.results import PROFILE, RunStore, write_json_atomic

__all__ = ["profile_and_store", "static_profile_and_store", "efficiency_report_command"]


def profile_and_store(
    model: str | Path,
    checkpoint: str | Path | None = None,
    size: int = 224,
    batch: int = 1,
    device: str = "auto",
    dtype: str = "fp32",
    train: bool = False,
    train_batch: int = 32,
    train_size: int = 128,
    repeats: int | None = None,
    warmup: int | None = None,
    runs_root: str | Path = "runs",
    run_dir: str | Path | None = None,
    registry: str | Path | None = None,
    command: list[str] | None = None,
    exact: bool = False,
    compile: str = "auto",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[ProfileResult, Path]:
    """Profile ``model`` (params, fvcore FLOPs as MACs, peak CUDA memory, latency) and write a run directory.
    Forwards are timed on the execution path ``bench-ir run`` takes with the same ``exact``/``compile``/``dtype``
    (bf16/fp16: float32 weights under autocast); ``train`` adds one training step at ``train_batch`` x
    ``train_size``^2; ``repeats``/``warmup``/``progress`` as in :func:`bench_ir.profiling.profile_model`."""
    from bench_ir.checkpoints import sha256_file

    card = get_card(model, registry)
    torch_device = resolve_device(device)
    resolve_dtype(dtype)  # an unknown name fails here, before the model is built
    net = create_model(card, checkpoint=checkpoint, registry=registry)
    execution = plan_execution(torch_device, exact=exact, compile=compile, dtype=dtype)  # type: ignore[arg-type]
    result = profile_model(net, card, size=size, batch=batch, device=torch_device, dtype=dtype, repeats=repeats,
                           warmup=warmup, train=train, train_batch=train_batch, train_size=train_size,
                           execution=execution, progress=progress)
    checkpoint_info = {"path": str(checkpoint), "sha256": sha256_file(checkpoint)} if checkpoint else None
    folder = _profile_folder(card.name, size, runs_root, run_dir)
    _write_profile_run(folder, card, count_parameters(net), checkpoint_info, command, torch_device, dtype,
                       result.execution, None, {"params": result.params_total, **result.to_dict()})
    return result, folder


def efficiency_report_command(folders: Sequence[str | Path]) -> str:
    """The command that places the profile runs in ``folders`` in the efficiency table (shell-quoted)."""
    runs = " ".join(f"--runs {shlex.quote(str(folder))}" for folder in folders)
    return f"bench-ir report --protocol efficiency {runs}"


def _profile_folder(name: str, size: int, runs_root: str | Path, run_dir: str | Path | None) -> Path:
    return Path(run_dir) if run_dir else claim_new_dir(runs_root, f"{name}-profile-{size}")


def _write_profile_run(folder: Path, card, params: int, checkpoint: dict | None, command: list[str] | None,
                       torch_device, dtype: str, execution: dict | None, args_overrides: dict | None,
                       profile: dict, profiled_for: dict | None = None) -> None:
    """Write the manifest and profile.json of a profile run; ``profiled_for`` (the run a profile was made for, or
    None) is recorded as is."""
    store = RunStore(folder)
    store.write_manifest({
        "run_id": folder.name,
        "label": None,
        "kind": "profile",
        "command": command if command is not None else sys.argv,
        "created": now_iso(),
        "finished": now_iso(),
        "status": "complete",
        "protocol": {"name": "efficiency", "tasks": [], "average": [], "leaderboard_table": "table6_efficiency.csv"},
        "model": model_record(card, params, args_overrides),
        "checkpoint": checkpoint,
        "random_weights": False,  # weights do not change params, FLOPs, memory or speed
        "sample": False,
        "limit": None,
        "device": device_info(torch_device),
        "dtype": dtype,
        "execution": execution,
        "versions": environment_info(),
        "git_revision": git_revision(),
        "profiled_for": profiled_for,
    })
    write_json_atomic(folder / PROFILE, profile)


def static_profile_and_store(card: ModelCard, checkpoint: dict | None = None, args_overrides: dict | None = None,
                             size: int = 224, runs_root: str | Path = "runs", run_dir: str | Path | None = None,
                             command: list[str] | None = None, profiled_for: dict | None = None) -> Path:
    """Params and fvcore FLOPs (a multiply-add counted once) of ``card`` at 1x3x``size``x``size`` on the CPU,
    stored as a profile run without memory or timing. Weights do not change either figure, so the model keeps
    its random initialisation; ``checkpoint`` (the manifest entry of the run being profiled: path, sha256) is
    recorded so that reports join this profile to that run, and ``profiled_for`` (that run's ``run_id``, ``model``
    and ``checkpoint`` entries) as the manifest's ``profiled_for``, so that it joins that run even when the run's
    manifest has no copy of its card. Returns the run directory."""
    check_size(size, card, "--profile-size")
    net = create_model(card)
    params_inference, source = inference_parameter_count(net, card)
    flops = count_flops(net, size)
    folder = _profile_folder(card.name, size, runs_root, run_dir)
    profile = {"params": count_parameters(net), "params_total": count_parameters(net),
               "params_inference": params_inference, "params_inference_source": source, "flops": flops.total,
               "flops_g": flops.total / 1e9, "flops_uncounted_ops": flops.uncounted, "peak_memory_bytes": None,
               "device": "cpu", "input_shape": [1, 3, size, size], "size": size, "dtype": "fp32",
               "static": True, "notes": ["params and FLOPs only (no memory, no timing); weights not loaded"]}
    _write_profile_run(folder, card, count_parameters(net), checkpoint, command, resolve_device("cpu"), "fp32",
                       None, args_overrides, profile, profiled_for)
    return folder
