"""What a report needs from one stored run: per-column means keyed like the leaderboard, its label,
and why it may not be comparable with published numbers. Reads the result store only (per-image
records -> ``results.aggregate``); no metric is recomputed here.

Column keys: a task maps to the leaderboard's (dataset, subset) through the manifest
(``protocol.tasks[i].leaderboard``); a task without a mapping keys as (task name, ""). The Average
column is ("Average", "") = mean of the tasks of :func:`average_tasks`: the built-in protocol's ``average`` as it
is now, else the manifest's ``protocol.average``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_ir.cards import find_card
from bench_ir.comparability import synthesis_changes, task_crop
from bench_ir.leaderboard import AVERAGE
from bench_ir.protocol import Protocol, list_protocols, load_protocol
from bench_ir.results import Run, aggregate, load_run, protocol_average
from bench_ir.resume import run_status

__all__ = [
    "MeasuredRun",
    "TaskColumn",
    "as_runs",
    "average_tasks",
    "card_option",
    "inference_params_published",
    "inference_params_shown",
    "measure",
    "noncomparable_reasons",
    "nonfinite_means",
    "published_table_differences",
    "table_protocol",
    "demonstration_weights",
    "short_test_sets",
    "profile_figures",
    "provenance",
    "provenance_line",
    "row_tags",
    "run_list",
    "run_tags",
    "is_profile_run",
]

_METRIC_FIELDS = {"PSNR": "psnr", "SSIM": "ssim", "LPIPS": "lpips"}


@dataclass(frozen=True)
class TaskColumn:
    """A task of a run and the leaderboard column it fills."""

    task: str
    label: str
    key: tuple[str, str]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def demonstration_weights(manifest: dict[str, Any]) -> bool:
    """Whether a run on real data used its card's shipped sample checkpoint (``--sample-checkpoint``, or the same
    file given as ``--checkpoint``): weights trained on a CPU on a few photos, never the published ones. On the
    sample data its rows say "sample" already."""
    return bool(manifest.get("sample_checkpoint")) and not manifest.get("sample")


def noncomparable_reasons(manifest: dict[str, Any], run_dir: str | Path | None = None) -> list[str]:
    """Why a run's numbers cannot stand beside published ones (empty when they can). With ``run_dir`` a run's status
    is the one `list runs` shows (:func:`bench_ir.resume.run_status`: a ``running`` run that no process holds is
    ``stopped``); without it, the manifest's."""
    reasons = []
    if manifest.get("sample"):
        reasons.append("sample (synthetic) data")
    if manifest.get("limit") is not None:
        limit = int(manifest["limit"])
        reasons.append(f"--limit {limit} (at most {limit} image{'s' if limit != 1 else ''} per task)")
    if manifest.get("random_weights"):
        reasons.append("random weights")
    if demonstration_weights(manifest):
        reasons.append("the model's shipped sample checkpoint (a demonstration, not the published weights)")
    status = manifest.get("status")
    if status is not None and run_dir is not None:
        status = run_status(run_dir, manifest)
    if status is not None and status != "complete":
        reasons.append(f"run {status}, not complete")
    return reasons + published_table_differences(manifest)


def _shipped_protocol(name: str) -> Protocol | None:
    """The built-in protocol ``name`` as it is now, or None for a protocol that cannot be loaded by its name (a
    user's own file, a folder pair's, a profile's, or one no longer shipped)."""
    if name not in list_protocols():  # not a file of that name in the working directory either
        return None
    return _load_shipped(name)


def _load_shipped(name: str) -> Protocol | None:
    """``load_protocol(name)`` of a name :func:`list_protocols` gives, None when it cannot be loaded."""
    try:
        return load_protocol(name)
    except Exception:  # noqa: BLE001 - an ad-hoc or removed protocol
        return None


def table_protocol(protocol: dict[str, Any]) -> Protocol | None:
    """The shipped protocol that owns the published table a run's rows are ranked against, given the run manifest's
    ``protocol``: the shipped protocol of that name where it has that ``leaderboard_table`` (or the manifest names
    none), else the shipped protocol whose ``leaderboard_table`` the manifest names (a file of the user's own that
    includes it inherits it); of several (Table B's dehaze, derain and denoise), the first whose columns include the
    run's. None when no shipped protocol has the table."""
    own = _shipped_protocol(str(protocol.get("name") or ""))
    table = protocol.get("leaderboard_table") or (own.leaderboard_table if own is not None else None)
    if not table:
        return None
    if own is not None and own.leaderboard_table == table:
        return own
    owners = [shipped for name in list_protocols()
              if (shipped := _load_shipped(name)) is not None and shipped.leaderboard_table == table]
    keys = {column.key for column in _task_columns(protocol)}
    return next((owner for owner in owners if keys <= {column.key for column in _task_columns(owner.to_dict())}),
                owners[0] if owners else None)


def published_table_differences(manifest: dict[str, Any]) -> list[str]:
    """What a run measures otherwise than the shipped protocol that owns the published table its rows are ranked
    against (:func:`table_protocol`), one phrase each ('metric convention M5, not M1 of the published table's
    protocol 3deg'; for a run of that protocol itself 'metric convention M3, not the protocol's M1'): the metric
    convention the run scored with, its crop rule and, per leaderboard column, what makes the inputs of the task
    that fills it (dataset, noise: bench_ir.comparability.synthesis_changes). Empty when no shipped protocol owns
    the table and when they agree: a file that includes a shipped protocol and changes only its title or layouts
    measures the same. Fields, and keys of a crop or noise, that the manifest lacks are not compared."""
    protocol = manifest.get("protocol") or {}
    owner = table_protocol(protocol)
    if owner is None:
        return []
    expected = owner.to_dict()
    own = owner.name == protocol.get("name")
    differences = []
    used = str((manifest.get("convention") or {}).get("id") or "")
    if used and used != owner.convention:
        differences.append(f"metric convention {used}, {_not_theirs(owner.convention, owner.name, own)}")
    if protocol.get("crop") is not None and (crop := _differing(protocol["crop"], expected["crop"])):
        differences.append(f"crop {crop[0]}, {_not_theirs(crop[1], owner.name, own)}")
    published = {column.key: task for column, task in zip(_task_columns(expected), expected["tasks"], strict=True)}
    tasks = [task for task in protocol.get("tasks") or [] if isinstance(task, dict) and "name" in task]
    if not own and (averaged := _average_differs(protocol, tasks, expected)):
        differences.append(f"Average over {averaged[0]}, {_not_theirs(averaged[1], owner.name, own)}")
    for column, task in zip(_task_columns({"tasks": tasks}), tasks, strict=True):
        reference = published.get(column.key)
        if reference is None:
            continue
        for name in synthesis_changes(task, reference):
            if values := _differing(task[name], reference[name]):
                differences.append(f"task {column.task} {name} {values[0]}, {_not_theirs(values[1], owner.name, own)}")
        crop = task_crop(protocol, column.task)  # a task's own crop rule (the protocol's was compared above)
        if crop is not None and crop != protocol.get("crop") and (
                values := _differing(crop, reference.get("crop") or expected["crop"])):
            differences.append(f"task {column.task} crop {values[0]}, {_not_theirs(values[1], owner.name, own)}")
    return differences


def _average_differs(protocol: dict[str, Any], tasks: list[dict[str, Any]],
                     owner: dict[str, Any]) -> tuple[str, str] | None:
    """The leaderboard columns a run's Average is made of (:func:`average_tasks` of its manifest's ``protocol``) and
    those of the published table's protocol (``owner``: its ``to_dict()``), as text, when they are not the same
    columns (a file of the user's own that averages other tasks: its Average is another quantity); None when they
    are."""
    ours = average_tasks(protocol)
    if not ours:
        return None
    key_of = {column.task: column for column in _task_columns({"tasks": tasks})}
    theirs = {column.task: column for column in _task_columns(owner)}
    mine = [key_of.get(task) for task in ours]
    published = [theirs[task] for task in owner["average"] if task in theirs]
    if None not in mine and sorted(c.key for c in mine) == sorted(c.key for c in published):  # type: ignore[union-attr]
        return None
    return (f"[{', '.join(c.label if c is not None else t for c, t in zip(mine, ours, strict=True))}]",
            f"[{', '.join(c.label for c in published)}]")


def _not_theirs(value: str, owner: str, own: bool) -> str:
    """'not the protocol's M1' (a run of the owning protocol itself), else 'not M1 of the published table's
    protocol 3deg'."""
    return f"not the protocol's {value}" if own else f"not {value} of the published table's protocol {owner}"


def _differing(ours: Any, theirs: Any) -> tuple[str, str] | None:
    """Two recorded values as text where they differ, None where they agree; of two mappings (a crop, a noise) only
    the keys both have are compared and shown ('sigma 30', 'sigma 25')."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = [key for key in ours if key in theirs and ours[key] != theirs[key]]
        return (_text({key: ours[key] for key in keys}), _text({key: theirs[key] for key in keys})) if keys else None
    return None if ours == theirs else (_text(ours), _text(theirs))


def _text(value: Any) -> str:
    """A recorded value in words: ``None`` is 'none', a mapping 'key value, ...', a list '[a, b]', a float without a
    trailing .0."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        return f"[{', '.join(_text(item) for item in value)}]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def average_tasks(protocol: dict[str, Any]) -> list[str]:
    """The tasks whose means form a run's Average, given its manifest's ``protocol``: the ``average`` of the
    built-in protocol of that name as it is now (an Average is computed when a report is made, so a run recorded
    before the protocol's Average changed gets the current one; bench_ir.protocol.REPORT_TIME_FIELDS), else the
    list the manifest recorded (a protocol file of the user's own)."""
    current = _shipped_protocol(str(protocol.get("name") or ""))
    return list(current.average) if current is not None else [str(t) for t in protocol.get("average") or []]


def card_option(manifest: dict[str, Any], name: str) -> Any:
    """The value of option ``name`` of the run's model card: from the manifest's copy of the card, else from the
    registered card of the run's model (a run recorded before its card stated the option); None when neither states
    it. An option written ``{default: V, note: ...}`` has the value V."""
    model = manifest.get("model") or {}
    options = (model.get("card") or {}).get("options") or {}
    if name not in options:
        card = find_card(str(model.get("name") or ""))
        options = card.options if card is not None else {}
    value = options.get(name)
    return value.get("default") if isinstance(value, dict) else value


def inference_params_published(manifest: dict[str, Any]) -> bool:
    """Whether the run's model card says its published parameter count leaves out the training-only modules (card
    option ``published_params: inference``, e.g. NDR-Restore without its NDR-Degrad synthesis net). Otherwise the
    published count is all parameters, training heads included (MIRAGE's SPD head, AirNet's CBDE keys)."""
    return card_option(manifest, "published_params") == "inference"


def inference_params_shown(manifest: dict[str, Any]) -> int | None:
    """The inference-time parameter count a run's Params shows instead of all its parameters (``model.params``):
    the model card's ``inference_params`` where the card says its published figure is that count
    (:func:`inference_params_published`). None where it does not, where the card states no such count or one equal
    to the total, and for a run with ``--model-arg`` overrides (the card's counts are of its own arguments)."""
    if not inference_params_published(manifest):
        return None
    model = manifest.get("model") or {}
    inference, total = _card_inference_params(model), model.get("params")
    if inference is None or (total is not None and inference == int(total)):
        return None
    return inference


def _card_inference_params(model: dict[str, Any]) -> int | None:
    """``inference_params`` of the manifest's copy of the card (None there after --model-arg overrides), else of
    the registered card of a run that overrode no argument."""
    if "card" in model:
        inference = (model.get("card") or {}).get("inference_params")
    elif model.get("args_overrides"):
        return None
    else:
        card = find_card(str(model.get("name") or ""))
        inference = card.inference_params if card is not None else None
    return int(inference) if inference is not None else None


def short_test_sets(protocol: dict[str, Any], images: dict[str, int]) -> list[str]:
    """Tasks scored on fewer images than the protocol's expected count (full real-data runs only)."""
    short = []
    for task in protocol.get("tasks") or []:
        expected = task.get("expected_count")
        if expected and images.get(str(task["name"]), 0) < int(expected):
            short.append(f"{task.get('label') or task['name']} {images.get(str(task['name']), 0)}/{expected}")
    return short


@dataclass
class MeasuredRun:
    """One run reduced to table cells: ``values[(dataset, subset, metric)]`` is the per-image mean of the
    task mapped to that column (PSNR in dB), ``images[task]`` the number of scored images."""

    run: Run
    label: str
    run_id: str
    protocol: str
    task_columns: list[TaskColumn]
    values: dict[tuple[str, str, str], float | None]
    images: dict[str, int]
    reasons: list[str] = field(default_factory=list)
    nonfinite: int = 0
    incomplete: str | None = None  # Run.incomplete(): its records do not cover what it planned (then also a reason)
    short_sets: list[str] = field(default_factory=list)  # short_test_sets() of a full real-data run (also a reason)
    profile_run: Run | None = None  # where the efficiency figures come from (itself, or a joined profile run)

    @property
    def comparable(self) -> bool:
        return not self.reasons

    @property
    def manifest(self) -> dict[str, Any]:
        return self.run.manifest

    @property
    def profile(self) -> dict[str, Any] | None:
        """The efficiency figures' source: the run's own profile.json, else the joined profile run's."""
        if self.run.profile:
            return self.run.profile
        return self.profile_run.profile if self.profile_run is not None else None

    @property
    def params(self) -> int | None:
        params = (self.manifest.get("model") or {}).get("params")
        return int(params) if params is not None else None

    @property
    def convention(self) -> dict[str, Any]:
        return self.manifest.get("convention") or {}

    @property
    def leaderboard_table(self) -> str | None:
        return (self.manifest.get("protocol") or {}).get("leaderboard_table")

    def value(self, key: tuple[str, str], metric: str) -> float | None:
        return self.values.get((*key, metric))


def _task_columns(protocol: dict[str, Any]) -> list[TaskColumn]:
    columns = []
    for task in protocol.get("tasks") or []:
        mapping = task.get("leaderboard") or {}
        if mapping.get("dataset"):
            key = (str(mapping["dataset"]), str(mapping.get("subset") or ""))
        else:
            key = (str(task["name"]), "")
        columns.append(TaskColumn(task=str(task["name"]), label=str(task.get("label") or task["name"]), key=key))
    return columns


def measure(run: Run) -> MeasuredRun:
    """Reduce a stored run to its table cells (task means and the protocol Average)."""
    protocol = run.manifest.get("protocol") or {}
    summary = aggregate(run.records)
    columns = _task_columns(protocol)
    known = {column.task for column in columns}
    # Tasks in the records but absent from the manifest still get a column of their own.
    columns += [TaskColumn(task=str(task), label=str(task), key=(str(task), "")) for task in summary.index
                if task not in known]
    values: dict[tuple[str, str, str], float | None] = {}
    for column in columns:
        if column.task not in summary.index:
            continue
        for metric, field_name in _METRIC_FIELDS.items():
            values[(*column.key, metric)] = _number(summary.loc[column.task, field_name])
    average = protocol_average(summary, average_tasks(protocol))
    if average is not None:
        for metric, field_name in _METRIC_FIELDS.items():
            values[(AVERAGE, "", metric)] = _number(average[field_name])
    images = {str(task): int(count) for task, count in summary["images"].items()}
    reasons = noncomparable_reasons(run.manifest, run.run_dir)
    incomplete = run.incomplete()
    if incomplete:
        reasons.append(incomplete)
    full_real_data = not run.manifest.get("sample") and run.manifest.get("limit") is None
    short = short_test_sets(protocol, images) if full_real_data else []
    if short:
        reasons.append(f"incomplete test sets ({', '.join(short)} images)")
    measured = MeasuredRun(
        run=run, label=run.label, run_id=str(run.manifest.get("run_id") or run.run_dir.name),
        protocol=str(protocol.get("name") or ""), task_columns=columns, values=values, images=images,
        reasons=reasons,
        nonfinite=int(summary["nonfinite"].sum()) if "nonfinite" in summary else 0, incomplete=incomplete,
        short_sets=short,
    )
    measured.reasons += nonfinite_means(measured)
    return measured


def nonfinite_means(measured: MeasuredRun) -> list[str]:
    """One phrase per task whose PSNR or SSIM mean is not a finite number, which no rank can place (empty when there
    is none; :func:`measure` adds them to the run's reasons). These means count every image
    (:func:`bench_ir.results.aggregate`): an output with NaN/Inf values makes them NaN, and an output identical to its
    target (the PSNR of identical images is inf) makes the PSNR mean inf."""
    phrases = []
    for column in measured.task_columns:
        means = {metric: measured.value(column.key, metric) for metric in ("PSNR", "SSIM")
                 if (*column.key, metric) in measured.values}
        nan = [metric for metric, mean in means.items() if mean is None]  # measure() keeps a NaN mean as None
        if nan:
            phrases.append(f"its {column.label} {' and '.join(nan)} mean{'s' if len(nan) > 1 else ''} of NaN (outputs "
                           "with NaN/Inf values, the records marked nonfinite)")
        if means.get("PSNR") is not None and math.isinf(means["PSNR"]):
            phrases.append(f"its {column.label} PSNR mean of inf (an output identical to its target, such as an input "
                           "that is a copy of its target with --model input: the PSNR of identical images is inf)")
    return phrases


def distinct_run_ids(measured: list[MeasuredRun]) -> list[MeasuredRun]:
    """``measured``, with the ``run_id`` of runs whose folders share a name (two suite directories' ``cell``
    folders, ``exp1/run`` and ``exp2/run``) made the folder's path below their closest common folder, so that a
    report's provenance rows, links and row names tell them apart. Others keep the folder name."""
    by_id: dict[str, list[MeasuredRun]] = {}
    for run in measured:
        by_id.setdefault(run.run_id, []).append(run)
    for same in by_id.values():
        folders = [run.run.run_dir.resolve() for run in same]
        if len(set(folders)) > 1:
            common = Path(os.path.commonpath([folder.parent for folder in folders]))
            for run, folder in zip(same, folders, strict=True):
                run.run_id = folder.relative_to(common).as_posix()
    return measured


def run_list(runs: Any) -> list[Any]:
    """``runs`` as a list: one run directory (str or Path) or one run is a list of one, never read as the
    characters of a path."""
    return [runs] if isinstance(runs, str | os.PathLike | Run | MeasuredRun) else list(runs)


def as_runs(runs: Iterable[Run | str | Path] | Run | str | Path) -> list[Run]:
    """Accept loaded runs or run directories (or a single one)."""
    return [run if isinstance(run, Run) else load_run(run) for run in run_list(runs)]


def _first(mapping: dict[str, Any], names: Sequence[str]) -> float | None:
    for name in names:
        if mapping.get(name) is not None:
            return float(mapping[name])
    return None


def is_profile_run(run: Run) -> bool:
    """True for a ``bench-ir profile`` run (protocol "efficiency", no per-image records)."""
    return run.is_profile


def run_tags(run: MeasuredRun) -> list[str]:
    """:func:`row_tags` of a measured run, and ``incomplete`` when its records do not cover what it planned (a run
    that failed, was interrupted or is still running): its means are over part of the test set."""
    return row_tags(run.manifest) + (["incomplete"] if run.incomplete else [])


def row_tags(manifest: dict[str, Any]) -> list[str]:
    """Short words a measured row's name carries so that a table pasted without footnotes still says them."""
    tags = []
    if manifest.get("sample"):
        tags.append("sample")
    if manifest.get("random_weights"):
        tags.append("random weights")
    if demonstration_weights(manifest):
        tags.append("sample checkpoint")
    if manifest.get("limit") is not None:
        tags.append(f"limit {int(manifest['limit'])}")
    return tags


def provenance(run: Run, images: dict[str, int] | None = None) -> dict[str, str]:
    """Where a run's numbers come from, as display strings ('' when the manifest does not say):
    run_id, git (revision, 12 characters), device, dtype, execution (mode), tiling (requested tiles, or the images
    tiled after a GPU out-of-memory error; '' for whole images), checkpoint (file name), checkpoint_sha256
    (12 characters), versions (torch, bench-ir), images (per task)."""
    manifest = run.manifest
    device = manifest.get("device") or {}
    device_text = str(device.get("name") or "") if isinstance(device, dict) else str(device)
    if isinstance(device, dict) and device.get("type") and device.get("type") not in device_text:
        device_text = f"{device_text} ({device['type']})" if device_text else str(device["type"])
    execution = manifest.get("execution") or {}
    mode = str(execution.get("mode") or execution.get("path") or "") if isinstance(execution, dict) else str(execution)
    checkpoint = manifest.get("checkpoint") or {}
    versions = manifest.get("versions") or {}
    version_text = ", ".join(f"{name} {versions[name]}" for name in ("torch", "bench-ir") if versions.get(name))
    counts = images if images is not None else {
        str(task): int(n) for task, n in run.records.groupby("task", sort=False).size().items()}
    return {
        "run_id": str(manifest.get("run_id") or run.run_dir.name),
        "git": str(manifest.get("git_revision") or "")[:12],
        "device": device_text,
        "dtype": str(manifest.get("dtype") or ""),
        "execution": mode,
        "tiling": run.tiling(),
        "checkpoint": Path(str(checkpoint["path"])).name if checkpoint.get("path") else "",
        "checkpoint_sha256": str(checkpoint.get("sha256") or "")[:12],
        "versions": version_text,
        "images": ", ".join(f"{task} {n}" for task, n in counts.items()),
    }


def provenance_line(name: str, info: dict[str, str]) -> str:
    """One sentence per run for LaTeX/Markdown footnotes."""
    parts = [f"run {info['run_id']}"]
    parts += [f"git {info['git']}"] if info["git"] else []
    parts += [f"device {info['device']}"] if info["device"] else []
    mode = " ".join(part for part in (info["dtype"], info["execution"]) if part)
    parts += [mode] if mode else []
    parts += [info["tiling"]] if info.get("tiling") else []
    if info["checkpoint"]:
        parts.append(f"checkpoint {info['checkpoint']}" + (f" (sha256 {info['checkpoint_sha256']})"
                                                           if info["checkpoint_sha256"] else ""))
    else:
        parts.append("no checkpoint")
    parts += [info["versions"]] if info["versions"] else []
    parts += [f"images per task: {info['images']}"] if info["images"] else []
    return f"{name}: {'; '.join(parts)}."


def profile_figures(run: Run, profile: dict[str, Any] | None = None) -> dict[str, float | None] | None:
    """Efficiency figures of a run's ``profile.json`` in the paper's units: params_m (millions),
    flops_g (fvcore count / 1e9, a multiply-add counted once), memory_m (peak memory in MiB).

    Keys read (first present wins): params | params_m; flops | flops_g | gflops;
    peak_memory_bytes | memory_bytes | peak_memory_mib | peak_memory_mb | memory_mb. Params fall back to
    the manifest's ``model.params``. Params are the count the published figure gives: ``params_inference``
    first when the card says so (:func:`inference_params_published`). ``profile`` overrides the run's own (a
    joined profile run's figures). Returns None when there is no profile.
    """
    profile = profile if profile is not None else run.profile
    if not profile:
        return None
    params = _first(profile, ["params_inference", "params"] if inference_params_published(run.manifest)
                    else ["params"])
    params_m = params / 1e6 if params is not None else _first(profile, ["params_m"])
    if params_m is None and (run.manifest.get("model") or {}).get("params") is not None:
        params_m = float(run.manifest["model"]["params"]) / 1e6
    flops = _first(profile, ["flops"])
    flops_g = flops / 1e9 if flops is not None else _first(profile, ["flops_g", "gflops"])
    memory = _first(profile, ["peak_memory_bytes", "memory_bytes"])
    memory_m = memory / 2**20 if memory is not None else _first(
        profile, ["peak_memory_mib", "peak_memory_mb", "memory_mb"])
    return {"params_m": params_m, "flops_g": flops_g, "memory_m": memory_m}
