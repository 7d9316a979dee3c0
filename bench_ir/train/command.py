"""`bench-ir train`: parses options, calls :func:`bench_ir.train.train`, renders progress with rich.

Registered by bench_ir/cli.py as ``app.command("train")(train_command)``. Under torchrun only rank 0 prints.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from bench_ir.choices import CompileMode
from bench_ir.data.roots import data_root_or_env
from bench_ir.folder_names import RUN_CARD_NAME
from bench_ir.train.stop_request import TORCHRUN_REPEAT_S, TrainingStopped
from bench_ir.yamlio import yaml_problem

__all__ = ["train_command", "RichTrainProgress", "parse_model_args"]

_USER_ERRORS = (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError)

PROGRESS_LINE_EVERY_S = 30.0  # seconds between progress lines where stderr is no terminal (a log file, nohup, Slurm)


class TrainDtype(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class ValueSource(str, Enum):
    code = "code"
    paper = "paper"


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """``["dim=6", "num_blocks=[1,1,1,1]"]`` -> ``{"dim": 6, "num_blocks": [1, 1, 1, 1]}`` (values parsed as YAML)."""
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg expects KEY=VALUE, got {item!r}")
        try:
            parsed[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"--model-arg {item!r}: the value is not valid YAML ({yaml_problem(err)}); quote lists "
                             "for the shell, e.g. --model-arg 'num_blocks=[1,1,1,1]'") from None
    return parsed


def _terms(row: dict[str, Any]) -> str:
    skip = {"step", "epoch", "lr", "lr_factor", "samples_per_s", "total"}
    return " ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in skip and isinstance(v, float))


def continue_command(command: list[str], run_dir: Path, world_size: int = 1) -> str:
    """The training ``command`` (``bench-ir train ...`` as the user typed it) that continues the run in ``run_dir``:
    the same options plus ``--resume`` and ``--run-dir`` where they are missing, launched with ``torchrun`` over
    ``world_size`` processes when there were several, quoted for a POSIX shell."""
    words = list(command)
    if world_size > 1:
        words[:1] = ["torchrun", "--nproc-per-node", str(world_size), "-m", "bench_ir"]
    if "--resume" not in words:
        words.append("--resume")
    if not any(word == "--run-dir" or word.startswith("--run-dir=") for word in words):
        words += ["--run-dir", str(run_dir)]
    return shlex.join(words)


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(max(seconds, 0.0))))


class RichTrainProgress:
    """A step bar with the epoch, lr, loss terms and throughput; validations and checkpoints as lines. On a console
    that is no terminal (a log file, nohup, a Slurm log), where rich would draw the bar only at the end, the bar's
    facts as a line at the start, at the first logged step after every PROGRESS_LINE_EVERY_S seconds and at the last
    step: ``train: step 40/1000, 0:01:12 elapsed, ETA 0:28:48, ep 0 lr 1.00e-04 loss 0.1234 (...) 12.3 img/s``."""

    def __init__(self, console: Console, out: Console | None = None, test_data_root: Path | None = None,
                 model: str | None = None, registry: Path | None = None, command: list[str] | None = None) -> None:
        """``model`` and ``registry``: as the command was given them, for the evaluation command printed at the
        end (a card file by its path, as the user typed it); ``command``: the command line, for the command that
        continues a run stopped by --max-minutes."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console, self.out = console, out or console
        self.test_data_root = test_data_root
        self.model, self.registry = model, registry
        self.command = command or ["bench-ir", "train"]
        self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[status]}"), console=console, transient=False)
        self.task = None
        self.world_size = 1
        self.lines = not (console.is_terminal and not console.is_dumb_terminal)  # as rich's Live redraws
        self.total, self.first_step = 0, 0
        self.started = self.written = time.monotonic()
        self.shown: int | None = None  # the step of the last line
        self.status = ""  # of the last logged step

    def start(self, info: dict[str, Any]) -> None:
        self.world_size = int(info["world_size"])
        self.console.print(f"[bold]{info['model']}[/] with recipe [bold]{info['recipe']}[/]: {info['params']:,} "
                           f"parameters, {info['items']:,} training items, {info['steps_per_epoch']:,} steps/epoch, "
                           f"global batch {info['global_batch']} over {info['world_size']} process(es)",
                           highlight=False, soft_wrap=True)
        self.console.print(f"run directory: {info['run_dir']}", highlight=False, soft_wrap=True)
        for notice in info["notices"]:
            self.console.print(f"[yellow]note:[/] {notice}", highlight=False, soft_wrap=True)
        self.task = self.progress.add_task("train", total=info["total_steps"], completed=info["start_step"],
                                           status="resumed" if info["start_step"] else "")
        self.total, self.first_step = int(info["total_steps"]), int(info["start_step"])
        self.started = time.monotonic()
        if self.lines:
            self._line(self.first_step, "resumed" if self.first_step else "")
        else:
            self.progress.start()

    def step(self, row: dict[str, Any]) -> None:
        status = (f"ep {row['epoch']} lr {row['lr']:.2e} loss {row['total']:.4f} ({_terms(row)}) "
                  f"{row['samples_per_s']:.1f} img/s")
        self.progress.update(self.task, completed=row["step"], status=status)
        self.status = status
        if self.lines and (row["step"] >= self.total or time.monotonic() - self.written >= PROGRESS_LINE_EVERY_S):
            self._line(int(row["step"]), status)

    def _line(self, step: int, status: str) -> None:
        """``train: step 40/1000, 0:01:12 elapsed, ETA 0:28:48, STATUS``, flushed at once."""
        self.written = now = time.monotonic()
        self.shown = step
        elapsed = now - self.started
        eta = (0.0 if step >= self.total else None if step <= self.first_step
               else (self.total - step) * elapsed / (step - self.first_step))
        self.console.print(f"train: step {step}/{self.total}, {_clock(elapsed)} elapsed, ETA {_clock(eta)}"
                           f"{f', {status}' if status else ''}", highlight=False, markup=False, soft_wrap=True)
        self.console.file.flush()

    def validation(self, result) -> None:
        tasks = "  ".join(f"{t} {v['psnr']:.2f}/{v['ssim']:.3f}" for t, v in result.tasks.items())
        average = f"Average {result.average['psnr']:.2f} dB / {result.average['ssim']:.3f}; " if result.average else ""
        self.progress.console.print(f"validation @ step {result.step}: {average}{tasks}", highlight=False,
                                   soft_wrap=True)

    def checkpoint(self, step: int, path: Path) -> None:
        self.progress.console.print(f"[dim]checkpoint @ step {step}: {path}[/]", highlight=False, soft_wrap=True)

    def evaluate_command(self, manifest: dict[str, Any], run_dir: Path, weights: Path) -> str:
        """The `bench-ir run` that scores ``weights`` of the training run in ``run_dir`` (its ``manifest``): the
        card as the user gave it, or the run's model-card.yaml when --model-arg changed it."""
        from bench_ir.train.evaluation import evaluation_command

        card = run_dir / RUN_CARD_NAME  # written when --model-arg changed the card
        name = str(card) if card.is_file() else self.model or manifest["model"]["name"]
        validation = manifest["recipe"].get("resolved", {}).get("validation")
        return evaluation_command(validation, name, weights, self.test_data_root,
                                  registry=None if card.is_file() else self.registry)

    def end(self, outcome) -> None:
        if self.lines and self.shown != outcome.steps:  # stopped (--max-minutes, a signal) between two lines
            self._line(outcome.steps, self.status)
        self.stop()
        terms = ", ".join(f"{k} {v:.4g}" for k, v in outcome.final_losses.items())
        stopped = outcome.manifest.get("stopped")
        done = (f"stopped by {stopped['reason']} at step {outcome.steps:,} of {outcome.manifest['steps_target']:,}"
                if stopped else f"done: {outcome.steps} steps")
        self.out.print(f"{done}; final losses: {terms}", highlight=False, soft_wrap=True)
        command = self.evaluate_command(outcome.manifest, outcome.run_dir, outcome.final_weights)
        self.out.print(f"weights: {outcome.final_weights}\nevaluate: {command}", highlight=False, soft_wrap=True,
                       markup=False)
        if stopped:
            again = continue_command(self.command, outcome.run_dir, int(outcome.manifest.get("world_size") or 1))
            self.out.print(f"continue: {again}", highlight=False, soft_wrap=True, markup=False)

    def stop_requested(self, reason: str) -> None:
        second = ("a second signal" if self.world_size == 1 else  # torchrun forwards the first one again at once
                  f"a signal more than {TORCHRUN_REPEAT_S:g} s after this one")
        self.progress.console.print(f"[yellow]{reason}[/]: training stops after this step and writes its checkpoint "
                                    f"({second} stops at once, losing the steps since the last checkpoint)",
                                    highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if not self.lines:
            self.progress.stop()


def interrupted_message(err: KeyboardInterrupt, command: list[str], world_size: int = 1,
                        progress: RichTrainProgress | None = None) -> str:
    """What the CLI prints for a training ended by Ctrl-C or SIGTERM: the step its checkpoint holds (and whether steps
    done after it are lost), the command that continues it and (with ``progress``) the one that scores the
    checkpoint's weights (``err`` carries ``run_dir``, ``checkpoint_step`` and ``step``, the steps done, once the run
    directory exists)."""
    import json

    from bench_ir.folder_names import TRAIN_CHECKPOINT_NAME, TRAIN_MANIFEST_NAME

    run_dir = getattr(err, "run_dir", None)
    if run_dir is None:
        return "interrupted before the first step"
    run_dir = Path(run_dir)
    step = getattr(err, "checkpoint_step", None)
    if isinstance(err, TrainingStopped):
        kept = f"interrupted at step {step:,}: its checkpoint is written to {run_dir}"
    elif step is None:
        kept = f"interrupted: {run_dir} holds no checkpoint yet; continuing starts it again from step 0"
    elif getattr(err, "step", None) == step:
        kept = f"interrupted: {run_dir} keeps its checkpoint of step {step:,}, the last step done: nothing is lost"
    else:
        kept = f"interrupted: {run_dir} keeps its checkpoint of step {step:,}; later steps are lost"
    lines = [kept, f"continue: {continue_command(command, run_dir, world_size)}"]
    if step is not None and progress is not None:
        try:
            manifest = json.loads((run_dir / TRAIN_MANIFEST_NAME).read_text(encoding="utf-8"))
            evaluate = progress.evaluate_command(manifest, run_dir, run_dir / TRAIN_CHECKPOINT_NAME)
        except (OSError, ValueError, KeyError, AttributeError):  # the manifest could not be written or read
            pass
        else:
            lines.append(f"evaluate step {step:,}: {evaluate}")
    return "\n".join(lines)


def train_command(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="recipe name (registry/recipes), YAML file, or a "
                                        "run's train_manifest.json (the recipe that run resolved)")],
    model: Annotated[str, typer.Option("--model", "-m", help="model card name or YAML file")] = "mirage-t",
    data_root: Annotated[Path | None, typer.Option(help="folder holding the training sets (Train/...; default: "
                                                           "$BENCH_IR_DATA_ROOT)")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="run dir; default runs/train/<time>-<model>-<recipe>")] = None,
    runs_root: Annotated[Path, typer.Option(help="parent of default run directories")] = Path("runs"),
    max_steps: Annotated[int | None, typer.Option(help="stop after this many optimizer steps")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="stop at the first step boundary after M minutes of "
                                                      "training, with a checkpoint (continue with --resume)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[TrainDtype, typer.Option(help="fp32, or bf16 autocast")] = TrainDtype.fp32,
    exact: Annotated[bool, typer.Option("--exact", help="reference computation: eager fp32, deterministic cuDNN, "
                                        "no compile (the default on CUDA compiles the model)")] = False,
    compile: Annotated[CompileMode, typer.Option("--compile", help="torch.compile: auto (CUDA only), on, off")] = (
        CompileMode.auto),
    resume: Annotated[bool, typer.Option("--resume", help="continue --run-dir from its last checkpoint")] = False,
    seed: Annotated[int, typer.Option(help="seed of initialisation, data order, patches and noise")] = 0,
    epochs_from: Annotated[ValueSource, typer.Option(help="epochs of the official scripts (code) or the paper")]
    = ValueSource.code,
    loss_from: Annotated[ValueSource, typer.Option(help="loss weights of the official code or the paper")]
    = ValueSource.code,
    batch_size: Annotated[int | None, typer.Option(help="global batch (default: the recipe's)")] = None,
    patch_size: Annotated[int | None, typer.Option(help="training patch side (default: the recipe's)")] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader workers per process")] = None,
    val: Annotated[bool, typer.Option("--val/--no-val", help="periodic validation on the recipe's protocol")] = True,
    val_data_root: Annotated[Path | None, typer.Option(help="test sets for validation (default: --data-root)")]
    = None,
    val_limit: Annotated[int | None, typer.Option(help="images per task in validation (default: recipe)")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="checkpoint every N steps (default: recipe)")] = None,
    log_every: Annotated[int | None, typer.Option(help="log every N steps (default: recipe)")] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard/--no-tensorboard", help="also write TensorBoard")]
    = True,
    model_arg: Annotated[list[str] | None, typer.Option("--model-arg", help="override a card argument KEY=VALUE")]
    = None,
    registry: Annotated[Path | None, typer.Option(help="folder of model cards replacing the built-in one")] = None,
    init_weights: Annotated[Path | None, typer.Option(help="start from these weights (fine-tuning) instead of a "
                                                      "fresh initialisation")] = None,
) -> None:
    """Train a model with a published recipe (resumable; torchrun for several GPUs)."""
    from bench_ir.train.trainer import train

    main_process = int(os.environ.get("RANK", "0")) == 0
    console, err_console = Console(), Console(stderr=True)
    command = ["bench-ir", *sys.argv[1:]]
    progress = RichTrainProgress(err_console, out=console, test_data_root=val_data_root or data_root_or_env(data_root),
                                 model=model, registry=registry, command=command) if main_process else None
    try:
        train(recipe, model, data_root, run_dir, progress=progress, runs_root=runs_root, max_steps=max_steps,
              max_minutes=max_minutes,
              device=device, dtype=dtype.value, exact=exact, compile=compile.value, resume=resume, seed=seed,
              epochs_from=epochs_from.value, loss_from=loss_from.value, batch_size=batch_size,
              patch_size=patch_size, num_workers=workers,
              validate=val, val_data_root=val_data_root, val_limit=val_limit, checkpoint_every=checkpoint_every,
              log_every=log_every, tensorboard=tensorboard, model_args=parse_model_args(model_arg),
              registry=registry, command=command, init_weights=init_weights)
    except KeyboardInterrupt as err:
        if progress is not None:
            progress.stop()
        if main_process:
            err_console.print(interrupted_message(err, command, int(os.environ.get("WORLD_SIZE", "1")), progress),
                              highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(code=143 if getattr(err, "terminated", False) else 130) from None  # 128 + SIGTERM / SIGINT
    except _USER_ERRORS as err:
        if progress is not None:
            progress.stop()
        if main_process:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            from bench_ir.data.datasets import DatasetNotFoundError
            from bench_ir.train.session import ValidationDataNotFoundError  # its advice names the test sets' check

            if isinstance(err, DatasetNotFoundError) and not isinstance(err, ValidationDataNotFoundError):
                # the first missing training folder; data check lists them all
                check = ["bench-ir", "data", "check", "--recipe", recipe,
                         *(["--data-root", str(data_root)] if data_root is not None else [])]
                message += f"\n`{shlex.join(check)}` checks every training set of the recipe in one go"
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
