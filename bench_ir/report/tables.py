"""Build the paper table of a protocol (Tables 1-4, B, D and the underwater table): published rows from
the leaderboard CSV beside the user's stored runs.

Columns: one (PSNR, SSIM[, LPIPS]) group per leaderboard dataset column, in printed order, then the
Average group. With runs, a task is placed through its manifest mapping (``protocol.tasks[].leaderboard``);
tasks mapped to a dataset the paper prints without that subset (5deg's sigma 15/50) are not shown and the
table says so; tasks without a mapping get extra columns. Without a leaderboard, columns come from the runs.
A measured row's Params is the count its published figure gives: the inference-time one, with a note, where the
model card says so (option ``published_params: inference``, NDR-Restore); else all parameters (``model.params``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd

from bench_ir.leaderboard import (
    AVERAGE,
    PublishedRow,
    column_label,
    has_average,
    has_table,
    is_inconsistency_note,
    leaderboard_columns,
    leaderboard_metrics,
    protocol_rows,
    published_rows,
)
from bench_ir.protocol import measurement_changes
from bench_ir.report.delta import Tolerance, delta_blocks
from bench_ir.report.measured import (
    MeasuredRun,
    average_tasks,
    inference_params_shown,
    is_profile_run,
    provenance,
    run_tags,
)
from bench_ir.report.model import (
    MISSING,
    PARAMS_COLUMN,
    Cell,
    NumericColumn,
    Row,
    RowBlock,
    TableModel,
    mark_best,
    metric_column,
)
from bench_ir.shortlist import shortlist

__all__ = ["build_protocol_table", "published_table_row", "measured_table_row", "unique_name", "RANKING_NOTE",
           "ASTERISK_NOTE", "measured_name", "caption_text", "add_provenance", "inference_params_note"]

MAIN_SECTION = "main"
RANKING_NOTE = ("Best in bold, second underlined, per column, among the published main-section rows and the "
                "runs measured on full real data with real weights.")
ASTERISK_NOTE = ("∗ Mark of the source table, which does not define it; in all-in-one papers it usually marks a "
                 "general image restoration method retrained in the all-in-one setting by an earlier paper.")
_SHOWN_ROWS = 5  # rows a convention note names before "and N more"
_PAPER_SOURCE = re.compile(r"^(?P<paper>\S+) (?P<venue>[A-Za-z]+ \d{4}) Table (?P<number>\S+)(?P<rest>.*)$")


def _columns(rows: pd.DataFrame | None, measured: list[MeasuredRun]) -> tuple[list[NumericColumn], list[str]]:
    """Numeric columns, and labels of scored tasks the table leaves out."""
    keys: list[tuple[tuple[str, str], str]] = []
    hidden: list[str] = []
    if rows is not None:
        keys = [(column.key, column.label) for column in leaderboard_columns(rows)]
        metrics = leaderboard_metrics(rows)
        datasets = {key[0] for key, _ in keys}
    else:
        has_lpips = any(key[2] == "LPIPS" and value is not None
                        for run in measured for key, value in run.values.items())
        metrics = ["PSNR", "SSIM"] + (["LPIPS"] if has_lpips else [])
        datasets = set()
    for run in measured:
        for task in run.task_columns:
            if any(task.key == key for key, _ in keys) or task.label in hidden:
                continue
            if task.key[0] in datasets:
                hidden.append(task.label)
            else:
                keys.append((task.key, task.label))
    with_average = (rows is not None and has_average(rows)) or any(
        (AVERAGE, "", "PSNR") in run.values for run in measured)
    if with_average:
        keys.append(((AVERAGE, ""), column_label(AVERAGE)))
    columns = [metric_column(key, label, metric) for key, label in keys for metric in metrics]
    return columns, hidden


def _section_title(section: str) -> str:
    kind, _, detail = section.partition(":")
    if kind.strip() == "assisted":
        return f"Methods with the assistance of {detail.strip()} (not ranked)"
    return f"{section} (not ranked)"


def _params_text(raw: str) -> str:
    """Printed params with the paper's unit: "29" (a unit the source table left out) becomes "29M"."""
    if not raw or raw in ("-", "–"):
        return MISSING
    return f"{raw}M" if re.fullmatch(r"\d+(\.\d+)?", raw) else raw


def paper_reference(source: str) -> str:
    """``MIRAGE ICLR 2026 Table 2`` -> ``MIRAGE (ICLR 2026), Tab. 2``: a caption then carries one table number."""
    match = _PAPER_SOURCE.match(source)
    if not match:
        return source
    return f"{match['paper']} ({match['venue']}), Tab. {match['number']}{match['rest']}"


def caption_text(subject: str, source: str, measured: list[MeasuredRun]) -> str:
    """Caption: what the table shows, where the published rows come from, and whether any measured row is on
    sample data, random weights, a sample checkpoint, --limit or part of its images (so that a pasted table says so
    even without its footnotes)."""
    parts = [subject + "."]
    if source:
        parts.append(f"Published rows: {paper_reference(source)}, as printed.")
    if measured:
        parts.append("Measured rows: bench-ir.")
    tags = sorted({tag.split(" ")[0] if tag.startswith("limit") else tag
                   for run in measured for tag in run_tags(run)})
    if tags:
        words = {"sample": "sample data", "random weights": "random weights", "limit": "--limit",
                 "incomplete": "unfinished runs (part of the images)",
                 "sample checkpoint": "a shipped sample checkpoint (a demonstration)"}
        parts.append(f"Includes rows on {', '.join(words[t] for t in tags)} (not comparable, not ranked).")
    return " ".join(parts)


def measured_name(run: MeasuredRun, taken: set[str]) -> str:
    """A measured row's name: its label, tagged ``[sample]``/``[random weights]``/``[limit N]``/``[incomplete]``
    when so, and ``(run name)`` when another row already has that name; records the result in ``taken``."""
    name = run.label
    tags = [tag for tag in run_tags(run) if not _carries_tag(name, tag)]
    if tags:
        name = f"{name} [{', '.join(tags)}]"
    return unique_name(name, run.run_id, taken)


def _carries_tag(name: str, tag: str) -> bool:
    """Whether ``name`` already shows ``tag`` as an item of a bracketed list ("MyNet (sample)", "MyNet [sample,
    limit 2]"); a longer phrase ("MIRAGE-T (sample checkpoint)") or a word of the name ("Unlimited") is not it."""
    groups = re.findall(r"[(\[]([^)\]]*)[)\]]", name)
    return any(item.strip().lower() == tag for group in groups for item in group.split(","))


def add_provenance(table: TableModel, rows: list[tuple[str, MeasuredRun]]) -> None:
    """One provenance line per measured row (git, device, dtype/execution, checkpoint, versions, images)."""
    table.provenance = [(name, {**provenance(run.run, run.images), "run_id": run.run_id}) for name, run in rows]


Lookup = Callable[[NumericColumn], "float | None"]


def published_table_row(published: PublishedRow, columns: list[NumericColumn], table: TableModel,
                        lookup: Lookup | None = None) -> Row:
    """A printed row: numbers as printed; cells the CSV flags as inconsistent get a footnote.
    ``lookup`` finds a column's value (default: the column's (dataset, subset) and metric)."""
    lookup = lookup or (lambda column: published.value(*column.key, column.metric))
    cells = []
    for column in columns:
        value = lookup(column)
        cells.append(Cell(value, column.format(value)))
    markers = []
    for (dataset, subset, metric), note in published.notes.items():
        reported = "; ".join(part.strip() for part in note.split(";") if is_inconsistency_note(part))
        recomputed = published.average_mismatch(metric) if dataset == AVERAGE else None
        if reported and recomputed is not None and "mean" not in reported:
            reported += f"; the mean of the printed values is {recomputed:.3f}"
        if reported:
            cell = f"{column_label(dataset, subset)} {metric}" if dataset else metric.replace("_", " ")
            markers.append(table.footnote(f"{published.display_name}, {cell}: {reported}"))
    for metric in dict.fromkeys(column.metric for column in columns if column.key == (AVERAGE, "")):
        recomputed = published.average_mismatch(metric)
        if recomputed is not None and not is_inconsistency_note(published.notes.get((AVERAGE, "", metric), "")):
            markers.append(table.footnote(
                f"{published.display_name}, Average {metric}: printed {published.value(AVERAGE, '', metric):g}, "
                f"the mean of the printed values is {recomputed:.3f}"))
    source = published.venue or published.citation or "published"
    detail = "; ".join(part for part in (published.citation, published.venue, published.source) if part)
    return Row(name=published.display_name, kind="published", source=source, cells=cells,
               ranked=published.section == MAIN_SECTION, params=_params_text(published.params_raw),
               citation=published.citation, detail=detail, markers=sorted(set(markers)))


def measured_table_row(run: MeasuredRun, name: str, columns: list[NumericColumn], table: TableModel,
                       lookup: Lookup | None = None) -> Row:
    """A run's row: means from the store; non-comparable runs are marked and never ranked."""
    lookup = lookup or (lambda column: run.value(column.key, column.metric))
    cells = []
    for column in columns:
        value = lookup(column)
        cells.append(Cell(value, column.format(value)))
    markers = [table.footnote(f"{reason}: not comparable with published numbers; not ranked")
               for reason in run.reasons]
    if run.nonfinite:
        markers.append(table.footnote(f"{run.label}: non-finite output in {run.nonfinite} image(s); "
                                      f"the affected means are shown as {MISSING}"))
    model = run.manifest.get("model") or {}
    checkpoint = run.manifest.get("checkpoint") or {}
    detail_parts = [f"run {run.run_id}", f"model {model.get('name', '?')}"]
    if checkpoint.get("sha256"):
        detail_parts.append(f"checkpoint sha256 {str(checkpoint['sha256'])[:12]}")
    if run.convention.get("name"):
        detail_parts.append(f"convention {run.convention['name']}")
    count = _params_shown(run)
    params = PARAMS_COLUMN.format(count / 1e6) if count else MISSING  # "4.18M"; an identity baseline has none
    return Row(name=name, kind="measured", source="measured", cells=cells, ranked=run.comparable,
               params=params, detail="; ".join(detail_parts), run_id=run.run_id, markers=markers)


def _params_shown(run: MeasuredRun) -> int | None:
    """A run's Params: the count its published figure gives (the inference-time one where the model card says so,
    :func:`~bench_ir.report.measured.inference_params_shown`), else all its parameters (``model.params``)."""
    inference = inference_params_shown(run.manifest)
    return inference if inference is not None else run.params


def inference_params_note(name: str, inference: int, total: int | None) -> str:
    """The note of a row whose Params is the ``inference``-time count, not all ``total`` parameters."""
    whole = f"; all {total / 1e6:.2f}M with its training-only modules" if total else ""
    return (f"{name}: Params counts the {inference / 1e6:.2f}M parameters used at inference, the count its published "
            f"figure gives (model card option published_params){whole}.")


def _params_notes(measured: list[MeasuredRun], names: list[str]) -> list[str]:
    """One :func:`inference_params_note` per measured row whose Params is the inference-time count."""
    return [inference_params_note(name, inference, run.params) for run, name in zip(measured, names, strict=True)
            if (inference := inference_params_shown(run.manifest)) is not None]


def unique_name(name: str, run_id: str, taken: set[str]) -> str:
    """``name``, or ``name (run_id)`` when another row already has that name; records the result in ``taken``."""
    unique = name if name not in taken else f"{name} ({run_id})"
    taken.add(unique)
    return unique


def _convention_notes(measured: list[MeasuredRun], names: list[str]) -> list[str]:
    """One note per metric convention of the measured rows (``names``: their row names, in order). Where the rows
    were scored with more than one convention (or some record none), each note names the rows it applies to."""
    rows: dict[tuple[str, str], list[str]] = {}
    for run, name in zip(measured, names, strict=True):
        convention = (str(run.convention.get("name") or ""), str(run.convention.get("description") or ""))
        rows.setdefault(convention, []).append(name)
    notes = []
    for (convention, description), applies_to in sorted(rows.items()):
        if not convention:
            continue
        subject = ("Measured rows" if len(rows) == 1
                   else f"Measured rows {shortlist(applies_to, _SHOWN_ROWS, more=' and {} more')}")
        text = f"{convention} ({description})" if description else convention
        notes.append(f"{subject}: per-image means read from the bench-ir result store, metric convention {text}.")
    return notes


def _flag_mixed_conventions(measured: list[MeasuredRun]) -> None:
    """When the comparable runs were scored with more than one metric convention (possible where the protocol
    prescribes none, as a folder pair's), none of them is ranked: their numbers are different definitions. A
    built-in protocol's runs of another convention are flagged on their own (``measured.noncomparable_reasons``)."""
    comparable = [run for run in measured if run.comparable]
    used = sorted({str(run.convention.get("name") or "") for run in comparable} - {""})
    if len(used) > 1:
        for run in comparable:
            run.reasons.append(f"the table mixes metric conventions {' and '.join(used)} (rank the runs of one "
                               "convention)")


def _protocol_file_changes(first: MeasuredRun, first_resolved: dict, run: MeasuredRun, resolved: dict) -> list[str]:
    """What two runs' protocol files measure differently: bench_ir.protocol.measurement_changes of the resolved
    protocols, and ``average`` when their Averages are over other tasks (files of the user's own: a built-in
    protocol's runs all get its current Average, :func:`~bench_ir.report.measured.average_tasks`)."""
    changes = measurement_changes(first_resolved, resolved)
    if average_tasks(first.manifest.get("protocol") or {}) != average_tasks(run.manifest.get("protocol") or {}):
        changes.append("average")
    return changes


def _flag_mixed_protocol_files(measured: list[MeasuredRun]) -> None:
    """When the comparable runs were made with protocol files of one name that measure differently (another crop,
    synthesis, task set or Average: :func:`_protocol_file_changes` of the resolved protocols their manifests keep),
    none of them is ranked: two researchers' files named alike are not one protocol. Files that differ only in
    descriptions are one protocol; a manifest without the resolved protocol (older runs) is not compared."""
    comparable = [run for run in measured if run.comparable]
    kept = [(run, resolved) for run in comparable
            if isinstance(resolved := (run.manifest.get("protocol") or {}).get("resolved"), dict)]
    if not kept:
        return
    first_run, first = kept[0]
    other = next(((run, changes) for run, resolved in kept[1:]
                  if (changes := _protocol_file_changes(first_run, first, run, resolved))), None)
    if other is None:
        return
    run, changes = other
    reason = (f"the table mixes runs of protocol files named '{first_run.protocol}' that measure differently (runs "
              f"{first_run.run_id} and {run.run_id}: {'; '.join(changes)} differ); rank the runs of one file")
    for run in comparable:
        run.reasons.append(reason)


def build_protocol_table(protocol: str, measured: list[MeasuredRun], leaderboard: bool | None = None,
                         delta: Tolerance | None = None) -> TableModel:
    """The paper table of ``protocol`` with the published rows and the runs; with ``delta``, a reproduction
    block (published, measured, Δ) per run of a model with a published row. ``leaderboard``: True, the published
    rows (a KeyError where the protocol has none); False, none; None, the published rows where a leaderboard
    table holds the protocol (a user's own protocol gets the runs alone; with no run, None is True).
    Profile runs (protocol "efficiency") are left out: they only feed the efficiency table."""
    measured = [run for run in measured if not is_profile_run(run.run)]
    for run in measured:
        if run.protocol != protocol:
            raise ValueError(f"run {run.run_id} was made with protocol '{run.protocol}', not '{protocol}'")
    _flag_mixed_conventions(measured)
    _flag_mixed_protocol_files(measured)
    rows = None
    table_name = next((run.leaderboard_table for run in measured if run.leaderboard_table), None)
    if leaderboard or (leaderboard is None and (table_name or not measured or has_table(protocol))):
        rows = protocol_rows(protocol, table_name)
    columns, hidden = _columns(rows, measured)
    published = published_rows(rows) if rows is not None else []
    source = published[0].source if published else ""
    table = TableModel(protocol=protocol, title=f"Protocol {protocol}",
                       caption=caption_text(f"Results on protocol {protocol}", source, measured),
                       columns=columns, blocks=[])
    # Measured rows first, so that their footnotes take the first markers (†, ‡, ...).
    taken = {p.display_name for p in published}
    names = [measured_name(run, taken) for run in measured]
    runs = [measured_table_row(run, name, columns, table) for run, name in zip(measured, names, strict=True)]
    main = [published_table_row(p, columns, table) for p in published if p.section == MAIN_SECTION]
    if main:
        table.blocks.append(RowBlock("", main))
    if runs:
        table.blocks.append(RowBlock("Measured with bench-ir", runs))
    assisted = []
    for section in dict.fromkeys(p.section for p in published if p.section != MAIN_SECTION):
        assisted.append(RowBlock(_section_title(section), [
            published_table_row(p, columns, table) for p in published if p.section == section]))
    if delta is not None:
        by_name = {row.name: row for block in [*table.blocks, *assisted] for row in block.rows
                   if row.kind == "published"}
        table.blocks += delta_blocks(table, list(zip(names, measured, runs, strict=True)), published, by_name, delta)
    table.blocks += assisted
    table.show_params = any(row.params != MISSING for row in table.rows)
    if any("∗" in row.name for row in table.rows):
        table.notes.append(ASTERISK_NOTE)
    if published:
        table.notes.append(f"Published rows: {source}, numbers as printed.")
    table.notes += _convention_notes(measured, names)
    table.notes += _params_notes(measured, names)
    if hidden:
        table.notes.append(f"Scored but not in the paper's table (not shown): {', '.join(hidden)}.")
    table.notes.append(RANKING_NOTE)
    add_provenance(table, list(zip(names, measured, strict=True)))
    mark_best(table)
    return table
