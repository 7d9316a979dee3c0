"""Reproduction check ("did I reproduce the paper?"): for each measured run of a registered model that has a
published row on the protocol, a block of three rows: the published numbers, the measured numbers and
Δ = measured − published per cell, with the cells beyond a tolerance flagged by a footnote.

The published row is the one whose leaderboard ``model_key`` equals the run's model card ``leaderboard_key``
(MIRAGE-T, PromptIR, ...), main section first. Δ uses the stored mean (unrounded) minus the printed value;
PSNR in dB, SSIM and LPIPS unitless. Δ rows are never ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_ir.leaderboard import PublishedRow
from bench_ir.report.measured import MeasuredRun, demonstration_weights
from bench_ir.report.model import MISSING, Cell, NumericColumn, Row, RowBlock, TableModel

__all__ = ["Tolerance", "leaderboard_key", "published_match", "delta_blocks"]


@dataclass(frozen=True)
class Tolerance:
    """A cell is flagged when |Δ| exceeds its metric's tolerance (PSNR in dB)."""

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


def leaderboard_key(run: MeasuredRun) -> str:
    """The leaderboard ``model_key`` of the run's model card (the manifest's copy, else the registered card of
    that name; '' when it names none)."""
    model = run.manifest.get("model") or {}
    card = model.get("card") or {}
    if card:
        return str(card.get("leaderboard_key") or "")
    try:
        from bench_ir.cards import get_card

        return str(get_card(str(model.get("name") or "")).leaderboard_key or "")
    except (KeyError, FileNotFoundError, ValueError):
        return ""


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
    return ("+" if value >= 0 else "-") + column.format(abs(value))


def delta_blocks(table: TableModel, measured: list[tuple[str, MeasuredRun, Row]], published: list[PublishedRow],
                 published_rows: dict[str, Row], tolerance: Tolerance) -> list[RowBlock]:
    """One block per run with a published counterpart: published, measured and Δ rows (``measured`` holds
    (row name, run, its measured row); ``published_rows`` the table's published rows by display name). A run on
    sample data or with random weights gets no block (its Δ would measure the images or the weights, not a
    reproduction), nor does one on part of the test sets (--limit, unfinished) or without a published row of its
    model; a note says so for each."""
    blocks, not_reproductions, partial, unmatched = [], [], [], []
    flag = None
    overridden = []
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
        if run.run.manifest.get("limit") is not None or run.incomplete:
            partial.append(name)
            continue
        printed = published_rows[match.display_name]
        cells = []
        for index, column in enumerate(table.columns):
            mine, theirs = row.cells[index].value, printed.cells[index].value
            if mine is None or theirs is None:
                cells.append(Cell(None, MISSING))
                continue
            delta = mine - theirs
            cell = Cell(delta, _signed(column, delta))
            if abs(delta) > tolerance.of(column.metric) + 1e-12:
                if flag is None:
                    flag = table.footnote(f"beyond tolerance ({tolerance.describe()})")
                cell.marker = flag
            cells.append(cell)
        published_copy = Row(name=f"{match.display_name} published", kind="published", source=printed.source,
                             cells=[Cell(c.value, c.text) for c in printed.cells], ranked=False,
                             params=printed.params, citation=printed.citation, detail=printed.detail)
        measured_copy = Row(name=f"{name} measured", kind="measured", source="measured",
                            cells=[Cell(c.value, c.text) for c in row.cells], ranked=False, params=row.params,
                            detail=row.detail, run_id=row.run_id, markers=list(row.markers))
        delta_row = Row(name="Δ measured − published", kind="delta", source="", cells=cells, ranked=False,
                        run_id=row.run_id)
        blocks.append(RowBlock(f"Reproduction: {name} vs published {match.display_name}",
                               [published_copy, measured_copy, delta_row]))
    if blocks:
        table.notes.append(f"Reproduction blocks: Δ = stored mean − printed value; flagged when "
                           f"{tolerance.describe()}.")
    if not_reproductions:
        table.notes.append(f"No reproduction block for {'; '.join(not_reproductions)}: a Δ to the printed values "
                           "needs the benchmark's test sets and trained weights, not sample data, random weights "
                           "or a sample checkpoint.")
    if partial:
        table.notes.append(f"No reproduction block for {'; '.join(partial)}: a Δ to the printed values needs every "
                           "image of the test sets, not --limit or an unfinished run.")
    if overridden:
        table.notes.append(f"No reproduction block for {'; '.join(overridden)}: its model card's arguments were "
                           "overridden (--model-arg), so it is not the published network.")
    if unmatched:
        where = ("this table shows no published rows" if not published_rows
                 else "no published row is of its model")
        table.notes.append(f"No reproduction block for {'; '.join(unmatched)}: {where}.")
    return blocks
