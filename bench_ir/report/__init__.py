"""Paper-style reports: the published leaderboard beside the user's stored runs.

Public API::

    table = build_table("5deg", runs=["runs/a", "runs/b"], delta=Tolerance())     # TableModel
    text = render(table, "latex", standalone=True)                               # latex | html | markdown | csv
    page = build_report("3deg", ["runs/a"], "html", out="report.html", runs_root="runs", profile=True,
                        chart_out="fig/efficiency")                              # also fig/efficiency.{pdf,svg}

Everything shown comes from the result store (per-image records, manifests, profile.json) and the
leaderboard CSVs; no metric is recomputed. Runs on sample data, with ``--limit`` or with random
weights are tagged in their row name and the caption, marked with a footnote and never ranked.
Protocol runs are joined with the profile run of the same model card, card arguments and checkpoint
(given among the runs or found under ``runs_root``; ``profile=True`` computes params and FLOPs on the CPU).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from bench_ir.atomic import write_bytes_atomic, write_text_atomic
from bench_ir.protocol import resolve_protocol_name
from bench_ir.report.delta import Tolerance
from bench_ir.report.efficiency import build_efficiency_table, unprofiled_note
from bench_ir.report.measured import MeasuredRun, as_runs, distinct_run_ids, measure, run_list
from bench_ir.report.model import TableModel
from bench_ir.report.profiles import attach_profiles, ensure_profiles, find_profile_runs
from bench_ir.report.render import FORMATS, ReportWarning, render
from bench_ir.report.tables import build_protocol_table
from bench_ir.results import Run

__all__ = ["TableModel", "Tolerance", "FORMATS", "ReportWarning", "build_table", "render", "build_report",
           "measure_runs", "write_chart"]

RunLike = Run | str | Path


def measure_runs(runs: Sequence[RunLike] | RunLike, runs_root: str | Path | None = None, profile: bool = False,
                 profile_size: int = 224) -> list[MeasuredRun]:
    """Load and measure ``runs`` and join each protocol run with its profile (among ``runs`` and under
    ``runs_root``); ``profile=True`` computes and stores (under ``runs_root``, default ``runs``) the missing
    ones: params and FLOPs at 1x3x``profile_size``² on the CPU."""
    loaded = as_runs(runs)
    measured = distinct_run_ids([measure(run) for run in loaded])
    attach_profiles(measured, find_profile_runs(loaded, runs_root))
    if profile:
        ensure_profiles(measured, runs_root if runs_root is not None else "runs", size=profile_size)
    return measured


def _table(protocol_name: str, measured: list[MeasuredRun], leaderboard: bool | None, delta: Tolerance | None,
           caption: str | None, label: str | None) -> TableModel:
    if protocol_name == "efficiency":
        table = build_efficiency_table(measured, leaderboard=leaderboard)
    else:
        table = build_protocol_table(protocol_name, measured, leaderboard=leaderboard, delta=delta)
    table.caption = caption if caption is not None else table.caption
    table.label = label or table.label
    return table


def build_table(protocol_name: str, runs: Sequence[RunLike] | RunLike = (), leaderboard: bool | None = None,
                delta: Tolerance | None = None, runs_root: str | Path | None = None,
                caption: str | None = None, label: str | None = None) -> TableModel:
    """The paper table of ``protocol_name`` (``3deg``, ``5deg``, ``cdd11``, ``allweather``, ``uieb``, ``udc``,
    ``dehaze``/``derain``/``denoise``, ``efficiency`` or a user's own protocol) with the published rows (see
    :func:`~bench_ir.report.tables.build_protocol_table` for ``leaderboard``) and one row per run (run directories
    or loaded runs). Every run must have been made with that protocol,
    except profile runs (they feed the efficiency table). ``delta`` adds reproduction blocks (published,
    measured, Δ) with that tolerance; ``caption``/``label`` replace the defaults."""
    return _table(resolve_protocol_name(protocol_name), measure_runs(runs, runs_root), leaderboard, delta, caption,
                  label)


def write_chart(protocol: str, runs: Sequence[RunLike] | list[MeasuredRun], out: str | Path,
                leaderboard: bool | None = None, runs_root: str | Path | None = None) -> list[Path]:
    """Write the efficiency chart (PSNR vs params and FLOPs) as ``out`` with suffix .pdf and .svg; returns
    the two paths. ``runs`` may be measured runs already joined with their profiles."""
    from bench_ir.report.chart import efficiency_charts, efficiency_points

    runs = run_list(runs)
    measured = (list(runs) if runs and all(isinstance(r, MeasuredRun) for r in runs)
                else measure_runs(runs, runs_root))  # type: ignore[arg-type]
    points = efficiency_points(build_efficiency_table(measured, leaderboard=leaderboard))
    if not points:
        raise ValueError("no efficiency figures with a 3deg PSNR to plot: give 3deg runs joined with a profile "
                         "(or --profile), or keep the leaderboard")
    paths = []
    for fmt, data in efficiency_charts(points, ("pdf", "svg")).items():
        path = Path(out).with_suffix(f".{fmt}")
        write_bytes_atomic(path, data)
        paths.append(path)
    return paths


def build_report(protocol: str, run_dirs: Sequence[RunLike] | Sequence[MeasuredRun] | RunLike = (),
                 fmt: str = "markdown", out: str | Path | None = None, leaderboard: bool | None = None,
                 standalone: bool = False, delta: Tolerance | None = None, profile: bool = False,
                 runs_root: str | Path | None = None, caption: str | None = None, label: str | None = None,
                 raw: bool = False, chart_out: str | Path | None = None, profile_size: int = 224) -> str:
    """Render the report of ``protocol`` for ``run_dirs`` (run directories, loaded runs, or measured runs already
    joined with their profiles; a single run directory is a list of one) in ``fmt`` and write it to ``out`` when
    given.

    ``latex`` / ``markdown`` / ``csv`` give the protocol's table (``standalone`` LaTeX compiles as it is;
    ``raw`` CSV keeps unrounded values); ``html`` gives one self-contained page with the table, the
    efficiency table and chart, the visual comparison strips and the runs with their per-image records.
    ``leaderboard``: True, the published rows (an error where the protocol has none); False, none; None, the
    published rows where a leaderboard table holds the protocol.
    ``delta``: reproduction blocks with that tolerance. ``profile``/``runs_root``/``profile_size``: see
    :func:`measure_runs`. ``chart_out``: also write the efficiency chart as .pdf and .svg. Runs that the efficiency
    table or chart leaves out for want of a profile are named in a :class:`ReportWarning` (the HTML page names them
    under its table).
    """
    protocol = resolve_protocol_name(protocol)  # a protocol file, as `run --protocol` took it, goes by its name
    run_dirs = run_list(run_dirs)
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format '{fmt}'; expected one of {', '.join(FORMATS)}")
    for option, given, formats in (("--raw", raw, ("csv",)), ("--standalone", standalone, ("latex", "html")),
                                   ("--label", label is not None, ("latex",))):
        if given and fmt not in formats:  # never ignored without a word
            raise ValueError(f"{option} applies to --format {' or '.join(formats)}, not {fmt}")
    if run_dirs and all(isinstance(r, MeasuredRun) for r in run_dirs):  # already measured and joined
        measured = list(run_dirs)  # type: ignore[arg-type]
    else:
        measured = measure_runs(run_dirs, runs_root, profile=profile, profile_size=profile_size)
    if fmt == "html":
        from bench_ir.report.document import html_report

        text = html_report(protocol, measured, leaderboard=leaderboard, delta=delta, caption=caption)
    else:
        text = render(_table(protocol, measured, leaderboard, delta, caption, label), fmt,  # type: ignore[arg-type]
                      standalone=standalone, raw=raw)
    if out is not None:
        write_text_atomic(out, text)
    if chart_out is not None:
        write_chart(protocol, measured, chart_out, leaderboard=leaderboard)
    if fmt != "html" and (chart_out is not None or protocol == "efficiency") and (note := unprofiled_note(measured)):
        warnings.warn(note, ReportWarning, stacklevel=2)  # the HTML page says it under its efficiency table
    return text
