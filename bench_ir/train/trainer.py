"""`bench-ir train` as a library call: recipe + model -> run directory with checkpoints, logs, validations and
the final weights.

Run directory::

    train_manifest.json      recipe (+ sha256), plan, model card, data, seed, steps, losses, versions, git revision
    checkpoints/last.pt      resumable state (model, optimizer, schedule, RNG, data position), atomic
    train_log.csv            step, epoch, lr, loss terms, samples/s (TensorBoard events in tensorboard/ if available)
    val/step-<N>/            validation runs (bench-ir run stores); val.csv: per-task means
    final.safetensors        the trained weights: bench-ir run --model M --checkpoint final.safetensors; its
                             metadata records the card's name and the arguments the network was built with
    model-card.yaml          the card with the --model-arg overrides (only when there are some)

One optimizer step consumes one global batch (``batch_size`` patches split over the processes). Resuming
restores weights, optimizer, RNG states and the position in the epoch; since every patch is a pure function of
(seed, epoch, index), N steps straight and N/2 + resume + N/2 give bit-identical weights (same device and
thread settings; on a GPU with ``exact``, whose steps run with deterministic cuDNN algorithms).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from bench_ir.acceleration import compile_error_in, is_out_of_memory, one_line_error, precision_settings
from bench_ir.cards import ModelCard
from bench_ir.checkpoints import TRAINED_ARGS_KEY, TRAINED_CARD_KEY, model_args_metadata, sha256_file
from bench_ir.folder_names import FINAL_WEIGHTS_NAME
from bench_ir.manifest import now_iso, portable_path
from bench_ir.resume import RunLock
from bench_ir.train.checkpointing import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    export_safetensors,
    load_training_checkpoint,
    restore_rng_state,
    save_atomic,
)
from bench_ir.train.distributed import gather_objects, mean_across, sync_buffers
from bench_ir.train.evaluation import ValidationResult, run_validation
from bench_ir.train.logs import TrainLog, truncate_csv
from bench_ir.train.objectives import Objective
from bench_ir.train.plan_notices import process_count_notice
from bench_ir.train.recipes import Recipe
from bench_ir.train.schedule import set_learning_rate
from bench_ir.train.session import (
    TrainOptions,
    TrainSession,
    batch_dependent_terms,
    check_resumable,
    open_session,
    previous_manifest,
    run_identity,
)
from bench_ir.train.stop_request import (
    CTRL_C,
    TERMINATED,
    TORCHRUN_REPEAT_S,
    StopRequest,
    TrainingStopped,
    ignore_interrupts,
    interrupt_reason,
)

__all__ = ["TrainProgress", "TrainOutcome", "NonFiniteLossError", "TrainingStopped", "train", "apply_update"]


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; training stopped before applying that step."""


class TrainProgress:
    """Receives training events on rank 0; the CLI renders them, the library never prints."""

    def start(self, info: dict[str, Any]) -> None: ...

    def step(self, row: dict[str, Any]) -> None: ...

    def validation(self, result: ValidationResult) -> None: ...

    def checkpoint(self, step: int, path: Path) -> None: ...

    def end(self, outcome: TrainOutcome) -> None: ...

    def stop_requested(self, reason: str) -> None:
        """Ctrl-C or SIGTERM (``reason``) in a single-process run: training stops after the current step, with a
        checkpoint."""


@dataclass
class TrainOutcome:
    """Where the run is, what it produced; ``model`` is the trained module (on its device, train mode)."""

    run_dir: Path
    final_weights: Path
    manifest: dict[str, Any]
    steps: int
    final_losses: dict[str, float]
    validations: list[ValidationResult] = field(default_factory=list)
    model: nn.Module | None = None


def apply_update(model: nn.Module, optimizer: torch.optim.Optimizer, total: torch.Tensor,
                 grad_clip: float | None) -> torch.Tensor | None:
    """One optimizer update from a fresh forward: back-propagate ``total``, clip the global (L2) gradient norm of
    ``model``'s parameters to ``grad_clip`` (``clip_grad_norm_``; None = no clipping), step. Returns the norm
    before clipping (None without clipping). The caller zeroes the gradients and sets the learning rate."""
    total.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) if grad_clip is not None else None
    optimizer.step()
    return norm


def _due(step: int, steps_per_epoch: int, every_steps: int | None, every_epochs: int | None) -> bool:
    if every_steps and step % every_steps == 0:
        return True
    return bool(every_epochs) and step % steps_per_epoch == 0 and (step // steps_per_epoch) % every_epochs == 0


class _Loop:
    """The training loop over one session (state: step, losses, validations)."""

    def __init__(self, session: TrainSession, progress: TrainProgress) -> None:
        self.s, self.progress = session, progress
        self.step = 0
        self.losses: dict[str, float] = {}
        self.validations: list[ValidationResult] = []
        self.last_checkpoint: int | None = None
        self.checkpoint_losses: dict[str, float] = {}  # the loss terms of step last_checkpoint
        self.out_of_time = False
        # under torchrun a process gets each signal twice within milliseconds (see stop_request)
        self.stop = StopRequest(progress.stop_requested,
                                same_request_within=TORCHRUN_REPEAT_S if session.context.world_size > 1 else 0.0)
        self.stopping: str | None = None  # the agreed reason to stop after this step (any process's signal)
        options, recipe = session.options, session.recipe
        self.main = session.context.is_main
        self.log = TrainLog(session.run_dir / "train_log.csv",
                            session.run_dir / "tensorboard" if options.tensorboard else None) if self.main else None
        self.log_every = options.log_every or recipe.log_every_steps
        self.val_enabled = options.validate and recipe.validation.protocol is not None
        self.loader = DataLoader(session.dataset, batch_sampler=session.sampler, num_workers=session.num_workers,
                                 pin_memory=session.device.type == "cuda", generator=torch.Generator(),
                                 worker_init_fn=ignore_interrupts)

    # ---- checkpoints
    def resume(self) -> None:
        s = self.s
        if not s.checkpoint_path.is_file():  # stopped before its first checkpoint: nothing to keep
            s.notices.append("the run stopped before its first checkpoint: training starts again from step 0")
            self._keep_logs_up_to(0)
            return
        payload = load_training_checkpoint(s.checkpoint_path)
        check_resumable(s, payload)
        s.model.load_state_dict(payload["model"])
        s.optimizer.load_state_dict(payload["optimizer"])
        self.step = int(payload["step"])
        self.losses = dict(payload.get("losses", {}))
        states = payload["rng"]
        if len(states) == s.context.world_size:
            if notice := restore_rng_state(states[s.context.rank], s.device):
                s.notices.append(notice)
        else:
            torch.manual_seed(s.options.seed + 7919 * self.step + s.context.rank)
            s.notices.append(process_count_notice(len(states), s.context.world_size, s.plan.batch_size,
                                                  batch_dependent_terms(s.model, s.card, s.plan)))
        self.last_checkpoint, self.checkpoint_losses = self.step, dict(self.losses)
        self._keep_logs_up_to(self.step)

    def _keep_logs_up_to(self, step: int) -> None:
        """Drop the log rows and validations of steps lost after ``step`` and record the resume in the manifest,
        which keeps the validations up to ``step`` (rank 0). The manifest's ``command`` and ``data.root`` stay those
        of the run's start; each ``resumed`` entry holds its own (where the later steps came from)."""
        s = self.s
        if self.main:
            for name in ("train_log.csv", "val.csv"):
                truncate_csv(s.run_dir / name, step)
            previous = previous_manifest(s.run_dir)
            segment = {"at": now_iso(), "step": step, "command": s.manifest["command"],
                       "data_root": s.manifest["data"]["root"]}
            s.manifest["created"] = previous.get("created", s.manifest["created"])
            s.manifest["command"] = previous.get("command", s.manifest["command"])
            s.manifest["data"]["root"] = (previous.get("data") or {}).get("root", s.manifest["data"]["root"])
            s.manifest["resumed"] = [*previous.get("resumed", []), segment]
            s.manifest["validation"] = [v for v in previous.get("validation") or []
                                        if isinstance(v, dict) and isinstance(v.get("step"), int) and v["step"] <= step]

    def save_checkpoint(self) -> None:
        s = self.s
        epoch, in_epoch = divmod(self.step, s.steps_per_epoch)
        rng = gather_objects(capture_rng_state(s.device), s.context)
        if self.main:
            payload = {
                "format": CHECKPOINT_FORMAT, "identity": run_identity(s), "step": self.step, "epoch": epoch,
                "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
                "schedule": {"name": s.recipe.schedule.name, "unit": s.recipe.schedule.unit,
                             "lr": [g["lr"] for g in s.optimizer.param_groups]},
                "data": {"seed": s.options.seed, "epoch": epoch, "step_in_epoch": in_epoch,
                         "steps_per_epoch": s.steps_per_epoch, "global_batch": s.plan.batch_size},
                "rng": rng, "world_size": s.context.world_size, "losses": self.losses,
            }
            save_atomic(payload, s.checkpoint_path)
        self.last_checkpoint, self.checkpoint_losses = self.step, dict(self.losses)  # before a Ctrl-C can come
        if self.main:
            self.progress.checkpoint(self.step, s.checkpoint_path)
        s.context.barrier()

    def steps_kept(self) -> dict[str, Any]:
        """The manifest's record of a run that ends before its target (Ctrl-C, an error): ``steps_done`` is the step
        its checkpoint holds (0 without one), which a resume continues from, ``last_losses`` that step's loss terms,
        and ``steps_lost`` (only when there are some) the steps done after it that were not kept."""
        kept = self.last_checkpoint or 0
        record: dict[str, Any] = {"steps_done": kept, "last_losses": self.checkpoint_losses}
        if self.step > kept:
            record["steps_lost"] = self.step - kept
        return record

    # ---- validation
    def validate(self) -> None:
        s = self.s
        result = run_validation(s.model, s.card, s.recipe.validation, s.run_dir, self.step,  # every rank scores
                                self.step // s.steps_per_epoch, s.device,                     # its share
                                s.options.val_data_root or s.options.data_root, s.options.val_limit,
                                context=s.context, exact=s.options.exact, compile=s.options.compile)
        if self.main:
            self.validations.append(result)
            s.manifest.setdefault("validation", []).append(  # as it goes: a stopped run keeps its validations
                {"step": result.step, "run_dir": portable_path(result.run_dir, {"run": s.run_dir}),
                 "tasks": result.tasks, "average": result.average})
            s.write_manifest()
            if self.log is not None and self.log.writer is not None:
                for task, values in result.tasks.items():
                    self.log.writer.add_scalar(f"val/{task}/psnr", values["psnr"], self.step)
                    self.log.writer.add_scalar(f"val/{task}/ssim", values["ssim"], self.step)
            self.progress.validation(result)
        s.context.barrier()

    # ---- one optimizer step
    def _autocast(self):
        s = self.s
        if s.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=s.device.type, dtype=s.autocast_dtype)

    def train_step(self, batch: dict[str, Any], objective: Objective) -> dict[str, float]:
        """One optimizer step on ``batch``; the mean loss terms over the processes. The step runs under the
        execution plan's cuDNN/TF32 switches (:func:`~bench_ir.acceleration.precision_settings`: deterministic
        algorithms for ``exact``, autotuning on the fast CUDA path); the caller's switches are back afterwards.
        In a single process a failing torch.compile (no C++ compiler, an operator it cannot handle) is stated and
        the step is taken eagerly, as every later one (under torchrun it stops the run: the processes could not
        agree on the fallback)."""
        with precision_settings(self.s.execution):
            try:
                return self._train_step(batch, objective)
            except Exception as err:
                if not self._fall_back_to_eager(err):
                    raise
            return self._train_step(batch, objective)

    def _fall_back_to_eager(self, err: Exception) -> bool:
        s = self.s
        failure = compile_error_in(err)
        if failure is None or s.trained is s.model or s.context.world_size > 1 or is_out_of_memory(err):
            return False
        s.trained = s.model
        s.manifest["execution"]["compile_failed"] = failed = one_line_error(failure)
        notice = (f"torch.compile failed at step {self.step + 1} ({failed}); training goes on "
                  "eagerly (the same computation, without the compiled speed). --compile off skips the attempt")
        s.notices.append(notice)
        warnings.warn(notice, stacklevel=2)
        return True

    def _train_step(self, batch: dict[str, Any], objective: Objective) -> dict[str, float]:
        s = self.s
        lq = s.execution.place_input(batch["input"].to(s.device, non_blocking=True))
        gt = s.execution.place_input(batch["target"].to(s.device, non_blocking=True))
        s.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            terms = objective(s.trained, lq, gt, self.step)
        if "total" not in terms:
            raise ValueError(f"the objective returned {sorted(terms)} without a 'total' entry")
        names = ["total", *sorted(k for k in terms if k != "total")]
        values = mean_across(torch.stack([terms[k].detach().float().reshape(()) for k in names]), s.context)
        reduced = dict(zip(names, values.tolist(), strict=True))
        if not torch.isfinite(values).all():
            self._stop_non_finite(reduced)
        apply_update(s.model, s.optimizer, terms["total"], s.plan.grad_clip)
        return reduced

    def _stop_non_finite(self, terms: dict[str, float]) -> None:
        s = self.s
        shown = ", ".join(f"{k}={v:.6g}" for k, v in terms.items())
        where = (f"the last good checkpoint is {s.checkpoint_path} (step {self.last_checkpoint}); resume from it "
                 "with --resume" if self.last_checkpoint is not None else "no checkpoint was written yet")
        s.manifest.update(status="failed", failure=f"non-finite loss at step {self.step + 1}: {shown}",
                          finished=now_iso())
        s.write_manifest()
        raise NonFiniteLossError(f"step {self.step + 1} (epoch {self.step // s.steps_per_epoch}): non-finite loss "
                                 f"({shown}); training stopped before this step was applied; {where}")

    # ---- the loop
    def _agree_to_stop(self, deadline: float | None) -> bool:
        """At a step boundary, the same answer on every process: sets ``stopping`` when any process was asked to
        stop (Ctrl-C, SIGTERM; SIGTERM wins) and returns whether the --max-minutes budget is spent by rank 0's
        clock. One small collective under torchrun; none in a single process."""
        context = self.s.context
        time_up = deadline is not None and time.monotonic() >= deadline
        if context.world_size == 1:
            self.stopping = self.stop.reason
            return time_up
        flags = torch.tensor([float(self.stop.requested and not self.stop.terminated), float(self.stop.terminated),
                              float(time_up and context.rank == 0)], device=self.s.device)
        ctrl_c, terminated, time_up = (mean_across(flags, context) > 0).tolist()
        if terminated or ctrl_c:
            self.stopping = TERMINATED if terminated else CTRL_C
            if not self.stop.requested:  # another process was signalled: say so here too
                self.progress.stop_requested(self.stopping)
        return bool(time_up)

    def _stops_here(self, deadline: float | None) -> bool:
        """Whether the loop ends at this step boundary: a stop was asked for, or the time budget is spent."""
        self.out_of_time = self._agree_to_stop(deadline) and not self.stopping
        return bool(self.stopping) or self.out_of_time

    def run(self) -> None:
        """Train to the target step, to the --max-minutes budget, or to the step boundary after Ctrl-C or SIGTERM
        (which writes a checkpoint of that step and raises TrainingStopped)."""
        with self.stop:
            self._run()
            if self.stopping and self.step < self.s.total_steps:
                if self.last_checkpoint != self.step:
                    self.save_checkpoint()
                raise TrainingStopped(terminated=self.stopping == TERMINATED)

    def _run(self) -> None:
        s, recipe = self.s, self.s.recipe
        minutes = s.options.max_minutes
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        ckpt_steps = s.options.checkpoint_every or recipe.checkpoint.every_steps
        ckpt_epochs = None if s.options.checkpoint_every else recipe.checkpoint.every_epochs
        spec = recipe.validation
        samples_since, last_time = 0, time.perf_counter()
        if self.val_enabled and 0 < self.step < s.total_steps and _due(self.step, s.steps_per_epoch, spec.every_steps,
                                                                       spec.every_epochs):
            validated = [v["step"] for v in s.manifest.get("validation") or []]  # rank 0's record decides
            if s.context.broadcast(self.step not in validated):  # stopped before it (or killed during it)
                self.validate()
        while self.step < s.total_steps:
            epoch, in_epoch = divmod(self.step, s.steps_per_epoch)
            s.sampler.set_epoch(epoch, in_epoch)
            for batch in batches_of(self.loader):
                lr_factor = set_learning_rate(s.optimizer, recipe.schedule, epoch, self.step)
                self.losses = self.train_step(batch, s.objective)
                self.step += 1
                samples_since += s.plan.batch_size
                if self.main and (self.step % self.log_every == 0 or self.step == s.total_steps):
                    now = time.perf_counter()
                    row = {"step": self.step, "epoch": epoch, "lr": s.optimizer.param_groups[0]["lr"],
                           "lr_factor": lr_factor, **self.losses,
                           "samples_per_s": samples_since / max(now - last_time, 1e-9)}
                    samples_since, last_time = 0, now
                    if self.log is not None:
                        self.log.write(row)
                    self.progress.step(row)
                if _due(self.step, s.steps_per_epoch, ckpt_steps, ckpt_epochs):
                    self.save_checkpoint()
                if self.step >= s.total_steps:  # finish() validates the last step
                    break
                # before a validation (minutes, where a scheduler kills 30 s after its SIGTERM): a stop skips it,
                # and the run validates that step when it is continued; out of time, finish() validates it
                if self._stops_here(deadline):
                    break
                if self.val_enabled and _due(self.step, s.steps_per_epoch, spec.every_steps, spec.every_epochs):
                    self.validate()
                    if self._stops_here(deadline):  # asked during the validation
                        break
            if self.out_of_time or self.stopping:
                break

    def finish(self) -> TrainOutcome:
        s = self.s
        sync_buffers(s.model, s.context)
        if self.last_checkpoint != self.step:
            self.save_checkpoint()
        validated = [v["step"] for v in s.manifest.get("validation") or []]  # rank 0's record, a resume's included
        if s.context.broadcast(self.val_enabled and (not validated or validated[-1] != self.step)):
            self.validate()  # every rank takes part, so every rank must decide as rank 0 does
        final = s.run_dir / FINAL_WEIGHTS_NAME
        if self.main:
            export_safetensors(s.model, final, {TRAINED_CARD_KEY: s.card.name, "recipe": s.recipe.name,
                                                TRAINED_ARGS_KEY: model_args_metadata(s.card.args),
                                                "step": str(self.step)})
            if self.out_of_time:
                s.manifest["stopped"] = {"reason": f"--max-minutes {s.options.max_minutes}", "step": self.step,
                                         "at": now_iso(), "resume": "continue with --resume and the same options"}
            s.manifest.update(
                status="stopped" if self.out_of_time else "complete", finished=now_iso(), steps_done=self.step,
                epochs_done=self.step / s.steps_per_epoch, final_losses=self.losses,
                final_weights={"path": final.name, "sha256": sha256_file(final)},
                validation=s.manifest.get("validation") or [])
            s.write_manifest()
            if self.log is not None:
                self.log.close()
        s.context.barrier()
        return TrainOutcome(s.run_dir, final, s.manifest, self.step, self.losses, self.validations, s.model)


def batches_of(loader: Iterable[Any]) -> Iterator[Any]:
    """The loader's batches. An error raised in a DataLoader worker (an unreadable image, say) is raised again as
    the worker raised it: torch puts the worker's whole traceback into the message of the error it re-raises."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as err:
            raise as_raised_in_worker(err) from None
        yield batch


def as_raised_in_worker(err: Exception) -> Exception:
    """``err`` with the message it had in its DataLoader worker (the last line of the worker's traceback that torch
    put into the message), of the same type where that type takes a message; other errors unchanged."""
    text = str(err)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return err
    last = [line for line in text.splitlines() if line.strip()][-1]
    message = last.split(f"{type(err).__name__}: ", 1)[-1]
    try:
        return type(err)(message)
    except Exception:  # noqa: BLE001 - a type that does not take one message
        return RuntimeError(message)


def train(recipe: str | Path | Recipe, model: str | Path | ModelCard = "mirage-t", data_root: str | Path | None = None,
          run_dir: str | Path | None = None, *, max_steps: int | None = None, max_minutes: float | None = None,
          device: str = "auto",
          dtype: str = "fp32", exact: bool = False, compile: str = "auto", resume: bool = False, seed: int = 0,
          epochs_from: str = "code", loss_from: str = "code",
          model_args: dict[str, Any] | None = None, batch_size: int | None = None, patch_size: int | None = None,
          num_workers: int | None = None, validate: bool = True, val_data_root: str | Path | None = None,
          val_limit: int | None = None, checkpoint_every: int | None = None, log_every: int | None = None,
          tensorboard: bool = True, registry: str | Path | None = None, runs_root: str | Path = "runs",
          command: list[str] | None = None, progress: TrainProgress | None = None,
          objective: Objective | None = None, init_weights: str | Path | None = None) -> TrainOutcome:
    """Train ``model`` (card name, YAML path or ModelCard) with ``recipe`` (name, YAML path or Recipe); see the
    module docstring for what ``run_dir`` (default ``<runs_root>/train/<time>-<model>-<recipe>``) receives.

    max_steps: stop after this many optimizer steps (the recipe's epochs otherwise). max_minutes: stop at the
    first step boundary after this many minutes of training (from the first step of this call; compile warm-up
    included, validation too), with a checkpoint and the final weights of that step; the manifest's status is then
    ``stopped`` and ``resume=True`` continues bit-exactly. device: "auto", "cpu",
    "cuda", "cuda:1"... (under torchrun each process takes its local GPU). dtype: "fp32" or "bf16" (autocast;
    losses in fp32). exact: eager reference computation (see bench_ir.acceleration); compile: "auto" (compiled
    forward, channels-last and fused AdamW on CUDA), "on" or "off". resume: continue ``run_dir`` from
    checkpoints/last.pt. seed: initialisation, data order, patches, noise. epochs_from / loss_from: "code"
    (official scripts, default) or "paper". model_args: card argument overrides (e.g. a smaller ``dim``).
    batch_size (global, split over processes) / patch_size: override the recipe. validate / val_data_root /
    val_limit: periodic validation on the recipe's protocol (test sets under ``val_data_root`` or ``data_root``).
    checkpoint_every / log_every: intervals in steps (default: the recipe's).
    objective: replaces the recipe's objective, ``objective(model, lq, gt, step) -> dict`` with ``total``.
    init_weights: a checkpoint (any format the card reads) to start from instead of a fresh initialisation
    (fine-tuning); its sha256 is part of the run's identity.

    Raises FileNotFoundError / DatasetNotFoundError for missing data, ValueError for impossible settings (e.g. a
    batch larger than the training set), TrainResumeError for a checkpoint of another run, NonFiniteLossError
    when a loss turns NaN or infinite.
    """
    settings = TrainOptions(
        data_root=data_root, run_dir=run_dir, runs_root=runs_root, max_steps=max_steps, max_minutes=max_minutes,
        device=device, dtype=dtype,
        exact=exact, compile=compile, resume=resume, seed=seed, epochs_from=epochs_from, loss_from=loss_from,
        model_args=dict(model_args or {}),
        batch_size=batch_size, patch_size=patch_size, num_workers=num_workers, validate=validate,
        val_data_root=val_data_root, val_limit=val_limit, checkpoint_every=checkpoint_every, log_every=log_every,
        tensorboard=tensorboard, registry=registry, command=command, init_weights=init_weights)
    session = open_session(recipe, model, settings)
    if objective is not None:
        session.objective = objective
        session.manifest["objective_override"] = getattr(objective, "__qualname__", type(objective).__qualname__)
    progress = progress if progress is not None and session.context.is_main else TrainProgress()
    lock = _lock_run_dir(session)
    try:
        return _train_locked(session, progress, settings)
    finally:
        if lock is not None:
            lock.release()


def _lock_run_dir(session: TrainSession) -> RunLock | None:
    """Rank 0 holds the run directory's lock while it trains (one writer per run, as for `bench-ir run`); a refusal
    is raised on every rank, so that no rank waits for the others forever."""
    def acquire() -> RunLock:
        Path(session.run_dir).mkdir(parents=True, exist_ok=True)
        return RunLock(session.run_dir, then=f"continue it with --resume --run-dir {session.run_dir}").acquire()

    return session.context.on_main(acquire)


def _train_locked(session: TrainSession, progress: TrainProgress, settings: TrainOptions) -> TrainOutcome:
    loop = _Loop(session, progress)
    if settings.resume:
        loop.resume()
    session.write_manifest()
    progress.start({"run_dir": session.run_dir, "total_steps": session.total_steps, "start_step": loop.step,
                    "steps_per_epoch": session.steps_per_epoch, "global_batch": session.plan.batch_size,
                    "world_size": session.context.world_size, "params": session.manifest["model"]["params"],
                    "items": len(session.dataset), "notices": list(session.notices),
                    "recipe": session.recipe.name, "model": session.card.display_name})
    try:
        loop.run()
        outcome = loop.finish()
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):  # the CLI names the run directory to resume and its checkpoint
            err.run_dir = session.run_dir  # type: ignore[attr-defined]
            err.checkpoint_step = loop.last_checkpoint  # type: ignore[attr-defined]
            err.step = loop.step  # type: ignore[attr-defined]  # the steps done: none lost past a checkpoint of it
        if session.manifest.get("status") == "running" and not isinstance(err, NonFiniteLossError):
            if isinstance(err, KeyboardInterrupt):
                session.manifest.update(status="interrupted", interrupted=now_iso(), reason=interrupt_reason(err))
            else:
                session.manifest.update(status="failed", failure=f"{type(err).__name__}: {err}", finished=now_iso())
            session.manifest.update(loop.steps_kept())
            session.write_manifest()
        if loop.log is not None:
            loop.log.close()
        raise
    progress.end(outcome)
    return outcome
