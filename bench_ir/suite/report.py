"""`bench-ir suite report`: every paper table a suite touches, from its run directories, plus one HTML index.

For each protocol with complete cells: ``<protocol>.tex`` (a table to ``\\input``; ``<protocol>.pdf`` from its
standalone version where pdflatex exists), ``<protocol>.csv``, ``<protocol>.md`` and ``<protocol>.html`` (the full
page with charts and strips); with profiles, the efficiency table likewise. ``index.html`` links them and lists
every cell with its state and, where there is one, its reason as `suite status` gives it (the error of a failed
cell, what a missing or outdated one lacks, the NaN/Inf images of a complete one). Each row is labelled as the plan
says (the entry's ``label`` in the suite file at the last ``suite run``, else the card's display name), not as its
run recorded it.

``report.json`` lists the files the report wrote. A file an earlier report listed there and this one did not write
(the tables of a protocol whose cells are no longer complete, a PDF not compiled this time) is removed, with a note
naming it, so that no ``\\input`` reads old numbers; no other file of the folder is touched.

Registered models get the published-vs-measured (Δ) blocks of the report library. Each protocol run is joined with
the profile of its model (card with its arguments) made by the suite, whatever the checkpoint: weights change
neither parameters, FLOPs, memory nor speed. The efficiency table holds the 3deg runs (they carry the PSNR column)
and a row for each profiled model without a 3deg run. Nothing is recomputed: ``render_table`` is the one call into
the report library.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_ir.atomic import write_text_atomic
from bench_ir.results import Run, load_run, write_json_atomic
from bench_ir.suite.plan import Cell, SuitePlan, cell_status, cell_status_reason

__all__ = ["SuiteReport", "write_suite_report", "report_command", "render_table", "latex_pdf", "join_profiles",
           "TABLE_FORMATS"]

TABLE_FORMATS = {"latex": "tex", "csv": "csv", "markdown": "md", "html": "html"}
EFFICIENCY = "efficiency"
PSNR_PROTOCOL = "3deg"  # the protocol whose Average the efficiency table prints
REPORT_FOLDER = "report"  # the default output folder, inside the suite directory
REPORT_MANIFEST = "report.json"  # the files a report wrote, read by the next report of the same folder
_WRITER = "bench-ir suite report"


@dataclass
class SuiteReport:
    out: Path
    index: Path
    tables: dict[str, dict[str, Path]] = field(default_factory=dict)  # table -> {format: file}
    notes: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)  # an earlier report's files this one did not write again


def render_table(protocol: str, runs: Sequence, fmt: str, out: Path, standalone: bool = False) -> Path:
    """Render one table of ``protocol`` ('efficiency' for the efficiency table) for ``runs`` (run directories,
    loaded or measured runs) into ``out``, with the published rows and the reproduction (Δ) blocks. The single
    place where the suite calls the report library."""
    from bench_ir.report import Tolerance, build_report

    build_report(protocol, list(runs), fmt=fmt, out=out, standalone=standalone, delta=Tolerance())
    return out


def join_profiles(runs: Sequence[Run], profiles: Sequence[Run]) -> list:
    """Measure ``runs`` and ``profiles`` (in that order) and join each protocol run without a profile to the
    profile of the same model card (arguments applied), whatever the checkpoint."""
    from bench_ir.report import measure_runs
    from bench_ir.report.measured import is_profile_run
    from bench_ir.report.profiles import join_key

    measured = measure_runs([*runs, *profiles])
    by_card = {join_key(profile.manifest)[0]: profile for profile in profiles}
    for run in measured:
        if run.profile_run is None and not run.run.profile and not is_profile_run(run.run):
            run.profile_run = by_card.get(join_key(run.manifest)[0])
    return measured


def latex_pdf(tex: Path, pdf: Path, timeout: float = 120.0) -> str | None:
    """Compile the standalone LaTeX file ``tex`` into ``pdf`` with pdflatex (in a temporary folder); returns None
    on success or why no PDF was written."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return "pdflatex not found: no PDFs"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(tex, Path(tmp) / "table.tex")
        try:
            subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "table.tex"], cwd=tmp,
                           capture_output=True, timeout=timeout, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            return f"pdflatex failed on {tex.name}: {type(err).__name__}"
        shutil.copyfile(Path(tmp) / "table.pdf", pdf)
    return None


def _html_index(plan: SuitePlan, report: SuiteReport) -> str:
    from bench_ir.report.render import template_environment

    cells = []
    for cell in plan.cells:
        status, reason = cell_status_reason(plan, cell)  # reason: the error, what makes it outdated, NaN images
        cells.append({"name": cell.name, "kind": cell.kind, "status": status, "error": reason or "",
                      "run_dir": cell.run_dir})
    tables = [{"name": name, "files": {fmt: path.name for fmt, path in files.items()}}
              for name, files in report.tables.items()]
    return template_environment("html").get_template("suite-index.html.j2").render(
        suite=plan.suite, source=plan.source, options=plan.options, tables=tables, cells=cells, notes=report.notes)


def _load_cell_run(plan: SuitePlan, cell: Cell) -> Run:
    """The run of ``cell`` with the label the plan gives it now (a label changes no record, so a cell whose
    ``label`` was changed in the suite file stays complete, and its table row must follow the file)."""
    run = load_run(plan.run_dir(cell))
    if cell.kind == "run":
        run.manifest = {**run.manifest, "label": cell.label}
    return run


def _earlier_files(out: Path) -> tuple[list[str], str | None]:
    """The file names the earlier report in ``out`` wrote (its report.json), and a note when that file exists but
    cannot be trusted (then nothing is removed)."""
    path = out / REPORT_MANIFEST
    if not path.is_file():
        return [], None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"] if isinstance(data, dict) and data.get("written_by") == _WRITER else None
    except (OSError, ValueError, KeyError) as err:
        files, why = None, f"{type(err).__name__}: {err}"
    else:
        why = "not a list of the files of a `suite report`"
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return [], (f"{path}: unreadable ({why}); no file of an earlier report was removed, and the file is written "
                    "again")
    return files, None


def _remove_earlier_files(out: Path, written: set[str], report: SuiteReport) -> None:
    """Remove the files of ``out`` that the earlier report wrote (its report.json) and this one did not
    (``written``: file names), each with a note; names that are not plain file names of ``out`` are left alone."""
    earlier, problem = _earlier_files(out)
    if problem is not None:
        report.notes.append(problem)
    for name in earlier:
        path = out / name
        if name in written or name != path.name or name in ("", ".", "..") or not path.is_file():
            continue
        path.unlink()
        report.removed.append(path)
        report.notes.append(f"removed {path}: an earlier `suite report` wrote it and this one has no such file (its "
                            "table has no complete cell now, or no PDF was compiled)")


def report_command(suite_dir: str | Path) -> str:
    """The command that writes the report of ``suite_dir`` into its default folder (shell-quoted)."""
    return f"bench-ir suite report {shlex.quote(str(suite_dir))}"


def write_suite_report(suite_dir: str | Path, out: str | Path | None = None, pdf: bool = True) -> SuiteReport:
    """Write every table of the suite in ``suite_dir`` into ``out`` (default ``suite_dir/report``; see the module
    docstring)."""
    plan = SuitePlan.load(suite_dir)
    out = Path(out) if out is not None else plan.suite_dir / REPORT_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    report = SuiteReport(out=out, index=out / "index.html")
    runs: list[Run] = []
    profiles: list[Run] = []
    for cell in plan.cells:
        if cell_status(plan, cell) == "complete":
            (profiles if cell.kind == "profile" else runs).append(_load_cell_run(plan, cell))
    measured = join_profiles(runs, profiles)
    by_protocol: dict[str, list] = {}
    for run in measured[:len(runs)]:
        by_protocol.setdefault(str(run.manifest["protocol"]["name"]), []).append(run)
    # the 3deg runs carry the PSNR column; a profile joined to one of them gets no row of its own
    efficiency = [*by_protocol.get(PSNR_PROTOCOL, []), *measured[len(runs):]]
    groups = [*by_protocol.items(), *([(EFFICIENCY, efficiency)] if profiles else [])]
    if not groups:
        report.notes.append("no complete cell yet: no tables")
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, members in groups:
            files = {fmt: render_table(protocol, members, fmt, out / f"{protocol}.{ext}")
                     for fmt, ext in TABLE_FORMATS.items()}
            if pdf:
                standalone = render_table(protocol, members, "latex", Path(tmp) / f"{protocol}.tex", standalone=True)
                why = latex_pdf(standalone, out / f"{protocol}.pdf")
                if why is None:
                    files["pdf"] = out / f"{protocol}.pdf"
                elif why not in report.notes:
                    report.notes.append(why)
            report.tables[protocol] = files
    written = {path.name for files in report.tables.values() for path in files.values()} | {report.index.name}
    _remove_earlier_files(out, written, report)
    write_text_atomic(report.index, _html_index(plan, report))
    write_json_atomic(out / REPORT_MANIFEST, {"written_by": _WRITER, "files": sorted(written)})
    return report
