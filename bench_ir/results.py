"""The result store: one run directory per run, append-only per-image records plus a manifest.

Layout of a run directory::

    manifest.json     what was run and how (written at start, updated atomically at the end)
    records.jsonl     one JSON object per scored image, appended and flushed+fsynced as produced
    images/<task>/    restored images when --save-images was given

Record columns (stable, see ``RECORD_COLUMNS``): task, image, psnr (dB), ssim, lpips (or null),
height, width (pixels scored), seconds (model time for the image), nonfinite (output had NaN/Inf).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench_ir.atomic import append_line, atomic_write

__all__ = [
    "RECORD_COLUMNS",
    "RunStore",
    "ManifestError",
    "read_manifest_file",
    "Run",
    "load_run",
    "write_json_atomic",
    "aggregate",
    "protocol_average",
]

RECORD_COLUMNS = ["task", "image", "psnr", "ssim", "lpips", "height", "width", "seconds", "nonfinite"]
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
PROFILE = "profile.json"


class ManifestError(ValueError):
    """A run's manifest.json is unreadable: truncated or invalid JSON, or not a JSON object; names the file."""


def read_manifest_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ManifestError naming the file when it is not valid JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: unreadable manifest (not UTF-8 text)") from err
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: unreadable manifest (truncated or invalid JSON: {err.msg} at line {err.lineno} "
                            f"column {err.colno})") from err
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: unreadable manifest (expected a JSON object, got {json.dumps(data)[:40]})")
    return data


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
        row = {column: record.get(column) for column in RECORD_COLUMNS}
        line = json.dumps(row, allow_nan=True) + "\n"
        append_line(self.records_path, line)

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.append(record)

    def iter_records(self, path: Path | None = None) -> Iterator[dict[str, Any]]:
        path = path or self.records_path
        if not path.exists():
            return
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break  # torn write from an interrupted run
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    break
        return

    def scored_records(self) -> list[dict[str, Any]]:
        """Records already written, in the main file and in any rank shard; used by --resume."""
        paths = [self.run_dir / RECORDS, *self.shard_paths()]
        return [r for path in paths for r in self.iter_records(path)]

    def scored_keys(self) -> set[tuple[str, str]]:
        """(task, image) pairs already scored, in the main file and in any rank shard; used by --resume."""
        return {(r["task"], r["image"]) for r in self.scored_records()}

    def repair(self) -> None:
        """Drop a torn trailing line left by an interrupted run (before appending more)."""
        if not self.records_path.exists():
            return
        data = self.records_path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.records_path, "r+b") as handle:
                handle.truncate(cut)

    def merge_shards(self, order: list[tuple[str, str]] | None = None) -> int:
        """Fold rank shards into ``records.jsonl``: one record per (task, image), first occurrence kept, sorted by
        ``order`` (e.g. protocol task order then dataset order) when given; written atomically, shards removed.
        Returns the number of records."""
        main = self.run_dir / RECORDS
        shards = self.shard_paths()
        if not shards:
            return sum(1 for _ in self.iter_records(main))
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for path in [main, *shards]:
            for record in self.iter_records(path):
                seen.setdefault((record["task"], record["image"]), record)
        rank = {key: i for i, key in enumerate(order or [])}
        rows = sorted(seen.values(), key=lambda r: rank.get((r["task"], r["image"]), len(rank)))
        with atomic_write(main, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({c: row.get(c) for c in RECORD_COLUMNS}, allow_nan=True) + "\n")
        for path in shards:
            path.unlink()
        return len(rows)


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


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; an unknown path or a folder without manifest is a clear error."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir, create=False)
    if not store.manifest_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a bench-ir run directory (no {MANIFEST})")
    records = pd.DataFrame(list(store.iter_records()), columns=RECORD_COLUMNS)
    profile_path = run_dir / PROFILE
    profile = json.loads(profile_path.read_text()) if profile_path.is_file() else None
    return Run(run_dir=run_dir, manifest=store.read_manifest(), records=records, profile=profile)


def aggregate(records: pd.DataFrame) -> pd.DataFrame:
    """Per-task means of psnr/ssim/lpips (per-image mean, the reference convention), image counts and the
    number of images whose output had NaN/Inf (``nonfinite``; such images make the task mean NaN, never skipped)."""
    if records.empty:
        return pd.DataFrame(columns=["task", "psnr", "ssim", "lpips", "images", "nonfinite"]).set_index("task")
    frame = records.copy()
    for column in ("psnr", "ssim", "lpips"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["nonfinite"] = frame["nonfinite"].fillna(False).astype(bool)
    grouped = frame.groupby("task", sort=False)
    table = pd.DataFrame({
        "psnr": grouped["psnr"].agg(lambda s: s.mean(skipna=False)),
        "ssim": grouped["ssim"].agg(lambda s: s.mean(skipna=False)),
        "lpips": grouped["lpips"].mean(),
        "images": grouped.size(),
        "nonfinite": grouped["nonfinite"].sum().astype(int),
    })
    return table


def protocol_average(summary: pd.DataFrame, average_tasks: list[str]) -> pd.Series | None:
    """Arithmetic mean of the per-task means over ``average_tasks`` (each task weighted equally).

    Returns None when any of those tasks is missing from ``summary``.
    """
    if not average_tasks or any(task not in summary.index for task in average_tasks):
        return None
    return summary.loc[average_tasks, ["psnr", "ssim", "lpips"]].mean(numeric_only=False)
