"""Output of `bench-ir compare` for people and machines: compact rich tables that stay readable at 80 columns
(on a terminal and when piped), sentences that explain ranks, and CSV / JSON / Markdown.

The JSON document is described by ``reports/compare.schema.json`` (JSON Schema draft 2020-12): an object
with ``schema`` ("bench-ir/compare/1"), ``paired`` (the B - A frame of :func:`bench_ir.compare.compare_runs`
with its settings and warnings, or null) and ``leaderboard`` (the frame of
:func:`bench_ir.compare.rank_against_leaderboard` with the reasons and the meaning of ``n_ranked``, or null); with
``--images`` also ``images`` (the frame of :func:`bench_ir.compare.largest_image_changes`).
Numbers are plain JSON numbers (PSNR in dB); NaN and NA become null.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich import box
from rich.table import Table

from bench_ir.report.model import metric_column
from bench_ir.report.render import markdown_escape

__all__ = ["SCHEMA_ID", "FORMATS", "paired_table", "image_changes_table", "image_changes_title", "saved_images_note",
           "rank_table", "rank_explanation", "csv_warnings", "compare_payload", "compare_text"]

SCHEMA_ID = "bench-ir/compare/1"
FORMATS = ("table", "csv", "json", "markdown")
_DECIMALS = {"PSNR": 2, "SSIM": 4, "LPIPS": 4}  # means and deltas; a rank's value is at the paper's precision
_PRINTED_COLUMNS = ("value", "best_value", "mirage_t", "mirage_s")  # rank frame columns compared at that precision
_SHARE_COLUMNS = ("win_rate",)  # shares of images (0 to 1), not in a metric's unit


def _plain(value: Any) -> Any:
    """A JSON-able scalar: NaN/NA -> None, numpy scalars -> Python."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{column: _plain(value) for column, value in row.items()} for row in frame.to_dict(orient="records")]


def _num(value: Any, decimals: int, signed: bool = False) -> str:
    """``value`` with ``decimals`` (a sign with ``signed``); a missing or NaN value is –, an infinite one inf (a PSNR
    of an output equal to its target, which is not ranked)."""
    raw = value.item() if hasattr(value, "item") else value
    if isinstance(raw, float) and math.isinf(raw):
        return ("+" if signed and raw > 0 else "") + ("inf" if raw > 0 else "-inf")
    value = _plain(value)
    if value is None:
        return "–"
    value = round(value, decimals) + 0.0  # a value that rounds to zero prints 0.00 (+0.00), never -0.00
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def paired_table(frame: pd.DataFrame) -> Table:
    """B - A per task and metric in 8 narrow columns (about 75 characters wide; tie counts are in
    :func:`paired_notes`)."""
    confidence = f"{100 * frame.attrs.get('confidence', 0.95):.4g}"  # 95, 99.9, 92.5
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left",
                  title=f"B - A: {frame.attrs.get('run_b')} vs {frame.attrs.get('run_a')}")
    for name in ("task", "metric", "A", "B", "B - A", f"{confidence}% CI", "win", "n"):
        table.add_column(name, justify="left" if name in ("task", "metric") else "right", overflow="fold")
    previous = None
    for row in frame.to_dict(orient="records"):
        if previous is not None and row["task"] != previous and row["task"] == "Average":
            table.add_section()
        decimals = _DECIMALS.get(row["metric"], 4)
        ci = f"[{_num(row['ci_low'], decimals, True)}, {_num(row['ci_high'], decimals, True)}]"
        win = "–" if _plain(row["win_rate"]) is None else f"{100 * row['win_rate']:.0f}%"
        table.add_row(str(row["task"]) if row["task"] != previous else "", str(row["metric"]),
                      _num(row["mean_a"], decimals), _num(row["mean_b"], decimals),
                      _num(row["delta"], decimals, True), ci, win, str(row["n_paired"]))
        previous = row["task"]
    return table


def image_changes_title(frame: pd.DataFrame) -> str:
    n = frame.attrs.get("n")
    losses, gains = ("loss", "gain") if n == 1 else ("losses", "gains")
    return (f"Largest per-image {frame.attrs.get('metric')} changes, B - A: {frame.attrs.get('run_b')} vs "
            f"{frame.attrs.get('run_a')} (up to {n} {losses} and {n} {gains} per task)")


def image_changes_table(frame: pd.DataFrame) -> Table:
    """The images where B loses and gains most per task (see :func:`bench_ir.compare.largest_image_changes`)."""
    decimals = _DECIMALS.get(str(frame.attrs.get("metric")), 4)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left",
                  title=image_changes_title(frame))
    for name in ("task", "change", "image", "A", "B", "B - A"):
        table.add_column(name, justify="right" if name in ("A", "B", "B - A") else "left", overflow="fold")
    previous = None
    for row in frame.to_dict(orient="records"):
        if previous is not None and row["task"] != previous:
            table.add_section()
        table.add_row(row["task"] if row["task"] != previous else "", row["change"], row["image"],
                      _num(row["a"], decimals), _num(row["b"], decimals), _num(row["delta"], decimals, True))
        previous = row["task"]
    if frame.empty:
        table.add_row("–", "", "no paired image differs", "", "", "")
    return table


def saved_images_note(run_a: Path, run_b: Path) -> str:
    """Where to look at the images of :func:`image_changes_table`: the runs' ``images/<task>/`` folders when they
    were saved (``run --save-images``), else how to save them."""
    saved = [f"{which} {run / 'images'}/<task>/" for which, run in (("A", run_a), ("B", run_b))
             if (run / "images").is_dir()]
    if len(saved) == 2:
        return f"Restored images (with _input/ and _target/ beside them): {', '.join(saved)}."
    return ("To look at these images, score the runs with `bench-ir run ... --save-images`"
            + (f" (only {saved[0]} has them)." if saved else "."))


def _ties_note(frame: pd.DataFrame) -> str:
    """The paired images where A and B score the same, per task and metric: with them, the wins of A are
    n - B's wins - ties."""
    tied = frame[frame["ties"] > 0]
    if tied.empty:
        return "No paired image is a tie (A and B scoring the same), so A is better on every one B does not win."
    per_task = [f"{task} {', '.join(f'{r.metric} {r.ties} of {r.n_paired}' for r in rows.itertuples())}"
                for task, rows in tied.groupby("task", sort=False)]
    return (f"Ties, paired images where A and B score the same (a win for neither; A is better on the others B does "
            f"not win): {'; '.join(per_task)}.")


def _average_not_computed_note(frame: pd.DataFrame) -> list[str]:
    """The sentence that says which Average rows are not computed (n 0) and which of its tasks have no paired image."""
    missing = frame[(frame["task"] == "Average") & (frame["n_paired"] == 0)]
    if missing.empty:
        return []
    unpaired = frame[frame["task"].isin(frame.attrs["average_tasks"]) & (frame["n_paired"] == 0)]
    tasks = ", ".join(dict.fromkeys(map(str, unpaired["task"])))
    return [f"Average {', '.join(map(str, missing['metric']))} not computed: no paired image in {tasks}."]


def paired_notes(frame: pd.DataFrame) -> list[str]:
    """Sentences under the paired table: method, ties, unpaired images, non-finite pairs and warnings."""
    notes = [f"{frame.attrs.get('method', 'paired bootstrap')}, {frame.attrs.get('n_boot')} resamples, seed "
             f"{frame.attrs.get('seed')}; A, B = means over the paired images only; win = share of paired images "
             "where B is better; n = paired images.", _ties_note(frame)]
    if frame.attrs.get("average_tasks"):
        notes.append(f"Average = mean over the protocol's tasks ({', '.join(frame.attrs['average_tasks'])}), each "
                     "weighted equally, for the win share too (its n and ties are totals over those tasks); CI by a "
                     "bootstrap stratified by task.")
        notes += _average_not_computed_note(frame)
    task_rows = frame[(frame["metric"] == "PSNR") & (frame["task"] != "Average")]
    unpaired = [f"{r.task} (A only {r.only_a}, B only {r.only_b})" for r in task_rows.itertuples()
                if r.only_a or r.only_b]
    if unpaired:
        notes.append(f"Images scored in one run only (not paired): {', '.join(unpaired)}.")
    nonfinite = [f"{r.task} {r.n_nonfinite}" for r in task_rows.itertuples() if r.n_nonfinite]
    if nonfinite:
        notes.append(f"Pairs left out for NaN/Inf values: {', '.join(nonfinite)}.")
    return notes + [f"warning: {text}" for text in frame.attrs.get("warnings", [])]


def _printed_decimals(metric: str) -> int:
    """Decimals the paper prints ``metric`` with, the precision ranks compare at."""
    return metric_column(("", ""), "", metric).decimals


def rank_table(frame: pd.DataFrame) -> Table:
    """The run's rank per column among the published rows, in 8 narrow columns: value and best published at the
    paper's printed precision (the one ranked at), deltas of the unrounded value at :data:`_DECIMALS`."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left",
                  title=f"{frame.attrs.get('run')} on {frame.attrs.get('table')}")
    for name in ("column", "metric", "value", "rank", "best published", "Δ best", "ΔT", "ΔS"):
        table.add_column(name, justify="left" if name in ("column", "metric", "best published") else "right",
                         overflow="fold")
    for row in frame.to_dict(orient="records"):
        decimals, printed = _DECIMALS.get(row["metric"], 4), _printed_decimals(row["metric"])
        rank = "–" if _plain(row["rank"]) is None else f"{row['rank']}/{row['n_ranked']}"
        best = f"{row['best_method']} {_num(row['best_value'], printed)}" if row["best_method"] else "–"
        table.add_row(str(row["column"]), str(row["metric"]), _num(row["value"], printed), rank, best,
                      _num(row["delta_best"], decimals, True), _num(row["delta_mirage_t"], decimals, True),
                      _num(row["delta_mirage_s"], decimals, True))
    return table


def rank_explanation(frame: pd.DataFrame) -> list[str]:
    """Why a run is (not) ranked, in words, and what ``n_ranked`` counts."""
    run = frame.attrs.get("run", "the run")
    reasons = list(frame.attrs.get("reasons") or [])
    lines = ["Δ = run - published; ΔT, ΔS: against MIRAGE-T, MIRAGE-S; rank is out of n_ranked."]
    if not frame.empty:
        lines.append(_printed_precision_note(list(dict.fromkeys(frame["metric"]))))
    if reasons:
        lines.append(f"{_not_ranked_sentence(frame)} Values and deltas are shown for information only.")
    else:
        lines.append(f"{run} is comparable: full test sets, real data, real weights, the protocol's metric "
                     "convention; rank = 1 + the published rows strictly better on printed values.")
    if not frame.empty:
        first = frame.iloc[0]
        lines.append(f"n_ranked counts the published main-section rows with a value in that column plus this run "
                     f"({first['column']} {first['metric']}: {int(first['n_ranked']) - 1} published + 1 = "
                     f"{int(first['n_ranked'])}).")
    return lines


def _not_ranked_sentence(frame: pd.DataFrame) -> str:
    """Why the run of a rank frame is not ranked: its ``reasons`` in one sentence."""
    return (f"{frame.attrs.get('run', 'the run')} is not ranked: its numbers are not comparable with the published "
            f"ones because of {'; '.join(frame.attrs.get('reasons') or [])}.")


def csv_warnings(paired: pd.DataFrame | None = None, ranked: pd.DataFrame | None = None) -> list[str]:
    """What CSV leaves out and JSON and Markdown carry, for a CLI to print beside it: why the ranked run is not
    ranked (its rows only say ``comparable`` False) and the paired comparison's ``warnings``."""
    lines = [_not_ranked_sentence(ranked)] if ranked is not None and ranked.attrs.get("reasons") else []
    return lines + (list(paired.attrs.get("warnings") or []) if paired is not None else [])


def _printed_precision_note(metrics: list[str]) -> str:
    """The sentence that says ranks, like the report's best marks, are decided on printed values."""
    precision = ", ".join(f"{metric} {_printed_decimals(metric)}" for metric in metrics)
    return (f"Ranks are decided on printed values, as the paper's tables print them ({precision} decimals), so "
            "equal printed values share a rank; value and best published are shown at that precision, the Δ "
            "columns from the unrounded value.")


def _frame_payload(frame: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    attrs = {key: _plain(value) if not isinstance(value, (list, dict)) else value
             for key, value in frame.attrs.items()}
    return {**attrs, **extra, "rows": _records(frame)}


def compare_payload(paired: pd.DataFrame | None = None, ranked: pd.DataFrame | None = None,
                    images: pd.DataFrame | None = None) -> dict[str, Any]:
    """The JSON document (see the module docstring and ``reports/compare.schema.json``)."""
    payload = {
        "schema": SCHEMA_ID,
        "paired": _frame_payload(paired, {"notes": paired_notes(paired)}) if paired is not None else None,
        "leaderboard": (_frame_payload(ranked, {"explanation": rank_explanation(ranked)})
                        if ranked is not None else None),
    }
    if images is not None:
        payload["images"] = _frame_payload(images, {})
    return payload


def _column_decimals(column: str, metric: str) -> int:
    """Decimals of a number in column ``column`` of a compare frame, as the tables print it: the paper's printed
    precision for the values ranks compare (:data:`_PRINTED_COLUMNS`), :data:`_DECIMALS` for means and deltas, 4 for
    shares (:data:`_SHARE_COLUMNS`) and numbers of no metric."""
    if column in _PRINTED_COLUMNS:
        return _printed_decimals(metric)
    return 4 if column in _SHARE_COLUMNS else _DECIMALS.get(metric, 4)


def _markdown_cell(value: Any, column: str, metric: str) -> str:
    """A Markdown cell: a float at :func:`_column_decimals`, missing as –, anything else as escaped text."""
    raw = value.item() if hasattr(value, "item") else value
    if isinstance(raw, float):
        return _num(raw, _column_decimals(column, metric))
    plain = _plain(value)
    return "–" if plain is None else markdown_escape(str(plain))


def _markdown(frame: pd.DataFrame, title: str, notes: list[str]) -> str:
    lines = [f"**{markdown_escape(title)}**", "", "| " + " | ".join(frame.columns) + " |",
             "|" + "|".join("--:" if pd.api.types.is_numeric_dtype(frame[c]) else ":--" for c in frame.columns) + "|"]
    for row in frame.to_dict(orient="records"):
        metric = str(row.get("metric", ""))
        lines.append("| " + " | ".join(_markdown_cell(value, column, metric) for column, value in row.items()) + " |")
    return "\n".join(lines + [""] + [f"{markdown_escape(note)}  " for note in notes]) + "\n"


def compare_text(fmt: str, paired: pd.DataFrame | None = None, ranked: pd.DataFrame | None = None,
                 images: pd.DataFrame | None = None) -> str:
    """``csv`` | ``json`` | ``markdown`` text of the leaderboard rank and/or the paired comparison, and the largest
    per-image changes when ``images`` is given (CSV: one block per frame in that order, separated by an empty
    line; the frames only, without notes or warnings: :func:`csv_warnings` has those to print elsewhere)."""
    if fmt == "json":
        return json.dumps(compare_payload(paired, ranked, images), indent=2, ensure_ascii=False) + "\n"
    frames = [(f, t, n) for f, t, n in (
        (ranked, f"{ranked.attrs.get('run')} on {ranked.attrs.get('table')}" if ranked is not None else "",
         rank_explanation(ranked) if ranked is not None else []),
        (paired, f"B - A: {paired.attrs.get('run_b')} vs {paired.attrs.get('run_a')}" if paired is not None else "",
         paired_notes(paired) if paired is not None else []),
        (images, image_changes_title(images) if images is not None else "", [])) if f is not None]
    if fmt == "csv":
        parts = []
        for frame, _, _ in frames:
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, lineterminator="\n")
            parts.append(buffer.getvalue())
        return "\n".join(parts)
    if fmt == "markdown":
        return "\n".join(_markdown(frame, title, notes) for frame, title, notes in frames)
    raise ValueError(f"unknown compare format '{fmt}'; expected csv, json or markdown")
