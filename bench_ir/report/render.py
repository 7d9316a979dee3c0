"""Render a :class:`TableModel` as LaTeX (booktabs), an HTML fragment, Markdown or CSV.

LaTeX, HTML and Markdown go through the Jinja2 templates in ``reports/`` (``table.tex.j2``,
``table.html.j2``, ``table.md.j2``); this module only escapes text and decorates cells (best in bold,
second underlined). CSV is plain data: one line per row, numbers with a leading zero and no unit, rounded to the printed
precision unless ``raw``; measured rows carry their provenance (git, device, dtype, checkpoint, ...).
LaTeX needs ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}`` (for ``\\resizebox``); the fragment's
first line says so, and ``standalone=True`` gives a document that compiles as it is.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Literal

import jinja2

from bench_ir.report.measured import provenance_line
from bench_ir.report.model import Cell, NumericColumn, Row, TableModel
from bench_ir.resources import reports_dir

__all__ = ["FORMATS", "LATEX_PACKAGES", "render", "latex_escape", "latex_document", "template_environment"]

Format = Literal["latex", "html", "markdown", "csv"]
FORMATS: tuple[str, ...] = ("latex", "html", "markdown", "csv")
LATEX_PACKAGES = ("booktabs", "graphicx")  # \toprule/\midrule/\cmidrule, \resizebox
PROVENANCE_COLUMNS = ("git", "device", "dtype", "execution", "tiling", "checkpoint", "checkpoint_sha256", "versions",
                      "images")

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"∗": r"$^{\ast}$", "σ": r"$\sigma$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--",
                  "—": "---", "’": "'", "‘": "`", "†": r"\dag{}", "‡": r"\ddag{}", "§": r"\S{}", "¶": r"\P{}",
                  "×": r"$\times$", "Δ": r"$\Delta$", "±": r"$\pm$", "≤": r"$\leq$", "≥": r"$\geq$",
                  "Ö": r"\"O", "ö": r"\"o", "Ü": r"\"U", "ü": r"\"u", "é": r"\'e", "·": r"$\cdot$",
                  "≈": r"$\approx$", "−": r"$-$", "|": r"$|$", "<": r"$<$", ">": r"$>$", "→": r"$\rightarrow$",
                  "µ": r"$\mu$"}
# Greek letters (a model named "α-Net"): lower case and the upper case letters math mode has, as math symbols.
_LATEX_UNICODE.update({letter: rf"$\{name}$" for letter, name in zip(
    "αβγδεζηθικλμνξπρςστυφχψωΓΘΛΞΠΣΥΦΨΩ",
    ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
     "xi", "pi", "rho", "varsigma", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Theta",
     "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"], strict=True)})
# An ASCII "-" before another "-" (as in --limit) gets "{}" so that pdflatex does not print an en dash.
_LATEX_SPECIAL["-"] = "-{}"
_LATEX_PATTERN = re.compile("-(?=-)|" + "|".join(re.escape(c) for c in [*_LATEX_SPECIAL, *_LATEX_UNICODE] if c != "-"))
_MARKDOWN_SPECIAL = re.compile(r"([\\|*_`<])")  # "<": a label is text, not inline HTML


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII characters of the tables to pdflatex-safe commands."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIAL.get(m.group(0)) or _LATEX_UNICODE[m.group(0)], text)


def check_latex_label(label: str) -> str:
    """``label`` when it can be a LaTeX ``\\label`` key (letters, digits and ``:._-/+``); else ValueError: ``#``,
    ``%``, braces or a backslash break ``\\label``, and a key rewritten here would not match the paper's ``\\ref``."""
    bad = sorted(set(re.sub(r"[A-Za-z0-9:._/+-]", "", label)))
    if bad or not label:
        raise ValueError(f"--label {label!r}: a LaTeX label holds letters, digits and : . _ - / + only"
                         + (f" (not {' '.join(repr(c) for c in bad)})" if bad else ""))
    return label


def _markdown_escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def template_environment(kind: Literal["latex", "html", "markdown"]) -> jinja2.Environment:
    """Jinja2 environment over ``reports/``: LaTeX templates use ``<< >>`` / ``<% %>`` delimiters so
    braces and ``%`` stay plain LaTeX; HTML is autoescaped."""
    loader = jinja2.FileSystemLoader(str(reports_dir()))
    if kind == "latex":
        return jinja2.Environment(loader=loader, block_start_string="<%", block_end_string="%>",
                                  variable_start_string="<<", variable_end_string=">>",
                                  comment_start_string="<#", comment_end_string="#>", trim_blocks=True,
                                  lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                                  undefined=jinja2.StrictUndefined)
    return jinja2.Environment(loader=loader, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=kind == "html", undefined=jinja2.StrictUndefined)


def run_anchor(run_id: str) -> str:
    """The HTML report's anchor of a run's section (``run-<id>``; characters outside [A-Za-z0-9_-] become '-')."""
    return "run-" + re.sub(r"[^A-Za-z0-9_-]", "-", run_id)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", text)


def _column_title(column: NumericColumn, with_arrow: bool = True) -> str:
    metric = f"{column.metric}{column.arrow}" if with_arrow else column.metric
    return f"{column.group} {metric}" if column.group else metric


def _header_cells(table: TableModel) -> list[str]:
    return ["Method", table.source_header] + (["Params"] if table.show_params else [])


def _latex_cell(table: TableModel, cell: Cell) -> str:
    text = latex_escape(cell.text)
    text = {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.rank or 0, text)
    if cell.marker is not None:
        text += rf"\textsuperscript{{{table.footnotes[cell.marker].latex_symbol}}}"
    return text


def _latex_row(table: TableModel, row: Row) -> list[str]:
    marks = "".join(rf"\textsuperscript{{{table.footnotes[m].latex_symbol}}}" for m in row.markers)
    name = latex_escape(row.name) + marks
    if name.startswith("["):  # after the previous row's \\ a "[" would open its optional argument
        name = "{}" + name
    fixed = [rf"\textit{{{name}}}" if row.kind == "delta" else name, latex_escape(row.source)]
    if table.show_params:
        fixed.append(latex_escape(row.params))
    return fixed + [_latex_cell(table, cell) for cell in row.cells]


def _latex_context(table: TableModel) -> dict[str, Any]:
    n_fixed = len(_header_cells(table))
    groups, cmidrules, start = [], [], n_fixed + 1
    for label, span in table.groups():
        groups.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}" if span > 1 else latex_escape(label))
        if label:
            cmidrules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
        start += span
    headers = [latex_escape(h) for h in _header_cells(table)]
    headers += [latex_escape(f"{c.metric}{c.arrow}") for c in table.columns]
    return {
        "packages": ", ".join(LATEX_PACKAGES), "usepackage": rf"\usepackage{{{','.join(LATEX_PACKAGES)}}}",
        "caption": latex_escape(table.caption), "label": (check_latex_label(table.label) if table.label
                                                          else f"tab:bench-ir-{_slug(table.protocol)}"),
        "colspec": "l" * 2 + ("r" if table.show_params else "") + "r" * len(table.columns),
        "ncols": n_fixed + len(table.columns), "has_groups": any(label for label, _ in table.groups()),
        "group_row": [""] * n_fixed + groups, "cmidrules": " ".join(cmidrules), "headers": headers,
        "blocks": [{"title": latex_escape(block.title), "rows": [_latex_row(table, row) for row in block.rows]}
                   for block in table.blocks],
        "footnotes": [{"symbol": note.latex_symbol, "text": latex_escape(note.text)} for note in table.footnotes],
        "notes": [latex_escape(note) for note in table.notes],
        "provenance": [latex_escape(provenance_line(name, info)) for name, info in table.provenance],
    }


def _markdown_cell(table: TableModel, cell: Cell) -> str:
    text = {1: f"**{cell.text}**", 2: f"<u>{cell.text}</u>"}.get(cell.rank or 0, cell.text)
    return text + (table.footnotes[cell.marker].symbol if cell.marker is not None else "")


def _markdown_context(table: TableModel) -> dict[str, Any]:
    headers = _header_cells(table) + [_column_title(column) for column in table.columns]
    aligns = [":--", ":--"] + (["--:"] if table.show_params else []) + ["--:"] * len(table.columns)
    blocks = []
    for block in table.blocks:
        rows = []
        for row in block.rows:
            marks = "".join(table.footnotes[m].symbol for m in row.markers)
            name = _markdown_escape(row.name) + marks
            fixed = [f"*{name}*" if row.kind == "delta" else name, _markdown_escape(row.source)]
            fixed += [_markdown_escape(row.params)] if table.show_params else []
            rows.append(fixed + [_markdown_cell(table, cell) for cell in row.cells])
        title = [f"*{_markdown_escape(block.title)}*"] + [""] * (len(headers) - 1) if block.title else None
        blocks.append({"title": title, "rows": rows})
    return {"caption": _markdown_escape(table.caption), "headers": [_markdown_escape(h) for h in headers],
            "aligns": aligns, "blocks": blocks,
            "footnotes": [{"symbol": n.symbol, "text": _markdown_escape(n.text)} for n in table.footnotes],
            "notes": [_markdown_escape(note) for note in table.notes],
            "provenance": [_markdown_escape(provenance_line(name, info)) for name, info in table.provenance]}


def _html_context(table: TableModel) -> dict[str, Any]:
    return {"table": table, "fixed_headers": _header_cells(table), "groups": table.groups(), "anchor": run_anchor,
            "provenance": [provenance_line(name, info) for name, info in table.provenance],
            "has_groups": any(label for label, _ in table.groups()),
            "ncols": len(_header_cells(table)) + len(table.columns),
            "table_id": f"table-{_slug(table.protocol)}"}


def _csv_value(value: float | None, column: NumericColumn, raw: bool) -> str:
    if value is None:
        return ""
    return repr(float(value)) if raw else f"{value:.{column.decimals}f}"


def _render_csv(table: TableModel, raw: bool = False) -> str:
    provenance = {info["run_id"]: info for _, info in table.provenance}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    numeric = [_column_title(c, with_arrow=False) + (f" [{c.unit}]" if c.unit else "") for c in table.columns]
    writer.writerow(["method", "kind", "source", "citation", "params", "ranked", "footnotes", "run_id",
                     *PROVENANCE_COLUMNS, *numeric])
    for row in table.rows:
        values = [_csv_value(cell.value, column, raw) for cell, column in zip(row.cells, table.columns, strict=True)]
        marks = [*row.markers, *(cell.marker for cell in row.cells if cell.marker is not None)]
        notes = "; ".join(dict.fromkeys(table.footnotes[m].text for m in marks))
        info = provenance.get(row.run_id, {}) if row.kind == "measured" else {}
        writer.writerow([row.name, row.kind, row.source, row.citation, "" if row.params == "–" else row.params,
                         str(row.ranked).lower(), notes, row.run_id,
                         *(info.get(column, "") for column in PROVENANCE_COLUMNS), *values])
    return buffer.getvalue()


def render(table: TableModel, fmt: Format, standalone: bool = False, raw: bool = False) -> str:
    """Render ``table`` as ``latex`` | ``html`` | ``markdown`` | ``csv``.

    ``standalone=True`` wraps LaTeX in a document that compiles as it is (article, booktabs, graphicx).
    CSV: ``raw=True`` writes unrounded values (``repr`` of the stored float).
    """
    if fmt == "csv":
        return _render_csv(table, raw=raw)
    if fmt == "latex":
        text = template_environment("latex").get_template("table.tex.j2").render(**_latex_context(table))
        return latex_document([text]) if standalone else text
    if fmt == "markdown":
        return template_environment("markdown").get_template("table.md.j2").render(**_markdown_context(table))
    if fmt == "html":
        return template_environment("html").get_template("table.html.j2").render(**_html_context(table))
    raise ValueError(f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")


def latex_document(tables: list[str]) -> str:
    """A pdflatex document holding rendered LaTeX tables (article, the packages of :data:`LATEX_PACKAGES`)."""
    return template_environment("latex").get_template("document.tex.j2").render(tables=tables,
                                                                                packages=LATEX_PACKAGES)
