"""The plan of a suite: its cells (entry × protocol runs, plus one profile per distinct model), where each
cell's run directory is, what state it is in, and the check of every dataset and checkpoint before any model
work.

Layout of a suite directory::

    plan.json               the cells and the options they share (written by `suite run`, read by workers)
    runs/<cell>/            one ordinary run directory per (entry, protocol) cell
    profiles/<model>/       one `bench-ir profile` run per distinct model (card + args)
    cells/<cell>.json       the last attempt at a cell: status, error, seconds, host, devices, job id
    jobs.json               Slurm (submitit) job ids, one line per submission

A cell's state is read from its run directory (the result store is the only truth about scores) and, for
failures and the attempt in progress, from ``cells/<cell>.json``. plan.json records the sha256 of the suite file it was
made from, so that `suite status` can say when the file changed since.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from bench_ir.counts import check_counts
from bench_ir.data.roots import DATA_ROOT_HINT, data_root_or_env
from bench_ir.file_versions import memoised_per_file_version
from bench_ir.folder_names import SUITE_PLAN_NAME
from bench_ir.manifest import now_iso
from bench_ir.results import (
    MANIFEST,
    PROFILE,
    RECORD_COLUMNS,
    ManifestError,
    RunStore,
    aggregate,
    read_manifest_file,
    write_json_atomic,
)
from bench_ir.resume import IDENTITY_FIELDS, RunLock, identity_differences
from bench_ir.shortlist import shortlist
from bench_ir.suite.spec import Suite, load_suite, slug
from bench_ir.yamlio import SpecError

if TYPE_CHECKING:
    from bench_ir.cards import ModelCard

__all__ = ["Cell", "SuitePlan", "SuiteCheckError", "CellProblems", "plan_suite", "check_entries", "check_cells",
           "cell_status", "cell_status_reason", "nonfinite_reason", "read_cell_state", "suite_file_changed",
           "CellStateWarning", "CELL_STATES", "PLAN_FILE", "PROFILE_BATCH"]

PLAN_FILE = SUITE_PLAN_NAME
CELL_STATES = ("complete", "running", "outdated", "failed", "interrupted", "missing", "pending")
# the parts of a run's resume identity a suite plan fixes: all but the environment's library versions (the run's own)
_PLANNED_FIELDS = [f.name for f in IDENTITY_FIELDS if f.name != "library versions"]
# the parts of it a profile cell's manifest records that change its figures: the card with its arguments, dtype, and
# the execution (device, exact); a profile has no protocol, data or checkpoint (weights change no figure)
_PROFILED_FIELDS = ["model", "dtype", "execution"]
PROFILE_BATCH = 1  # the batch a suite's profile cells time (bench_ir.profile_run.profile_and_store's default)
RUN_OPTIONS = ("sample", "limit", "dtype", "exact", "lpips", "convention", "noise_order", "device", "batch_size",
               "tile")


class CellProblems(dict):
    """What :func:`check_cells` found: {problem: [cells]}, plus how a command line names each protocol it checked
    (``protocol_refs``: name -> a shipped protocol's name or a user's file, bench_ir.protocol.command_ref) and
    whether the cells run on the built-in sample data (``sample``), for the advice of :class:`SuiteCheckError`."""

    def __init__(self, protocol_refs: dict[str, str] | None = None, sample: bool = False) -> None:
        super().__init__()
        self.protocol_refs = dict(protocol_refs or {})
        self.sample = sample


class SuiteCheckError(FileNotFoundError):
    """Datasets or checkpoints of a suite are missing; ``problems`` maps each problem to the cells it hits. On real
    data the message ends with the `bench-ir data check` command of each protocol whose test sets have a problem
    (naming a user's protocol by its file, as ``problems`` of :func:`check_cells` tell); the built-in sample data
    has no folder to check, so a sample suite's message gives none."""

    def __init__(self, problems: dict[str, list[str]], data_root: str | Path | None = None) -> None:
        self.problems = problems
        lines = [f"{len(problems)} problem(s) before the first forward pass (nothing was run; --skip-missing runs "
                 "the other cells):"]
        for problem, cells in problems.items():
            lines.append(f"- {problem}\n  cells: {', '.join(cells)}")
        refs: dict[str, str] = getattr(problems, "protocol_refs", {})
        protocols = dict.fromkeys(m.group(1) for m in map(_DATASET_PROBLEM.match, problems) if m)
        if protocols and not getattr(problems, "sample", False):
            root = shlex.quote(str(data_root)) if data_root is not None else "DATA_ROOT"
            lines.append("What the test sets lack, file by file:")
            lines += [f"  bench-ir data check --protocol {refs.get(name) or shlex.quote(name)} --data-root {root}"
                      for name in protocols]
        super().__init__("\n".join(lines))


_DATASET_PROBLEM = re.compile(r"protocol '([^']+)': ")  # how check_cells words a dataset problem


@dataclass
class Cell:
    """One unit of work: an ordinary run (``kind`` run) or the profile of one model (``kind`` profile)."""

    name: str
    kind: Literal["run", "profile"]
    model: str
    run_dir: str  # relative to the suite directory
    protocol: str | None = None
    checkpoint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    images: int | None = None  # images the run will score (known after the check)
    problems: list[str] = field(default_factory=list)


@dataclass
class SuitePlan:
    """Cells and shared options of a suite in ``suite_dir``; saved as plan.json so workers need only the dir."""

    suite_dir: Path
    suite: str
    source: str
    options: dict[str, Any]
    profile: dict[str, Any]
    data_root: str | None
    cells: list[Cell]
    created: str = ""
    checkpoint_dir: str | None = None  # the folder relative checkpoint paths were read from (absolute)
    checkpoint_dir_origin: str | None = None  # what named it: --checkpoint-dir, suite file, BENCH_IR_CHECKPOINT_DIR
    source_sha256: str | None = None  # of the suite file's content when planned (None: plans from before it)

    def cell(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(f"suite '{self.suite}' has no cell '{name}'")

    def run_dir(self, cell: Cell) -> Path:
        """The cell's run directory: a safe name inside the suite directory (bench_ir.safety)."""
        from bench_ir.safety import inside, safe_name

        path = self.suite_dir / cell.run_dir
        safe_name(path.name, f"run directory of cell '{cell.name}'")
        inside(self.suite_dir, cell.run_dir, f"run directory of cell '{cell.name}'")  # relative to the suite folder
        return path

    def save(self) -> Path:
        data = {**dataclasses.asdict(self), "suite_dir": str(self.suite_dir)}
        path = self.suite_dir / PLAN_FILE
        write_json_atomic(path, data)
        return path

    @classmethod
    def load(cls, suite_dir: str | Path) -> SuitePlan:
        suite_dir = Path(suite_dir)
        path = suite_dir / PLAN_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{suite_dir}: not a suite directory (no {PLAN_FILE}); run `bench-ir suite run`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data["suite_dir"] = suite_dir  # the folder may have moved since
            data["cells"] = [Cell(**c) for c in data["cells"]]
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as err:  # not JSON, or not the fields of a plan
            what = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(
                f"{path}: not a readable suite plan ({type(err).__name__}: {what}). `bench-ir suite run SUITE --out "
                f"{suite_dir}` with the suite's file writes it again; the cells' runs and profiles in {suite_dir} "
                "are kept (complete ones are skipped)") from None

    def run_config(self, cell: Cell):
        """The RunConfig of a run cell: an ordinary resumable run into the cell's run directory."""
        from bench_ir.run_config import RunConfig

        opts = self.options
        return RunConfig(protocol=cell.protocol or "", model=cell.model, model_args=dict(cell.model_args),
                         checkpoint=cell.checkpoint, data_root=self.data_root, sample=opts["sample"],
                         run_dir=self.run_dir(cell), resume=True, limit=opts["limit"], convention=opts["convention"],
                         lpips=opts["lpips"], device=opts["device"], dtype=opts["dtype"],
                         batch_size=opts["batch_size"], exact=opts["exact"], tile=opts["tile"], label=cell.label,
                         tile_overlap=opts.get("tile_overlap", RunConfig.tile_overlap),  # absent from older plans
                         noise_order=opts["noise_order"], command=self.command(cell))

    def command(self, cell: Cell) -> list[str]:
        """The `bench-ir` command line equivalent to running ``cell`` (recorded in its run manifest)."""
        opts = self.options
        run_dir = str(self.run_dir(cell))
        if cell.kind == "profile":
            return ["bench-ir", "profile", "--model", cell.model, "--size", str(self.profile["size"]),
                    "--repeats", str(self.profile["repeats"]), "--warmup", str(self.profile["warmup"]),
                    "--device", opts["device"], "--dtype", opts["dtype"], *(["--exact"] if opts["exact"] else [])]
        command = ["bench-ir", "run", "--protocol", cell.protocol or "", "--model", cell.model]
        command += [f"--model-arg={k}={json.dumps(v)}" for k, v in cell.model_args.items()]
        command += ["--checkpoint", cell.checkpoint] if cell.checkpoint else []
        command += ["--sample"] if opts["sample"] else ["--data-root", str(self.data_root)]
        for key in ("limit", "convention", "batch_size", "tile"):
            if opts[key] is not None:
                command += [f"--{key.replace('_', '-')}", str(opts[key])]
        if opts["tile"] is not None and opts.get("tile_overlap") is not None:
            command += ["--tile-overlap", str(opts["tile_overlap"])]
        if opts["lpips"]:
            command += ["--lpips"] + ([] if opts["lpips"] == "default" else ["--lpips-net", opts["lpips"]])
        command += ["--device", opts["device"], "--dtype", opts["dtype"], "--noise-order", opts["noise_order"]]
        command += ["--exact"] if opts["exact"] else []
        command += ["--label", cell.label] if cell.label else []
        return [*command, "--run-dir", run_dir, "--resume"]


def _profile_name(model: str, model_args: dict[str, Any]) -> str:
    stem = Path(model).stem if model.endswith((".yaml", ".yml")) else model
    if not model_args:
        return slug(stem)
    digest = hashlib.sha256(json.dumps(model_args, sort_keys=True).encode()).hexdigest()[:8]
    return slug(f"{stem}-{digest}")


def profiled_models(suite: Suite) -> dict[str, tuple[str, dict[str, Any]]]:
    """The profile cells of ``suite`` (none unless it profiles): cell-folder name -> (model, model_args) of each
    distinct model (card + args), in file order."""
    models: dict[str, tuple[str, dict[str, Any]]] = {}
    if suite.profile.enabled:
        for entry in suite.entries:
            model = suite.model_ref(entry)
            models.setdefault(_profile_name(model, entry.model_args), (model, dict(entry.model_args)))
    return models


def check_entries(suite: Suite, check_card: Callable[[ModelCard], None] | None = None) -> None:
    """Check what each entry of ``suite`` asks of its card, which would otherwise fail every cell of the entry once
    it runs (on Slurm, after its jobs queued): the entry's ``model_args`` against the factory's signature, by
    ``check_card`` given the card with those args applied (default bench_ir.cards.check_card_args: imports the
    factory, never calls it), and, when the suite profiles, the profile size against the card's input_multiple
    (bench_ir.profiling.check_size). A SpecError names the suite file, the entry and the field (``model`` for an
    entry without model_args, whose card itself does not fit its factory)."""
    from bench_ir.cards import check_card_args, get_card, with_model_args

    check_card = check_card or check_card_args
    for index, entry in enumerate(suite.entries):
        where = f"{suite.source or suite.name}: entries[{index}]"
        card = get_card(suite.model_ref(entry))
        try:
            check_card(with_model_args(card, entry.model_args))
        except SpecError as err:
            raise SpecError(f"{where}: field '{'model_args' if entry.model_args else 'model'}': {err}") from None
        if suite.profile.enabled:
            _check_profile_size(suite, card, index)


def _check_profile_size(suite: Suite, card: ModelCard, index: int) -> None:
    """The suite's profile size must suit ``card``, the card of entry ``index``, as its profile cell requires."""
    if suite.profile.size % card.input_multiple == 0:
        return  # it fits: bench_ir.profiling, which imports torch, is needed only to word the problem
    from bench_ir.profiling import ProfileError, check_size

    try:
        check_size(suite.profile.size, card, "size")
    except ProfileError as err:
        raise SpecError(f"{suite.source or suite.name}: profile: field 'size': for entries[{index}] "
                        f"({card.name}): {err}") from None


def plan_suite(suite: Suite | str | Path, suite_dir: str | Path, data_root: str | Path | None = None,
               checkpoint_dir: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SuitePlan:
    """The cells of ``suite`` in ``suite_dir``: profiles of the distinct models first (when the suite profiles),
    then entry × protocol runs in file order. ``overrides`` replace suite options (e.g. ``limit``, ``device``).
    Each entry's model arguments and the profile size are checked first (:func:`check_entries`)."""
    from bench_ir.data.datasets import needs_data_root
    from bench_ir.protocol import load_protocol

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    check_entries(suite)
    options = dataclasses.asdict(suite.options)
    unknown = sorted(set(overrides or {}) - set(RUN_OPTIONS))
    if unknown:
        raise KeyError(f"unknown suite option(s) {unknown}; options: {', '.join(RUN_OPTIONS)}")
    options.update({k: v for k, v in (overrides or {}).items() if v is not None})
    check_counts([(f"--{key.replace('_', '-')}", options.get(key), 1) for key in ("limit", "batch_size", "tile")])
    if not options["sample"]:
        data_root = data_root_or_env(data_root)
        refs = dict.fromkeys(ref for entry in suite.entries for ref in suite.entry_protocols(entry))
        if data_root is None and needs_data_root(task for ref in refs for task in load_protocol(suite.protocol_ref(ref))
                                                 .tasks):
            raise ValueError(f"suite '{suite.name}' runs on the benchmark data: {DATA_ROOT_HINT}")
    checkpoint_base, checkpoint_origin = (suite.checkpoint_base(checkpoint_dir) if suite.has_relative_checkpoints()
                                          else (None, None))
    profiles = {name: Cell(name=f"profile__{name}", kind="profile", model=model, run_dir=f"profiles/{name}",
                           model_args=model_args) for name, (model, model_args) in profiled_models(suite).items()}
    runs = []
    for entry in suite.entries:
        model = suite.model_ref(entry)
        checkpoint = suite.checkpoint_path(entry, checkpoint_dir)
        for protocol in suite.entry_protocols(entry):
            ref = suite.protocol_ref(protocol)
            name = f"{suite.entry_name(entry)}__{load_protocol(ref).name}"
            runs.append(Cell(name=name, kind="run", model=model, run_dir=f"runs/{name}", protocol=ref,
                             checkpoint=str(checkpoint) if checkpoint else None, model_args=dict(entry.model_args),
                             label=entry.label))
    return SuitePlan(suite_dir=Path(suite_dir), suite=suite.name, source=suite.source, options=options,
                     profile=dataclasses.asdict(suite.profile),
                     data_root=str(Path(data_root).expanduser().resolve()) if data_root is not None else None,
                     cells=[*profiles.values(), *runs], created=now_iso(),
                     checkpoint_dir=str(checkpoint_base) if checkpoint_base is not None else None,
                     checkpoint_dir_origin=checkpoint_origin, source_sha256=_file_sha256(suite.source))


def _file_sha256(path: str) -> str | None:
    """sha256 of the content of file ``path``; None without one (a suite built in code, a file gone)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def suite_file_changed(plan: SuitePlan) -> str | None:
    """A sentence saying that the suite file ``plan`` was made from has changed since (its content's sha256 is not
    the one plan.json recorded), with the command that plans it again; the cells' states are those of the plan,
    so a new entry, limit or profile size is not in them. None when the file is unchanged, cannot be read, or the
    plan predates the recorded sha256."""
    if plan.source_sha256 is None or _file_sha256(plan.source) in (None, plan.source_sha256):
        return None
    command = ["bench-ir", "suite", "run", plan.source, "--out", str(plan.suite_dir)]
    if not plan.options.get("sample") and plan.data_root is not None:
        command += ["--data-root", plan.data_root]
    if plan.checkpoint_dir_origin == "--checkpoint-dir" and plan.checkpoint_dir is not None:
        command += ["--checkpoint-dir", plan.checkpoint_dir]
    return (f"the suite file {plan.source} changed after this plan was made (the states above are those of the old "
            f"plan): `{shlex.join(command)}` plans it again")


def check_cells(plan: SuitePlan, cells: list[Cell]) -> CellProblems:
    """Check the checkpoint and every dataset of each run cell without building a model (the image headers of what
    the cell will score included: an input whose size differs from its target's, an image too small for the crop
    rule); fills ``cell.images`` and ``cell.problems`` and returns {problem: [cells]} (empty when all is there)."""
    from bench_ir.data.datasets import build_task_dataset
    from bench_ir.data.sample import build_sample_task_dataset
    from bench_ir.protocol import command_ref, load_protocol

    problems = CellProblems(sample=bool(plan.options["sample"]))

    def dataset_findings(name: str) -> tuple[list[str], int]:
        """(dataset problems, images to score) of protocol ``name``: the same for every cell that runs it."""
        protocol = load_protocol(name)
        problems.protocol_refs[protocol.name] = command_ref(protocol)
        found, images = [], 0
        for task in protocol.tasks:
            try:
                dataset = (build_sample_task_dataset(protocol, task, noise_order=plan.options["noise_order"])
                           if plan.options["sample"] else
                           build_task_dataset(protocol, task, data_root=plan.data_root,
                                              noise_order=plan.options["noise_order"]))
            except (FileNotFoundError, ValueError, KeyError) as err:
                finding = err.args[0] if isinstance(err, KeyError) else getattr(err, "finding", err)
                found.append(f"protocol '{protocol.name}': {finding}")  # matches _DATASET_PROBLEM
                continue
            limit = plan.options["limit"]
            try:  # the file headers of the images the cell will score: sizes of input and target, the crop rule
                (dataset if limit is None else dataset.limit(limit)).item_sizes()
            except ValueError as err:
                found.append(f"protocol '{protocol.name}': task '{task.name}': {err}")
                continue
            images += len(dataset) if limit is None else min(limit, len(dataset))
        return found, images

    checked: dict[str, tuple[list[str], int]] = {}  # protocol -> its findings, read once for all its cells
    for cell in cells:
        cell.problems, cell.images = [], None
        if cell.kind != "run":
            continue
        cell.problems += filter(None, [_checkpoint_problem(cell)])
        name = cell.protocol or ""
        if name not in checked:
            checked[name] = dataset_findings(name)
        found, cell.images = checked[name]
        cell.problems += found
        for problem in cell.problems:
            problems.setdefault(problem, []).append(cell.name)
    return problems


def _checkpoint_problem(cell: Cell) -> str | None:
    """When the cell names a checkpoint file that is not there now, the message `bench-ir run` gives for it (the
    path, the card's official checkpoints and where to download them); else None."""
    if cell.checkpoint and not Path(cell.checkpoint).is_file():
        from bench_ir.cards import find_card
        from bench_ir.checkpoints import missing_checkpoint_message

        return missing_checkpoint_message(cell.checkpoint, find_card(cell.model))
    return None


class CellStateWarning(UserWarning):
    """A cells/<cell>.json that cannot be read; the cell's state is then read from its run directory alone."""


def read_cell_state(plan: SuitePlan, cell: Cell) -> dict[str, Any] | None:
    """The last recorded attempt at ``cell`` (cells/<cell>.json), or None. A file that cannot be read (not JSON, not
    an object) counts as absent, with a CellStateWarning naming it: the run directory is the truth about scores, so
    the cell is complete, interrupted or pending as its run says, and its next attempt writes the file again."""
    path = plan.suite_dir / "cells" / f"{cell.name}.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problem = f"{type(err).__name__}: {err}"
    else:
        if isinstance(state, dict):
            return state
        problem = "not a JSON object"
    warnings.warn(f"{path}: unreadable cell state ({problem}); taken as absent: the cell's state comes from its run "
                  "directory, and its next attempt (`bench-ir suite run`) writes the file again", CellStateWarning,
                  stacklevel=1)  # attributed here: one warning per file, whichever command reads it
    return None


@memoised_per_file_version()
def _sha256(path: str) -> str:
    """sha256 of a checkpoint file, read once per version of the file (bench_ir.file_versions): a suite's status hashes
    each file once."""
    from bench_ir.checkpoints import sha256_file

    return sha256_file(path)


def _planned_manifest(plan: SuitePlan, cell: Cell, run: dict[str, Any]) -> dict[str, Any]:
    """The run manifest ``run`` with every setting of its resume identity (bench_ir.resume.IDENTITY_FIELDS) that the
    plan fixes replaced by the plan's value, as ``bench-ir run`` would record it for the cell now: the protocol (its
    content), sample data, the card with its arguments, the checkpoint's sha256, the metric convention, dtype,
    execution mode, tiling, padding, LPIPS and the noise order. What the plan does not fix keeps the run's value: the
    device ``auto`` resolved to, the seed of random weights and the libraries' versions (the environment's, not the
    plan's: not compared). The data is the plan's too: each task's folders and paired files with their sizes as they
    are now under the plan's data root (see bench_ir.resume.data_identity; sample data has no files). A setting that
    cannot be read now (a card or protocol file gone, a checkpoint missing, a dataset folder gone) keeps the run's
    value too: nothing says that it differs, and running the cell names the problem."""
    from bench_ir.cards import get_card, sample_checkpoint, with_model_args
    from bench_ir.metrics.conventions import get_convention
    from bench_ir.protocol import load_protocol, protocol_record

    config = plan.run_config(cell)
    planned = {**run, "sample": config.sample, "dtype": config.dtype, "noise_order": config.noise_order,
               "lpips": config.lpips, "tile": config.tile, "tile_overlap": config.tile_overlap, "pad": config.pad}
    unreadable = (OSError, KeyError, ValueError, TypeError, RuntimeError)
    protocol = None
    try:
        protocol = load_protocol(str(config.protocol))
        planned["protocol"] = {**(run.get("protocol") or {}), **protocol_record(protocol)}
        convention = get_convention(config.convention or protocol.convention)
        planned["convention"] = {**(run.get("convention") or {}), "id": convention.id, "name": convention.name}
    except unreadable:
        pass
    try:
        card = with_model_args(get_card(str(config.model)), config.model_args)
        planned["model"] = _planned_model(run, card, dict(config.model_args) or None)
        checkpoint = config.checkpoint or (sample_checkpoint(card) if config.sample else None)
        if checkpoint is not None:
            sha = _sha256(str(checkpoint))
            planned["checkpoint"] = {"path": str(checkpoint), "sha256": sha}
        elif run.get("checkpoint"):  # the cell's checkpoint was dropped: random weights, as a run would have them
            planned.update(checkpoint=None, random_weights=True, init_seed=config.seed)
    except unreadable:
        pass
    if protocol is not None and not config.sample and run.get("data"):
        try:
            planned["data"] = _data_now(protocol, config, list(run["data"]))
        except unreadable:
            pass
    try:
        planned.update(_planned_execution(run, config.device, exact=config.exact, compile=config.compile,
                                          dtype=config.dtype))
    except unreadable:
        pass
    return planned


def _planned_model(run: dict[str, Any], card: Any, args_overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The ``model`` entry of manifest ``run`` as ``card`` (its arguments applied) with ``args_overrides`` gives it
    now (bench_ir.cards.model_record: the card's content and its factory's source); the parameter count stays the
    run's (it is known once the model is built)."""
    from bench_ir.cards import model_record

    before = run.get("model") or {}
    return {**before, **model_record(card, before.get("params"), args_overrides)}


def _planned_execution(run: dict[str, Any], device: str, exact: bool, compile: str, dtype: str) -> dict[str, Any]:
    """The ``device`` and ``execution`` entries of manifest ``run`` as the plan's ``device`` (``auto``: the type the
    run resolved it to) and execution options give them now."""
    from bench_ir.execution_plan import plan_execution

    recorded = run.get("device") or {}
    kind = str(recorded.get("type") if device == "auto" else device).partition(":")[0]  # cuda:1
    execution = plan_execution(SimpleNamespace(type=kind), exact=exact, compile=compile,  # type: ignore
                               dtype=dtype).describe()
    return {"device": {**recorded, "type": kind}, "execution": {**(run.get("execution") or {}), **execution}}


def _data_now(protocol: Any, config: Any, task_names: list[str]) -> dict[str, Any]:
    """The data identity of each of ``task_names`` of ``protocol`` as `bench-ir run` would record it now (real data
    only)."""
    from bench_ir.data.datasets import build_task_dataset
    from bench_ir.resume import data_identity

    return {name: data_identity(build_task_dataset(protocol, name, data_root=config.data_root,
                                                   noise_order=config.noise_order), config.data_root)
            for name in task_names}


def _covers(run_limit: int | None, wanted: int | None) -> bool:
    """Whether a run made with --limit ``run_limit`` scores at least what --limit ``wanted`` asks (None: the full
    test sets, which cover any limit)."""
    return run_limit is None or (wanted is not None and run_limit >= wanted)


def _setup_differences(plan: SuitePlan, cell: Cell, manifest: dict[str, Any]) -> list[str]:
    """How the setup of a run (finished or not) differs from what the plan asks of its cell, in words (``"field:
    run's → plan's"``): every setting of the run's resume identity (see :func:`_planned_manifest`; the batch size is
    none of them, it changes no record). Any of them makes the cell's next attempt fail with a ResumeError."""
    planned = _planned_manifest(plan, cell, manifest)
    differ = identity_differences(manifest, planned, fields=_PLANNED_FIELDS)
    if any(line.startswith("data of task") for line in differ):  # a changed file under a pair the run did not score
        scored = RunStore(plan.run_dir(cell)).scored_keys()  # (past its --limit) changes no record: as on resume
        differ = identity_differences(manifest, planned, fields=_PLANNED_FIELDS, scored=scored)
    return differ


def _differences(plan: SuitePlan, cell: Cell, manifest: dict[str, Any]) -> list[str]:
    """How a finished run differs from what the plan asks of its cell, in words: its setup
    (:func:`_setup_differences`) and a limit narrower than the plan's. A wider limit (or none) covers a narrower
    one: a resume never narrows a run, so a suite run once with a smaller --limit keeps its complete cells."""
    differ = _setup_differences(plan, cell, manifest)
    run_limit, wanted = manifest.get("limit"), plan.options["limit"]
    if not _covers(run_limit, wanted):
        asked = "the full test sets" if wanted is None else f"--limit {wanted}"
        differ.append(f"limit: --limit {run_limit} → {asked}")
    return differ


def _profile_differences(plan: SuitePlan, cell: Cell, manifest: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    """How a finished profile differs from what the plan asks of its cell, in words (``"field: profiled → plan's"``):
    the card with its arguments (its file's content included), dtype and execution (device, exact) of its manifest,
    compared as a run's resume identity is (:data:`_PROFILED_FIELDS`), and the input size and batch of its
    profile.json. Repeats and warmup are not compared: they refine the timing, not what is profiled. A card that
    cannot be read now keeps the profile's value, as for runs."""
    from bench_ir.cards import get_card, with_model_args

    opts = plan.options
    planned = {**manifest, "dtype": opts["dtype"]}
    try:
        card = with_model_args(get_card(cell.model), cell.model_args)
        planned["model"] = _planned_model(manifest, card, (manifest.get("model") or {}).get("args_overrides"))
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        pass
    try:
        planned.update(_planned_execution(manifest, opts["device"], exact=opts["exact"], compile="auto",
                                          dtype=opts["dtype"]))  # the compile choice profile_and_store makes
    except (KeyError, ValueError, TypeError):
        pass
    differ = identity_differences(manifest, planned, fields=_PROFILED_FIELDS)
    for key, wanted, unit in (("size", plan.profile["size"], " px"), ("batch", PROFILE_BATCH, "")):
        if profile.get(key) != wanted:
            differ.append(f"profile {key}: {profile.get(key)}{unit} → {wanted}{unit}")
    return differ


def _finished_differences(plan: SuitePlan, cell: Cell, manifest: dict[str, Any] | None) -> list[str] | None:
    """How the cell's finished run or profile differs from what the plan asks (empty: it is complete), or None when
    the cell has no finished run or profile."""
    run_dir = plan.run_dir(cell)
    if cell.kind == "profile":
        try:
            profile = json.loads((run_dir / PROFILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if manifest is None or not isinstance(profile, dict):  # figures without their setup: cannot be compared
            return []
        return _profile_differences(plan, cell, manifest, profile)
    if manifest is not None and manifest.get("status") == "complete" and _records_short(run_dir, manifest) is None:
        return _differences(plan, cell, manifest)
    return None


def _records_short(run_dir: Path, manifest: dict[str, Any]) -> str | None:
    """For a run whose manifest says complete: what its records lack against the images it planned (a record line
    torn or cut since, as a full disk or a crash of the file system leaves it), in words; None when they cover every
    planned image (or the manifest plans nothing: a run from before ``planned`` was recorded)."""
    planned = manifest.get("planned")
    if not isinstance(planned, dict):
        return None
    total = sum(int(n) for n in planned.values() if isinstance(n, int))
    scored = len(RunStore(run_dir).scored_keys(warn=False))
    if scored >= total:
        return None
    return (f"its manifest says complete, but its records hold {scored} of the {total} planned images (a record "
            "line was lost); the next `suite run` scores the missing ones")


def _missing_now(plan: SuitePlan, cell: Cell, state: dict[str, Any] | None) -> str | None:
    """What an unfinished run cell lacks now, in words, or None: for a cell whose last attempt was skipped as
    missing, whatever :func:`check_cells` finds now (its checkpoint and datasets); for any other, its checkpoint
    file (the datasets are checked when the suite runs)."""
    if cell.kind != "run":
        return None
    if state is not None and state.get("status") == "missing":
        try:
            return "; ".join(check_cells(plan, [dataclasses.replace(cell)])) or None  # a copy: the plan's is kept
        except (OSError, KeyError, ValueError):  # its protocol cannot be read now: what the attempt met stands
            return state.get("error")
    return _checkpoint_problem(cell)


def _read_run_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run directory's manifest, or None when it has none or one that cannot be read (the cell's run resumes
    and says what is wrong)."""
    if not (run_dir / MANIFEST).is_file():
        return None
    try:
        return read_manifest_file(run_dir / MANIFEST)
    except ManifestError:
        return None


def _records_setup(manifest: dict[str, Any] | None) -> bool:
    """Whether a run manifest records the run's setup (its protocol and model): a run writes them when it opens its
    directory, so only a manifest written otherwise (by hand, cut to its status) lacks them."""
    return manifest is not None and bool(manifest.get("protocol")) and bool(manifest.get("model"))


def _running(plan: SuitePlan, cell: Cell, state: dict[str, Any] | None) -> bool:
    """Whether the cell's last attempt says it is running and a live process holds its run directory's lock (the
    kernel drops the lock of a process that died, whatever killed it)."""
    return state is not None and state.get("status") == "running" and RunLock.is_held(plan.run_dir(cell))


def _process_gone(state: dict[str, Any]) -> bool:
    """Whether the process a cell state names is known to have ended: it ran on this host and no process has its
    PID now. A live PID (the cell is loading its model, before its run holds the lock) or another host: not known."""
    pid = state.get("pid")
    if state.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by another user
        return False
    return False


def nonfinite_reason(plan: SuitePlan, cell: Cell) -> str | None:
    """What a run cell's records say of outputs with NaN/Inf values, counted as `bench-ir report` counts them (the
    records' ``nonfinite`` marks, :func:`bench_ir.results.aggregate`): ``5 of 7 images non-finite (NaN/Inf
    outputs): the PSNR and SSIM means of derain are NaN``. None for a profile cell or a run without such images."""
    if cell.kind != "run" or not plan.run_dir(cell).is_dir():
        return None
    records = RunStore(plan.run_dir(cell), create=False).read_records(warn=False).records
    summary = aggregate(pd.DataFrame(records, columns=RECORD_COLUMNS))
    bad = int(summary["nonfinite"].sum())
    if not bad:
        return None
    tasks = shortlist([str(task) for task in summary.index[summary["nonfinite"] > 0]], 3)
    return (f"{bad} of {int(summary['images'].sum())} images non-finite (NaN/Inf outputs): the PSNR and SSIM means "
            f"of {tasks} are NaN")


def cell_status_reason(plan: SuitePlan, cell: Cell) -> tuple[str, str | None]:
    """The state of ``cell`` (one of CELL_STATES) and why, in words, where there is something to say: what makes it
    outdated, which process runs it, what it lacks, the error of a failed or interrupted attempt, the images with
    NaN/Inf outputs of a complete run (:func:`nonfinite_reason`; it is complete all the same).

    What is true now comes before what the last attempt (cells/<cell>.json) recorded, which says only what it met:
    ``running``: cells/<cell>.json says running and a live process holds the run directory's lock. ``complete``: the
    run (or profile) is finished and made with what the plan asks. ``missing``: an unfinished run cell whose
    checkpoint is not there now, or whose last attempt was skipped for a missing dataset or checkpoint that is
    still missing (checked again; once it is there the cell is what its run directory says). ``outdated``: a run
    or profile made with other settings than the plan's: a complete one (it is run again, resuming: a larger
    --limit scores the extra images; a profile is profiled again; another checkpoint, card, dtype... fails with a
    ResumeError that asks for a new suite directory), or an unfinished run (that ResumeError is what its next
    attempt meets). Only then the last attempt: ``failed`` with its error (an unfinished run whose setup matches,
    or none: the error is what will likely happen again) or ``interrupted`` with its reason. ``interrupted`` also:
    an unfinished run that nothing runs now, or a cell whose cells/<cell>.json still says running while its
    process, on this host, is gone (killed with -9)."""
    state = read_cell_state(plan, cell)
    if _running(plan, cell, state):
        return "running", f"PID {state.get('pid')} on {state.get('host')}"  # type: ignore[union-attr]
    manifest = _read_run_manifest(plan.run_dir(cell))
    differences = _finished_differences(plan, cell, manifest)
    if differences == []:
        return "complete", nonfinite_reason(plan, cell)
    missing = _missing_now(plan, cell, state)
    if missing:
        return "missing", missing
    if differences is None and cell.kind == "run" and _records_setup(manifest):  # an unfinished run
        differences = _setup_differences(plan, cell, manifest)  # type: ignore[arg-type]
    if differences:
        return "outdated", "; ".join(differences)
    if state is not None and state.get("status") in ("failed", "interrupted"):
        return state["status"], state.get("error")
    if state is not None and state.get("status") == "running" and _process_gone(state):  # killed without a word
        return "interrupted", f"its process (PID {state.get('pid')} on {state.get('host')}) ended while it ran"
    if manifest is not None:
        return "interrupted", _records_short(plan.run_dir(cell), manifest) if cell.kind == "run" else None
    return "pending", None


def cell_status(plan: SuitePlan, cell: Cell) -> str:
    """complete | running | outdated | failed | interrupted | missing | pending; see :func:`cell_status_reason`."""
    return cell_status_reason(plan, cell)[0]
