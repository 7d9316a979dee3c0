"""The table view-model shared by every renderer: columns, rows in blocks, cells with their rank marks,
footnotes. Numbers are formatted once here, so LaTeX, HTML, Markdown and CSV print the same digits.

Conventions: PSNR in dB with 2 decimals; SSIM and LPIPS with 3 decimals in the paper's leading-dot style
(".982") in every rendered table (CSV keeps the leading zero, "0.982"). Best and second-best are decided
on the printed (rounded) values, so equal printed values share a mark, and only among rows with
``ranked=True`` (published main-section rows and measured runs on real data with real weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "MISSING",
    "FOOTNOTE_SYMBOLS",
    "NumericColumn",
    "Cell",
    "Row",
    "RowBlock",
    "Footnote",
    "TableModel",
    "metric_column",
    "mark_best",
    "footnote_symbol",
    "shift_footnotes",
]

MISSING = "–"
# Footnote markers in order of first use: (plain text / HTML, LaTeX); after the five, they double, triple, ...
FOOTNOTE_SYMBOLS = [("†", r"\dag"), ("‡", r"\ddag"), ("§", r"\S"), ("¶", r"\P"), ("‖", r"$\|$")]


def footnote_symbol(index: int) -> tuple[str, str]:
    """(plain/HTML, LaTeX) marker of the ``index``-th footnote (0-based): †, ‡, §, ¶, ‖, ††, ‡‡, ..."""
    plain, latex = FOOTNOTE_SYMBOLS[index % len(FOOTNOTE_SYMBOLS)]
    times = index // len(FOOTNOTE_SYMBOLS) + 1
    return plain * times, latex * times


@dataclass(frozen=True)
class NumericColumn:
    """One numeric column. ``key`` identifies where values come from: (dataset, subset) of the
    leaderboard ("Average", "") for the Average column, or ("efficiency", name) for Table 6 columns."""

    key: tuple[str, str]
    group: str
    metric: str
    higher_is_better: bool
    decimals: int
    unit: str = ""
    leading_zero: bool = True
    min_significant: int = 0  # a small non-zero value keeps this many significant digits (0.021G, not 0G)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def printed_decimals(self, value: float) -> int:
        """Decimals ``value`` is printed with: the column's ``decimals``, more for a small non-zero finite value of a
        column with ``min_significant`` (0.0040 keeps 2 significant digits). Every renderer, CSV included, and the
        best marks use it, so they agree on the digits."""
        if not self.min_significant or value == 0 or not math.isfinite(value):
            return self.decimals
        return max(self.decimals, self.min_significant - 1 - math.floor(math.log10(abs(value))))

    def rounded(self, value: float) -> float:
        """``value`` rounded to the digits it is printed with (:meth:`printed_decimals`)."""
        return round(value, self.printed_decimals(value))

    def format(self, value: float | None, leading_zero: bool | None = None) -> str:
        """Printed text of ``value`` ("–" when missing); ``leading_zero`` overrides the column style."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        text = f"{value:.{self.printed_decimals(value)}f}"
        keep_zero = self.leading_zero if leading_zero is None else leading_zero
        if not keep_zero and abs(value) < 1:
            text = text.replace("0.", ".", 1)
        return text + self.unit


# parameters in millions, as Table 6 prints them: 2 decimals, 2 significant digits for a small model (0.0040M)
PARAMS_COLUMN = NumericColumn(("", "params"), "", "Params", higher_is_better=False, decimals=2, unit="M",
                              min_significant=2)


def metric_column(key: tuple[str, str], group: str, metric: str) -> NumericColumn:
    """A PSNR / SSIM / LPIPS column in the paper's print style."""
    if metric == "PSNR":
        return NumericColumn(key, group, metric, higher_is_better=True, decimals=2)
    if metric in ("SSIM", "LPIPS"):
        return NumericColumn(key, group, metric, higher_is_better=metric == "SSIM", decimals=3,
                             leading_zero=False)
    raise ValueError(f"unknown metric '{metric}' (expected PSNR, SSIM or LPIPS)")


@dataclass
class Cell:
    value: float | None
    text: str
    rank: int | None = None  # 1 = best (bold), 2 = second (underlined)
    marker: int | None = None  # footnote number of a mark on this cell (e.g. a delta beyond tolerance)


@dataclass
class Row:
    """One table row. ``kind`` says whether the numbers are copied from a paper or read from a run.
    ``markers`` are footnote numbers (indices into ``TableModel.footnotes``)."""

    name: str
    kind: Literal["published", "measured", "delta"]
    source: str
    cells: list[Cell]
    ranked: bool
    params: str = MISSING
    citation: str = ""
    detail: str = ""
    run_id: str = ""
    markers: list[int] = field(default_factory=list)


@dataclass
class RowBlock:
    title: str
    rows: list[Row]


@dataclass
class Footnote:
    """Footnote ``number`` of its table; ``offset`` shifts its symbol so that several tables on one page
    never reuse a symbol (see :func:`shift_footnotes`)."""

    number: int
    text: str
    offset: int = 0

    @property
    def symbol(self) -> str:
        return footnote_symbol(self.number + self.offset)[0]

    @property
    def latex_symbol(self) -> str:
        return footnote_symbol(self.number + self.offset)[1]


@dataclass
class TableModel:
    """A paper-style table ready to render: ``columns`` are the numeric columns, in order; rows come in
    ``blocks`` separated by rules; ``notes`` are sentences printed under the table."""

    protocol: str
    title: str
    caption: str
    columns: list[NumericColumn]
    blocks: list[RowBlock]
    footnotes: list[Footnote] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    show_params: bool = True
    # (row name, measured.provenance(...)) per measured run: git, device, dtype, checkpoint, versions, images
    provenance: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    label: str = ""  # LaTeX label; empty: tab:bench-ir-<protocol>
    source_header: str = "Venue"  # header of the column that says where a row comes from

    @property
    def rows(self) -> list[Row]:
        return [row for block in self.blocks for row in block.rows]

    def groups(self) -> list[tuple[str, int]]:
        """Consecutive column groups as (label, span) pairs, for two-level headers."""
        spans: list[tuple[str, int]] = []
        for column in self.columns:
            if spans and spans[-1][0] == column.group:
                spans[-1] = (column.group, spans[-1][1] + 1)
            else:
                spans.append((column.group, 1))
        return spans

    def footnote(self, text: str) -> int:
        """Number of the footnote with ``text``, adding it on first use."""
        for note in self.footnotes:
            if note.text == text:
                return note.number
        self.footnotes.append(Footnote(len(self.footnotes), text))
        return len(self.footnotes) - 1

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row '{name}' in table {self.title}; rows: {[r.name for r in self.rows]}")

    def column_index(self, group: str, metric: str) -> int:
        for index, column in enumerate(self.columns):
            if column.group == group and column.metric == metric:
                return index
        raise KeyError(f"no column {group} {metric} in table {self.title}")


def shift_footnotes(table: TableModel, offset: int) -> int:
    """Start ``table``'s footnote symbols after ``offset`` others on the same page; returns the next offset."""
    for note in table.footnotes:
        note.offset = offset
    return offset + len(table.footnotes)


def mark_best(table: TableModel) -> None:
    """Set ``rank`` 1 (best) and 2 (second) per column among the ranked rows, on printed values.

    A column is marked only when at least two ranked rows have a value in it.
    """
    ranked_rows = [row for row in table.rows if row.ranked and row.kind != "delta"]
    for index, column in enumerate(table.columns):
        for row in table.rows:
            row.cells[index].rank = None
        values = [column.rounded(row.cells[index].value) for row in ranked_rows
                  if row.cells[index].value is not None and math.isfinite(row.cells[index].value)]
        if len(values) < 2:
            continue
        ordered = sorted(set(values), reverse=column.higher_is_better)
        for row in ranked_rows:
            value = row.cells[index].value
            if value is None or not math.isfinite(value):
                continue
            printed = column.rounded(value)
            if printed == ordered[0]:
                row.cells[index].rank = 1
            elif len(ordered) > 1 and printed == ordered[1]:
                row.cells[index].rank = 2
