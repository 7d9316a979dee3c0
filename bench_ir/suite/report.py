"""`bench-ir suite report`: every paper table a suite touches, from its run directories, plus one HTML index.

For each protocol with complete cells: ``<protocol>.tex`` (and ``<protocol>.pdf`` where pdflatex exists),
``<protocol>.csv``, ``<protocol>.md`` and ``<protocol>.html`` (the full page with charts and strips); with
profiles, the efficiency table likewise. ``index.html`` links them and lists every cell with its state
(failed and missing cells with their reason). Nothing is recomputed: the tables come from the report library
over the result store (``render_table`` is the one call into it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_ir.results import Run, load_run
from bench_ir.suite.plan import SuitePlan, cell_status, read_cell_state

__all__ = ["SuiteReport", "write_suite_report", "render_table", "latex_pdf", "TABLE_FORMATS"]

TABLE_FORMATS = {"latex": "tex", "csv": "csv", "markdown": "md", "html": "html"}
EFFICIENCY = "efficiency"


@dataclass
class SuiteReport:
    out: Path
    index: Path
    tables: dict[str, dict[str, Path]] = field(default_factory=dict)  # table -> {format: file}
    notes: list[str] = field(default_factory=list)


def render_table(protocol: str, runs: Sequence[Run], fmt: str, out: Path) -> Path:
    """Render one table of ``protocol`` ('efficiency' for the efficiency table) for ``runs`` into ``out``.
    The single place where the suite calls the report library."""
    from bench_ir.report import build_report

    build_report(protocol, list(runs), fmt=fmt, out=out, leaderboard=True)
    return out


def latex_pdf(tex: Path, pdf: Path, timeout: float = 120.0) -> str | None:
    """Compile the LaTeX table ``tex`` into ``pdf`` with pdflatex (in a temporary folder); returns None on
    success or why no PDF was written."""
    from bench_ir.report.render import latex_document

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return "pdflatex not found: no PDFs"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "table.tex"
        source.write_text(latex_document([tex.read_text(encoding="utf-8")]), encoding="utf-8")
        try:
            subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", source.name], cwd=tmp,
                           capture_output=True, timeout=timeout, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            return f"pdflatex failed on {tex.name}: {type(err).__name__}"
        shutil.copyfile(Path(tmp) / "table.pdf", pdf)
    return None


def _html_index(plan: SuitePlan, report: SuiteReport) -> str:
    from bench_ir.report.render import template_environment

    cells = []
    for cell in plan.cells:
        state = read_cell_state(plan, cell) or {}
        cells.append({"name": cell.name, "kind": cell.kind, "status": cell_status(plan, cell),
                      "error": state.get("error") or "", "run_dir": cell.run_dir})
    tables = [{"name": name, "files": {fmt: path.name for fmt, path in files.items()}}
              for name, files in report.tables.items()]
    return template_environment("html").get_template("suite-index.html.j2").render(
        suite=plan.suite, source=plan.source, options=plan.options, tables=tables, cells=cells, notes=report.notes)


def write_suite_report(suite_dir: str | Path, out: str | Path, pdf: bool = True) -> SuiteReport:
    """Write every table of the suite in ``suite_dir`` into ``out`` (see the module docstring)."""
    plan = SuitePlan.load(suite_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = SuiteReport(out=out, index=out / "index.html")
    by_protocol: dict[str, list[Run]] = {}
    profiles: list[Run] = []
    for cell in plan.cells:
        if cell_status(plan, cell) != "complete":
            continue
        run = load_run(plan.run_dir(cell))
        if cell.kind == "profile":
            profiles.append(run)
        else:
            by_protocol.setdefault(str(run.manifest["protocol"]["name"]), []).append(run)
    groups = [*by_protocol.items(), *([(EFFICIENCY, profiles)] if profiles else [])]
    if not groups:
        report.notes.append("no complete cell yet: no tables")
    for protocol, runs in groups:
        files = {}
        for fmt, ext in TABLE_FORMATS.items():
            files[fmt] = render_table(protocol, runs, fmt, out / f"{protocol}.{ext}")
        if pdf:
            why = latex_pdf(files["latex"], out / f"{protocol}.pdf")
            if why is None:
                files["pdf"] = out / f"{protocol}.pdf"
            elif why not in report.notes:
                report.notes.append(why)
        report.tables[protocol] = files
    report.index.write_text(_html_index(plan, report), encoding="utf-8")
    return report
