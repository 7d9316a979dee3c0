"""The result store: one run directory per run, append-only per-image records plus a manifest.

Layout of a run directory::

    manifest.json     what was run and how (written at start, updated atomically at the end)
    records.jsonl     one JSON object per scored image, appended and flushed+fsynced as produced
    images/<task>/    restored images when --save-images was given

Record columns (stable, see ``RECORD_COLUMNS``): task, image, psnr (dB), ssim, lpips (or null),
height, width (pixels scored), seconds (model time for the image), nonfinite (output had NaN/Inf). An optional
column (``OPTIONAL_RECORD_COLUMNS``) is written only where it applies: tile (the tile size in pixels of an image
that did not fit in GPU memory whole and was restored in tiles).

Records are keyed by (task, image): reading keeps one record per key (the last valid one wins, at the position
of the key's first record), skips unreadable lines with one :class:`RecordWarning` naming the file and the line
numbers, and ignores a torn last line (an interrupted append). A resumed run that completes rewrites the file
atomically in its plan order (:meth:`RunStore.rewrite_in_order`), without unreadable lines and superseded duplicates.
See docs/reliability.md.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench_ir.atomic import append_line, atomic_write, write_text_atomic
from bench_ir.folder_names import (
    FINAL_WEIGHTS_NAME,
    RESTORE_MANIFEST_NAME,
    SUITE_PLAN_NAME,
    TRAIN_CHECKPOINT_NAME,
    TRAIN_MANIFEST_NAME,
)
from bench_ir.shortlist import shortlist

__all__ = [
    "RECORD_COLUMNS",
    "OPTIONAL_RECORD_COLUMNS",
    "RunStore",
    "ManifestError",
    "read_manifest_file",
    "RecordLog",
    "RecordWarning",
    "Run",
    "load_run",
    "failed_run_warning",
    "is_run_folder_parent",
    "write_json_atomic",
    "aggregate",
    "coverage_totals",
    "protocol_average",
    "records_as_csv",
    "records_as_json",
]

RECORD_COLUMNS = ["task", "image", "psnr", "ssim", "lpips", "height", "width", "seconds", "nonfinite"]
OPTIONAL_RECORD_COLUMNS = ("tile",)  # integers; a loaded run has the column only when some record has it
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
PROFILE = "profile.json"


class ManifestError(ValueError):
    """A run's manifest.json (or profile.json) is unreadable: truncated or invalid JSON, or not a JSON object; names
    the file."""


def read_manifest_file(path: Path, what: str = "manifest") -> dict[str, Any]:
    """The JSON object in ``path``; ManifestError naming the file (and ``what`` it is, e.g. "profile") when it is not
    valid JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: unreadable {what} (not UTF-8 text)") from err
    except json.JSONDecodeError as err:
        reason = err.msg.removesuffix(" at")  # json writes some messages as 'Invalid control character at'
        raise ManifestError(f"{path}: unreadable {what} (truncated or invalid JSON: {reason} at line {err.lineno} "
                            f"column {err.colno})") from err
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: unreadable {what} (expected a JSON object, got {json.dumps(data)[:40]})")
    return data
_SHOWN_LINES = 10


class RecordWarning(UserWarning):
    """records.jsonl held unreadable lines or duplicate (task, image) records; the message names the file."""


@dataclass
class RecordLog:
    """What one records file holds: one record per (task, image) (the last valid one wins), the 1-based numbers of
    unreadable lines, whether the last line was torn, and how many records repeated an earlier key."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    torn_tail: bool = False
    duplicates: int = 0

    def problem(self) -> str | None:
        """One line describing skipped lines and duplicates, or None when the file is clean."""
        parts = []
        if self.bad_lines:
            shown = shortlist([str(n) for n in self.bad_lines], _SHOWN_LINES, more=" and {} more")
            parts.append(f"skipped {len(self.bad_lines)} unreadable line(s) (line {shown})")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate record(s) of an already scored (task, image), the last of "
                         "each kept")
        if not parts:
            return None
        return f"{self.path}: {'; '.join(parts)}; the other {len(self.records)} record(s) are used"

    def dropped(self) -> str | None:
        """One line saying what a rewrite of this file (:meth:`RunStore.rewrite_in_order`) dropped once every image
        of the run had a valid record: its unreadable lines and superseded duplicates; None when it held neither."""
        parts = []
        if self.bad_lines:
            shown = shortlist([str(n) for n in self.bad_lines], _SHOWN_LINES, more=" and {} more")
            parts.append(f"{len(self.bad_lines)} unreadable line(s) (line {shown}) dropped after their images were "
                         "scored again")
        if self.duplicates:
            parts.append(f"{self.duplicates} superseded duplicate record(s) dropped (the last record of each kept)")
        if not parts:
            return None
        return f"{self.path}: {'; '.join(parts)}; the file was rewritten in the run's order"


def _record_line(record: dict[str, Any]) -> str:
    """The stored line of a record: ``RECORD_COLUMNS`` in order, then the optional columns it has."""
    row = {column: record.get(column) for column in RECORD_COLUMNS}
    row.update((column, record[column]) for column in OPTIONAL_RECORD_COLUMNS if record.get(column) is not None)
    return json.dumps(row, allow_nan=True) + "\n"


def _in_order(records: Iterable[dict[str, Any]], order: list[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """``records`` sorted by their (task, image) position in ``order``; records of keys ``order`` does not name
    follow, in their own order (never dropped)."""
    rank = {key: i for i, key in enumerate(order or [])}
    return sorted(records, key=lambda r: rank.get((r["task"], r["image"]), len(rank)))


def _valid_record(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("task"), str) and isinstance(value.get("image"), str)


def read_record_log(path: Path) -> RecordLog:
    """Read a records file (see the module docstring); no warning is issued here."""
    log = RecordLog(path=path)
    if not path.exists():
        return log
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline
    elif lines:
        lines.pop()  # torn write from an interrupted run: re-scored on resume
        log.torn_tail = True
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not _valid_record(value):
            log.bad_lines.append(number)
            continue
        key = (value["task"], value["image"])
        if key in by_key:
            log.duplicates += 1
        by_key[key] = value  # the last valid record of a key wins; dict order keeps the first position
    log.records = list(by_key.values())
    return log


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so readers never see half a file."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


class RunStore:
    """Writer for one run directory. Records are appended one line at a time and fsynced, so an
    interrupted run loses at most the image in flight; a torn last line is ignored on reading.

    ``shard`` (a rank of a sharded run) appends to ``records.rank<N>.jsonl`` instead; rank 0 folds the
    shards into ``records.jsonl`` with :meth:`merge_shards` once every rank has finished."""

    def __init__(self, run_dir: str | Path, shard: int | None = None, create: bool = True):
        self.run_dir = Path(run_dir)
        if create:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.shard = shard

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    @property
    def records_path(self) -> Path:
        return self.run_dir / (RECORDS if self.shard is None else f"records.rank{self.shard}.jsonl")

    def shard_paths(self) -> list[Path]:
        return sorted(self.run_dir.glob("records.rank*.jsonl"))

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    def read_manifest(self) -> dict[str, Any]:
        return read_manifest_file(self.manifest_path)

    def append(self, record: dict[str, Any]) -> None:
        append_line(self.records_path, _record_line(record))

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.append(record)

    def read_records(self, path: Path | None = None, warn: bool = True) -> RecordLog:
        """The records of ``path`` (default: this store's file), one per (task, image); with ``warn``, one
        :class:`RecordWarning` when lines were skipped or keys repeated."""
        log = read_record_log(path or self.records_path)
        message = log.problem()
        if warn and message:
            warnings.warn(message, RecordWarning, stacklevel=2)
        return log

    def iter_records(self, path: Path | None = None) -> Iterator[dict[str, Any]]:
        """The valid records of ``path``, one per (task, image); see :meth:`read_records`."""
        yield from self.read_records(path).records

    def scored_records(self, warn: bool = True) -> list[dict[str, Any]]:
        """Valid records already written (one per (task, image) in each file), in the main file and in any rank
        shard; used by --resume. ``warn``: as for :meth:`read_records`."""
        paths = [self.run_dir / RECORDS, *self.shard_paths()]
        return [r for path in paths for r in self.read_records(path, warn=warn).records]

    def scored_keys(self, warn: bool = True) -> set[tuple[str, str]]:
        """(task, image) pairs with a valid record, in the main file and in any rank shard; used by --resume."""
        return {(r["task"], r["image"]) for r in self.scored_records(warn=warn)}

    def repair(self) -> None:
        """Drop a torn trailing line left by an interrupted run (before appending more)."""
        if not self.records_path.exists():
            return
        data = self.records_path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.records_path, "r+b") as handle:
                handle.truncate(cut)

    def merge_shards(self, order: list[tuple[str, str]] | None = None, warn: bool = True) -> int:
        """Fold rank shards into ``records.jsonl``: one record per (task, image), the last valid one kept, sorted by
        ``order`` (the order an uninterrupted run writes) when given; written atomically, shards removed. ``warn``:
        as for :meth:`read_records`. Returns the number of records."""
        main = self.run_dir / RECORDS
        shards = self.shard_paths()
        if not shards:
            return len(self.read_records(main, warn=warn).records)
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for path in [main, *shards]:
            for record in self.read_records(path, warn=warn).records:
                seen[(record["task"], record["image"])] = record
        rows = _in_order(seen.values(), order)
        write_text_atomic(main, "".join(_record_line(row) for row in rows))
        for path in shards:
            path.unlink()
        return len(rows)

    def rewrite_in_order(self, order: list[tuple[str, str]]) -> RecordLog:
        """Rewrite ``records.jsonl`` atomically (a temporary file, fsync, rename) as one record per (task, image),
        sorted by ``order`` (see :meth:`merge_shards`): unreadable lines and superseded duplicates are dropped, every
        other record is kept (those of keys ``order`` does not name at the end). A file already so is left as it
        is. Returns what the file held before (:meth:`RecordLog.dropped` says what went); no warning is issued."""
        path = self.run_dir / RECORDS
        log = self.read_records(path, warn=False)
        text = "".join(_record_line(record) for record in _in_order(log.records, order))
        if path.exists() and path.read_bytes() != text.encode("utf-8"):
            write_text_atomic(path, text)
        return log


@dataclass
class Run:
    """A run read back from disk: its manifest and its per-image records as a DataFrame."""

    run_dir: Path
    manifest: dict[str, Any]
    records: pd.DataFrame
    profile: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return str(self.manifest.get("label") or self.manifest.get("model", {}).get("display_name")
                   or self.run_dir.name)

    def summary(self) -> pd.DataFrame:
        return aggregate(self.records)

    @property
    def is_profile(self) -> bool:
        """A ``bench-ir profile`` run (protocol "efficiency"): its figures are in profile.json, it scores no image."""
        protocol = self.manifest.get("protocol") or {}
        return self.manifest.get("kind") == "profile" or protocol.get("name") == "efficiency"

    def require_scores(self, purpose: str) -> Run:
        """This run; a ValueError for a profile run, naming what it cannot do (``purpose``, e.g. "compare") and
        where its figures go."""
        if self.is_profile:
            raise ValueError(f"{self.run_dir} is a profile run (params, FLOPs, memory, latency; no per-image scores): "
                             f"nothing to {purpose}; its figures ({self.run_dir / PROFILE}) go into the efficiency "
                             f"table: bench-ir report --protocol efficiency --runs {self.run_dir}")
        return self

    def coverage(self) -> dict[str, tuple[int, int]]:
        """Per task the manifest plans: (images with a record, images planned). Empty for manifests that plan
        nothing (runs made before bench-ir recorded ``planned``)."""
        planned = self.manifest.get("planned") or {}
        counts = Counter(self.records["task"].tolist()) if not self.records.empty else Counter()
        return {str(task): (min(int(counts.get(task, 0)), int(n)), int(n)) for task, n in planned.items()}

    def incomplete(self) -> str | None:
        """``"incomplete: n of N images (task n of N, ...)"`` when the records do not cover what the manifest
        plans, else None."""
        coverage = self.coverage()
        scored, planned = coverage_totals(coverage)
        if scored >= planned:
            return None
        short = ", ".join(f"{task} {s} of {n}" for task, (s, n) in coverage.items() if s < n)
        return f"incomplete: {scored} of {planned} images ({short})"

    def _auto_tiled_entries(self) -> list[dict[str, Any]]:
        """The manifest's ``auto_tiled`` entries ({"images": n, "tile": px} per task): images tiled after a GPU
        out-of-memory error."""
        tiled = self.manifest.get("auto_tiled")
        return [entry for entry in tiled.values() if isinstance(entry, dict)] if isinstance(tiled, dict) else []

    def auto_tiled_images(self) -> int:
        """How many images were tiled after a GPU out-of-memory error (0 when every image fitted whole)."""
        return sum(int(entry.get("images") or 0) for entry in self._auto_tiled_entries())

    def tiling(self) -> str:
        """How the run tiled its images, in words: 'tiles of T px (overlap O)' for a run with --tile; 'N image(s)
        tiled at T px (overlap O) after GPU out-of-memory' for a run whose largest images did not fit whole (the
        manifest's ``auto_tiled``); '' when every image went through the model whole."""
        manifest = self.manifest
        overlap = manifest.get("tile_overlap")
        overlap_text = f" (overlap {overlap})" if isinstance(overlap, int) else ""
        if isinstance(manifest.get("tile"), int):
            return f"tiles of {manifest['tile']} px{overlap_text}"
        count = self.auto_tiled_images()
        if not count:
            return ""
        sizes = sorted({int(entry["tile"]) for entry in self._auto_tiled_entries()
                        if isinstance(entry.get("tile"), int)})
        size_text = f" at {'/'.join(str(size) for size in sizes)} px" if sizes else ""
        return f"{count} image(s) tiled{size_text}{overlap_text} after GPU out-of-memory"


def coverage_totals(coverage: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(images with a record, images planned) over every task of a :meth:`Run.coverage`; the run is incomplete when
    the first is smaller."""
    return sum(s for s, _ in coverage.values()), sum(n for _, n in coverage.values())


def is_run_folder_parent(path: Path) -> bool:
    """A folder that is not a run itself and holds at least one run directory (a child with ``manifest.json``)."""
    return (path.is_dir() and not (path / MANIFEST).is_file()
            and any((child / MANIFEST).is_file() for child in path.iterdir() if child.is_dir()))


def _what_it_is(folder: Path) -> str:
    """What a folder without a run manifest holds instead, when bench-ir wrote it: a training run, a restore, a
    suite directory or a folder of runs."""
    if (folder / TRAIN_MANIFEST_NAME).is_file():
        weights, last = folder / FINAL_WEIGHTS_NAME, folder / TRAIN_CHECKPOINT_NAME
        if last.is_file() and not weights.is_file():  # a run stopped before its end has no final weights yet
            weights = last
        return (f"; it is a training run: score its weights with `bench-ir run ... --checkpoint {weights}` (the "
                "`evaluate` line of the training gives the whole command)")
    if (folder / RESTORE_MANIFEST_NAME).is_file():
        return "; it holds restored images (bench-ir restore), which have no scores: score a model with `bench-ir run`"
    if (folder / SUITE_PLAN_NAME).is_file():
        return (f"; it is a suite directory: `bench-ir suite report {folder}` renders its tables, and its runs are in "
                f"{folder / 'runs'}")
    if is_run_folder_parent(folder):
        return f"; it holds runs: name one of them (`bench-ir list runs --runs-root {folder}` lists them)"
    return ""


def _not_a_run(path: Path) -> str:
    """Why ``path`` (which holds no run manifest) is no run directory: it does not exist, it is a file (of a run:
    give its folder), or it is a folder of another kind (see :func:`_what_it_is`)."""
    if not path.exists():
        return (f"{path}: no such run directory (the path does not exist); `bench-ir list runs --runs-root FOLDER` "
                "lists the runs in a folder")
    if path.is_file():
        folder = path.parent
        if (folder / MANIFEST).is_file():
            return f"{path} is a file of the run {folder}, not a run directory: give its run folder {folder}"
        return f"{path} is a file, not a bench-ir run directory: give the folder of a run (it holds {MANIFEST})"
    return f"{path}: not a bench-ir run directory (no {MANIFEST}){_what_it_is(path)}"


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; a path that does not exist, a file (a run's records.jsonl, say) or a folder without
    manifest is a clear error, and an unreadable manifest.json or profile.json a :class:`ManifestError` naming the
    file."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir, create=False)
    if not store.manifest_path.is_file():
        raise FileNotFoundError(_not_a_run(run_dir))
    rows = store.read_records().records
    optional = [column for column in OPTIONAL_RECORD_COLUMNS if any(row.get(column) is not None for row in rows)]
    records = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, *optional])
    if optional:  # astype copies every column even when it has nothing to convert
        records = records.astype(dict.fromkeys(optional, "Int64"))
    profile_path = run_dir / PROFILE
    profile = read_manifest_file(profile_path, "profile") if profile_path.is_file() else None
    return Run(run_dir=run_dir, manifest=store.read_manifest(), records=records, profile=profile)


def _export_columns(records: pd.DataFrame) -> list[str]:
    """``RECORD_COLUMNS``, then the optional columns the loaded records have (see :func:`load_run`)."""
    return [*RECORD_COLUMNS, *(column for column in OPTIONAL_RECORD_COLUMNS if column in records.columns)]


def failed_run_warning(run: Run) -> str | None:
    """For a run whose manifest status is ``failed``: one sentence naming the run, its status and the error it
    records, what its export holds and how to continue it; None for any other status. `bench-ir export` prints it
    as a warning and exits with 1."""
    manifest = run.manifest
    if manifest.get("status") != "failed":
        return None
    error = manifest.get("error")
    error = error.strip() if isinstance(error, str) and error.strip() else "no error recorded"
    return (f"{run.run_dir}: the run failed (status failed: {error}); only the {len(run.records)} image(s) scored "
            f"before it stopped are exported; once the cause is fixed, the command that made it plus --resume "
            f"--run-dir {run.run_dir} continues it")


def records_as_csv(records: pd.DataFrame) -> str:
    """Per-image records as CSV, columns ``RECORD_COLUMNS`` in order, then an optional column (tile) when some
    record has it (empty where it does not apply); floats printed to round-trip exactly."""
    return records[_export_columns(records)].to_csv(index=False)


def records_as_json(records: pd.DataFrame) -> str:
    """Per-image records as a JSON array of objects (keys ``RECORD_COLUMNS``, plus an optional key such as tile
    only in the records it applies to, as stored), one object per line; floats keep every digit (each parses
    back to the stored value); NaN, +-inf and missing values are null (JSON has no NaN)."""

    def plain(value: Any) -> Any:
        if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
            return None
        return value.item() if hasattr(value, "item") else value

    columns = _export_columns(records)
    rows = [{column: plain(value) for column, value in zip(columns, row, strict=True)
             if column in RECORD_COLUMNS or plain(value) is not None}
            for row in records[columns].astype(object).itertuples(index=False, name=None)]
    return "[\n" + ",\n".join(json.dumps(row, allow_nan=False) for row in rows) + ("\n]" if rows else "]")


def aggregate(records: pd.DataFrame) -> pd.DataFrame:
    """Per-task means of psnr/ssim/lpips (per-image mean, the reference convention), image counts and the
    number of images whose output had NaN/Inf (``nonfinite``; such images make the task mean NaN, never skipped).
    Tasks in the order of their first record; a record without task is left out. lpips: the mean of the images that
    have one (NaN for a task with none), NaN too for a task with a nonfinite image, as psnr/ssim: such an image's
    record has no LPIPS (null), which is not a skipped image."""
    if records.empty:
        return pd.DataFrame(columns=["task", "psnr", "ssim", "lpips", "images", "nonfinite"]).set_index("task")
    grouped = records.groupby("task", sort=False)  # tasks in first-record order, indexed as pandas indexes them
    images = grouped.size()
    groups = [grouped.indices[task] for task in images.index]  # each task's row positions, in record order
    psnr, ssim, lpips = (pd.to_numeric(records[column], errors="coerce").to_numpy()
                         for column in ("psnr", "ssim", "lpips"))
    nonfinite = records["nonfinite"].fillna(False).astype(bool).to_numpy()
    nonfinite_counts = np.array([nonfinite[rows].sum() for rows in groups], dtype=np.int64)
    return pd.DataFrame({
        "psnr": _task_means(psnr, groups),
        "ssim": _task_means(ssim, groups),
        "lpips": _task_means_of_present(lpips, records["task"], nonfinite_counts),
        "images": images.to_numpy(),
        "nonfinite": nonfinite_counts,
    }, index=images.index)


def _task_means(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Per group of row positions the mean of ``values`` there, NaN when one of them is NaN (what
    ``Series.mean(skipna=False)`` gives, to the last bit)."""
    return np.array([values[rows].mean() for rows in groups])


def _task_means_of_present(values: np.ndarray, tasks: pd.Series, nonfinite: np.ndarray) -> np.ndarray:
    """Per task (in first-appearance order) the mean of the ``values`` that are not NaN (pandas' grouped mean, to the
    last bit), NaN for a task with none and for a task whose ``nonfinite`` count (one per task, in that order) is not
    0: an image whose output had NaN/Inf makes the mean NaN, as it makes the psnr/ssim means (:func:`_task_means`),
    though its record holds no value; all NaN when no value is present (a run without LPIPS)."""
    if pd.isna(values).all():
        return np.full(len(nonfinite), np.nan)
    means = pd.Series(values, index=tasks.index).groupby(tasks, sort=False).mean().to_numpy()
    return np.where(nonfinite > 0, np.nan, means)


def protocol_average(summary: pd.DataFrame, average_tasks: list[str]) -> pd.Series | None:
    """Arithmetic mean of the per-task means over ``average_tasks`` (each task weighted equally); a task mean that
    is NaN (an output with NaN/Inf, see :func:`aggregate`) makes the average NaN, never skipped. A Series indexed
    psnr, ssim, lpips.

    Returns None when any of those tasks is missing from ``summary``.
    """
    if not average_tasks or any(task not in summary.index for task in average_tasks):
        return None
    rows = summary.index.get_indexer_for(average_tasks)
    metrics = ["psnr", "ssim", "lpips"]
    means = np.vstack([pd.to_numeric(summary[metric], errors="coerce").to_numpy(np.float64)[rows]
                       for metric in metrics])
    return pd.Series(means.sum(axis=1) / len(rows), index=metrics)
