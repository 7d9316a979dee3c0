"""Render a :class:`TableModel` as LaTeX (booktabs), an HTML fragment, Markdown or CSV.

LaTeX, HTML and Markdown go through the Jinja2 templates in ``reports/`` (``table.tex.j2``,
``table.html.j2``, ``table.md.j2``); this module only escapes text and decorates cells (best in bold,
second underlined). CSV is plain data: one line per row, numbers with a leading zero and no unit, rounded to the printed
precision unless ``raw``; measured rows carry their provenance (git, device, dtype, checkpoint, ...).
LaTeX needs ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}`` (for ``\\resizebox``); the fragment's
first line says so, and ``standalone=True`` gives a document that compiles as it is.

Text is shown on one line in every format: a newline or another control character (a label of an older run) becomes
a space. Non-ASCII text in LaTeX: letters and symbols pdflatex typesets with the document's preamble stay, Greek and
common maths symbols become math commands, and anything else (CJK, Cyrillic, emoji) stays as it is with one
:class:`ReportWarning` per table naming the characters and where they are (pdflatex fails on them).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from typing import Any, Literal

import jinja2
from markupsafe import Markup

from bench_ir.report.measured import provenance_line
from bench_ir.report.model import Cell, NumericColumn, Row, TableModel
from bench_ir.resources import reports_dir
from bench_ir.shortlist import shortlist

__all__ = ["FORMATS", "LATEX_PACKAGES", "ReportWarning", "render", "latex_escape", "latex_untypeset",
           "markdown_escape", "one_line", "latex_document", "template_environment"]

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
# Maths symbols a name or note may hold ("≠", "∞", "⇒"), as math mode commands of plain LaTeX (no amssymb).
_LATEX_UNICODE.update({symbol: rf"$\{name}$" for symbol, name in zip(
    "≠∞≡∼≃≅≪≫∝∈∉∑∏√∂∇∫∀∃∅∩∪⊂⊃⊆⊇⊕⊗∘←↔⇒⇐⇔↦∓∧∨ℓ∠⊥∥ϑϕϵ⋆∙⋯",
    ["neq", "infty", "equiv", "sim", "simeq", "cong", "ll", "gg", "propto", "in", "notin", "sum", "prod", "surd",
     "partial", "nabla", "int", "forall", "exists", "emptyset", "cap", "cup", "subset", "supset", "subseteq",
     "supseteq", "oplus", "otimes", "circ", "leftarrow", "leftrightarrow", "Rightarrow", "Leftarrow",
     "Leftrightarrow", "mapsto", "mp", "wedge", "vee", "ell", "angle", "perp", "parallel", "vartheta", "varphi",
     "epsilon", "star", "bullet", "cdots"], strict=True)})
_LATEX_UNICODE.update({"′": r"$'$", "″": r"$''$"})
# Greek letters (a model named "α-Net"): lower case and the upper case letters math mode has, as math symbols.
_LATEX_UNICODE.update({letter: rf"$\{name}$" for letter, name in zip(
    "αβγδεζηθικλμνξπρςστυφχψωΓΘΛΞΠΣΥΦΨΩ",
    ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
     "xi", "pi", "rho", "varsigma", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Theta",
     "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"], strict=True)})
# An ASCII "-" before another "-" (as in --limit) gets "{}" so that pdflatex does not print an en dash.
_LATEX_SPECIAL["-"] = "-{}"
_LATEX_PATTERN = re.compile("-(?=-)|" + "|".join(re.escape(c) for c in [*_LATEX_SPECIAL, *_LATEX_UNICODE] if c != "-"))
# Non-ASCII characters pdflatex typesets as they are with the standalone preamble (utf8 input, the default OT1 and
# TS1 fonts): each was compiled alone with TeX Live 2022. Latin-1 and Latin Extended-A letters but "Ð Þ ð þ ą ę"
# (T1 fonts), quotes and dashes but "« » ‚ „" (T1), and a few symbols (€ ™ № ℃).
_PDFLATEX_TYPESETS = re.compile(
    "[\u00a0-\u00aa\u00ac-\u00ba\u00bc-\u00cf\u00d1-\u00dd\u00df-\u00ef\u00f1-\u00fd\u00ff-\u0103"
    "\u0106-\u010f\u0112-\u0117\u011a-\u0125\u0128-\u012d\u0130-\u0137\u0139-\u013e\u0141-\u0148"
    "\u014c-\u0165\u0168-\u0171\u0174-\u017e\u0192\u01c4-\u01d4\u01e2\u01e3\u01e6-\u01e9\u01f0\u01f4\u01f5"
    "\u0218-\u021b\u0232\u0233\u0237\u2010-\u2016\u2018\u2019\u201c\u201d\u2020-\u2022\u2026\u2030\u2031"
    "\u203b\u203d\u2044\u20ac\u2103\u2116\u2122\u2126\u2190-\u2193]")
# Control characters and line or paragraph separators: a newline in a label splits a Markdown row and ends a LaTeX
# cell's paragraph ("Missing number"); in a name they become one space.
_CONTROL = re.compile("\\s*[\x00-\x1f\x7f-\x9f\u2028\u2029]+\\s*")
_MARKDOWN_SPECIAL = re.compile(r"([\\|*_`<$])")  # "<": a label is text, not inline HTML; "$": not GitHub math


class ReportWarning(UserWarning):
    """A report renders, but something in it will not show as meant (e.g. characters pdflatex cannot typeset)."""


def one_line(text: str) -> str:
    """``text`` with each run of control characters (newline, tab, ...) and the spaces around it as one space."""
    return _CONTROL.sub(" ", text)


def latex_escape(text: str) -> str:
    """Escape LaTeX specials, map Greek letters and common non-ASCII symbols to pdflatex-safe commands and show the
    text on one line (:func:`one_line`); other characters stay as they are (see :func:`latex_untypeset`)."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIAL.get(m.group(0)) or _LATEX_UNICODE[m.group(0)], one_line(text))


def latex_untypeset(text: str) -> list[str]:
    """The characters of ``text``, in order and once each, that :func:`latex_escape` leaves as they are and
    pdflatex cannot typeset with the standalone preamble (CJK, Cyrillic, emoji, ...); XeLaTeX or LuaLaTeX with a
    font that has them can."""
    return list(dict.fromkeys(char for char in one_line(text) if not (" " <= char <= "~" or char in _LATEX_UNICODE
                                                                      or _PDFLATEX_TYPESETS.match(char))))


def check_latex_label(label: str) -> str:
    """``label`` when it can be a LaTeX ``\\label`` key (letters, digits and ``:._-/+``); else ValueError: ``#``,
    ``%``, braces or a backslash break ``\\label``, and a key rewritten here would not match the paper's ``\\ref``."""
    bad = sorted(set(re.sub(r"[A-Za-z0-9:._/+-]", "", label)))
    if bad or not label:
        raise ValueError(f"--label {label!r}: a LaTeX label holds letters, digits and : . _ - / + only"
                         + (f" (not {' '.join(repr(c) for c in bad)})" if bad else ""))
    return label


def markdown_escape(text: str) -> str:
    """``text`` as literal Markdown on one line (:func:`one_line`): backslash, ``|``, ``*``, ``_``, backtick, ``<``
    and ``$`` are escaped with a backslash, so that a label is neither a table cell break, emphasis, code, inline
    HTML nor GitHub math."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))


def template_environment(kind: Literal["latex", "html", "markdown"]) -> jinja2.Environment:
    """Jinja2 environment over ``reports/``: LaTeX templates use ``<< >>`` / ``<% %>`` delimiters so
    braces and ``%`` stay plain LaTeX; HTML is autoescaped, and a text value is shown on one line (:func:`one_line`;
    markup, such as a table already rendered, is kept as it is)."""
    loader = jinja2.FileSystemLoader(str(reports_dir()))
    if kind == "latex":
        return jinja2.Environment(loader=loader, block_start_string="<%", block_end_string="%>",
                                  variable_start_string="<<", variable_end_string=">>",
                                  comment_start_string="<#", comment_end_string="#>", trim_blocks=True,
                                  lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                                  undefined=jinja2.StrictUndefined)
    return jinja2.Environment(loader=loader, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=kind == "html", undefined=jinja2.StrictUndefined,
                              finalize=_html_one_line if kind == "html" else None)


def _html_one_line(value: Any) -> Any:
    return one_line(value) if isinstance(value, str) and not isinstance(value, Markup) else value


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


def _latex_texts(table: TableModel) -> list[tuple[str, list[str]]]:
    """Every text a LaTeX table shows, as (where it is, texts): each row by its name, then the headers, caption
    and notes."""
    places = [(f"row {row.name!r}", [row.name, row.source, row.params]) for row in table.rows]
    headers = [*_header_cells(table), *(label for label, _ in table.groups()),
               *(f"{c.metric}{c.arrow}" for c in table.columns), *(block.title for block in table.blocks)]
    return places + [("the headers", headers), ("the caption", [table.caption]),
                     ("the notes", [*(note.text for note in table.footnotes), *table.notes,
                                    *(provenance_line(name, info) for name, info in table.provenance)])]


def _warn_untypeset(table: TableModel) -> None:
    """One :class:`ReportWarning` naming the characters of ``table`` pdflatex cannot typeset, and where they are."""
    found = [f"{' '.join(chars)} in {place}" for place, texts in _latex_texts(table)
             if (chars := latex_untypeset(" ".join(texts)))]
    if found:
        warnings.warn(f"the LaTeX table of {table.protocol} holds characters pdflatex cannot typeset with the "
                      f"document's packages ({shortlist(found, 5, '; ')}); they are left as they are, and pdflatex "
                      "fails on them. Label the run in Latin letters (`bench-ir run ... --label NAME`), or compile "
                      "with XeLaTeX or LuaLaTeX and a font that has them (fontspec).", ReportWarning, stacklevel=3)


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
            name = markdown_escape(row.name) + marks
            fixed = [f"*{name}*" if row.kind == "delta" else name, markdown_escape(row.source)]
            fixed += [markdown_escape(row.params)] if table.show_params else []
            rows.append(fixed + [_markdown_cell(table, cell) for cell in row.cells])
        title = [f"*{markdown_escape(block.title)}*"] + [""] * (len(headers) - 1) if block.title else None
        blocks.append({"title": title, "rows": rows})
    return {"caption": markdown_escape(table.caption), "headers": [markdown_escape(h) for h in headers],
            "aligns": aligns, "blocks": blocks,
            "footnotes": [{"symbol": n.symbol, "text": markdown_escape(n.text)} for n in table.footnotes],
            "notes": [markdown_escape(note) for note in table.notes],
            "provenance": [markdown_escape(provenance_line(name, info)) for name, info in table.provenance]}


def _html_context(table: TableModel) -> dict[str, Any]:
    return {"table": table, "fixed_headers": _header_cells(table), "groups": table.groups(), "anchor": run_anchor,
            "provenance": [provenance_line(name, info) for name, info in table.provenance],
            "has_groups": any(label for label, _ in table.groups()),
            "ncols": len(_header_cells(table)) + len(table.columns),
            "table_id": f"table-{_slug(table.protocol)}"}


def _csv_value(value: float | None, column: NumericColumn, raw: bool) -> str:
    if value is None:
        return ""
    return repr(float(value)) if raw else f"{value:.{column.printed_decimals(value)}f}"


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
        writer.writerow([one_line(value) if isinstance(value, str) else value for value in (
            row.name, row.kind, row.source, row.citation, "" if row.params == "–" else row.params,
            str(row.ranked).lower(), notes, row.run_id, *(info.get(column, "") for column in PROVENANCE_COLUMNS),
            *values)])
    return buffer.getvalue()


def render(table: TableModel, fmt: Format, standalone: bool = False, raw: bool = False) -> str:
    """Render ``table`` as ``latex`` | ``html`` | ``markdown`` | ``csv``.

    ``standalone=True`` wraps LaTeX in a document that compiles as it is (article, booktabs, graphicx); LaTeX
    text pdflatex cannot typeset gets a :class:`ReportWarning`. CSV: ``raw=True`` writes unrounded values (``repr``
    of the stored float).
    """
    if fmt == "csv":
        return _render_csv(table, raw=raw)
    if fmt == "latex":
        _warn_untypeset(table)
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
