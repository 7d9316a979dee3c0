"""The self-contained HTML report: protocol table, efficiency table and chart, visual comparison strips
and the runs with their provenance and per-image records, in one file (inline CSS, inline SVG, base64 PNGs,
one small inline script that sorts table columns; no link to anything outside the file). Rendered through
``reports/report.html.j2``. Footnote symbols are unique on the page: the efficiency table's continue after
the protocol table's. Each measured row links to its run (provenance and per-image records) and to the
comparison strips it appears in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from bench_ir.report.chart import efficiency_chart_svg, efficiency_points
from bench_ir.report.delta import Tolerance
from bench_ir.report.efficiency import build_efficiency_table
from bench_ir.report.measured import MeasuredRun, distinct_run_ids, is_profile_run, measure, provenance
from bench_ir.report.model import TableModel, shift_footnotes
from bench_ir.report.render import render, run_anchor, template_environment
from bench_ir.report.strips import build_strips
from bench_ir.report.tables import build_protocol_table
from bench_ir.results import Run

__all__ = ["html_report", "run_anchor"]


def _number(value: Any, decimals: int) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(number) else f"{number:.{decimals}f}"


def _run_summary(run: MeasuredRun, strip_tasks: list[str]) -> dict[str, Any]:
    manifest = run.manifest
    info = provenance(run.run, run.images if not is_profile_run(run.run) else {})
    records = run.run.records
    rows = [{"task": str(r.task), "image": str(r.image), "psnr": _number(r.psnr, 2), "ssim": _number(r.ssim, 4),
             "lpips": _number(r.lpips, 4)} for r in records.itertuples(index=False)]
    return {
        **info, "run_id": run.run_id, "anchor": run_anchor(run.run_id), "label": run.label, "protocol": run.protocol,
        "model": str((manifest.get("model") or {}).get("name", "")),
        "convention": str(run.convention.get("name", "")), "created": str(manifest.get("created", "")),
        "flags": "; ".join(run.reasons) or "comparable", "records": rows,
        "strips": [task for task in strip_tasks if (run.run.run_dir / "images" / task).is_dir()],
        "profile_run": run.profile_run.run_dir.name if run.profile_run is not None else "",
    }


def _html_table(table: TableModel) -> Markup:
    return Markup(render(table, "html"))


def html_report(protocol: str, measured: Sequence[MeasuredRun | Run], leaderboard: bool | None = None,
                crop: int = 128, delta: Tolerance | None = None, caption: str | None = None) -> str:
    """One HTML page for ``protocol`` and ``measured`` runs: measured runs joined with their profiles (see
    :func:`bench_ir.report.measure_runs`), or loaded runs, which are measured and joined among themselves."""
    if any(isinstance(run, Run) for run in measured):
        from bench_ir.report.profiles import attach_profiles, find_profile_runs

        loaded = [run for run in measured if isinstance(run, Run)]
        measured = distinct_run_ids([run if isinstance(run, MeasuredRun) else measure(run) for run in measured])
        attach_profiles(measured, find_profile_runs(loaded))
    measured = list(measured)  # type: ignore[assignment]
    if protocol == "efficiency":
        main = build_efficiency_table(measured, leaderboard=leaderboard)
    else:
        main = build_protocol_table(protocol, measured, leaderboard=leaderboard, delta=delta)
    main.caption = caption if caption is not None else main.caption
    efficiency = build_efficiency_table(measured, leaderboard=leaderboard)
    shift_footnotes(efficiency, shift_footnotes(main, 0))
    points = efficiency_points(efficiency)
    strips = build_strips([run for run in measured if not is_profile_run(run.run)], crop=crop)
    context = {
        "protocol": protocol,
        "main_table": _html_table(main),
        "efficiency_table": _html_table(efficiency) if protocol != "efficiency" else None,
        "chart": Markup(efficiency_chart_svg(points)) if points else None,
        "strips": strips,
        "runs": [_run_summary(run, [strip.task for strip in strips]) for run in measured],
    }
    return template_environment("html").get_template("report.html.j2").render(**context)
