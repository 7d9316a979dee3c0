"""Paper-style reports: the published leaderboard beside the user's stored runs.

Public API::

    table = build_table("5deg", runs=["runs/a", "runs/b"])      # TableModel
    text = render(table, "latex")                               # latex | html | markdown | csv
    page = build_report("5deg", ["runs/a"], "html", out="report.html")

Everything shown comes from the result store (per-image records, manifests, profile.json) and the
leaderboard CSVs; no metric is recomputed. Runs on sample data, with ``--limit`` or with random
weights are marked with a footnote and never ranked against real results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench_ir.report.efficiency import build_efficiency_table
from bench_ir.report.measured import as_runs, measure
from bench_ir.report.model import TableModel
from bench_ir.report.render import FORMATS, render
from bench_ir.report.tables import build_protocol_table
from bench_ir.results import Run

__all__ = ["TableModel", "FORMATS", "build_table", "render", "build_report"]


def build_table(protocol_name: str, runs: Sequence[Run | str | Path] = (), leaderboard: bool = True) -> TableModel:
    """The paper table of ``protocol_name`` (``3deg``, ``5deg``, ``cdd11``, ``allweather``, ``uieb``, ``udc``,
    ``dehaze``/``derain``/``denoise`` or ``efficiency``) with the published rows when ``leaderboard`` and
    one row per run (run directories or loaded runs). Every run must have been made with that protocol,
    except for ``efficiency``, which takes any run with a ``profile.json``."""
    measured = [measure(run) for run in as_runs(runs)]
    if protocol_name == "efficiency":
        return build_efficiency_table(measured, leaderboard=leaderboard)
    return build_protocol_table(protocol_name, measured, leaderboard=leaderboard)


def build_report(protocol: str, run_dirs: Sequence[str | Path | Run] = (), fmt: str = "markdown",
                 out: str | Path | None = None, leaderboard: bool = True) -> str:
    """Render the report of ``protocol`` for ``run_dirs`` in ``fmt`` and write it to ``out`` when given.

    ``latex`` / ``markdown`` / ``csv`` give the protocol's table; ``html`` gives one self-contained page
    with the table, the efficiency table and chart, and the visual comparison strips of saved images.
    """
    runs = as_runs(run_dirs)
    if fmt == "html":
        from bench_ir.report.document import html_report

        text = html_report(protocol, runs, leaderboard=leaderboard)
    elif fmt in FORMATS:
        text = render(build_table(protocol, runs, leaderboard=leaderboard), fmt)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown report format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return text
