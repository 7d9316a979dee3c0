"""`bench-ir run` as a library call: protocol + model -> run directory with manifest and per-image records.

All datasets are resolved before the model is built, so a missing folder fails fast. Records are appended
as they are produced; the process holds the run directory's lock (bench_ir.resume.RunLock) while it writes.

``resume=True`` continues a run: ``run_dir`` (or, without one, the newest unfinished run of the same setup under
``runs_root``) must have the same resume identity (bench_ir.resume); only images without a valid record are
scored. ``limit``/``tasks`` on resume choose what is scored now; they never narrow the run's description in the
manifest (its tasks, its limit, ``planned`` image counts): a task outside the run is refused, and only a wider
limit than the run's (or none) widens the run to cover it, as a suite asks when its --limit grows. The final
status is ``complete`` when every planned image has a record, ``incomplete`` otherwise; a stopped run is
``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (an error, recorded in ``error``); all of them can be resumed. On
real data a model with parameters needs a checkpoint (``checkpoint``, or ``use_sample_checkpoint`` for the card's
shipped sample checkpoint) unless ``random_weights`` is set; random initialisation is seeded by ``seed``.
See docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench_ir.acceleration import AcceleratedForward, plan_execution, precision_settings
from bench_ir.atomic import claim_new_dir
from bench_ir.cards import (
    ModelCard,
    check_card_args,
    chosen_checkpoint,
    count_parameters,
    get_card,
    model_record,
    sample_checkpoint,
    sample_checkpoint_advice,
    with_model_args,
)
from bench_ir.checkpoint_settings import setting_mismatch_notice
from bench_ir.checkpoints import create_model, is_sample_checkpoint
from bench_ir.counts import check_counts
from bench_ir.cpus import default_eval_workers
from bench_ir.data.datasets import FOLDER_PAIR_SOURCE, needs_data_root
from bench_ir.data.roots import DATA_ROOT_HINT, data_root_or_env
from bench_ir.distributed import RankError, StoppedForAnotherRank, dist_context
from bench_ir.engine import (
    EvalOptions,
    auto_tiled,
    auto_tiled_notice,
    check_model_precision,
    check_task_data,
    evaluate_task,
    resolve_device,
    resolve_dtype,
    same_size_batches,
    saved_name_clash,
)
from bench_ir.geometry import check_pad_mode, task_fit_policy, tile_size
from bench_ir.manifest import device_info, environment_info, git_revision, now_iso, portable_path
from bench_ir.protocol import CropSpec, LayoutSpec, Protocol, TaskSpec, command_ref, load_protocol, protocol_record
from bench_ir.results import RunStore, aggregate, protocol_average
from bench_ir.resume import ResumeError, RunLock, data_identity, find_resumable, identity_differences
from bench_ir.run_config import RunConfig
from bench_ir.shortlist import shortlist

__all__ = ["RunConfig", "RunOutcome", "ProgressHook", "run_protocol", "folder_protocol", "ResumeError",
           "MissingWeightsError", "missing_weights_message", "RunNotFinalizedError", "RunTerminated", "RunInterrupted",
           "next_commands", "sigterm_as_interrupt", "RunningPsnr", "FAST_CUDA_BATCH"]

FAST_CUDA_BATCH = 8  # images per forward on the fast CUDA path when --batch-size is not given


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while images were scored; ``run_dir`` keeps the scored images and continues with
    ``--resume --run-dir run_dir``; ``terminated`` is True for SIGTERM."""

    def __init__(self, run_dir: Path, terminated: bool = False) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.terminated = terminated


class ProgressHook:
    """Receives progress events; the CLI renders them, the library never prints."""

    def start_task(self, task: TaskSpec, total: int, done: int) -> None: ...

    def resumed(self, task: TaskSpec, records: list[dict[str, Any]]) -> None:
        """After ``start_task`` of a resumed run: the ``done`` records of this task scored before (optional)."""

    def record(self, record: dict[str, Any]) -> None: ...

    def end_task(self, task: TaskSpec) -> None: ...


@dataclass
class RunningPsnr:
    """The running PSNR mean of a task while its images are scored (dB), by the rule of the final mean
    (:func:`bench_ir.results.aggregate`): every image counts, so one NaN (an output with NaN/Inf values, a record
    marked ``nonfinite``) makes it NaN and one inf (an output equal to its target) makes it inf. ``nonfinite``: how
    many of the images added had NaN/Inf outputs."""

    total: float = 0.0
    count: int = 0
    nonfinite: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one scored image (a record; a missing PSNR counts as NaN, as aggregate reads it)."""
        psnr = record.get("psnr")
        self.total += float("nan") if psnr is None else float(psnr)
        self.count += 1
        self.nonfinite += bool(record.get("nonfinite"))

    @property
    def mean(self) -> float | None:
        """The mean so far; None before the first image."""
        return self.total / self.count if self.count else None


@dataclass
class RunOutcome:
    """What :func:`run_protocol` returns. run_dir: the run directory. manifest: the run manifest as written
    (``manifest.json``). summary: the per-task means (psnr, ssim, lpips), image counts and ``nonfinite`` counts,
    indexed by task (:func:`bench_ir.results.aggregate`). average: the mean over the protocol's ``average`` tasks
    (None when one of them was not run). notices: lines to show the user (sample data, random weights, outputs with
    NaN/Inf values, an incomplete run...). rank: the distributed process rank of this process under torchrun (0
    otherwise), not a leaderboard rank."""

    run_dir: Path
    manifest: dict[str, Any]
    summary: pd.DataFrame
    average: pd.Series | None
    notices: list[str] = field(default_factory=list)
    rank: int = 0


def folder_protocol(input_dir: str | Path, target_dir: str | Path, pairing: str = "same_name",
                    crop: CropSpec | None = None, convention: str = "M1") -> Protocol:
    """An ad-hoc one-task protocol for ``--input-dir/--target-dir`` runs (3deg/5deg conventions by default:
    centre crop to a multiple of 16, metric M1). The task's label (a report's column) is the folders' common parent
    when they are siblings (``Rain100L`` for ``Rain100L/input`` and ``Rain100L/target``), else the input folder's
    name."""
    input_dir, target_dir = Path(input_dir).resolve(), Path(target_dir).resolve()
    siblings = input_dir.parent == target_dir.parent and input_dir != target_dir and input_dir.parent.name
    task = TaskSpec(name="folder", label=input_dir.parent.name if siblings else input_dir.name, dataset="folder",
                    layouts=[LayoutSpec(target=str(target_dir), input=str(input_dir), pairing=pairing,
                                        source=FOLDER_PAIR_SOURCE)])
    return Protocol(name="folders", title=f"{input_dir} vs {target_dir}", version=1, tasks=[task],
                    convention=convention, crop=crop or CropSpec(rule="center_multiple", base=16),
                    reference="ad-hoc folder pair", source="command line")


def _protocol_manifest(protocol: Protocol, tasks: list[TaskSpec]) -> dict[str, Any]:
    return {
        **protocol_record(protocol), "title": protocol.title, "version": protocol.version,
        "source": portable_path(protocol.source),
        "leaderboard_table": protocol.leaderboard_table,
        "paper_table": protocol.paper_table, "average": list(protocol.average),
        "crop": dataclasses.asdict(protocol.crop),
        "tasks": [{"name": t.name, "label": t.label, "dataset": t.dataset, "leaderboard": t.leaderboard,
                   "expected_count": t.expected_count,
                   "noise": dataclasses.asdict(t.noise) if t.noise else None,
                   "sample_degradations": list(t.sample.degradations)} for t in tasks],
    }


class MissingWeightsError(FileNotFoundError):
    """Real data and a model with parameters but no checkpoint (and no --random-weights)."""


class RunNotFinalizedError(RuntimeError):
    """Every image was scored but the final manifest (or the shard merge) could not be written."""


class RunTerminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send), handled like Ctrl-C: the run is marked interrupted and stays resumable."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`RunTerminated` while a run writes (main thread only, and only where SIGTERM has its
    default action: a handler the caller installed is kept; the old handler is restored)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunTerminated(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


RANDOM_WEIGHTS_ADVICE = "--random-weights to score a randomly initialised network (seeded by --seed)"


def missing_weights_message(card: ModelCard, alternative: str | None = RANDOM_WEIGHTS_ADVICE) -> str:
    """The error for a model with parameters and no checkpoint: what to pass (``--checkpoint FILE`` with the card's
    official files, or ``alternative`` when there is one)."""
    official = "; ".join(f"{key}: {value}" for key, value in card.official_checkpoints.items())
    files = f" (official checkpoints: {official})" if official else ""
    return f"model '{card.name}' has no checkpoint: pass --checkpoint FILE{files}" + (
        f", or {alternative}" if alternative else "")


def _run_checkpoint(config: RunConfig, card: ModelCard) -> Path | None:
    """The run's weights: the one :func:`chosen_checkpoint` names, else on the sample data the card's sample
    checkpoint (None: none, the model is randomly initialised)."""
    chosen = chosen_checkpoint(card, config.checkpoint, config.use_sample_checkpoint)
    return chosen if chosen is not None or not config.sample else sample_checkpoint(card)


def _sample_data_works(tasks: list[TaskSpec], noise_order: str) -> bool:
    """Whether ``--sample`` can run ``tasks``: each has a sample variant (sample degradations, or noise of its
    own, as bench_ir.data.sample builds it) and the noise order is ``sorted`` (the sample data has no folder)."""
    return noise_order == "sorted" and all(task.has_sample_variant for task in tasks)


def _nonfinite_notice(records: list[dict[str, Any]]) -> str | None:
    """The images whose output had NaN/Inf values (records marked ``nonfinite``; their PSNR and SSIM are NaN) and
    what that does to the means (:func:`bench_ir.results.aggregate` never leaves them out); None when there are
    none."""
    bad = [record for record in records if record.get("nonfinite")]
    if not bad:
        return None
    tasks = ", ".join(dict.fromkeys(str(record["task"]) for record in bad))
    shown = shortlist([f"{record['task']}/{record['image']}" for record in bad], 5, more=" and {} more")
    return (f"{len(bad)} image(s) with NaN/Inf outputs ({shown}): their PSNR and SSIM are NaN (the records mark them "
            f"nonfinite), so the PSNR and SSIM means of task(s) {tasks} are NaN, and so is an Average over them")


def _infinite_psnr_notice(records: list[dict[str, Any]]) -> str | None:
    """The images whose PSNR is inf (an output identical to its target) and what that does to the means, which
    :func:`bench_ir.results.aggregate` takes over every image as it does for NaN; None when there are none."""
    same = [record for record in records if record.get("psnr") == float("inf")]
    if not same:
        return None
    tasks = ", ".join(dict.fromkeys(str(record["task"]) for record in same))
    shown = shortlist([f"{record['task']}/{record['image']}" for record in same], 5, more=" and {} more")
    return (f"{len(same)} image(s) with an output identical to its target ({shown}): their PSNR is inf (the PSNR of "
            f"identical images), so the PSNR mean of task(s) {tasks} is inf, and so is an Average over them, and "
            "compare --leaderboard does not rank the run; with --model input, such an input is a copy of its target: "
            "check the data")


def _missing_weights(card: ModelCard) -> str:
    """A run's missing-weights error: --checkpoint, the card's sample checkpoint where it ships one, or
    --random-weights."""
    return missing_weights_message(card, ", or ".join(
        advice for advice in (sample_checkpoint_advice(card), RANDOM_WEIGHTS_ADVICE) if advice))


def _limited(dataset: Any, limit: int | None) -> Any:
    return dataset.limit(limit) if limit is not None else dataset


def _narrower(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _wider(a: int | None, b: int | None) -> int | None:
    """The wider of two --limit values (None: no limit)."""
    return None if a is None or b is None else max(a, b)


def _binding(limit: int | None, datasets: list[Any]) -> int | None:
    """``limit``, or None when it leaves out no image of any of ``datasets`` (a task's whole test set): such a run
    covers the full test sets and is recorded as one (reports rank it; suites count it complete)."""
    return limit if limit is not None and any(len(dataset) > limit for dataset in datasets) else None


def _check_options(config: RunConfig, card: ModelCard, protocol: Protocol) -> None:
    """Counts, sizes and option pairs that cannot work, refused before any data or model work (never silently
    replaced or ignored)."""
    check_counts([("--limit", config.limit, 1), ("--batch-size", config.batch_size, 1), ("--tile", config.tile, 1),
                  ("--workers", config.num_workers, 0)])
    check_pad_mode(config.pad)
    if config.random_weights and (config.checkpoint or config.use_sample_checkpoint):
        weights = f"--checkpoint {config.checkpoint}" if config.checkpoint else "--sample-checkpoint"
        raise ValueError(f"--random-weights allows a model without a checkpoint; it cannot run with {weights}")
    if config.tile is not None:
        for task in protocol.tasks:
            tile_size(config.tile, config.tile_overlap, task_fit_policy(card, protocol, task, config.pad).multiple)


def _check_saved_names(task: str, names: list[str]) -> None:
    """--save-images writes ``<name without extension>.png``: two images of a task that would share a file (``a.jpg``
    and ``a.png``) are refused before any work, rather than one output silently replacing the other."""
    clash = saved_name_clash(names)
    if clash:
        first, second, saved = clash
        raise ValueError(f"task {task}: {first} and {second} would both be saved as {saved} by --save-images; "
                         "rename one of them or run without --save-images")


def run_protocol(config: RunConfig, progress: ProgressHook | None = None,
                 on_model: Callable[[torch.nn.Module], None] | None = None) -> RunOutcome:
    """Run ``config.model`` on every task of ``config.protocol``; see the module docstring."""
    with sigterm_as_interrupt():
        return _run_protocol(config, progress or ProgressHook(), on_model)


def _run_protocol(config: RunConfig, progress: ProgressHook,
                  on_model: Callable[[torch.nn.Module], None] | None) -> RunOutcome:
    from bench_ir.checkpoints import sha256_file
    from bench_ir.data.datasets import build_task_dataset
    from bench_ir.data.sample import build_sample_task_dataset
    from bench_ir.metrics.conventions import get_convention

    protocol = config.protocol if isinstance(config.protocol, Protocol) else load_protocol(config.protocol)
    tasks = protocol.select_tasks(config.tasks)
    convention = get_convention(config.convention or protocol.convention)
    card = with_model_args(get_card(config.model, config.registry), config.model_args)
    check_card_args(card)  # unknown card args / --model-arg fail here, before any data or model work
    _check_options(config, card, protocol)
    checkpoint = _run_checkpoint(config, card)

    # 1. every dataset first: a missing folder fails before any model work (a resume resolves the run's own tasks)
    if not config.sample and protocol.name != "folders":
        config = dataclasses.replace(config, data_root=data_root_or_env(config.data_root))
        if config.data_root is None and needs_data_root(tasks):
            sample = _sample_data_works(tasks, config.noise_order)
            raise FileNotFoundError(f"protocol '{protocol.name}' needs the folder holding its test sets "
                                    f"({DATA_ROOT_HINT})" + (" or --sample for the built-in sample data" if sample
                                                             else ""))
    full: dict[str, Any] = {}  # task name -> its whole dataset (before --limit)

    def dataset_of(name: str) -> Any:
        if name not in full:
            task = protocol.task(name)
            full[name] = (build_sample_task_dataset(protocol, task, noise_order=config.noise_order) if config.sample
                          else build_task_dataset(protocol, task, data_root=config.data_root,
                                                  noise_order=config.noise_order))  # type: ignore[arg-type]
        return full[name]

    if not config.resume:
        for task in tasks:
            if config.save_images:
                _check_saved_names(task.name, dataset_of(task.name).names)
            # image headers (cached for scoring): an input whose size differs from its target's, an image too small
            # for the crop rule or the convention's SSIM window, one the model cannot take or a float image fails
            # here, not after the tasks before it were scored; differing EXIF orientations are warned of
            check_task_data(_limited(dataset_of(task.name), config.limit),
                            task_fit_policy(card, protocol, task, config.pad), task.name, convention)

    # 2. the model (under torchrun each rank takes its own GPU and a share of every task's images)
    real_data = not config.sample
    if checkpoint is None and real_data and not config.random_weights and (card.expected_params or 0) > 0:
        raise MissingWeightsError(_missing_weights(card))
    requested = resolve_device(config.device)
    dctx = dist_context(requested.type)
    device = dctx.device(requested)
    if not dctx.is_main:
        progress = ProgressHook()
    resolve_dtype(config.dtype)
    plan = plan_execution(device, exact=config.exact, compile=config.compile,  # type: ignore[arg-type]
                          dtype=config.dtype)
    batch_size = config.batch_size or (FAST_CUDA_BATCH if plan.mode == "fast" and device.type == "cuda" else 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # random initialisation is a function of --seed
        model = create_model(card, checkpoint=checkpoint, registry=config.registry)
    model = model.to(device)
    check_model_precision(model, config.dtype, f"model '{card.name}'")
    random_weights = checkpoint is None and count_parameters(model) > 0
    if random_weights and real_data and not config.random_weights:
        raise MissingWeightsError(_missing_weights(card))
    if on_model is not None:
        on_model(model)
    scorer = _make_scorer(convention, config, device)  # LPIPS weights that are missing fail here, before a run folder
    notices = []
    if config.sample:
        notices.append("sample (synthetic) data: built-in photos with synthetic degradations, not the benchmark")
    if random_weights:
        notices.append(f"random weights: no checkpoint given for {card.display_name} (initialised with seed "
                       f"{config.seed})")

    # 3. the run directory (locked by rank 0 for as long as this process writes it) and its manifest
    checkpoint_record = {"path": str(checkpoint), "sha256": sha256_file(checkpoint)} if checkpoint else None
    sample_weights = is_sample_checkpoint(card, checkpoint_record["sha256"] if checkpoint_record else None)
    if sample_weights and not config.sample:
        notices.append(f"weights: the sample checkpoint shipped for {card.display_name} (a demonstration, not the "
                       "published model): reports do not rank this run")
    if checkpoint is not None and protocol.leaderboard_table and (
            notice := setting_mismatch_notice(card, checkpoint, protocol.name)):
        notices.append(notice)  # the official checkpoint of another setting: no reproduction of this one's row
    suffix = "-sample" if config.sample else ""
    command = config.command if config.command is not None else sys.argv
    base: dict[str, Any] = {
        "run_id": None,
        "label": config.label,
        "command": command,
        "created": now_iso(),
        "status": "running",
        "convention": {"id": convention.id, "name": convention.name, "description": convention.describe()},
        "model": model_record(card, count_parameters(model), dict(config.model_args) or None),
        "checkpoint": checkpoint_record,
        "sample_checkpoint": sample_weights,
        "random_weights": random_weights,
        "init_seed": config.seed if random_weights else None,
        "sample": config.sample,
        "data_root": str(Path(config.data_root).resolve()) if config.data_root else None,
        "device": device_info(device),
        "dtype": config.dtype,
        "noise_order": config.noise_order,
        "execution": plan.describe(),
        "batch_size": batch_size,
        "tile": config.tile,
        "tile_overlap": config.tile_overlap,
        "pad": config.pad,
        "lpips": config.lpips,
        "world_size": dctx.world_size,
        "versions": environment_info(),
        "git_revision": git_revision(),
    }

    def manifest_for(task_names: list[str], limit: int | None, with_data: bool = True) -> dict[str, Any]:
        """This setup's manifest for a run of ``task_names`` at ``limit`` (the run's scope)."""
        scope = [t for t in protocol.tasks if t.name in task_names]
        if with_data:
            limit = _binding(limit, [dataset_of(t.name) for t in scope])
        manifest = {**base, "protocol": _protocol_manifest(protocol, scope), "limit": limit,
                    "seed": {t.name: t.noise.seed for t in scope if t.noise}}
        if with_data:
            manifest["data"] = {t.name: data_identity(dataset_of(t.name), config.data_root) for t in scope}
            manifest["planned"] = {t.name: len(_limited(dataset_of(t.name), limit)) for t in scope}
        return manifest

    def open_run() -> tuple[Path, RunLock, dict[str, Any], set[tuple[str, str]]]:
        if config.run_dir:
            run_dir = Path(config.run_dir)
        elif config.resume:
            found = find_resumable(config.runs_root, lambda old: manifest_for(
                [t["name"] for t in old["protocol"]["tasks"]], old.get("limit")))
            if found is None:
                raise ResumeError(f"--resume: no unfinished run of this setup under {config.runs_root} (model "
                                  f"'{card.name}', protocol '{protocol.name}'); give --run-dir, or run without "
                                  "--resume to start a new one")
            run_dir = found
        else:  # a new folder of its own, even beside a run started in the same second
            run_dir = claim_new_dir(config.runs_root, f"{card.name}-{protocol.name}{suffix}")
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
        try:
            manifest, done = _open_manifest(run_dir)
        except BaseException:
            lock.release()
            raise
        return run_dir, lock, manifest, done

    def _open_manifest(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        store = RunStore(run_dir)
        if not store.manifest_path.exists():
            if config.resume:
                notices.append(f"--resume: {run_dir} held no run yet; a new run was started there")
            manifest = manifest_for([t.name for t in tasks], config.limit)
            return manifest, []
        if not config.resume:
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                                  "another --run-dir")
        old = store.read_manifest()
        scope = [str(t["name"]) for t in (old.get("protocol") or {}).get("tasks") or []]
        known = [name for name in scope if name in {t.name for t in protocol.tasks}]
        differences = identity_differences(old, manifest_for(known, old.get("limit"), with_data=False))
        records = store.scored_records()
        if not differences:
            manifest = manifest_for(known, _wider(old.get("limit"), config.limit))
            differences = identity_differences(old, manifest, scored={(r["task"], r["image"]) for r in records})
        if differences:
            raise ResumeError(f"{run_dir}: cannot resume, this run was made with another setup: "
                              f"{'; '.join(differences)}. Use a new --run-dir for the new setup")
        outside = [name for name in config.tasks or [] if name not in scope]
        if outside:
            raise ResumeError(f"{run_dir}: task(s) {outside} are not part of this run (its tasks: {scope}); a resume "
                              "scores within the run, start a new run for other tasks")
        if manifest["limit"] != old.get("limit"):
            covers = "the full test sets" if manifest["limit"] is None else f"--limit {manifest['limit']}"
            notices.append(f"the run was made with --limit {old.get('limit')}; it now covers {covers}")
        manifest.update(created=old.get("created", manifest["created"]), command=old.get("command", command),
                        resumes=[*old.get("resumes", []), {"at": now_iso(), "command": command,
                                                           "limit": config.limit, "tasks": config.tasks}])
        return manifest, records

    opened = dctx.on_main(open_run)
    lock = opened[1] if opened else None
    try:
        scored_before = opened[3] if opened else []  # rank 0 only (it draws the progress)
        run_dir, manifest, done = dctx.broadcast(None if opened is None else (
            opened[0], opened[2], {(r["task"], r["image"]) for r in scored_before}))
        manifest["run_id"] = run_dir.name
        manifest["status"] = "running"
        scope = [t for t in protocol.tasks if t.name in manifest["planned"]]
        scope_limit = manifest["limit"]
        now_tasks = [t for t in scope if not config.tasks or t.name in config.tasks]
        now_limit = _narrower(scope_limit, config.limit)
        if config.resume and config.save_images:  # a new run checked its names before loading the model
            for task in now_tasks:
                _check_saved_names(task.name, dataset_of(task.name).names)
        if scope_limit is not None:
            images = "image" if scope_limit == 1 else "images"
            notices.append(f"--limit {scope_limit}: at most {scope_limit} {images} per task, not the full test sets")
        elif config.limit is not None:
            largest = max(len(dataset_of(t.name)) for t in scope)
            notices.append(f"--limit {config.limit} leaves out no image (the largest task has {largest}): the run "
                           "covers the full test sets")
        if not config.sample:
            notices += _test_set_size_notices(protocol, now_tasks, dataset_of, config.data_root)
            notices += _unpaired_target_notices(now_tasks, dataset_of)
        manifest["notices"] = notices
        return _score(config, progress, protocol, card, model, plan, device, dctx, batch_size, scorer, run_dir,
                      manifest, done, scored_before, scope, scope_limit, now_tasks, now_limit, dataset_of, notices)
    finally:
        if lock is not None:
            lock.release()


def _data_check_command(protocol: Protocol, data_root: str | Path | None) -> str:
    """The `bench-ir data check` command line that checks the data a run read: its protocol and, when it had one,
    its data root (absolute, shell-quoted), so that it checks the same folders wherever it is run."""
    command = f"bench-ir data check --protocol {command_ref(protocol)}"
    if data_root is None:
        return command
    return f"{command} --data-root {shlex.quote(str(Path(data_root).expanduser().resolve()))}"


def _test_set_size_notices(protocol: Protocol, tasks: list[TaskSpec], dataset_of: Callable[[str], Any],
                           data_root: str | Path | None) -> list[str]:
    """One notice per task whose data (under ``data_root``) holds another number of pairs than the published test
    set (a task's ``expected_count``): its mean is then not comparable to the published number."""
    notices = []
    for task in tasks:
        found = len(dataset_of(task.name))
        if task.expected_count is not None and found != task.expected_count:
            notices.append(f"task '{task.name}' ({task.label}): {found} pairs found, {task.expected_count} expected; "
                           "not the published test set, so its mean is not comparable to the published number "
                           f"({_data_check_command(protocol, data_root)} says what differs)")
    return notices


def _unpaired_target_notices(tasks: list[TaskSpec], dataset_of: Callable[[str], Any]) -> list[str]:
    """One notice per task whose target folder holds images no input pairs with (they are not scored; a target
    that several inputs pair with, as in SOTS, is paired)."""
    from bench_ir.data.datasets import unpaired_targets_notice

    return [notice for task in tasks if (notice := unpaired_targets_notice(dataset_of(task.name)))]


def _score(config: RunConfig, progress: ProgressHook, protocol: Protocol, card: ModelCard, model: torch.nn.Module,
           plan: Any, device: torch.device, dctx: Any, batch_size: int, scorer: Callable[..., Any], run_dir: Path,
           manifest: dict[str, Any], done: set[tuple[str, str]], scored_before: list[dict[str, Any]],
           scope: list[TaskSpec], scope_limit: int | None,
           now_tasks: list[TaskSpec], now_limit: int | None, dataset_of: Callable[[str], Any],
           notices: list[str]) -> RunOutcome:
    """Steps 4 and 5 of a run: score what is missing of ``now_tasks`` and write the final manifest."""
    store = RunStore(run_dir)
    writer = RunStore(run_dir, shard=dctx.rank) if dctx.active else store
    if dctx.is_main:
        store.write_manifest(manifest)

    def score_share() -> None:
        """Step 4, scoring: this rank's share of every task's images not scored yet."""
        writer.repair()
        workers = config.num_workers if config.num_workers is not None else (
            default_eval_workers() if device.type == "cuda" else 0)
        accelerated = AcceleratedForward(model, plan)
        options = EvalOptions(device=device, dtype=config.dtype, batch_size=batch_size,
                              num_workers=workers, tile=config.tile, tile_overlap=config.tile_overlap,
                              save_images=(run_dir / "images") if config.save_images else None, forward=accelerated)
        for task in now_tasks:
            dataset = _limited(dataset_of(task.name), now_limit)
            skip = {image for (name, image) in done if name == task.name}
            policy = task_fit_policy(card, protocol, task, config.pad)
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
                    if dctx.another_rank_failed():  # its error is what every rank raises: stop scoring now
                        raise StoppedForAnotherRank(f"stopped after {record['image']}: another rank failed")
            progress.end_task(task)
        manifest["execution"] = accelerated.describe()
        if notice := accelerated.compile_notice():
            notices.append(notice)

    try:  # under torchrun a failure on any rank is raised on every rank once all have stopped (rank 0 records it)
        dctx.on_every_rank(score_share)
    except BaseException as err:
        if dctx.is_main:
            _mark_stopped(store, manifest, err)
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunInterrupted):
            raise RunInterrupted(run_dir, terminated=isinstance(err, RunTerminated)) from err
        raise

    def finalize() -> dict[str, Any]:
        """Step 5 (rank 0): merge the shards and write the final manifest, complete when every image of the run's
        scope has a record."""
        planned = [(t.name, name) for t in scope for name in _limited(dataset_of(t.name), scope_limit).names]
        try:  # the files' unreadable lines and duplicates were named (once) when the run was opened
            order = _write_order(scope, scope_limit, dataset_of, store.scored_records(warn=False))
            before = store.read_records(warn=False)  # what a completed resume drops from the main file
            store.merge_shards(order=order, warn=False)
            records = store.read_records(warn=False).records  # every rank's records, merged into the main file
            scored = {(r["task"], r["image"]) for r in records}
            missing = sum(1 for key in planned if key not in scored)
            manifest["status"] = "complete" if not missing else "incomplete"
            if config.resume and not missing:  # as an uninterrupted run would have written it
                store.rewrite_in_order(order)
                if notice := before.dropped():
                    notices.append(notice)
                    if manifest.get("resumes"):  # the record of this resume keeps it past later resumes' notices
                        manifest["resumes"][-1]["dropped"] = notice
            tiled = auto_tiled(records)
            manifest.pop("auto_tiled", None)
            if tiled:
                manifest["auto_tiled"] = tiled
                notices.append(auto_tiled_notice(tiled, config.tile_overlap))
            manifest["finished"] = now_iso()
            store.write_manifest(manifest)
        except OSError as err:
            raise RunNotFinalizedError(
                f"{run_dir}: the scored images are kept in {store.records_path.name}, but the final manifest could "
                f"not be written ({err}); the run stays resumable: run the same command with --resume --run-dir "
                f"{run_dir} once the disk is writable") from err
        return manifest

    # under torchrun the other ranks wait for rank 0 and raise its error too (not a broken connection)
    manifest = dctx.broadcast(dctx.on_main(finalize))
    records = store.read_records(warn=False).records
    summary = aggregate(pd.DataFrame(records))
    average = protocol_average(summary, manifest["protocol"]["average"])
    notices += [notice for notice in (_nonfinite_notice(records), _infinite_psnr_notice(records)) if notice]
    if manifest["status"] == "incomplete":
        notices.append(f"incomplete: the run's other images are not scored yet; continue with --resume --run-dir "
                       f"{run_dir}")
    return RunOutcome(run_dir=run_dir, manifest=manifest, summary=summary, average=average, notices=notices,
                      rank=dctx.rank)


def _write_order(scope: list[TaskSpec], limit: int | None, dataset_of: Callable[[str], Any],
                 records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (task, image) keys of ``records`` in the order an uninterrupted single-process run appends them: the
    scope's tasks in protocol order, each task's images as :func:`bench_ir.engine.same_size_batches` batches them
    (images of one size together, sizes in order of first appearance, dataset order within a size, whatever the
    batch size), sizes as the records give them (height, width: as scored). Sharded merges and completed resumes
    write records.jsonl in this order."""
    sizes = {(r["task"], r["image"]): (r.get("height"), r.get("width")) for r in records}
    order = []
    for task in scope:
        names = _limited(dataset_of(task.name), limit).names
        keys = [(task.name, name) for name in names if (task.name, name) in sizes]
        order += [keys[i] for batch in same_size_batches([sizes[key] for key in keys], 1) for i in batch]
    return order


def _mark_stopped(store: RunStore, manifest: dict[str, Any], err: BaseException) -> None:
    """Record why a run stopped: ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (any error, as 'Type: message').
    A manifest that cannot be written leaves the run as it was (still resumable); the error says so."""
    if isinstance(err, KeyboardInterrupt):
        manifest.update(status="interrupted", interrupted=now_iso(),
                        reason="SIGTERM" if isinstance(err, RunTerminated) else "SIGINT (Ctrl-C)")
    else:  # a RankError's message already gives the failing rank's error as 'Type: message (on rank R of N)'
        error = str(err) if isinstance(err, RankError) else f"{type(err).__name__}: {err}"
        manifest.update(status="failed", failed=now_iso(), error=error)
    try:
        store.write_manifest(manifest)
    except OSError as write_error:
        err.add_note(f"the manifest could not be updated ({write_error}); the scored images are kept and the run "
                     "stays resumable")
    else:
        if not isinstance(err, KeyboardInterrupt):  # an interrupted run's own message says how to go on
            scored = len(store.scored_keys(warn=False))  # the run's records were warned of when it was opened
            err.add_note(f"the run is kept in {store.run_dir} with the {scored} image(s) scored so far; once the "
                         f"cause is fixed, the same command plus --resume --run-dir {store.run_dir} continues it")


def _make_scorer(convention, config: RunConfig, device: torch.device):
    """PSNR/SSIM with the convention; LPIPS (when asked) with the backbone given or the convention's own, and
    the convention's input mapping (x*2-1 for MIRAGE's lpips package call, raw [0,1] for DiffUIR)."""
    from bench_ir.metrics.scoring import score_pair_batch

    lpips = None
    if config.lpips:
        from bench_ir.metrics.lpips import LPIPSScorer

        net = convention.lpips_net if config.lpips == "default" else config.lpips
        lpips = LPIPSScorer(net=net, weights=config.lpips_weights, device=device,
                            input_mapping=convention.lpips_input)

    def scorer(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return score_pair_batch(pred, target, convention, lpips=lpips)

    return scorer


def next_commands(run_dir: str | Path, manifest: Mapping[str, Any]) -> list[str]:
    """The commands a user runs after the run in ``run_dir`` (with its ``manifest``) is complete, shell-quoted:
    the protocol's table, the rank among the published rows (where the protocol has them), a paired comparison."""
    from bench_ir.leaderboard import has_table

    run = shlex.quote(str(run_dir))
    protocol = manifest.get("protocol") or {}
    name = str(protocol.get("name") or "folders")
    commands = []
    if name != "folders":
        published = bool(protocol.get("leaderboard_table")) or has_table(name)
        commands.append(f"bench-ir report --protocol {shlex.quote(name)} --runs {run} --format markdown")
        if published:
            commands.append(f"bench-ir compare {run} --leaderboard")
    commands.append(f"bench-ir compare OTHER_RUN {run}")
    return commands
