"""The self-contained HTML report: protocol table, efficiency table and chart, visual comparison strips
and the list of runs with their provenance, in one file (inline CSS, inline SVG, base64 PNGs; no link
to anything outside the file). Rendered through ``reports/report.html.j2``.
"""

from __future__ import annotations

from markupsafe import Markup

from bench_ir.report.chart import efficiency_chart_svg, efficiency_points
from bench_ir.report.efficiency import build_efficiency_table
from bench_ir.report.measured import measure
from bench_ir.report.render import render, template_environment
from bench_ir.report.strips import build_strips
from bench_ir.report.tables import build_protocol_table
from bench_ir.results import Run

__all__ = ["html_report"]


def _run_summary(run) -> dict[str, str]:
    manifest = run.manifest
    checkpoint = manifest.get("checkpoint") or {}
    return {
        "run_id": run.run_id, "label": run.label, "protocol": run.protocol,
        "model": str((manifest.get("model") or {}).get("name", "")),
        "checkpoint": str(checkpoint.get("sha256", ""))[:12] or "none",
        "convention": str(run.convention.get("name", "")), "created": str(manifest.get("created", "")),
        "flags": "; ".join(run.reasons) or "comparable",
    }


def html_report(protocol: str, runs: list[Run], leaderboard: bool = True, crop: int = 128) -> str:
    """One HTML page for ``protocol`` and ``runs`` (the efficiency section uses the runs' profiles)."""
    measured = [measure(run) for run in runs]
    if protocol == "efficiency":
        main = build_efficiency_table(measured, leaderboard=leaderboard)
    else:
        main = build_protocol_table(protocol, measured, leaderboard=leaderboard)
    efficiency = build_efficiency_table(measured, leaderboard=leaderboard)
    points = efficiency_points(efficiency)
    context = {
        "protocol": protocol,
        "main_table": Markup(render(main, "html")),
        "efficiency_table": Markup(render(efficiency, "html")) if protocol != "efficiency" else None,
        "chart": Markup(efficiency_chart_svg(points)) if points else None,
        "strips": build_strips(measured, crop=crop),
        "runs": [_run_summary(run) for run in measured],
    }
    return template_environment("html").get_template("report.html.j2").render(**context)
