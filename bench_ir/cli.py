"""The `bench-ir` command line: parses arguments, calls the library, prints with rich. No logic of its own."""

from __future__ import annotations

import contextlib
import errno
import inspect
import json
import os
import sys
import time
import warnings
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench_ir.choices import CompileMode
from bench_ir.data.roots import (
    CHECKPOINT_DIR_ENV,
    DATA_ROOT_HINT,
    data_root_or_env,
    env_checkpoint_dir_note,
    env_data_root_note,
)

try:  # typer >= 0.26 carries its own copy of click (and no longer installs click)
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # typer < 0.26 runs on click; typer.Exit and typer.Abort are then click's own
    from click import ClickException as _ClickException

console = Console()
err_console = Console(stderr=True)

PROGRESS_LINE_EVERY_S = 30.0  # seconds between progress lines where stderr is no terminal (a log file, nohup, Slurm)

USER_ERRORS = (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError)
_OS_ERROR_HINTS = {errno.EROFS: "read-only file system; choose a writable --run-dir/--runs-root/--out",
                   errno.ENOSPC: "no space left on device; free space there, then run the same command again",
                   errno.ENOTDIR: "a part of this path is a file, not a folder",
                   errno.EACCES: "permission denied",
                   errno.EPERM: "operation not permitted (an immutable file, or one another user protects)",
                   errno.EISDIR: "is a folder, not a file"}


def _fail(err: BaseException) -> None:
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.errno in _OS_ERROR_HINTS:
        message = _describe_os_error(err)
    _print_error(message, err)
    raise typer.Exit(code=2)


def _print_error(message: str, err: BaseException) -> None:
    """`error: MESSAGE` on stderr, followed by the error's notes (e.g. how a stopped run continues)."""
    message = "\n".join([message, *getattr(err, "__notes__", ())])
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _describe_os_error(err: OSError) -> str:
    """One line naming the file and what went wrong, e.g. 'runs/x/manifest.json: read-only file system; ...'."""
    what = _OS_ERROR_HINTS.get(err.errno) or err.strerror or str(err)
    where = err.filename if err.filename is not None else "a file"
    return f"{where}: {what}" if err.filename2 is None else f"{where} -> {err.filename2}: {what}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Every Python warning raised while a command runs becomes one `warning:` line on stderr (no source line).
    A caller that records warnings (``warnings.catch_warnings(record=True)``, e.g. ``pytest.warns`` around a
    command run in-process) still receives them."""
    kind = "" if issubclass(category, UserWarning) else f" ({category.__name__})"
    err_console.print(f"[bold yellow]warning{kind}:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    recorder = getattr(warnings, "_showwarnmsg_impl", None)  # catch_warnings(record=True) puts list.append there
    if recorder is not None and not inspect.isfunction(recorder):
        recorder(warnings.WarningMessage(message, category, filename, lineno, file, line))


def unexpected_error_message(err: Exception) -> str:
    """The one line for an error bench-ir did not expect; a failure of torch.compile is named as such (its message
    can run to pages) with the option that avoids it."""
    debug = "(run `bench-ir --debug ...` for the traceback)"
    if "torch" in sys.modules:
        from bench_ir.acceleration import compile_error_in, one_line_error

        compile_error = compile_error_in(err)
        if compile_error is not None:
            return (f"torch.compile failed: {one_line_error(compile_error)}; --compile off runs the model "
                    f"eagerly {debug}")
    return f"unexpected {type(err).__name__}: {err} {debug}"


class _Commands(typer.core.TyperGroup):
    """Runs a command with warnings shown as `warning:` lines, and turns any error that reaches it into one line:
    file-system errors name the file (read-only, full disk, a file where a folder is needed), anything else
    is one summary line with a hint that `--debug` shows the traceback; the error's notes follow (a run stopped by
    a full disk says how it continues)."""

    def invoke(self, ctx: typer.Context):
        show, warnings.showwarning = warnings.showwarning, _show_warning
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _ClickException):  # usage errors: click prints them, exit code 2
            raise
        except BrokenPipeError:  # the reader of stdout left (`bench-ir ... | head`): click exits 1 without a word
            raise
        except Exception as err:
            if ctx.params.get("debug") or os.environ.get("BENCH_IR_DEBUG"):
                raise
            if isinstance(err, OSError):
                message, code = _describe_os_error(err), 2
            else:
                message, code = unexpected_error_message(err), 1
            _print_error(message, err)
            raise typer.Exit(code=code) from None
        finally:
            warnings.showwarning = show


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark and reproducibility harness for all-in-one image restoration.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect benchmark datasets.")
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        from bench_ir.manifest import version_text

        console.print(version_text(), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="show the full traceback of an unexpected error "
                                        "(also BENCH_IR_DEBUG=1)")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print bench-ir's version and git revision, the Python and library "
                                               "versions a run manifest records, the C/C++ compilers torch.compile "
                                               "needs, and exit")] = False,
) -> None:
    pass


def _data_root(given: Path | None) -> Path | None:
    """``given``, else ``$BENCH_IR_DATA_ROOT`` with a note on stderr naming the folder it chose."""
    chosen = data_root_or_env(given)
    if given is None and chosen is not None:
        err_console.print(env_data_root_note(chosen), highlight=False, markup=False, soft_wrap=True)
    return Path(chosen) if chosen is not None else None


def _warn_incomplete(run) -> None:
    """One warning line on stderr when a run's records do not cover what its manifest plans."""
    incomplete = run.incomplete()
    if incomplete:
        err_console.print(f"[bold yellow]warning:[/] {run.run_dir}: {incomplete}", highlight=False, soft_wrap=True)


def _fmt(value, digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------- run
class Dtype(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class LpipsNet(str, Enum):
    alex = "alex"
    vgg = "vgg"


class NoiseOrder(str, Enum):
    sorted = "sorted"
    listdir = "listdir"


def live_display(out: Console) -> bool:
    """Whether ``out`` redraws a rich live display (a terminal); elsewhere (a file, a pipe, nohup, a Slurm log) rich
    would write it once at the end, so the commands write progress lines (ProgressLines) instead."""
    return out.is_terminal and not out.is_dumb_terminal


def clock(seconds: float | None) -> str:
    """``0:01:12``; ``-:--:--`` when not known (as rich's TimeRemainingColumn)."""
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(max(seconds, 0.0))))


def print_line(out: Console, text: str) -> None:
    """One plain progress line, flushed at once (a log read while the command runs shows it)."""
    out.print(text, highlight=False, markup=False, soft_wrap=True)
    out.file.flush()


class ProgressLines:
    """Progress of one task as plain lines for a log: ``NAME: 40/100 images, 0:01:12 elapsed, ETA 0:01:48``, one at
    :meth:`start`, then at most one every PROGRESS_LINE_EVERY_S seconds and one at :meth:`end`. The ETA uses the
    images done since the start (not those a resumed run or kept outputs had before)."""

    def __init__(self, name: str, out: Console = err_console) -> None:
        self.name, self.out = name, out
        self.total = self.done = self.first = 0
        self.shown: int | None = None  # the images the last line showed
        self.started = self.written = time.monotonic()

    def start(self, total: int, done: int, extra: str = "") -> None:
        self.total, self.done, self.first = total, done, done
        self.started = time.monotonic()
        self.write(extra)

    def update(self, done: int, extra: str = "") -> None:
        self.done = done
        if time.monotonic() - self.written >= PROGRESS_LINE_EVERY_S:
            self.write(extra)

    def end(self, extra: str = "", done: int | None = None) -> None:
        """The last line, unless the last one written already showed these images."""
        self.done = self.done if done is None else done
        if self.shown != self.done:
            self.write(extra)

    def write(self, extra: str = "") -> None:
        self.written = now = time.monotonic()
        self.shown = self.done
        elapsed = now - self.started
        eta = (0.0 if self.done >= self.total else None if self.done <= self.first
               else (self.total - self.done) * elapsed / (self.done - self.first))
        print_line(self.out, f"{self.name}: {self.done}/{self.total} images, {clock(elapsed)} elapsed, "
                             f"ETA {clock(eta)}{f', {extra}' if extra else ''}")


class RichProgress:
    """Per-task progress bar with ETA and the running mean PSNR; on a stderr that is no terminal, lines instead
    (ProgressLines: ``derain: 40/100 images, 0:01:12 elapsed, ETA 0:01:48, PSNR 30.12 dB``)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from bench_ir.runner import RunningPsnr

        self.progress = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[psnr]}"), console=err_console,
                                 transient=False)
        self.live = live_display(err_console)
        self.lines: ProgressLines | None = None
        self.current = None
        self.psnr = RunningPsnr()

    def __enter__(self):
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def start_task(self, task, total: int, done: int) -> None:
        self.psnr = type(self.psnr)()  # each task its own mean
        self.current = self.progress.add_task(task.name, total=total, completed=done, psnr="")
        if not self.live:
            self.lines = ProgressLines(task.name)
            self.lines.start(total, done)

    def resumed(self, task, records: list[dict]) -> None:
        """The images a resumed run scored before count in the running mean, as in the final table."""
        for record in records:
            self.psnr.add(record)
        self.progress.update(self.current, psnr=self._mean())

    def _mean(self) -> str:
        """``PSNR 30.12 dB``; ``PSNR NaN (2 of 40 images non-finite)`` once an output had NaN/Inf values, as the
        final mean is then NaN (bench_ir.runner.RunningPsnr); empty before the first image."""
        psnr = self.psnr
        if psnr.mean is None:
            return ""
        if psnr.mean != psnr.mean:
            return f"PSNR NaN ({psnr.nonfinite} of {psnr.count} images non-finite)" if psnr.nonfinite else "PSNR NaN"
        return f"PSNR {psnr.mean:.2f} dB"

    def record(self, record: dict) -> None:
        self.psnr.add(record)
        self.progress.update(self.current, advance=1, psnr=self._mean())
        if self.lines is not None:
            self.lines.update(self.lines.done + 1, self._mean())

    def end_task(self, task) -> None:
        if self.lines is not None:
            self.lines.end(self._mean())
            self.lines = None


SAMPLE_DATASET_LABEL = "sample data (synthetic)"


def print_summary(manifest: dict, summary, average) -> None:
    """The paper-style table of a run: PSNR with 2 decimals, SSIM with 3, the protocol's Average last. The dataset
    column of a sample run says so instead of naming the benchmark sets it stands in for."""
    labels = {t["name"]: SAMPLE_DATASET_LABEL if manifest.get("sample") else t["label"]
              for t in manifest["protocol"]["tasks"]}
    has_lpips = "lpips" in summary and summary["lpips"].notna().any()
    table = Table(title=f"{manifest['model']['display_name']} on {manifest['protocol']['name']}"
                  f"{' (sample)' if manifest.get('sample') else ''}")
    for column in ("task", "dataset", "PSNR", "SSIM", *(["LPIPS"] if has_lpips else []), "images"):
        table.add_column(column, justify="left" if column in ("task", "dataset") else "right")
    for task, row in summary.iterrows():
        table.add_row(task, labels.get(task, task), _fmt(row["psnr"], 2), _fmt(row["ssim"], 3),
                      *([_fmt(row["lpips"], 4)] if has_lpips else []), str(int(row["images"])))
    if average is not None:
        tasks = manifest["protocol"]["average"]
        table.add_section()
        about = f"mean of {len(tasks)} tasks" if len(tasks) != 1 else f"the task {tasks[0]}"
        table.add_row("Average", about, _fmt(average["psnr"], 2), _fmt(average["ssim"], 3),
                      *([_fmt(average["lpips"], 4)] if has_lpips else []), "")
    console.print(table)


_TILE_HELP = ("tiled inference of every image with this tile size (pixels); without it, on CUDA, only an image "
              "that does not fit in GPU memory whole is tiled, and the output names it")


@app.command()
def run(
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="protocol name or YAML file")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="model card name or YAML file")] = "mirage-t",
    model_arg: Annotated[list[str] | None, typer.Option("--model-arg", help="override a card argument KEY=VALUE "
                                                        "(repeatable; values are YAML)")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="weights file")] = None,
    sample_checkpoint: Annotated[bool, typer.Option("--sample-checkpoint", help="the card's shipped sample "
                                                    "checkpoint on any data (a demonstration, not the published "
                                                    "model; the default with --sample)")] = False,
    data_root: Annotated[Path | None, typer.Option(help="folder holding the protocol's test sets (default: "
                                                           "$BENCH_IR_DATA_ROOT)")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="built-in sample data (synthetic, offline)")] = False,
    input_dir: Annotated[Path | None, typer.Option(help="ad-hoc: folder of degraded images")] = None,
    target_dir: Annotated[Path | None, typer.Option(help="ad-hoc: folder of clean images")] = None,
    pairing: Annotated[str | None, typer.Option(help="ad-hoc pairing rule: same_name, stem, sots, rain100l, "
                                                 "raindrop, outdoor_rain, position (docs/protocols/README.md); "
                                                 "default same_name. position pairs the n-th input with the n-th "
                                                 "target in natural order (2.png before 10.png, as natsorted) and "
                                                 "needs as many targets as inputs")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="run directory (default runs/<time>-<model>-<protocol>, "
                                                       "-sample added on the sample data)")] = None,
    runs_root: Annotated[Path, typer.Option(help="parent of default run directories")] = Path("runs"),
    resume: Annotated[bool, typer.Option("--resume", help="continue --run-dir (or the newest unfinished run of this "
                                         "setup under --runs-root), scoring only images without a record")] = False,
    limit: Annotated[int | None, typer.Option(help="at most N images per task (quick look)")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", help="only these tasks (repeatable)")] = None,
    convention: Annotated[str | None, typer.Option(help="metric convention (M1..M7), default per protocol")] = None,
    lpips: Annotated[bool, typer.Option("--lpips", help="also score LPIPS (weights from the torch cache)")] = False,
    lpips_net: Annotated[LpipsNet | None, typer.Option(help="LPIPS backbone (default: the convention's, alex)")] = None,
    lpips_weights: Annotated[Path | None, typer.Option(help="folder or file with LPIPS weights")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[Dtype, typer.Option(help="inference precision")] = Dtype.fp32,
    batch_size: Annotated[int | None, typer.Option(
        help="images per forward pass (same-size images only; default 1, 8 on the fast CUDA path)")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="reference computation: eager fp32, deterministic cuDNN, "
                                        "no compile (the default on CUDA is the compiled fast path)")] = False,
    compile: Annotated[CompileMode, typer.Option("--compile", help="torch.compile: auto (CUDA only), on, off")] = (
        CompileMode.auto),
    workers: Annotated[int | None, typer.Option(help="DataLoader workers (default: 0 on CPU, up to 8 on CUDA)")] = None,
    tile: Annotated[int | None, typer.Option(help=_TILE_HELP)] = None,
    tile_overlap: Annotated[int, typer.Option(help="overlap between tiles (pixels)")] = 32,
    pad: Annotated[str | None, typer.Option(help="override the size-fit padding: reflect|replicate|constant|none")] = (
        None),
    save_images: Annotated[bool, typer.Option("--save-images", help="write restored images (with their inputs and "
                                              "targets, a photo's EXIF orientation kept) to the run dir")] = False,
    label: Annotated[str | None, typer.Option(help="display label of this run in reports")] = None,
    noise_order: Annotated[NoiseOrder, typer.Option(
        help="order of the reference noise stream: sorted file names (deterministic) or os.listdir's (what the "
             "official script draws on this machine)")] = NoiseOrder.sorted,
    registry: Annotated[Path | None, typer.Option(help="folder of model cards replacing the built-in one")] = None,
    random_weights: Annotated[bool, typer.Option("--random-weights", help="allow a model without a checkpoint on real "
                                                 "data (randomly initialised, seeded by --seed)")] = False,
    seed: Annotated[int, typer.Option(help="seed of the random initialisation (with --random-weights)")] = 0,
) -> None:
    """Evaluate a model on a protocol (or on a folder pair) and store per-image results."""
    from bench_ir.runner import RunConfig, folder_protocol, next_commands, run_protocol
    from bench_ir.train.command import parse_model_args

    try:
        if input_dir or target_dir:
            if not (input_dir and target_dir):
                raise ValueError("--input-dir and --target-dir go together")
            for option, given in (("--protocol", protocol), ("--sample", sample), ("--data-root", data_root)):
                if given:
                    raise ValueError(f"{option} and --input-dir/--target-dir are two ways to choose the images; "
                                     "give one")
            chosen = folder_protocol(input_dir, target_dir, pairing=pairing or "same_name")
        elif pairing is not None:
            raise ValueError("--pairing applies to --input-dir/--target-dir (a protocol pairs its files by its "
                             "layouts)")
        elif protocol:
            chosen = protocol
            data_root = data_root if sample else _data_root(data_root)
        else:
            raise ValueError("give --protocol (see `bench-ir list protocols`) or --input-dir/--target-dir")
        if not lpips and (lpips_net is not None or lpips_weights is not None):
            raise ValueError("--lpips-net and --lpips-weights apply with --lpips (LPIPS is scored only when asked)")
        lpips_choice = (lpips_net.value if lpips_net else "default") if lpips else None
        config = RunConfig(protocol=chosen, model=model, model_args=parse_model_args(model_arg),
                           checkpoint=checkpoint, use_sample_checkpoint=sample_checkpoint, data_root=data_root,
                           sample=sample, run_dir=run_dir,
                           runs_root=runs_root, resume=resume, limit=limit, tasks=task,
                           convention=convention, lpips=lpips_choice, lpips_weights=lpips_weights,
                           device=device, dtype=dtype.value, batch_size=batch_size, num_workers=workers, tile=tile,
                           tile_overlap=tile_overlap, pad=pad, save_images=save_images, label=label,
                           exact=exact, compile=compile.value, noise_order=noise_order.value,
                           command=["bench-ir", *sys.argv[1:]], registry=registry,
                           random_weights=random_weights, seed=seed)
        main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 draws progress
        with RichProgress() if main_rank else contextlib.nullcontext(None) as progress:
            outcome = run_protocol(config, progress=progress)
    except KeyboardInterrupt as err:
        interrupted_in = getattr(err, "run_dir", None)  # RunInterrupted: scoring had started
        if interrupted_in is None:
            err_console.print("[yellow]interrupted[/] before any image was scored", highlight=False)
        else:
            err_console.print(f"[yellow]interrupted[/]: scored images are kept in {interrupted_in}; continue with "
                              f"the same command plus --resume --run-dir {interrupted_in}", highlight=False,
                              soft_wrap=True)
        from bench_ir.runner import RunTerminated

        terminated = isinstance(err, RunTerminated) or getattr(err, "terminated", False)  # SIGTERM: 128 + 15
        raise typer.Exit(code=143 if terminated else 130) from None
    except USER_ERRORS as err:
        _fail(err)
    if outcome.rank != 0:
        return
    print_summary(outcome.manifest, outcome.summary, outcome.average)
    for notice in outcome.notices:  # NaN/Inf outputs included
        console.print(f"[bold yellow]note:[/] {escape(notice)}", highlight=False)
    console.print(f"results: {outcome.run_dir}", highlight=False)
    console.print("next:\n" + "\n".join(f"  {line}" for line in next_commands(outcome.run_dir, outcome.manifest)),
                  highlight=False, markup=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------- restore
@app.command()
def restore(
    input_dir: Annotated[Path, typer.Option("--input-dir", "-i", help="folder of degraded images, or one image "
                                            "file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the restored PNGs (and restore.json)")],
    model: Annotated[str, typer.Option("--model", "-m", help="model card name or YAML file")] = "mirage-t",
    model_arg: Annotated[list[str] | None, typer.Option("--model-arg", help="override a card argument KEY=VALUE "
                                                        "(repeatable; values are YAML)")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="weights file")] = None,
    sample_checkpoint: Annotated[bool, typer.Option("--sample-checkpoint", help="the card's shipped sample "
                                                    "checkpoint (a demonstration, not the published model)")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[Dtype, typer.Option(help="inference precision")] = Dtype.fp32,
    exact: Annotated[bool, typer.Option("--exact", help="reference computation: eager fp32, deterministic cuDNN, "
                                        "no compile")] = False,
    compile: Annotated[CompileMode, typer.Option("--compile", help="torch.compile: on; auto and off run eagerly "
                                                 "(each image size would compile anew)")] = CompileMode.auto,
    tile: Annotated[int | None, typer.Option(help=_TILE_HELP)] = None,
    tile_overlap: Annotated[int, typer.Option(help="overlap between tiles (pixels)")] = 32,
    pad: Annotated[str | None, typer.Option(help="padding to the model's multiple: reflect|replicate|constant "
                                            "(default: the card's, else reflect)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="restore every image again (default: keep the "
                                            "outputs already in --out and continue)")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", help="also the images of every sub-folder, each into the "
                                            "same sub-folder of --out")] = False,
    registry: Annotated[Path | None, typer.Option(help="folder of model cards replacing the built-in one")] = None,
) -> None:
    """Restore a folder of degraded images (no targets, no metrics) into PNGs of the same size."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bench_ir.folder_restore import MANIFEST_NAME, RestoreConfig, restore_folder
    from bench_ir.train.command import parse_model_args

    try:
        config = RestoreConfig(input_dir=input_dir, out_dir=out, model=model, model_args=parse_model_args(model_arg),
                               checkpoint=checkpoint, use_sample_checkpoint=sample_checkpoint, device=device,
                               dtype=dtype.value, exact=exact, compile=compile.value, tile=tile,
                               tile_overlap=tile_overlap, pad=pad, overwrite=overwrite, recursive=recursive,
                               registry=registry, command=["bench-ir", *sys.argv[1:]])
        progress = Progress(TextColumn("restore"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[image]}"), console=err_console)
        bar = None
        lines = None if live_display(err_console) else ProgressLines("restore")

        def advance(name: str, done: int, total: int) -> None:  # drawn from the first image on, not before
            nonlocal bar
            if lines is not None:  # no terminal: a line at the start, every PROGRESS_LINE_EVERY_S and at the end
                if bar is None:
                    bar = True
                    lines.start(total, done)
                elif name:  # called before each image
                    lines.update(done)
                else:  # after the last one
                    lines.end(done=done)
                return
            if bar is None:
                progress.start()
                bar = progress.add_task("restore", total=total, completed=done, image=name)
            progress.update(bar, completed=done, image=name)

        try:
            outcome = restore_folder(config, on_image=advance)
        finally:
            if bar is not None and lines is None:
                progress.stop()
    except KeyboardInterrupt as err:
        err_console.print(f"[yellow]interrupted[/]: the images restored so far are kept in {out}; run the same "
                          "command again to continue", highlight=False, soft_wrap=True)
        from bench_ir.runner import RunTerminated

        raise typer.Exit(code=143 if isinstance(err, RunTerminated) else 130) from None
    except USER_ERRORS as err:
        _fail(err)
    kept = f" ({len(outcome.kept)} already there, kept; --overwrite redoes them)" if outcome.kept else ""
    console.print(f"restored {len(outcome.restored)} image(s) with {outcome.manifest['model']['display_name']} "
                  f"into {outcome.out_dir}{kept}", highlight=False, soft_wrap=True)
    if outcome.redone:
        lines = [f"  {name}: {reason}" for name, reason in sorted(outcome.redone.items())]
        err_console.print(f"note: {len(lines)} output(s) already there no longer matched their input and were "
                          "restored again (or removed, when the input cannot be read):\n" + "\n".join(lines),
                          highlight=False, markup=False, soft_wrap=True)
    for notice in outcome.notices:
        err_console.print(f"note: {notice}", highlight=False, markup=False, soft_wrap=True)
    if outcome.tiled:
        sizes = " / ".join(f"{size} px" for size in sorted(set(outcome.tiled.values()), reverse=True))
        err_console.print(f"warning: {len(outcome.tiled)} image(s) did not fit in GPU memory whole and were restored "
                          f"in overlapping tiles of {sizes} ({MANIFEST_NAME} lists them under auto_tiled): near tile "
                          "seams they differ from a whole-image restoration; --tile tiles every image alike",
                          highlight=False, soft_wrap=True)
    if outcome.unreadable:  # the others are restored; the exit code tells a script that some are missing
        lines = [escape(f"  {name}: {reason}") for name, reason in sorted(outcome.unreadable.items())]
        err_console.print(f"[bold red]error:[/] {len(lines)} input(s) could not be read and were skipped ("
                          f"{MANIFEST_NAME} lists them under unreadable; replace them and run the same command to "
                          "restore only those):\n" + "\n".join(lines), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------------------------- list
class ListWhat(str, Enum):
    models = "models"
    protocols = "protocols"
    runs = "runs"
    conventions = "conventions"
    suites = "suites"
    recipes = "recipes"


@app.command("list")
def list_(
    what: Annotated[ListWhat, typer.Argument(help="models | protocols | runs | conventions | suites | recipes")],
    details: Annotated[bool, typer.Option("--details", help="models, protocols: each described in full")] = False,
    runs_root: Annotated[Path, typer.Option(help="where runs are stored")] = Path("runs"),
    registry: Annotated[Path | None, typer.Option(help="folder of model cards")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="runs: only the runs of this model card name "
                                              "(evaluation and training runs)")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="runs: only the runs on this protocol "
                                                 "name (evaluation runs only)")] = None,
) -> None:
    """List registered models, protocols, metric conventions, shipped suites, training recipes or stored runs."""
    from bench_ir import listing

    try:
        for option, given, applies in (("--details", details, (ListWhat.models, ListWhat.protocols)),
                                       ("--registry", registry is not None, (ListWhat.models,)),
                                       ("--model", model is not None, (ListWhat.runs,)),
                                       ("--protocol", protocol is not None, (ListWhat.runs,))):
            if given and what not in applies:  # never ignored without a word
                raise ValueError(f"{option} applies to {' and '.join(f'`list {w.value}`' for w in applies)}, not "
                                 f"`list {what.value}`")
        if what is ListWhat.models:
            for renderable in listing.models_renderables(registry, details):
                console.print(renderable)
        elif what is ListWhat.protocols:
            for renderable in listing.protocols_renderables(details):
                console.print(renderable)
        elif what is ListWhat.conventions:
            console.print(listing.conventions_table())
        elif what is ListWhat.suites:
            console.print(listing.suites_table())
        elif what is ListWhat.recipes:
            console.print(listing.recipes_table())
        else:
            console.print(listing.runs_table(runs_root, model=model, protocol=protocol))
            training = listing.training_runs_table(runs_root, model=model) if protocol is None else None
            suites = listing.suite_dirs_table(runs_root) if model is None and protocol is None else None
            for table in (training, suites):
                if table is not None:
                    console.print(table)
    except USER_ERRORS as err:
        _fail(err)


# ------------------------------------------------------------------------------------------- export
class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.csv,
) -> None:
    """Print a run's per-image records (stable columns) as CSV or JSON.

    JSON has no NaN or infinity: those values are null there (CSV writes inf and leaves NaN empty).

    A null PSNR with nonfinite false: the output equals its target (PSNR inf); true: the output had NaN/Inf.

    Exit code 0; 1 when the run failed (manifest status failed): the records it has are still printed and its error
    is a warning on stderr; 2 when RUN_DIR is no run directory."""
    from bench_ir.results import failed_run_warning, load_run, records_as_csv, records_as_json

    try:
        loaded = load_run(run_dir).require_scores("export")
    except USER_ERRORS as err:
        _fail(err)
    failure = failed_run_warning(loaded)
    if failure:
        err_console.print(f"[bold yellow]warning:[/] {escape(failure)}", highlight=False, soft_wrap=True)
    _warn_incomplete(loaded)
    if format is ExportFormat.csv:
        sys.stdout.write(records_as_csv(loaded.records))
    else:
        sys.stdout.write(records_as_json(loaded.records) + "\n")
    if failure:
        raise typer.Exit(code=1)


# ------------------------------------------------------------------------------------------ convert
@app.command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="official checkpoint (.ckpt, .pth, .safetensors)")],
    out: Annotated[Path, typer.Argument(help="output .safetensors file (a .json sidecar is written beside it)")],
    model: Annotated[str, typer.Option("--model", "-m", help="model card the checkpoint belongs to")] = "mirage-t",
    model_arg: Annotated[list[str] | None, typer.Option("--model-arg", help="override a card argument KEY=VALUE "
                                                        "(repeatable; values are YAML), as run and restore take it; "
                                                        "recorded in the sidecar")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="store weights in half precision")] = False,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="fully unpickle the checkpoint (can run code "
                                               "from the file; only for files from a source you trust)")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output and its sidecar (without "
                                            "it an existing output is an error)")] = False,
    strip_prefix: Annotated[list[str] | None, typer.Option("--strip-prefix", help="remove this key prefix too, e.g. "
                                                           "model. (repeatable; added to the card's "
                                                           "strip_prefixes)")] = None,
) -> None:
    """Convert an official checkpoint to safetensors plus a JSON provenance sidecar.

    The sidecar records the source file's sha256, the entry of the file that held the weights (weights_key, e.g.
    params_ema), the key prefixes actually removed (stripped_prefixes) and the --model-arg values (model_args).
    An existing output is refused unless --overwrite; the output is never left without its sidecar."""
    from bench_ir.cards import get_card
    from bench_ir.checkpoints import convert_checkpoint
    from bench_ir.train.command import parse_model_args

    try:
        info = convert_checkpoint(checkpoint, out, get_card(model), dtype="fp16" if fp16 else None,
                                  trust_pickle=trust_pickle, overwrite=overwrite, strip_prefixes=strip_prefix or (),
                                  model_args=parse_model_args(model_arg))
    except USER_ERRORS as err:
        _fail(err)
    console.print(f"wrote {out} ({info.get('tensors', '?')} tensors) and {out}.json", highlight=False)


# --------------------------------------------------------------------------------------- data check
@data_app.command("check")
def data_check(
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="protocol name or YAML file: check its "
                                                 "test sets")] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="training recipe name or YAML file: check its "
                                               "training sets, as `train` reads them")] = None,
    data_root: Annotated[Path | None, typer.Option(help="folder holding the test (or training) sets (default: "
                                                           "$BENCH_IR_DATA_ROOT)")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", help="only these tasks (repeatable), as `run --task` "
                                                   "scores them")] = None,
    patch_size: Annotated[int | None, typer.Option(help="--recipe: training patch size (default: the recipe's), "
                                                   "as `train --patch-size`")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check a dataset folder against a protocol's test sets or a training recipe's training sets.

    --protocol: layout, counts, pairing, readability and sizes, as `run` reads them. --recipe: folders, list files,
    pairing, every image's header and its size against the training patch, as `train` reads them."""
    from bench_ir import listing

    try:
        if (protocol is None) == (recipe is None):
            raise ValueError("give --protocol (test sets) or --recipe (training sets)"
                             + (", not both" if protocol is not None else ""))
        if protocol is not None:
            from bench_ir.data.check import check_protocol
            from bench_ir.data.datasets import needs_data_root
            from bench_ir.protocol import load_protocol

            if patch_size is not None:
                raise ValueError("--patch-size applies to --recipe (training patches), not to a protocol")
            loaded = load_protocol(protocol)
            data_root = _data_root(data_root)
            if data_root is None and needs_data_root(loaded.select_tasks(task)):
                raise ValueError(f"--protocol needs the folder holding its test sets: {DATA_ROOT_HINT}")
            checks = check_protocol(loaded, data_root, tasks=task)
            renderables = listing.data_check_renderables(checks)
        else:
            from bench_ir.counts import check_counts
            from bench_ir.train.data import training_data_root
            from bench_ir.train.data_check import check_training_data, validation_data_check
            from bench_ir.train.recipes import load_recipe

            check_counts([("--patch-size", patch_size, 1)])
            loaded = load_recipe(recipe)
            root = training_data_root(loaded, _data_root(data_root) if loaded.needs_data_root else data_root)
            checks = check_training_data(loaded, root, patch_size, tasks=task)
            renderables = listing.train_data_check_renderables(checks, validation_data_check(loaded, root))
    except USER_ERRORS as err:
        _fail(err)
    if as_json:
        sys.stdout.write(json.dumps([c.to_dict() for c in checks], indent=2, default=str) + "\n")
    else:
        for renderable in renderables:
            console.print(renderable, soft_wrap=isinstance(renderable, str))  # paths in findings stay whole
    if not all(c.ok for c in checks):
        raise typer.Exit(code=1)


# ------------------------------------------------------------------------------------------ profile
class ProfileProgress:
    """A status line on stderr (terminals only) naming the profiling stage: FLOPs, warm-up, timed k/N, training."""

    STAGES = {"flops": "counting FLOPs", "warm-up": "warm-up forward", "timed": "timed forward",
              "train": "training step"}

    def __init__(self, model: str) -> None:
        self.model = model
        self.status = err_console.status(f"{model}: starting", spinner="dots")

    def __enter__(self) -> ProfileProgress:
        self.status.start()
        return self

    def __exit__(self, *exc) -> None:
        self.status.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        what = self.STAGES.get(stage, stage)
        count = f" {min(done + 1, total)}/{total}" if stage in ("warm-up", "timed") and total else ""
        self.status.update(f"{self.model}: {what}{count}")


@app.command()
def profile(
    model: Annotated[str | None, typer.Option("--model", "-m", help="model card name or YAML file")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="profile every registered model")] = False,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="weights (optional)")] = None,
    size: Annotated[int, typer.Option(help="input height and width in pixels")] = 224,
    batch: Annotated[int, typer.Option(help="batch size for memory, latency and throughput")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    dtype: Annotated[Dtype, typer.Option(help="precision")] = Dtype.fp32,
    train: Annotated[bool, typer.Option("--train", help="also one training step at --train-batch x "
                                        "--train-size^2")] = False,
    train_batch: Annotated[int, typer.Option(help="--train: images per training step")] = 32,
    train_size: Annotated[int, typer.Option(help="--train: height and width of the training images in pixels")] = 128,
    exact: Annotated[bool, typer.Option("--exact", help="time the eager reference path (default on CUDA: the "
                                        "compiled fast path of `run`)")] = False,
    compile: Annotated[CompileMode, typer.Option("--compile", help="torch.compile: auto (CUDA only), on, off")] = (
        CompileMode.auto),
    repeats: Annotated[int | None, typer.Option(help="timed forwards (default 20 on CUDA, 5 on the CPU)")] = None,
    warmup: Annotated[int | None, typer.Option(help="untimed warm-up forwards (default 5 on CUDA, 1 on the CPU)")] = (
        None),
    runs_root: Annotated[Path, typer.Option(help="where profile runs are stored")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="print one machine-readable object")] = False,
    registry: Annotated[Path | None, typer.Option(help="folder of model cards")] = None,
) -> None:
    """Parameters, FLOPs (fvcore: one multiply-add = one FLOP), peak GPU memory and latency; stored as a run."""
    from bench_ir.cards import list_models
    from bench_ir.profile_run import efficiency_report_command, profile_and_store
    from bench_ir.profiling import ProfileError, profile_to_markdown

    try:
        if all_models == (model is not None):
            raise ValueError("give either --model NAME or --all")
        if all_models and checkpoint is not None:
            raise ValueError("--checkpoint holds the weights of one model and --all profiles every registered "
                             "model: give --model NAME with --checkpoint FILE, or --all without --checkpoint")
        names = [n for n in list_models(registry=registry) if n != "input"] if all_models else [model]
        results = []
        for name in names:
            with ProfileProgress(name) as progress:
                result, folder = profile_and_store(name, checkpoint=checkpoint, size=size, batch=batch,
                                                   device=device, dtype=dtype.value, train=train,
                                                   train_batch=train_batch, train_size=train_size, repeats=repeats,
                                                   warmup=warmup, runs_root=runs_root, registry=registry,
                                                   command=["bench-ir", *sys.argv[1:]], exact=exact,
                                                   compile=compile.value, progress=progress)
            results.append((result, folder))
    except (ProfileError, *USER_ERRORS) as err:
        _fail(err)
    if as_json:
        payload = [{**r.to_dict(), "run_dir": str(f)} for r, f in results]
        sys.stdout.write(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=str) + "\n")
        return
    sys.stdout.write(profile_to_markdown([r for r, _ in results]).rstrip("\n") + "\n")
    for result, folder in results:
        for note in result.notes:
            console.print(f"note ({result.model}): {note}", highlight=False, markup=False)
        console.print(f"stored: {folder}", highlight=False)
    console.print(f"next: {efficiency_report_command([folder for _, folder in results])}", highlight=False,
                  markup=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------- report
class ReportFormat(str, Enum):
    latex = "latex"
    html = "html"
    markdown = "markdown"
    csv = "csv"


@app.command()
def report(
    runs: Annotated[list[Path] | None, typer.Argument(help="run directories to place in the table, or folders "
                                                      "of runs (each: its runs made with the protocol)")] = None,
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="protocol (or 'efficiency')")] = "5deg",
    format: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.markdown,
    out: Annotated[Path | None, typer.Option(help="write to this file instead of printing")] = None,
    leaderboard: Annotated[bool | None, typer.Option("--leaderboard/--no-leaderboard", help="include the published "
                                                     "rows; default: where a leaderboard table holds the protocol "
                                                     "(your own protocol: your runs alone)")] = None,
    extra_runs: Annotated[list[Path] | None, typer.Option("--runs", help="run directory, or a folder of runs "
                                                          "(repeatable)")] = None,
    standalone: Annotated[bool, typer.Option("--standalone", help="LaTeX: a whole document that compiles as it "
                                             "is")] = False,
    caption: Annotated[str | None, typer.Option(help="table caption (default: protocol and sources)")] = None,
    label: Annotated[str | None, typer.Option(help="LaTeX label (default: tab:bench-ir-PROTOCOL)")] = None,
    delta: Annotated[bool, typer.Option("--delta", help="published, measured and Δ per cell for runs of models "
                                        "with a published row")] = False,
    tol_psnr: Annotated[float, typer.Option(help="--delta: flag |Δ PSNR| above this (dB)")] = 0.05,
    tol_ssim: Annotated[float, typer.Option(help="--delta: flag |Δ SSIM| above this")] = 0.002,
    profile: Annotated[bool, typer.Option("--profile", help="compute params and FLOPs (CPU) of runs without a "
                                          "profile at --profile-size, stored under --runs-root")] = False,
    profile_size: Annotated[int, typer.Option(help="--profile: input height and width in pixels (a stored profile "
                                              "of another size is not reused)")] = 224,
    runs_root: Annotated[Path | None, typer.Option(help="where to look for (and --profile stores) profile runs"
                                                   "; default runs")] = None,
    chart_out: Annotated[Path | None, typer.Option(help="also write the efficiency chart as PATH.pdf and "
                                                   "PATH.svg")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="CSV: unrounded values")] = False,
) -> None:
    """Render the paper table of a protocol: published rows plus your runs (never recomputes a metric).

    A folder that holds run directories (such as runs/) stands for its runs made with the protocol."""
    from bench_ir.protocol import resolve_protocol_name
    from bench_ir.report import Tolerance, build_report
    from bench_ir.report.run_folders import expand_run_folders

    try:
        protocol_name = resolve_protocol_name(protocol)  # a protocol file goes by its name, as in its runs
        run_dirs, folders = expand_run_folders([*(runs or []), *(extra_runs or [])], protocol_name)
        for folder in folders:
            err_console.print(f"note: {folder.describe(protocol_name)}", highlight=False, soft_wrap=True,
                              markup=False)
        root = runs_root if runs_root is not None else (Path("runs") if profile or Path("runs").is_dir() else None)
        text = build_report(protocol, run_dirs, fmt=format.value, out=out,
                            leaderboard=leaderboard, standalone=standalone, caption=caption, label=label,
                            delta=Tolerance(psnr=tol_psnr, ssim=tol_ssim) if delta else None, profile=profile,
                            runs_root=root, raw=raw, chart_out=chart_out, profile_size=profile_size)
    except USER_ERRORS as err:
        _fail(err)
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        console.print(f"wrote {out}", highlight=False)
    if chart_out is not None:
        console.print(f"wrote {chart_out.with_suffix('.pdf')} and {chart_out.with_suffix('.svg')}", highlight=False)


# ------------------------------------------------------------------------------------------ compare
class CompareFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


class ImageMetric(str, Enum):
    PSNR = "PSNR"
    SSIM = "SSIM"
    LPIPS = "LPIPS"


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="baseline run directory (A)")],
    run_b: Annotated[Path | None, typer.Argument(help="run directory compared with A (B)")] = None,
    leaderboard: Annotated[bool, typer.Option("--leaderboard", help="rank RUN_A among the published rows")] = False,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 10000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    confidence: Annotated[float, typer.Option(help="confidence level of the interval")] = 0.95,
    format: Annotated[CompareFormat, typer.Option("--format", "-f", help="table (80 columns), or csv, json, "
                                                  "markdown for machines")] = CompareFormat.table,
    images: Annotated[int | None, typer.Option("--images", help="also list, per task, the N paired images where B "
                                               "loses most against A and the N where it gains most")] = None,
    image_metric: Annotated[ImageMetric, typer.Option(help="the metric --images ranks the images by")] = (
        ImageMetric.PSNR),
) -> None:
    """Per-task paired deltas B - A with bootstrap confidence intervals, or a run's rank on the leaderboard."""
    from bench_ir import compare_output

    try:
        from bench_ir.counts import check_counts

        check_counts([("--seed", seed, 0)])  # NumPy refuses a negative seed without naming the option
        ranked = paired = changes = None
        if images is not None and run_b is None:
            raise ValueError("--images lists per-image changes between two runs: give RUN_B")
        from bench_ir.results import load_run

        first = load_run(run_a)  # once, for every comparison below
        second = load_run(run_b) if run_b is not None else None
        if leaderboard or second is None:
            from bench_ir.compare import rank_against_leaderboard

            ranked = rank_against_leaderboard(first)
        if second is not None:
            from bench_ir.compare import compare_runs

            paired = compare_runs(first, second, n_boot=n_boot, seed=seed, confidence=confidence)
            if images is not None:
                from bench_ir.compare import largest_image_changes

                changes = largest_image_changes(first, second, images, image_metric.value)
    except USER_ERRORS as err:
        _fail(err)
    if format is not CompareFormat.table:
        sys.stdout.write(compare_output.compare_text(format.value, paired=paired, ranked=ranked, images=changes))
        if format is CompareFormat.csv:  # stdout stays pure CSV; what its columns do not say goes to stderr
            for line in compare_output.csv_warnings(paired, ranked):
                err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
        return
    if ranked is not None:
        console.print(compare_output.rank_table(ranked))
        for line in compare_output.rank_explanation(ranked):
            console.print(line, highlight=False, markup=False)
    if paired is not None:
        console.print(compare_output.paired_table(paired))
        for line in compare_output.paired_notes(paired):
            console.print(line, highlight=False, markup=False)
    if changes is not None:
        console.print()
        console.print(compare_output.image_changes_table(changes))
        console.print(compare_output.saved_images_note(run_a, run_b), highlight=False, markup=False)


# --------------------------------------------------------------------------------------------- docs
@app.command()
def docs(
    protocols: Annotated[list[Path] | None, typer.Argument(help="your protocol YAML files, or folders of them "
                                                           "(default: the shipped protocols)",
                                                           show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="folder for the generated pages and their index README.md "
                                             "(default: the checkout's docs/protocols for the shipped protocols, "
                                             "wherever the command runs; required with your own files)",
                                             show_default=False)] = None,
) -> None:
    """Write one Markdown page per protocol YAML and an index: the shipped ones (docs/protocols) or your own files.

    Without files it regenerates docs/protocols of the checkout bench-ir runs from (beside its bench_ir package) from
    protocols/*.yaml; with protocol files or folders of them it writes their pages into --out."""
    from bench_ir.protocol_docs import shipped_protocol_pages, write_protocol_pages

    try:
        if protocols and out is None:
            raise ValueError("give --out FOLDER for the pages of your protocol files (docs/protocols holds the "
                             "shipped protocols' pages and index)")
        paths = write_protocol_pages(out or shipped_protocol_pages(), protocols or None)
    except USER_ERRORS as err:
        _fail(err)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


# ----------------------------------------------------------------------------------------- validate
@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="model card, protocol, training recipe or suite YAML files, "
                                                "or folders of them (e.g. registry)")],
    import_factory: Annotated[bool, typer.Option("--import", help="import each card's factory and named hooks (runs "
                                                 "their modules' code) and check its args against the real "
                                                 "signature")] = False,
) -> None:
    """Validate model cards, protocol, recipe and suite files without running them (code statically unless --import)."""
    from bench_ir.validation import spec_files, validate_file

    try:
        paths = spec_files(files)
    except USER_ERRORS as err:
        _fail(err)
    failed = False
    for path in paths:
        notes: list[str] = []
        try:
            kind, name = validate_file(path, import_factory=import_factory, notes=notes)
            console.print(f"[green]ok[/] {escape(str(path))}: {kind} '{escape(name)}'", highlight=False)
        except USER_ERRORS as err:
            failed = True
            err_console.print(f"[bold red]invalid[/] {escape(str(err.args[0] if isinstance(err, KeyError) else err))}",
                              highlight=False, soft_wrap=True)
        for note in notes:
            console.print(f"[bold yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(code=1)


# -------------------------------------------------------------------------------------------- suite
suite_app = typer.Typer(no_args_is_help=True, help="The whole matrix of a suite file (entries × protocols): "
                        "run (resumable; local, one worker per GPU, or Slurm), status, report.")
app.add_typer(suite_app, name="suite")


class LauncherKind(str, Enum):
    local = "local"
    node = "node"
    slurm = "slurm"


_STATE_STYLE = {"complete": "green", "outdated": "yellow", "running": "cyan", "failed": "red", "missing": "red",
                "interrupted": "yellow", "pending": "dim"}


def _suite_overview(progress) -> Table:
    """Cells with state, images and reason; the caption counts states and gives the ETA."""
    counts = progress.counts()
    eta = progress.eta_seconds()
    summary = " · ".join(f"{counts.get(state, 0)} {state}" for state in
                         ("complete", "running", "failed", "missing", "interrupted", "outdated", "pending")
                         if counts.get(state))
    eta_text = "" if eta is None else f" · ETA {int(eta // 60)} min {int(eta % 60):02d} s"
    table = Table(title=f"suite {progress.plan.suite}: {summary}{eta_text}", title_justify="left")
    for column in ("cell", "state", "images", "reason"):
        table.add_column(column, justify="right" if column == "images" else "left", overflow="fold")
    for name, cell in progress.cells.items():
        state = progress.status[name]
        images = "" if cell.kind == "profile" else (
            str(progress.scored[name]) if cell.images is None else f"{progress.scored[name]}/{cell.images}")
        reason = progress.errors.get(name) or ""
        table.add_row(name, f"[{_STATE_STYLE.get(state, '')}]{state}[/]", images, reason[:200])
    return table


def _suite_folders_from_env(suite, data_root: Path | None, checkpoint_dir: Path | None) -> list[str]:
    """The notes for the folders a suite will take from $BENCH_IR_DATA_ROOT and $BENCH_IR_CHECKPOINT_DIR, said
    before its datasets and checkpoints are checked (so that a missing file's path can be traced to its variable)."""
    notes = []
    if data_root is None and not suite.options.sample:
        from_env = data_root_or_env(None)
        if from_env is not None:
            notes.append(env_data_root_note(Path(from_env).resolve()))
    if suite.has_relative_checkpoints():
        folder, origin = suite.checkpoint_base(checkpoint_dir)
        if origin == CHECKPOINT_DIR_ENV:
            notes.append(env_checkpoint_dir_note(folder))
    return notes


def _cell_line(name: str, parts: list[str], reason: str | None) -> str:
    """``cell NAME: complete, 7/7 images, 4.4 s; REASON``: a suite's log line for one cell, with the reason the
    overview table shows (a failed cell's error, a complete cell's NaN/Inf images) on the same line where there is
    one."""
    from bench_ir.report.render import one_line

    line = f"cell {name}: {', '.join(parts)}"
    return f"{line}; {one_line(reason)}" if reason else line


class RichSuiteOverview:
    """Live overview of a suite run (SuiteEvents): cells done, running and failed, with an ETA. On a stderr that is no
    terminal (a log file, a Slurm log) a line per cell start and end (:func:`_cell_line`, with the cell's reason) and
    every PROGRESS_LINE_EVERY_S seconds while a cell of this process scores images instead, and the overview table
    once at the end."""

    def __init__(self) -> None:
        from rich.live import Live

        self.progress = None
        self.live = Live(console=err_console, refresh_per_second=2, transient=False)
        self.lines = not live_display(err_console)
        self.started: dict[str, float] = {}
        self.written = time.monotonic()
        self.stopped = False

    def on_plan(self, plan, names) -> None:
        from bench_ir.suite import SuiteProgress

        self.progress = SuiteProgress(plan, names)
        if self.lines:
            print_line(err_console, f"suite {plan.suite}: {len(names)} of {len(plan.cells)} cells to run")
            return
        self.live.start()
        self._refresh()

    def _refresh(self) -> None:
        if self.progress is not None and not self.lines:
            self.live.update(_suite_overview(self.progress), refresh=True)

    def _line(self, name: str, state: str, seconds: float | None) -> None:
        cell = self.progress.cells[name]
        parts = [state]
        if cell.kind != "profile":
            scored = self.progress.scored[name]
            parts.append(f"{scored} images" if cell.images is None else f"{scored}/{cell.images} images")
        if seconds is not None:
            parts.append(f"{seconds:.1f} s")
        eta = self.progress.eta_seconds()
        if eta is not None:
            parts.append(f"suite ETA {clock(eta)}")
        self.written = time.monotonic()
        print_line(err_console, _cell_line(name, parts, self.progress.errors.get(name)))

    def cell_started(self, name: str) -> None:
        self.progress.cell_started(name)
        self.started[name] = time.monotonic()
        if self.lines:
            self._line(name, "running", None)
        self._refresh()

    def cell_record(self, name: str, record: dict) -> None:
        self.progress.cell_record(name, record)
        if self.lines and time.monotonic() - self.written >= PROGRESS_LINE_EVERY_S:
            self._line(name, "running", time.monotonic() - self.started.get(name, self.progress.start))
        self._refresh()

    def cell_finished(self, result) -> None:
        self.progress.cell_finished(result)
        if self.lines:
            self._line(result.name, result.status, result.seconds)
        self._refresh()

    def stop(self) -> None:
        if self.progress is None or self.stopped:
            return
        self.stopped = True
        if self.lines:  # the overview table once, as the live display leaves it
            err_console.print(_suite_overview(self.progress))
            return
        self.live.stop()
        if not err_console.is_interactive:  # as rich's Progress.stop: Live leaves a file's last line open
            err_console.print()


def _given_options(ctx: typer.Context, **options: object) -> dict[str, object]:
    """The ``options`` the command line set (not left at their defaults), by parameter name."""
    # by the source's name: typer may bring a click of its own, whose ParameterSource is another enum than click's
    return {name: value for name, value in options.items()
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}


@suite_app.command("run")
def suite_run(
    ctx: typer.Context,
    suite: Annotated[str, typer.Argument(help="suite name (suites/*.yaml) or YAML file")],
    data_root: Annotated[Path | None, typer.Option(help="folder holding the protocols' test sets (default: "
                                                           "$BENCH_IR_DATA_ROOT)")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option(help="folder the entries' checkpoint paths are relative to "
                                                        "(default: the suite file's checkpoint_dir, else "
                                                        "$BENCH_IR_CHECKPOINT_DIR)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="suite directory (default runs/suite-<name>)")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="run the cells whose datasets and checkpoints "
                                               "exist, skip the others")] = False,
    launcher: Annotated[LauncherKind, typer.Option(help="local: this process; node: one worker per GPU; slurm: "
                                                   "submitit jobs")] = LauncherKind.local,
    gpus: Annotated[int, typer.Option(help="node: worker processes (one per GPU); slurm: GPUs per job")] = 1,
    limit: Annotated[int | None, typer.Option(help="override the suite: at most N images per task")] = None,
    device: Annotated[str | None, typer.Option(help="override the suite's device (auto, cpu, cuda)")] = None,
    noise_order: Annotated[NoiseOrder | None, typer.Option(help="override the suite's reference noise order")] = None,
    partition: Annotated[str | None, typer.Option(help="slurm: partition")] = None,
    account: Annotated[str | None, typer.Option(help="slurm: account")] = None,
    time: Annotated[int, typer.Option("--time", help="slurm: time limit per job (minutes)")] = 240,
    cpus: Annotated[int | None, typer.Option(help="slurm: CPUs per job")] = None,
    array: Annotated[bool, typer.Option("--array/--no-array", help="slurm: one job array, or one job per cell")] = True,
    cluster: Annotated[str | None, typer.Option(help="slurm: submitit cluster, slurm (default) or local (the jobs "
                                                "as local processes)")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="slurm: follow the jobs until they end")] = True,
) -> None:
    """Run every cell of a suite: checks datasets and checkpoints first, skips complete cells, resumes interrupted ones.

    A failing cell does not stop the others; the exit code is then 1 and the failed cells are named, as are the cells
    --skip-missing skipped. Ctrl-C or SIGTERM marks the running cells interrupted (exit code 130 or 143)."""
    from bench_ir.suite import load_suite, make_launcher, report_command, run_suite

    overrides = {"limit": limit, "device": device, "noise_order": noise_order.value if noise_order else None}
    overview = RichSuiteOverview()
    try:
        slurm = dict(partition=partition, account=account, time=time, cpus=cpus, array=array, cluster=cluster,
                     wait=wait)
        if launcher is not LauncherKind.slurm:  # make_launcher refuses those given: they would be ignored
            slurm = _given_options(ctx, **slurm)
        chosen = make_launcher(launcher.value, gpus=gpus, **slurm)  # before the suite is planned
        suite = load_suite(suite)
        for note in _suite_folders_from_env(suite, data_root, checkpoint_dir):
            err_console.print(note, highlight=False, markup=False, soft_wrap=True)
        outcome = run_suite(suite, suite_dir=out, data_root=data_root, checkpoint_dir=checkpoint_dir,
                            launcher=chosen, skip_missing=skip_missing, overrides=overrides, events=overview,
                            on_plan=overview.on_plan)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (run_suite raises it as RunTerminated)
        overview.stop()
        from bench_ir.suite.execute import interrupt_reason, interrupted_error, terminated

        where = f" in {overview.progress.plan.suite_dir}" if overview.progress is not None else ""
        err_console.print(f"[yellow]{interrupted_error(interrupt_reason(err))}[/]: scored images are kept"
                          f"{escape(where)}; run the same command to continue", highlight=False, soft_wrap=True)
        raise typer.Exit(code=143 if terminated(err) else 130) from None  # 128 + SIGTERM / SIGINT
    except USER_ERRORS as err:
        overview.stop()
        _fail(err)
    overview.stop()
    if outcome.skipped:
        console.print(f"{len(outcome.skipped)} cell(s) already complete, skipped", highlight=False)
    for problem, cells in outcome.missing.items():
        console.print(f"[bold yellow]skipped (missing):[/] {', '.join(cells)}: {problem}", highlight=False)
    if outcome.running:
        console.print(f"[bold yellow]running elsewhere, not started again:[/] {', '.join(outcome.running)} (follow "
                      f"with `bench-ir suite status {outcome.plan.suite_dir}`)", highlight=False, soft_wrap=True)
    console.print(f"suite directory: {outcome.plan.suite_dir}", highlight=False)
    missing = outcome.missing_cells
    if launcher is LauncherKind.slurm:
        follow = f"; follow with `bench-ir suite status {outcome.plan.suite_dir}`" if outcome.submitted else ""
        console.print(f"Slurm job ids: {outcome.plan.suite_dir / 'jobs.json'}{follow}", highlight=False,
                      soft_wrap=True)
    if outcome.complete:
        console.print(f"next: {report_command(outcome.plan.suite_dir)}", highlight=False, markup=False, soft_wrap=True)
    if outcome.failed or missing or outcome.running:  # not complete either: `suite run && suite report` stops
        for result in outcome.failed:
            err_console.print(f"[bold red]{result.status}:[/] {result.name}: {result.error}", highlight=False,
                              soft_wrap=True)
        for name in missing:
            problems = "; ".join(outcome.plan.cell(name).problems)
            err_console.print(f"[bold red]missing:[/] {name}: {escape(problems)}", highlight=False, soft_wrap=True)
        incomplete = [r.name for r in outcome.failed] + missing + outcome.running
        err_console.print(f"[bold red]{len(incomplete)} cell(s) did not complete:[/] {', '.join(incomplete)}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


@suite_app.command("status")
def suite_status(
    suite_dir: Annotated[Path, typer.Argument(help="a suite directory")],
) -> None:
    """The state of every cell (complete, running, outdated, failed, interrupted, missing, pending) and why."""
    from bench_ir.suite import SuitePlan, SuiteProgress
    from bench_ir.suite.plan import suite_file_changed

    try:
        plan = SuitePlan.load(suite_dir)
    except USER_ERRORS as err:
        _fail(err)
    console.print(_suite_overview(SuiteProgress(plan)))  # each reason is what is true now (cell_status_reason)
    folders = [("data", "sample data (built-in)" if plan.options.get("sample") else plan.data_root)]
    if plan.checkpoint_dir is not None:
        folders.append(("checkpoints", f"{plan.checkpoint_dir} (from {plan.checkpoint_dir_origin})"))
    for what, where in folders:
        console.print(f"{what}: {where}", highlight=False, markup=False, soft_wrap=True)
    changed = suite_file_changed(plan)
    if changed is not None:
        console.print(f"note: {changed}", highlight=False, markup=False, soft_wrap=True)


@suite_app.command("report")
def suite_report(
    suite_dir: Annotated[Path, typer.Argument(help="a suite directory")],
    out: Annotated[Path | None, typer.Option("--out", help="folder for the tables and index.html (default "
                                             "SUITE_DIR/report)")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="compile the LaTeX tables where pdflatex exists")] = True,
) -> None:
    """Every paper table the suite touches (LaTeX, PDF, CSV, Markdown, HTML) and one index.html linking them."""
    from bench_ir.suite import write_suite_report

    try:
        report = write_suite_report(suite_dir, out, pdf=pdf)
    except USER_ERRORS as err:
        _fail(err)
    for name, files in report.tables.items():
        console.print(f"{name}: {', '.join(str(p) for p in files.values())}", highlight=False)
    for note in report.notes:
        console.print(f"[bold yellow]note:[/] {note}", highlight=False)
    console.print(f"index: {report.index}", highlight=False)


# -------------------------------------------------------------------------------------------- train
from bench_ir.train.command import train_command  # noqa: E402  (parsing only; imports the trainer lazily)

app.command("train")(train_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
