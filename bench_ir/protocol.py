"""Protocols: YAML files in protocols/ (or user files) validated into frozen dataclasses.

A protocol is a list of tasks (one scored test set each), the crop rule, the metric convention and the
tasks whose means form the "Average" column. ``include:`` inherits another protocol file; ``only_tasks:``
keeps a subset of the inherited tasks (used by the single-task protocols).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench_ir.file_versions import written_recently
from bench_ir.resources import protocols_dir
from bench_ir.yamlio import SpecError, build_dataclass, read_yaml_with_includes, resolve_spec_path

__all__ = [
    "CropSpec",
    "LayoutSpec",
    "PAIRING_EXPLAINED",
    "PAIRING_RULES",
    "PairingRule",
    "NoiseSpec",
    "SampleSpec",
    "TaskSpec",
    "Protocol",
    "load_protocol",
    "resolve_protocol_name",
    "list_protocols",
    "protocol_sha256",
    "protocol_record",
    "measurement_content",
    "measurement_changes",
    "DESCRIPTIVE_FIELDS",
    "DESCRIPTIVE_TASK_FIELDS",
    "REPORT_TIME_FIELDS",
    "legacy_content",
    "restricted_to",
    "check_task_names",
    "check_distinct_protocol_names",
]

PAIRING_RULES = ("same_name", "stem", "sots", "rain100l", "raindrop", "outdoor_rain", "position")


@dataclass(frozen=True)
class PairingRule:
    """What a pairing rule does, in words, with one input -> target file-name example (checked by a test)."""

    rule: str
    explanation: str
    example_input: str
    example_target: str


_OTHER_EXTENSION = " A target with the expected stem and another image extension is accepted too."
PAIRING_EXPLAINED = {rule.rule: rule for rule in (
    PairingRule("same_name", "the target has exactly the input's file name.", "0001.png", "0001.png"),
    PairingRule("stem", "the target has the input's name without its extension, with any image extension.",
                "0001.jpg", "0001.png"),
    PairingRule("sots", "the target is the input's name up to the first '_', plus '.png' (SOTS appends the haze "
                "density and the airlight to the name of the hazy image)." + _OTHER_EXTENSION,
                "0001_0.8_0.2.jpg", "0001.png"),
    PairingRule("rain100l", "the target has the input's name, or the input's name with 'no' in front (Rain100L: "
                "rain-N → norain-N); an input 'rain-N_x' also finds 'norain-N'." + _OTHER_EXTENSION,
                "rain-001.png", "norain-001.png"),
    PairingRule("raindrop", "'_rain' at the end of the input's stem becomes '_clean' (RainDrop); other names "
                "pair with the same name." + _OTHER_EXTENSION, "0_rain.png", "0_clean.png"),
    PairingRule("outdoor_rain", "the target is the first 7 characters of the input's name plus its extension "
                "(Outdoor-Rain: the rain parameters follow the image number)." + _OTHER_EXTENSION,
                "im_0001_s80_a04.png", "im_0001.png"),
    PairingRule("position", "the n-th input pairs with the n-th target, both in natural order (digits compared as "
                "numbers: 2 before 10, as natsorted); names are not compared, and both folders must hold the same "
                "number of images.", "a.png", "clean_a.png"),
)}
"""Every rule of PAIRING_RULES explained (docs, `list protocols --details`)."""


@dataclass(frozen=True)
class CropSpec:
    """Test-time geometry applied to input AND target before the model.

    rule: ``none`` (full resolution), ``center_multiple`` (centre crop each side to the largest multiple of
    ``base``; the odd remainder pixel goes at the bottom/right, as the reference ``crop_img``), or
    ``pad_multiple`` (the input alone is padded at the bottom/right to a multiple of ``base`` with ``pad_mode``
    and the output is cropped back; the target is untouched, as Histoformer/Restormer tests).
    """

    rule: Literal["none", "center_multiple", "pad_multiple"] = "none"
    base: int = 16
    pad_mode: Literal["reflect", "replicate", "constant"] = "reflect"

    def brief(self) -> str:
        """The rule in a few characters, for tables: ``centre ×16``, ``pad ×8``, ``none``."""
        if self.rule == "center_multiple":
            return f"centre ×{self.base}"
        if self.rule == "pad_multiple":
            return f"pad ×{self.base}"
        return "none"


@dataclass(frozen=True)
class LayoutSpec:
    """One accepted folder layout of a task, relative to --data-root.

    input: folder of degraded images (omit for tasks whose input is synthesised from ``target``).
    target: folder of clean images. pairing: how an input file finds its target, one of PAIRING_RULES, each
    explained with an example in PAIRING_EXPLAINED (e.g. ``sots``: 0001_0.8_0.2.jpg -> 0001.png,
    ``rain100l``: rain-001.png -> norain-001.png).
    """

    target: str
    input: str | None = None
    pairing: Literal["same_name", "stem", "sots", "rain100l", "raindrop", "outdoor_rain", "position"] = "same_name"
    source: str = ""


@dataclass(frozen=True)
class NoiseSpec:
    """Additive Gaussian noise synthesised on the uint8 clean image (after the crop), as the references:
    noisy = clip(clean + N(0,1)·sigma, 0, 255) in float64, then truncated to uint8.

    stream ``reference``: one NumPy legacy ``RandomState(seed)`` stream, drawn image after image in sorted
    file order, for each sigma of ``stream_sigmas`` in turn (the MIRAGE/PromptIR test loop, with sorted instead
    of os.listdir order). stream ``per_image``: an independent generator per (image name, task, seed).
    """

    sigma: float
    seed: int = 0
    stream: Literal["reference", "per_image"] = "reference"
    stream_sigmas: list[float] = field(default_factory=lambda: [15.0, 25.0, 50.0])
    truncate: bool = True


@dataclass(frozen=True)
class SampleSpec:
    """How the built-in sample variant of a task is made from the sample photos: the ordered list of synthetic
    degradations applied to the clean photo (names from bench_ir.data.synthesis), ignored for noise tasks,
    which use the protocol's own NoiseSpec."""

    degradations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TaskSpec:
    """One scored test set. ``name`` is the record's task key; ``leaderboard`` maps it to the CSV's
    ``dataset``/``subset`` values of the protocol's leaderboard table."""

    name: str
    label: str
    dataset: str
    layouts: list[LayoutSpec]
    noise: NoiseSpec | None = None
    expected_count: int | None = None
    crop: CropSpec | None = None
    leaderboard: dict[str, Any] = field(default_factory=dict)
    sample: SampleSpec = field(default_factory=SampleSpec)
    notes: str = ""

    @property
    def has_sample_variant(self) -> bool:
        """Whether ``--sample`` can build this task from the built-in photos: it synthesises noise or names
        sample degradations (bench_ir.data.sample)."""
        return self.noise is not None or bool(self.sample.degradations)


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    version: int
    tasks: list[TaskSpec]
    convention: str = "M1"
    alternative_conventions: list[str] = field(default_factory=list)
    crop: CropSpec = field(default_factory=CropSpec)
    average: list[str] = field(default_factory=list)
    leaderboard_table: str | None = None
    paper_table: str = ""
    reference: str = ""
    description: str = ""
    notes: str = ""
    source: str = ""
    sha256: str = ""

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"protocol '{self.name}' has no task '{name}'; tasks: {[t.name for t in self.tasks]}")

    def select_tasks(self, names: list[str] | None) -> list[TaskSpec]:
        """The tasks named in ``names`` in protocol order (every task for None or []); an unknown name is a KeyError
        naming the protocol's tasks."""
        if not names:
            return list(self.tasks)
        unknown = [name for name in names if name not in {t.name for t in self.tasks}]
        if unknown:
            raise KeyError(f"protocol '{self.name}' has no task(s) {unknown}; tasks: {[t.name for t in self.tasks]}")
        return [task for task in self.tasks if task.name in names]

    def crop_for(self, task: TaskSpec) -> CropSpec:
        return task.crop or self.crop

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_path(name_or_path: str | Path) -> Path:
    return resolve_spec_path(name_or_path, protocols_dir(), "protocol")


def _merge_protocol(base: dict[str, Any] | None, data: dict[str, Any], path: Path,
                    parent: str | None) -> dict[str, Any]:
    """Include rule of protocols: the including file's keys win; ``only_tasks`` keeps those tasks of the included
    protocol (and, unless ``average`` is given, its average restricted to them). A file with ``only_tasks`` names
    itself (its Average and test sets are not the included protocol's, and reports tell protocols by name) and
    keeps the included ``leaderboard_table``/``paper_table`` only when it names them itself: a published Average
    is over the included protocol's tasks."""
    only = data.pop("only_tasks", None)
    if base is None:
        if only is not None:
            raise SpecError(f"{path}: field 'only_tasks' needs 'include'")
        return data
    base.pop("sha256", None)
    merged = {**base, **data}
    if only is not None:
        if "name" not in data:
            raise SpecError(f"{path}: a protocol that keeps some tasks of {parent} (only_tasks) needs a 'name' of its "
                            f"own: it would go by '{base.get('name')}' in runs and reports, and its Average is not "
                            "that protocol's")
        tasks = {t["name"]: t for t in base.get("tasks", [])}
        missing = [n for n in only if n not in tasks]
        if missing:
            raise SpecError(f"{path}: field 'only_tasks': {missing} not in {parent}")
        merged["tasks"] = [tasks[n] for n in only]
        if "average" not in data:
            merged["average"] = [n for n in base.get("average", []) if n in only]
        for published in ("leaderboard_table", "paper_table"):
            if published not in data:
                merged.pop(published, None)
    return merged


def protocol_sha256(data: dict[str, Any]) -> str:
    """Hash of the fully resolved protocol content (includes expanded), stable across key order."""
    payload = json.dumps({k: v for k, v in data.items() if k not in ("source", "sha256")}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# Fields that describe a protocol or link it to published tables without changing what a run computes or records:
# editing them keeps an interrupted run resumable and a suite's cells current. Every other field (a new one too)
# counts as part of the measurement.
DESCRIPTIVE_FIELDS = ("title", "description", "notes", "reference", "paper_table", "leaderboard_table",
                      "alternative_conventions")
DESCRIPTIVE_TASK_FIELDS = ("label", "notes", "leaderboard", "expected_count")
# Fields a report reads from the protocol as it is when the report is made, never from a run's manifest: the Average
# is the mean of the recorded task means, so editing it changes no record (an interrupted run stays resumable, a
# suite's cells stay current, and every run of a table gets the Average the protocol defines now).
REPORT_TIME_FIELDS = ("average",)
# A task's layouts are where its files are looked for: the folders and files they resolve to are compared as the
# run's data (bench_ir.resume.data_identity), so another candidate layout or pairing rule that finds the same pairs
# is the same measurement.
_DATA_TASK_FIELDS = ("layouts",)


def protocol_record(protocol: Protocol) -> dict[str, Any]:
    """What a run manifest keeps of its protocol to tell later whether a protocol file still defines the same
    measurement: the name, the content sha256 and the resolved content (includes expanded; no source path)."""
    resolved = {k: v for k, v in protocol.to_dict().items() if k not in ("source", "sha256")}
    return {"name": protocol.name, "sha256": protocol.sha256, "resolved": resolved}


def measurement_content(resolved: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved protocol (``Protocol.to_dict()`` as :func:`protocol_record` keeps it) that decides a
    run's records besides its data: everything but :data:`DESCRIPTIVE_FIELDS`, :data:`REPORT_TIME_FIELDS` (read
    from the current protocol when a report is made) and, per task, :data:`DESCRIPTIVE_TASK_FIELDS` and the layouts
    (the data a run resolved is compared on its own)."""
    content = {k: v for k, v in resolved.items()
               if k not in (*DESCRIPTIVE_FIELDS, *REPORT_TIME_FIELDS, "source", "sha256")}
    content["tasks"] = [{k: v for k, v in task.items() if k not in (*DESCRIPTIVE_TASK_FIELDS, *_DATA_TASK_FIELDS)}
                        for task in resolved.get("tasks") or [] if isinstance(task, dict)]
    return content


def legacy_content(record: dict[str, Any]) -> dict[str, Any] | None:
    """The part of the resolved content that a manifest's protocol record written before bench-ir kept ``resolved``
    recorded: its top-level fields (name, version, crop, average and descriptive ones) and, per task of the run, the
    fields it kept (name, dataset, noise, descriptive ones, and ``sample_degradations``, read as ``sample``). It
    lacks the rest (a task's layouts and crop, the convention, ...), which therefore cannot be compared. None for
    a record that keeps ``resolved`` or keeps no tasks (only its name and content sha256)."""
    if isinstance(record.get("resolved"), dict) or not isinstance(record.get("tasks"), list):
        return None
    content = {k: v for k, v in record.items() if k not in ("resolved", "tasks")}
    content["tasks"] = [_legacy_task(task) for task in record["tasks"] if isinstance(task, dict)]
    return content


def _legacy_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task as an old manifest recorded it, with its ``sample_degradations`` where the resolved content keeps
    them (``sample: {degradations: [...]}``)."""
    task = dict(task)
    if "sample_degradations" in task:
        task["sample"] = {"degradations": task.pop("sample_degradations")}
    return task


def restricted_to(content: dict[str, Any], fields_of: dict[str, Any]) -> dict[str, Any]:
    """``content`` (resolved protocol content) cut to what the partial content ``fields_of`` (:func:`legacy_content`)
    can be compared with: its top-level fields that ``fields_of`` has, and of the tasks ``fields_of`` lists (by
    name; a run's manifest lists the run's tasks only) the fields that task has there."""
    shape = {str(task.get("name")): task for task in fields_of.get("tasks") or [] if isinstance(task, dict)}
    kept = {k: v for k, v in content.items() if k in fields_of and k != "tasks"}
    kept["tasks"] = [{k: v for k, v in task.items() if k in shape[str(task.get("name"))]}
                     for task in content.get("tasks") or []
                     if isinstance(task, dict) and str(task.get("name")) in shape]
    return kept


def measurement_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The fields in which two resolved protocols define different measurements, in words (``crop``, ``task
    'derain': layouts``, ``tasks added: x``); empty when only descriptive fields (or the order of the tasks)
    differ."""
    before, after = measurement_content(old), measurement_content(new)
    changes = [key for key in sorted(before.keys() | after.keys())
               if key != "tasks" and before.get(key) != after.get(key)]
    old_tasks = {str(task.get("name")): task for task in before["tasks"]}
    new_tasks = {str(task.get("name")): task for task in after["tasks"]}
    for label, names in (("tasks removed", [n for n in old_tasks if n not in new_tasks]),
                         ("tasks added", [n for n in new_tasks if n not in old_tasks])):
        if names:
            changes.append(f"{label}: {', '.join(names)}")
    for name in (n for n in old_tasks if n in new_tasks and old_tasks[n] != new_tasks[n]):
        task_a, task_b = old_tasks[name], new_tasks[name]
        fields = [key for key in sorted(task_a.keys() | task_b.keys()) if task_a.get(key) != task_b.get(key)]
        changes.append(f"task '{name}': {', '.join(fields)}")
    return changes


def check_noise(task: TaskSpec, where: str) -> None:
    """A task's ``noise`` as a run would draw it, checked when the protocol is read (else a run found out after
    its run folder was made, or never): the input is synthesised from the target, so no layout names an input
    folder (one that did was scored as it is, without the noise); sigma above 0; for the reference stream, sigma
    is one of ``stream_sigmas``, listed once each."""
    noise = task.noise
    assert noise is not None
    inputs = [layout.input for layout in task.layouts if layout.input]
    if inputs:
        raise SpecError(f"{where}: task '{task.name}': 'noise' synthesises the input from the target, but its "
                        f"layouts name input folder(s) {inputs}; drop 'noise' to score those inputs, or the layouts' "
                        "'input' to synthesise it")
    if not noise.sigma > 0:
        raise SpecError(f"{where}: task '{task.name}': noise 'sigma' must be above 0, got {noise.sigma}")
    if noise.stream == "reference":
        if len(set(noise.stream_sigmas)) != len(noise.stream_sigmas):
            raise SpecError(f"{where}: task '{task.name}': noise 'stream_sigmas' lists a sigma twice: "
                            f"{noise.stream_sigmas}")
        if noise.sigma not in noise.stream_sigmas:
            raise SpecError(f"{where}: task '{task.name}': noise sigma {noise.sigma} is not in 'stream_sigmas' "
                            f"{noise.stream_sigmas}: the reference stream draws each of those in turn; add it there "
                            "(or use stream: per_image)")


def check_task_names(task: TaskSpec, where: str) -> None:
    """Task and dataset names become folder names (saved images, caches): both must be safe identifiers, and a
    relative layout folder must not climb out of the data root. Raises SpecError naming the file and the task."""
    from bench_ir.safety import UnsafePathError, safe_name, stays_below

    try:
        safe_name(task.name, f"{where}: task name")
        safe_name(task.dataset, f"{where}: task '{task.name}': dataset name")
        for layout in task.layouts:
            for folder in (layout.input, layout.target):
                if folder is not None and not Path(folder).expanduser().is_absolute():
                    stays_below(folder, f"{where}: task '{task.name}': layout folder")
    except UnsafePathError as err:
        raise SpecError(str(err)) from err


_FileStamp = tuple[int, int] | None
"""A file's (mtime_ns, size), or None when there is no file at that path."""

@dataclass(frozen=True)
class _LoadedProtocol:
    """A protocol as read, with the stamp of every file its reading consulted."""

    protocol: Protocol
    stamps: tuple[tuple[Path, _FileStamp], ...]


_LOADED: dict[tuple[str, Path], _LoadedProtocol] = {}


def _file_stamp(path: Path) -> _FileStamp:
    """``path``'s (mtime_ns, size), or None when it is missing or cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _unchanged(stamps: tuple[tuple[Path, _FileStamp], ...]) -> bool:
    return all(_file_stamp(path) == stamp for path, stamp in stamps)


def _settled(stamps: tuple[tuple[Path, _FileStamp], ...]) -> bool:
    """Whether no stamped file was written too recently to be memoised (bench_ir.file_versions.written_recently: an
    edit in the same clock tick could keep its mtime and size); a missing file counts as settled."""
    return not any(written_recently(stamp[0]) for _, stamp in stamps if stamp is not None)


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a protocol by name (protocols/<name>.yaml) or from a YAML path; validated, includes resolved.

    Memoised per process: the same file (as given and resolved) gives the same Protocol again, without parsing, while
    it and every file its ``include:`` chain consulted keep their mtime_ns and size (an edited or newly created file
    is read again). The Protocol is shared: frozen, and its lists and dicts must not be changed either."""
    path = _resolve_path(name_or_path)
    key = (str(path), path.resolve())
    loaded = _LOADED.get(key)
    if loaded is None or not _unchanged(loaded.stamps):
        loaded = _read_protocol(path)
        if _settled(loaded.stamps):
            _LOADED[key] = loaded
        else:
            _LOADED.pop(key, None)
    _check_not_a_builtin_name(loaded.protocol, path)
    return loaded.protocol


def _read_protocol(path: Path) -> _LoadedProtocol:
    """Parse and validate the protocol file ``path``, stamping each file it consulted: the files of its include
    chain and, for each ``include:``, the file of that name next to the including one (its absence chose the shipped
    protocol)."""
    consulted: list[Path] = []

    def merge(base: dict[str, Any] | None, data: dict[str, Any], where: Path, parent: str | None) -> dict[str, Any]:
        consulted.append(where)
        if parent is not None:
            consulted.append((where.parent / str(parent)).resolve())
        return _merge_protocol(base, data, where, parent)

    data = read_yaml_with_includes(path, merge, builtin=protocols_dir())
    protocol = _validated_protocol(data, path)
    return _LoadedProtocol(protocol, tuple((file, _file_stamp(file)) for file in dict.fromkeys(consulted)))


def _validated_protocol(data: dict[str, Any], path: Path) -> Protocol:
    """The Protocol of the resolved mapping ``data`` read from ``path``, checked, with its content sha256."""
    data["source"] = str(path)
    protocol = build_dataclass(Protocol, data, str(path))
    names = [t.name for t in protocol.tasks]
    if not names:
        raise SpecError(f"{path}: field 'tasks' must list at least one task")
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: duplicate task names in {names}")
    for where, crop in [("crop", protocol.crop), *((f"task '{t.name}': crop", t.crop) for t in protocol.tasks)]:
        if crop is not None and crop.base < 1:
            raise SpecError(f"{path}: {where}: 'base' must be >= 1 (sides are cropped or padded to its multiples), "
                            f"got {crop.base}")
    from bench_ir.metrics.conventions import get_convention

    try:
        get_convention(protocol.convention)
    except KeyError as err:
        raise SpecError(f"{path}: field 'convention': {err.args[0] if err.args else err}") from None
    unknown = [n for n in protocol.average if n not in names]
    if unknown:
        raise SpecError(f"{path}: field 'average': unknown task(s) {unknown}; tasks: {names}")
    for task in protocol.tasks:
        check_task_names(task, str(path))
        if not task.layouts:
            raise SpecError(f"{path}: task '{task.name}': field 'layouts' must list at least one layout")
        if task.noise is not None:
            check_noise(task, str(path))
    from dataclasses import replace

    return replace(protocol, sha256=protocol_sha256(protocol.to_dict()))


def _check_not_a_builtin_name(protocol: Protocol, path: Path) -> None:
    """A protocol file outside protocols/ may not take a shipped protocol's name with other content: runs, reports
    and the published tables go by the name, so its runs would be ranked as that protocol's."""
    shipped = protocols_dir() / f"{protocol.name}.yaml"
    if not shipped.is_file() or path.resolve() == shipped.resolve():
        return
    if load_protocol(shipped).sha256 != protocol.sha256:
        raise SpecError(f"{path}: name '{protocol.name}' is a shipped protocol's, but this file defines other test "
                        "sets, metric or synthesis; give it a name of its own (runs, reports and the published "
                        "tables go by the name)")


def check_distinct_protocol_names(protocols: Iterable[Protocol], what: str) -> None:
    """Protocols read from different files must have different names; else a SpecError naming both files and the
    shared name, with ``what`` saying what goes by that name, that asks to give one of them another ``name``. One
    file listed twice is no conflict."""
    first_file: dict[str, Path] = {}
    for protocol in protocols:
        source = Path(protocol.source).resolve()
        first = first_file.setdefault(protocol.name, source)
        if first != source:
            raise SpecError(f"protocol files {first} and {source} share the name '{protocol.name}': {what}; give "
                            "one of them another `name`")


def resolve_protocol_name(name_or_path: str | Path) -> str:
    """The name a protocol's runs and tables go by, from what ``run --protocol`` takes: a built-in name as it is
    (in any letter case, as :func:`load_protocol` finds it: ``5DEG`` is ``5deg``), a YAML file by its ``name``
    field; any other name (a user's own protocol, known from its runs) as it is."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")):
        return load_protocol(text).name
    return next((name for name in list_protocols() if name.casefold() == text.casefold()), text)


def command_ref(protocol: Protocol) -> str:
    """How a command line names ``protocol``: a shipped one by its name, a user's file by its path (shell-quoted),
    since `--protocol NAME` finds only shipped protocols."""
    import shlex

    source = Path(protocol.source) if protocol.source else None
    if source is None or source.resolve().parent == protocols_dir().resolve():
        return protocol.name
    return shlex.quote(str(source))


def list_protocols() -> list[str]:
    return sorted(p.stem for p in protocols_dir().glob("*.yaml"))
