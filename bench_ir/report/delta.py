"""Reproduction check ("did I reproduce the paper?"): for each measured run of a registered model that has a
published row on the protocol, a block of three rows: the published numbers, the measured numbers and
Δ = measured − published per cell, with the cells beyond a tolerance flagged by a footnote.

The published row is the one whose leaderboard ``model_key`` equals the run's model card ``leaderboard_key``
(MIRAGE-T, PromptIR, ...), main section first. Δ uses the stored mean (unrounded) minus the printed value;
PSNR in dB, SSIM and LPIPS unitless. A Δ is checked against the tolerance as printed (rounded to its column's
precision). Δ rows are never ranked.

A card may state the metric convention its published numbers were measured with (option
``published_convention``, e.g. MoCE-IR's M2: Gaussian-window SSIM). When the run scored with another, the Δ of
each metric the two conventions compute differently compares two estimators: it is marked so, not checked
against the tolerance, and a note says how to measure with the published convention.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench_ir.cards import find_card
from bench_ir.leaderboard import PublishedRow
from bench_ir.metrics.conventions import MetricConvention, get_convention
from bench_ir.report.measured import MeasuredRun, card_option, demonstration_weights
from bench_ir.report.model import MISSING, Cell, NumericColumn, Row, RowBlock, TableModel

__all__ = ["ConventionGap", "Tolerance", "convention_gap", "delta_blocks", "leaderboard_key", "metrics_changed",
           "published_match"]

# The MetricConvention fields each metric's number depends on (bench_ir.metrics.scoring: clamp, then
# quantization and colour conversion for PSNR and SSIM; LPIPS on the clamped RGB images; DiffUIR's dark-image rule
# changes the PSNR peak and the SSIM constants).
_CONVENTION_FIELDS = {
    "PSNR": ("colour", "clamp", "quantize", "psnr_peak", "psnr_dark_peak", "psnr_crop_border"),
    "SSIM": ("colour", "clamp", "quantize", "ssim", "psnr_dark_peak", "ssim_crop_border"),
    "LPIPS": ("clamp", "lpips_net", "lpips_input"),
}


@dataclass(frozen=True)
class Tolerance:
    """A cell is flagged when its printed |Δ| (rounded to the column's precision) exceeds its metric's tolerance (PSNR
    in dB)."""

    psnr: float = 0.05
    ssim: float = 0.002
    lpips: float = 0.002

    def __post_init__(self) -> None:
        for option, value in (("--tol-psnr", self.psnr), ("--tol-ssim", self.ssim), ("lpips tolerance", self.lpips)):
            if not value >= 0:  # NaN too
                raise ValueError(f"{option} must be 0 or more, got {value}")

    def of(self, metric: str) -> float:
        return {"PSNR": self.psnr, "SSIM": self.ssim, "LPIPS": self.lpips}[metric]

    def describe(self) -> str:
        return f"|Δ| > {self.psnr:g} dB PSNR or {self.ssim:g} SSIM"


@dataclass(frozen=True)
class ConventionGap:
    """A run scored with convention ``measured`` (an id, M1..M7) whose model's published numbers were measured with
    ``published``; ``metrics`` are those the two compute differently (PSNR, SSIM, LPIPS)."""

    measured: str
    published: str
    metrics: tuple[str, ...]


def metrics_changed(first: MetricConvention, second: MetricConvention) -> tuple[str, ...]:
    """The metrics (PSNR, SSIM, LPIPS, in that order) whose numbers can differ between two conventions: those with a
    setting they depend on that differs (colour space, clamp and quantization change PSNR and SSIM; the SSIM
    estimator only SSIM; the LPIPS network only LPIPS)."""
    return tuple(metric for metric, names in _CONVENTION_FIELDS.items()
                 if any(getattr(first, name) != getattr(second, name) for name in names))


def convention_gap(run: MeasuredRun) -> ConventionGap | None:
    """How the run's metric convention differs from the one its model card says the published numbers were
    measured with (card option ``published_convention``); None when the card states none, the conventions agree or
    either is not a known convention."""
    published, used = card_option(run.manifest, "published_convention"), run.convention
    used_name = used.get("id") or used.get("name")
    if not published or not used_name:
        return None
    try:
        measured, printed = get_convention(str(used_name)), get_convention(str(published))
    except KeyError:
        return None
    metrics = metrics_changed(measured, printed)
    return ConventionGap(measured.id, printed.id, metrics) if metrics else None


def leaderboard_key(run: MeasuredRun) -> str:
    """The leaderboard ``model_key`` of the run's model card (the manifest's copy, else the registered card of
    that name; '' when it names none)."""
    model = run.manifest.get("model") or {}
    card = model.get("card") or {}
    if card:
        return str(card.get("leaderboard_key") or "")
    registered = find_card(str(model.get("name") or ""))
    return str(registered.leaderboard_key or "") if registered is not None else ""


def published_match(run: MeasuredRun, published: list[PublishedRow]) -> PublishedRow | None:
    """The published row of the run's model (main section preferred), or None. A run whose card arguments were
    overridden (``--model-arg``, a suite entry's ``model_args``) is another network than the published one: None."""
    key = leaderboard_key(run)
    if not key or (run.manifest.get("model") or {}).get("args_overrides"):
        return None
    matches = [p for p in published if p.model_key == key]
    matches.sort(key=lambda p: p.section != "main")
    return matches[0] if matches else None


def _signed(column: NumericColumn, value: float) -> str:
    """``value`` with its sign as printed: one that rounds to zero is +0.00, never -0.00."""
    return ("+" if column.rounded(value) >= 0 else "-") + column.format(abs(value))


def _delta_cells(table: TableModel, row: Row, printed: Row, tolerance: Tolerance,
                 gap: ConventionGap | None) -> list[Cell]:
    """Δ = measured − printed per column: a cell whose printed Δ is beyond the tolerance is flagged (decided on the
    Δ as printed, like the best marks, so a flagged cell never shows a |Δ| equal to the tolerance: the published
    value itself is only known to half a unit of its last digit), one of a metric that the run's and the published
    convention compute differently is marked as such instead (``gap``)."""
    cells = []
    for index, column in enumerate(table.columns):
        mine, theirs = row.cells[index].value, printed.cells[index].value
        if mine is None or theirs is None:
            cells.append(Cell(None, MISSING))
            continue
        delta = mine - theirs
        cell = Cell(delta, _signed(column, delta))
        if gap is not None and column.metric in gap.metrics:
            cell.marker = table.footnote(f"measured with convention {gap.measured}, published with {gap.published}: "
                                         f"{column.metric} estimators differ; not checked against the tolerance")
        elif abs(column.rounded(delta)) > tolerance.of(column.metric) + 1e-12:
            cell.marker = table.footnote(f"beyond tolerance ({tolerance.describe()})")
        cells.append(cell)
    return cells


def _shown_gap(table: TableModel, gap: ConventionGap | None) -> ConventionGap | None:
    """``gap`` restricted to the metrics the table has columns of; None when it has none of them."""
    metrics = tuple(metric for metric in (gap.metrics if gap else ()) if any(c.metric == metric for c in table.columns))
    return replace(gap, metrics=metrics) if gap is not None and metrics else None


def _convention_note(name: str, gap: ConventionGap) -> str:
    metrics = " and ".join(gap.metrics)
    return (f"{name} was scored with metric convention {gap.measured}, but its model's published numbers were "
            f"measured with {gap.published} (its model card's published_convention), which computes {metrics} "
            f"differently: their Δ compares two estimators and is not checked against the tolerance. Add "
            f"`--convention {gap.published}` to `bench-ir run` to measure as published.")


def delta_blocks(table: TableModel, measured: list[tuple[str, MeasuredRun, Row]], published: list[PublishedRow],
                 published_rows: dict[str, Row], tolerance: Tolerance) -> list[RowBlock]:
    """One block per run with a published counterpart: published, measured and Δ rows (``measured`` holds
    (row name, run, its measured row); ``published_rows`` the table's published rows by display name). A run on
    sample data or with random weights gets no block (its Δ would measure the images or the weights, not a
    reproduction), nor does one on part of the test sets (--limit, unfinished, or test sets with fewer images than
    the protocol expects) or without a published row of its model; a note says so for each. A run scored with
    another convention than the published numbers (:func:`convention_gap`) gets a block with a note."""
    blocks, not_reproductions, partial, unmatched, overridden, convention_notes = [], [], [], [], [], []
    for name, run, row in measured:
        match = published_match(run, published)
        if match is None and leaderboard_key(run) and (run.manifest.get("model") or {}).get("args_overrides"):
            overridden.append(name)
            continue
        if match is None or match.display_name not in published_rows:
            unmatched.append(name)
            continue
        if (run.run.manifest.get("sample") or run.run.manifest.get("random_weights")
                or demonstration_weights(run.run.manifest)):
            not_reproductions.append(name)
            continue
        if run.run.manifest.get("limit") is not None or run.incomplete or run.short_sets:
            partial.append(name)
            continue
        printed = published_rows[match.display_name]
        gap = _shown_gap(table, convention_gap(run))
        if gap is not None:
            convention_notes.append(_convention_note(name, gap))
        published_copy = Row(name=f"{match.display_name} published", kind="published", source=printed.source,
                             cells=[Cell(c.value, c.text) for c in printed.cells], ranked=False,
                             params=printed.params, citation=printed.citation, detail=printed.detail)
        measured_copy = Row(name=f"{name} measured", kind="measured", source="measured",
                            cells=[Cell(c.value, c.text) for c in row.cells], ranked=False, params=row.params,
                            detail=row.detail, run_id=row.run_id, markers=list(row.markers))
        delta_row = Row(name="Δ measured − published", kind="delta", source="",
                        cells=_delta_cells(table, row, printed, tolerance, gap), ranked=False, run_id=row.run_id)
        blocks.append(RowBlock(f"Reproduction: {name} vs published {match.display_name}",
                               [published_copy, measured_copy, delta_row]))
    if blocks:
        table.notes.append(f"Reproduction blocks: Δ = stored mean − printed value; flagged when the printed "
                           f"{tolerance.describe()}.")
    table.notes += convention_notes
    if not_reproductions:
        table.notes.append(f"No reproduction block for {'; '.join(not_reproductions)}: a Δ to the printed values "
                           "needs the benchmark's test sets and trained weights, not sample data, random weights "
                           "or a sample checkpoint.")
    if partial:
        table.notes.append(f"No reproduction block for {'; '.join(partial)}: a Δ to the printed values needs every "
                           "image of the test sets, not --limit, an unfinished run or a test set with images "
                           "missing.")
    if overridden:
        table.notes.append(f"No reproduction block for {'; '.join(overridden)}: its model card's arguments were "
                           "overridden (--model-arg), so it is not the published network.")
    if unmatched:
        where = ("this table shows no published rows" if not published_rows
                 else "no published row is of its model")
        table.notes.append(f"No reproduction block for {'; '.join(unmatched)}: {where}.")
    return blocks
