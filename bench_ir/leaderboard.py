"""Published numbers of the MIRAGE paper (ICLR 2026), read from ``registry/leaderboard/*.csv``.

Each CSV is tidy long format: one row = method x dataset(/subset) x metric, values as printed
(``value``) and parsed (``value_num``; NaN for a missing cell). PSNR is in dB, SSIM and LPIPS in
[0, 1]. The "Average" column of Tables 1-4 is a row with ``dataset == "Average"``.

A protocol name (``3deg``, ``5deg``, ``cdd11``, ``allweather``, ``uieb``, ``udc``, ``dehaze``...) is
matched to the CSV rows whose ``protocol`` value is the name itself, ``<name>_zeroshot`` or
``single_<name>`` (Table B holds three single-task protocols in one file).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

import pandas as pd

from bench_ir.resources import leaderboard_dir

__all__ = [
    "AVERAGE",
    "EFFICIENCY_TABLE",
    "LeaderboardColumn",
    "PublishedRow",
    "list_tables",
    "load_table",
    "protocol_rows",
    "find_table",
    "leaderboard_columns",
    "leaderboard_metrics",
    "has_average",
    "published_rows",
    "column_label",
    "check_averages",
    "is_inconsistency_note",
    "AVERAGE_TOLERANCE",
]

AVERAGE = "Average"
EFFICIENCY_TABLE = "table6_efficiency.csv"
# A printed Average agrees with the mean of the printed values when |delta| is within rounding.
AVERAGE_TOLERANCE = {"PSNR": 0.01, "SSIM": 0.001, "LPIPS": 0.001}
_FLOAT_SLACK = 1e-9
_METRIC_ORDER = ("PSNR", "SSIM", "LPIPS")
_COLUMN_NOTE = re.compile(r"column '([^']+)'")
_SIGMA_SUBSET = re.compile(r"sigma(\d+)$")
_INCONSISTENT_NOTE = re.compile(r"not the mean|off by more than rounding|swapped|this table prints", re.IGNORECASE)


def list_tables() -> list[str]:
    """File names of the leaderboard CSVs, sorted."""
    return sorted(path.name for path in leaderboard_dir().glob("*.csv"))


@functools.cache
def _read_table(name: str) -> pd.DataFrame:
    path = leaderboard_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"leaderboard table '{name}' not found in {leaderboard_dir()}; known: {list_tables()}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    frame["row"] = frame["row"].astype(int)
    frame["source_line"] = pd.to_numeric(frame["source_line"], errors="coerce")
    for column in ("value_num", "params_m"):
        frame[column] = pd.to_numeric(frame[column].replace("", float("nan")), errors="coerce").astype(float)
    return frame


def load_table(name: str) -> pd.DataFrame:
    """One leaderboard CSV as a DataFrame (a copy): text columns as str ('' when empty),
    ``value_num``/``params_m`` as float (NaN when missing), ``row`` as int."""
    return _read_table(name).copy()


def _protocol_candidates(protocol: str) -> tuple[str, ...]:
    return (protocol, f"{protocol}_zeroshot", f"single_{protocol}")


def _protocol_name(csv_protocol: str) -> str:
    """The name a user gives for a CSV ``protocol`` value (the inverse of :func:`_protocol_candidates`)."""
    return csv_protocol.removesuffix("_zeroshot").removeprefix("single_")


def _match_rows(frame: pd.DataFrame, protocol: str) -> pd.DataFrame:
    for candidate in _protocol_candidates(protocol):
        rows = frame[frame["protocol"] == candidate]
        if not rows.empty:
            return rows.reset_index(drop=True)
    return frame.iloc[0:0]


def find_table(protocol: str) -> str:
    """The CSV file that holds ``protocol``'s published rows (``efficiency`` -> Table 6 efficiency)."""
    for name in list_tables():
        if not _match_rows(_read_table(name), protocol).empty:
            return name
    known = sorted({_protocol_name(value) for name in list_tables() for value in _read_table(name)["protocol"]})
    raise KeyError(f"no leaderboard table for protocol '{protocol}'; tables exist for: {', '.join(known)}")


def has_table(protocol: str) -> bool:
    """Whether a leaderboard CSV holds published rows of ``protocol`` (a user's own protocol has none)."""
    try:
        find_table(protocol)
    except KeyError:
        return False
    return True


def protocol_rows(protocol: str, table: str | None = None) -> pd.DataFrame:
    """The published rows of ``protocol``: from ``table`` when given (e.g. the run manifest's
    ``leaderboard_table``), otherwise from the CSV found by :func:`find_table`. A table holding a
    single protocol is used whole even when its protocol value is spelled differently."""
    name = table or find_table(protocol)
    frame = _read_table(name)
    rows = _match_rows(frame, protocol)
    if rows.empty and frame["protocol"].nunique() == 1:
        rows = frame.reset_index(drop=True)
    if rows.empty:
        raise KeyError(f"leaderboard table '{name}' has no rows for protocol '{protocol}'")
    return rows.copy()


@dataclass(frozen=True)
class LeaderboardColumn:
    """One dataset column of a paper table: the CSV ``dataset``/``subset`` values and a display label."""

    dataset: str
    subset: str
    label: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.subset)


def column_label(dataset: str, subset: str = "", note: str = "") -> str:
    """Display label of a column: the paper's header when the CSV note records it (``column 'L+H'``),
    ``BSD68 σ=25`` for noise levels, otherwise the dataset (and subset)."""
    match = _COLUMN_NOTE.search(note or "")
    if match:
        return match.group(1)
    sigma = _SIGMA_SUBSET.match(subset or "")
    if sigma:
        return f"{dataset} σ={sigma.group(1)}"
    return f"{dataset} {subset}" if subset else dataset


def leaderboard_columns(rows: pd.DataFrame) -> list[LeaderboardColumn]:
    """Dataset columns of a protocol's rows in printed order, without the Average column."""
    columns: dict[tuple[str, str], LeaderboardColumn] = {}
    for record in rows.itertuples(index=False):
        key = (record.dataset, record.subset)
        if record.dataset in (AVERAGE, "") or key in columns:
            continue
        columns[key] = LeaderboardColumn(record.dataset, record.subset, column_label(*key, record.note))
    return list(columns.values())


def leaderboard_metrics(rows: pd.DataFrame) -> list[str]:
    """Metrics printed per column (PSNR, SSIM and, for Table D, LPIPS), in a fixed order."""
    present = set(rows["metric"])
    return [metric for metric in _METRIC_ORDER if metric in present]


def has_average(rows: pd.DataFrame) -> bool:
    return bool((rows["dataset"] == AVERAGE).any())


@dataclass(frozen=True)
class PublishedRow:
    """One printed table row. ``values`` maps (dataset, subset, metric) to the printed number (None when
    the cell is missing); ``notes`` holds the CSV notes of cells that carry one."""

    table: str
    part: str
    row: int
    section: str
    method: str
    model_key: str
    citation: str
    venue: str
    params_raw: str
    params_m: float | None
    source: str
    values: dict[tuple[str, str, str], float | None] = field(default_factory=dict)
    notes: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """The printed name, except that a paper's own "(Ours)" rows are named by their model key
        (MIRAGE-T / MIRAGE-S), since "ours" would be ambiguous beside a user's runs."""
        return self.model_key if "(ours)" in self.method.lower() else self.method

    def value(self, dataset: str, subset: str, metric: str) -> float | None:
        return self.values.get((dataset, subset, metric))

    def average_parts(self, metric: str) -> list[float]:
        """The printed dataset values that the Average of ``metric`` summarises (missing cells skipped)."""
        return [value for (dataset, _subset, m), value in self.values.items()
                if dataset != AVERAGE and m == metric and value is not None]

    def average_mismatch(self, metric: str) -> float | None:
        """The mean of the printed values when the printed Average of ``metric`` differs from it by more
        than rounding (:data:`AVERAGE_TOLERANCE`); None when it agrees or there is nothing to compare."""
        printed, parts = self.value(AVERAGE, "", metric), self.average_parts(metric)
        if printed is None or not parts:
            return None
        recomputed = sum(parts) / len(parts)
        return recomputed if abs(printed - recomputed) > AVERAGE_TOLERANCE[metric] + _FLOAT_SLACK else None


def published_rows(rows: pd.DataFrame) -> list[PublishedRow]:
    """Group a protocol's long-format rows into one :class:`PublishedRow` per printed row, in order."""
    result = []
    for (_part, _row), group in rows.groupby(["table_part", "row"], sort=False):
        first = group.iloc[0]
        values: dict[tuple[str, str, str], float | None] = {}
        notes: dict[tuple[str, str, str], str] = {}
        for cell in group.itertuples(index=False):
            key = (cell.dataset, cell.subset, cell.metric)
            values[key] = None if math.isnan(cell.value_num) else float(cell.value_num)
            if cell.note:
                notes[key] = cell.note
        result.append(PublishedRow(
            table=str(first["table"]), part=str(first["table_part"]), row=int(first["row"]),
            section=str(first["section"]), method=str(first["method"]), model_key=str(first["model_key"]),
            citation=str(first["citation"]), venue=str(first["venue"]), params_raw=str(first["params_raw"]),
            params_m=None if math.isnan(first["params_m"]) else float(first["params_m"]),
            source=str(first["source"]), values=values, notes=notes,
        ))
    return result


def is_inconsistency_note(note: str) -> bool:
    """True when a CSV note reports an inconsistency of the printed cell (kept as printed)."""
    return bool(_INCONSISTENT_NOTE.search(note or ""))


def check_averages(table: str) -> pd.DataFrame:
    """Recompute every printed Average of ``table`` as the mean of the row's printed dataset values
    (missing cells skipped) and compare within :data:`AVERAGE_TOLERANCE`.

    Columns: method, model_key, metric, printed, recomputed, n_values, delta (printed - recomputed),
    consistent, flagged (the cell's note reports the mismatch), note. Rows whose printed Average is
    missing are left out.
    """
    frame = _read_table(table)
    records = []
    for published in published_rows(frame):
        for (dataset, _subset, metric), printed in published.values.items():
            if dataset != AVERAGE or printed is None:
                continue
            parts = published.average_parts(metric)
            recomputed = sum(parts) / len(parts)
            delta = printed - recomputed
            note = published.notes.get((dataset, _subset, metric), "")
            records.append({
                "method": published.method, "model_key": published.model_key, "metric": metric,
                "printed": printed, "recomputed": recomputed, "n_values": len(parts), "delta": delta,
                "consistent": abs(delta) <= AVERAGE_TOLERANCE[metric] + _FLOAT_SLACK,
                "flagged": is_inconsistency_note(note), "note": note,
            })
    return pd.DataFrame(records, columns=["method", "model_key", "metric", "printed", "recomputed",
                                          "n_values", "delta", "consistent", "flagged", "note"])
