"""What defines an evaluation run (:class:`RunConfig`), importable without torch: a suite plans its cells with
it, and `suite status` and `list runs` compare a finished run with the plan. :mod:`bench_ir.runner` runs it."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_ir.cards import ModelCard
from bench_ir.config_checks import check_field_types, check_model_args, check_strings
from bench_ir.config_checks import refuse as _refuse
from bench_ir.protocol import Protocol

__all__ = ["RunConfig", "NOISE_ORDERS"]

NOISE_ORDERS: tuple[str, ...] = ("sorted", "listdir")  # bench_ir.data.datasets.NOISE_ORDERS (that module needs torch)

_BOOLS = ("use_sample_checkpoint", "sample", "resume", "exact", "save_images", "random_weights")
_INTS = ("limit", "batch_size", "num_workers", "tile", "tile_overlap", "seed")
_OPTIONAL_INTS = ("limit", "batch_size", "num_workers", "tile")
_STRS = ("device", "dtype", "compile", "noise_order")
_OPTIONAL_STRS = ("convention", "lpips", "pad", "label")
_OPTIONAL_PATHS = ("checkpoint", "data_root", "run_dir", "lpips_weights", "registry")


@dataclass
class RunConfig:
    """Everything that defines a run (the fields of ``bench-ir run``); the types are checked when it is built.

    protocol: a protocol name (:func:`bench_ir.list_protocols`), a protocol YAML file, or a :class:`Protocol`
    (e.g. :func:`bench_ir.runner.folder_protocol`). model: a model card name, a card YAML file or a
    :class:`ModelCard`. model_args: card argument overrides (``--model-arg``). checkpoint: the weights file (None:
    the card's sample weights with ``sample``; on real data a model with parameters needs one, or
    ``use_sample_checkpoint``, or ``random_weights``). use_sample_checkpoint: the card's shipped sample checkpoint
    on any data (``--sample-checkpoint``; a demonstration, not a published model; not with ``checkpoint``; the
    manifest records it as any checkpoint, path and sha256). data_root: the folder holding the protocol's test sets
    (None: ``$BENCH_IR_DATA_ROOT``).
    sample: the built-in synthetic sample data (offline; not the benchmark).
    run_dir: the run directory (None: ``<runs_root>/<time>-<model>-<protocol>``). runs_root: the parent of default
    run directories. resume: continue ``run_dir`` (or the newest unfinished run of this setup under
    ``runs_root``), scoring only the images without a record.
    limit: at most this many images per task (None: all). tasks: only these task names (None or []: every task; a
    single string is one task). convention: the metric convention id, ``M1``..``M7`` (None: the protocol's).
    lpips: None (LPIPS not scored), ``"default"`` (the convention's backbone), ``"alex"`` or ``"vgg"``.
    lpips_weights: a file or folder of LPIPS weights (None: the torch hub caches).
    device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``... dtype: the inference precision, ``"fp32"``,
    ``"bf16"`` or ``"fp16"``. batch_size: images per forward pass, same-size images only (None: 1, or
    ``FAST_CUDA_BATCH`` on the fast CUDA path). exact: the reference computation (eager fp32, deterministic cuDNN,
    no compile; see :mod:`bench_ir.acceleration`); False: the fast path. compile: torch.compile, ``"auto"`` (on
    CUDA unless ``exact``), ``"on"`` or ``"off"``. num_workers: DataLoader workers (None: 0 on CPU,
    ``cpus.default_eval_workers()`` on CUDA).
    tile: tile every image with tiles of this size, in pixels (None: whole images; on CUDA an image that does not
    fit in GPU memory is tiled, and the run says so). tile_overlap: the overlap between tiles, in pixels. pad: the
    size-fit padding, ``reflect``, ``replicate``, ``constant`` or ``none`` (None: the card's).
    save_images: write the restored images (with their inputs and targets) to the run directory.
    label: the run's display label in reports. noise_order: the order of the reference noise stream, ``"sorted"``
    file names or ``"listdir"`` (``os.listdir``'s, as the official loops; real data only). command: the command
    line recorded in the manifest (None: ``sys.argv``). registry: a folder of model cards replacing the built-in
    one. random_weights: allow a randomly initialised model on real data (never silently). seed: the seed of that
    random initialisation (recorded; the same seed gives the same numbers).
    """

    protocol: str | Path | Protocol
    model: str | Path | ModelCard = "mirage-t"
    model_args: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | Path | None = None
    use_sample_checkpoint: bool = False
    data_root: str | Path | None = None
    sample: bool = False
    run_dir: str | Path | None = None
    runs_root: str | Path = "runs"
    resume: bool = False
    limit: int | None = None
    tasks: list[str] | None = None
    convention: str | None = None
    lpips: str | None = None
    lpips_weights: str | Path | None = None
    device: str = "auto"
    dtype: str = "fp32"
    batch_size: int | None = None
    exact: bool = False
    compile: str = "auto"
    num_workers: int | None = None
    tile: int | None = None
    tile_overlap: int = 32
    pad: str | None = None
    save_images: bool = False
    label: str | None = None
    noise_order: str = "sorted"
    command: list[str] | None = None
    registry: str | Path | None = None
    random_weights: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse a field of the wrong type (TypeError), an unknown noise order or a label that is blank or holds a
        control character (ValueError), naming the field, the value and what it takes; a single task name is taken
        as ``[name]``, an integer type as ``int``. Counts and option pairs are checked by the run, before any data
        or model work."""
        if isinstance(self.tasks, str):
            self.tasks = [self.tasks]
        check_field_types(self, bools=_BOOLS, ints=[n for n in _INTS if n not in _OPTIONAL_INTS],
                          optional_ints=_OPTIONAL_INTS, strs=_STRS, optional_strs=_OPTIONAL_STRS, paths=("runs_root",),
                          optional_paths=_OPTIONAL_PATHS)
        if not isinstance(self.protocol, str | os.PathLike | Protocol):
            _refuse("protocol", self.protocol, "a protocol name, a YAML path or a Protocol")
        if not isinstance(self.model, str | os.PathLike | ModelCard):
            _refuse("model", self.model, "a model card name, a YAML path or a ModelCard")
        check_model_args(self)
        check_strings(self, "tasks", "a task name, a list of task names or None")
        check_strings(self, "command")
        if self.noise_order not in NOISE_ORDERS:
            raise ValueError(f"unknown noise order '{self.noise_order}'; expected one of {', '.join(NOISE_ORDERS)}")
        if self.label is not None:
            _check_label(self.label)


def _check_label(label: str) -> None:
    """A ValueError for a label a report table cannot show as one name: blank, or holding a control character (a
    newline splits a Markdown row and breaks a LaTeX table)."""
    if not label.strip():
        raise ValueError(f"label {label!r} is blank: give the name the reports show for this run, or leave "
                         "--label out to use the model's name")
    controls = [char for char in dict.fromkeys(label) if unicodedata.category(char) in ("Cc", "Zl", "Zp")]
    if controls:
        raise ValueError(f"label {label!r} holds control characters ({', '.join(map(repr, controls))}): a label is "
                         "one line of text in the report tables; give it without newlines or tabs")
