"""Suite files: a matrix of (model card, checkpoint, card args, label) entries × protocols plus the run options
every cell shares. YAML, validated strictly (unknown or mistyped fields name the file and field).

Paths: a model card file (``*.yaml``) is relative to the suite file's folder; a checkpoint is relative to
``--checkpoint-dir`` (else the suite's ``checkpoint_dir``, itself relative to the suite file, else
``$BENCH_IR_CHECKPOINT_DIR``); absolute paths and ``~`` are used as they are. A cell is named
``<entry>__<protocol>``; the entry part is its ``name`` or, by default, the card name plus the checkpoint file stem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench_ir.atomic import folder_slug as slug
from bench_ir.data.roots import CHECKPOINT_DIR_ENV, CHECKPOINT_DIR_HINT, folder_from_env
from bench_ir.resources import resource_dir
from bench_ir.yamlio import SpecError, build_dataclass, read_yaml, resolve_spec_path

if TYPE_CHECKING:
    from bench_ir.cards import ModelCard
    from bench_ir.protocol import Protocol

__all__ = ["Suite", "SuiteEntry", "SuiteOptions", "ProfileOptions", "load_suite", "list_suites", "suites_dir",
           "slug"]


@dataclass(frozen=True)
class SuiteEntry:
    """One model (card name or YAML file) with one checkpoint, evaluated on ``protocols`` (default: the suite's)."""

    model: str
    checkpoint: str | None = None
    name: str | None = None  # cell-name prefix; default <card>-<checkpoint stem>
    label: str | None = None  # display label in the tables; default the card's display name
    model_args: dict[str, Any] = field(default_factory=dict)
    protocols: list[str] | None = None


@dataclass(frozen=True)
class SuiteOptions:
    """Run options shared by every cell (the `bench-ir run` options of the same names)."""

    sample: bool = False
    limit: int | None = None
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    exact: bool = False
    lpips: Literal["default", "alex", "vgg"] | None = None
    convention: str | None = None
    noise_order: Literal["sorted", "listdir"] = "sorted"
    device: str = "auto"
    batch_size: int | None = None
    tile: int | None = None
    tile_overlap: int = 32  # pixels shared by neighbouring tiles (with ``tile``), as `bench-ir run --tile-overlap`


@dataclass(frozen=True)
class ProfileOptions:
    """`bench-ir profile` of each distinct model (card + args) of the suite, once: input size (px), repeats."""

    enabled: bool = True
    size: int = 224
    repeats: int = 20
    warmup: int = 5


@dataclass(frozen=True)
class Suite:
    name: str
    entries: list[SuiteEntry]
    title: str = ""
    description: str = ""
    protocols: list[str] = field(default_factory=list)
    options: SuiteOptions = field(default_factory=SuiteOptions)
    profile: ProfileOptions = field(default_factory=ProfileOptions)
    checkpoint_dir: str | None = None
    source: str = ""

    @property
    def folder(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def entry_protocols(self, entry: SuiteEntry) -> list[str]:
        return list(entry.protocols if entry.protocols is not None else self.protocols)

    def model_ref(self, entry: SuiteEntry) -> str:
        """The entry's card: a registered name, or a card file resolved against the suite's folder."""
        if entry.model.endswith((".yaml", ".yml")):
            path = Path(entry.model).expanduser()
            return str(path if path.is_absolute() else (self.folder / path).resolve())
        return entry.model

    def checkpoint_base(self, checkpoint_dir: str | Path | None = None) -> tuple[Path | None, str | None]:
        """The folder the entries' relative checkpoint paths are read from, and what named it: ``checkpoint_dir``
        (``--checkpoint-dir``), else the suite file's ``checkpoint_dir`` (relative to the suite file), else
        ``$BENCH_IR_CHECKPOINT_DIR``; (None, None) when nothing does."""
        if checkpoint_dir is not None:
            return Path(checkpoint_dir).expanduser().resolve(), "--checkpoint-dir"
        if self.checkpoint_dir is not None:
            return (self.folder / Path(self.checkpoint_dir).expanduser()).resolve(), "suite file"
        from_env = folder_from_env(CHECKPOINT_DIR_ENV)
        return (from_env.resolve(), CHECKPOINT_DIR_ENV) if from_env is not None else (None, None)

    def has_relative_checkpoints(self) -> bool:
        """Whether some entry names its checkpoint relative to the checkpoint folder."""
        return any(entry.checkpoint is not None and not Path(entry.checkpoint).expanduser().is_absolute()
                   for entry in self.entries)

    def checkpoint_path(self, entry: SuiteEntry, checkpoint_dir: str | Path | None = None) -> Path | None:
        """The entry's checkpoint under the checkpoint folder (``checkpoint_base``); None without one."""
        if entry.checkpoint is None:
            return None
        path = Path(entry.checkpoint).expanduser()
        if path.is_absolute():
            return path
        base, _ = self.checkpoint_base(checkpoint_dir)
        if base is None:
            raise ValueError(self.no_checkpoint_folder_message(entry))
        return (base / path).resolve()

    def is_shipped(self) -> bool:
        """Whether the suite is a file of bench-ir's own suites folder (part of the installation, not the user's to
        edit)."""
        return bool(self.source) and Path(self.source).resolve().parent == suites_dir().resolve()

    def no_checkpoint_folder_message(self, entry: SuiteEntry) -> str:
        """The error for ``entry``, whose checkpoint is relative to the checkpoint folder, when nothing names that
        folder: the option and the variable that do, and the suite file's ``checkpoint_dir`` (for a shipped suite,
        that of a copy: the installed file is not edited)."""
        start = (f"suite '{self.name}': entry '{self.entry_name(entry)}' names the checkpoint {entry.checkpoint} "
                 "relative to the checkpoint folder, and no folder was given: ")
        if not self.is_shipped():
            return (f"{start}{CHECKPOINT_DIR_HINT}, or give the suite file {self.source or self.name} a field "
                    "'checkpoint_dir' (a folder relative to the suite file)")
        return (f"{start}{CHECKPOINT_DIR_HINT} (the folder holding the downloaded checkpoints in the layout the "
                f"header of {self.source} shows). To keep the folder in a suite file, copy {self.source} and give the "
                "copy a field 'checkpoint_dir' (a folder relative to the copy); the shipped file is part of the "
                "installation.")

    def protocol_ref(self, protocol: str) -> str:
        """A protocol name as it is, or a protocol file resolved against the suite's folder."""
        if protocol.endswith((".yaml", ".yml")) and not Path(protocol).expanduser().is_absolute():
            return str((self.folder / protocol).resolve())
        return protocol

    def entry_name(self, entry: SuiteEntry) -> str:
        if entry.name:
            return slug(entry.name)
        stem = Path(entry.model).stem if entry.model.endswith((".yaml", ".yml")) else entry.model
        return slug(f"{stem}-{Path(entry.checkpoint).stem}" if entry.checkpoint else stem)


def suites_dir() -> Path:
    return resource_dir("suites")


def list_suites() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


_DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")


def _check_numbers(suite: Suite, path: Path) -> None:
    """Counts and the device of ``options`` and ``profile``, checked when the suite is read (validate included),
    where they failed every cell at run time."""
    from bench_ir.counts import check_counts

    options, profile = suite.options, suite.profile
    try:
        check_counts([(f"{path}: options: field 'limit'", options.limit, 1),
                      (f"{path}: options: field 'batch_size'", options.batch_size, 1),
                      (f"{path}: options: field 'tile'", options.tile, 1),
                      (f"{path}: options: field 'tile_overlap'", options.tile_overlap, 0),
                      (f"{path}: profile: field 'size'", profile.size, 1),
                      (f"{path}: profile: field 'repeats'", profile.repeats, 1),
                      (f"{path}: profile: field 'warmup'", profile.warmup, 0)])
    except ValueError as err:
        raise SpecError(str(err)) from None
    if not _DEVICE.fullmatch(options.device):
        raise SpecError(f"{path}: options: field 'device': unknown device {options.device!r}; give auto, cpu, "
                        "cuda or cuda:N (mps, xpu also)")


def _check_tiles(options: SuiteOptions, path: Path, index: int, card: ModelCard, protocols: list[Protocol]) -> None:
    """With ``options.tile``: the tile larger than ``options.tile_overlap`` on every task entry ``index`` runs,
    the tile rounded down to the size multiple of the model and the protocol's crop rule as a run does (see
    bench_ir.geometry.tile_size), where every such cell failed at run time."""
    if options.tile is None:
        return
    from bench_ir.geometry import GeometryError, task_fit_policy, tile_size

    for protocol in protocols:
        for task in protocol.tasks:
            try:
                tile_size(options.tile, options.tile_overlap, task_fit_policy(card, protocol, task).multiple)
            except GeometryError as err:
                problem = getattr(err, "problem", err)  # without the command line's options
                raise SpecError(f"{path}: options: fields 'tile' ({options.tile}) and 'tile_overlap' "
                                f"({options.tile_overlap}): for entries[{index}] ('{card.name}') on protocol "
                                f"'{protocol.name}', {problem}; give a larger 'tile' or a smaller 'tile_overlap'"
                                ) from None


def _missing_checkpoint(card: ModelCard, sample: bool) -> str | None:
    """Why an entry of ``card`` without a checkpoint would evaluate random weights, or None when it would not: a
    card without parameters needs none, and on sample data (``sample``) a card that ships a sample checkpoint
    (``default_checkpoint``) uses it."""
    from bench_ir.cards import default_checkpoint_path

    if card.expected_params == 0:
        return None
    if not sample:
        return f"required for '{card.name}' on real data (a suite never evaluates random weights)"
    if default_checkpoint_path(card) is None:
        return (f"required for '{card.name}': its card ships no sample checkpoint (no 'default_checkpoint'), so even "
                "on sample data it would run random weights, which a suite never evaluates; name the weights file")
    return None


_SHARED_PROTOCOL_NAME = ("a suite names its cells (<entry>__<protocol name>) and report tables by protocol name, so "
                         "their runs would be taken for one protocol's")


def load_suite(name_or_path: str | Path) -> Suite:
    """Load and validate a suite by name (suites/<name>.yaml) or path.

    Checks the schema, that every entry has protocols, every protocol and model card resolves, the convention
    exists, every entry names a checkpoint (a suite never runs random weights; a card with no parameters, such as
    ``input``, needs none, nor on sample data a card that ships a sample checkpoint), the tile is larger than the
    tile overlap, no two protocol files share a name and cell names are unique.
    Files are not required to exist:
    `bench-ir suite run` checks datasets and checkpoints before the first forward pass."""
    from bench_ir.cards import get_card
    from bench_ir.metrics.conventions import get_convention
    from bench_ir.protocol import check_distinct_protocol_names, load_protocol

    path = resolve_spec_path(name_or_path, suites_dir(), "suite")
    data = read_yaml(path)
    data["source"] = str(path)
    suite = build_dataclass(Suite, data, str(path))
    if not suite.entries:
        raise SpecError(f"{path}: field 'entries': a suite needs at least one entry")
    if suite.options.convention is not None:
        try:
            get_convention(suite.options.convention)
        except KeyError as err:
            raise SpecError(f"{path}: options: field 'convention': {err.args[0]}") from None
    _check_numbers(suite, path)
    if suite.options.sample and suite.options.noise_order != "sorted":
        raise SpecError(f"{path}: options: noise_order '{suite.options.noise_order}' needs dataset folders; "
                        "the sample data has none")
    loaded: dict[str, Protocol] = {}
    cells: dict[str, int] = {}
    for i, entry in enumerate(suite.entries):
        where = f"{path}: entries[{i}]"
        protocols = suite.entry_protocols(entry)
        if not protocols:
            raise SpecError(f"{where}: no protocols (give 'protocols' in the entry or at the top level)")
        try:
            card = get_card(suite.model_ref(entry))
        except (KeyError, SpecError) as err:
            raise SpecError(f"{where}: field 'model': {err.args[0] if isinstance(err, KeyError) else err}") from None
        missing = _missing_checkpoint(card, suite.options.sample) if entry.checkpoint is None else None
        if missing is not None:
            raise SpecError(f"{where}: field 'checkpoint': {missing}")
        for protocol in protocols:
            if protocol not in loaded:
                try:
                    loaded[protocol] = load_protocol(suite.protocol_ref(protocol))
                except (KeyError, SpecError) as err:
                    message = err.args[0] if isinstance(err, KeyError) else str(err)
                    raise SpecError(f"{where}: protocol '{protocol}': {message}") from None
                try:
                    check_distinct_protocol_names(loaded.values(), _SHARED_PROTOCOL_NAME)
                except SpecError as err:
                    raise SpecError(f"{where}: {err}") from None
            cell = f"{suite.entry_name(entry)}__{loaded[protocol].name}"
            if cell in cells:
                raise SpecError(f"{where}: cell '{cell}' is also planned by entries[{cells[cell]}]; give the "
                                "entries distinct 'name's")
            cells[cell] = i
        _check_tiles(suite.options, path, i, card, [loaded[protocol] for protocol in protocols])
    return suite
