"""Efficiency chart in the style of the paper's Fig. 1e: PSNR (3deg Average) against params and against
FLOPs, bubble area proportional to memory. Drawn with matplotlib (an Agg canvas, no pyplot state) from the
efficiency :class:`TableModel`, so the chart shows exactly the table's numbers; returned as inline SVG
with text kept as text and no timestamp, so the same data gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench_ir.report.model import TableModel

__all__ = ["EfficiencyPoint", "efficiency_points", "efficiency_chart", "efficiency_chart_svg"]

_PUBLISHED_COLOUR = "#4c72b0"
_MIRAGE_COLOUR = "#c44e52"
_MEASURED_COLOUR = "#2ca02c"
_DEFAULT_MEMORY = 2000.0  # bubble size for a point without a memory figure
_LOG_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass(frozen=True)
class EfficiencyPoint:
    name: str
    kind: str
    comparable: bool
    psnr: float
    params_m: float | None
    flops_g: float | None
    memory_m: float | None
    marker: str = ""


def efficiency_points(table: TableModel) -> list[EfficiencyPoint]:
    """Rows of the efficiency table that have a PSNR (points without one cannot be placed)."""
    index = {column.metric: i for i, column in enumerate(table.columns)}
    points = []
    for row in table.rows:
        psnr = row.cells[index["PSNR"]].value
        if psnr is None:
            continue
        points.append(EfficiencyPoint(
            name=row.name, kind=row.kind, comparable=row.ranked, psnr=psnr,
            params_m=row.cells[index["Params"]].value, flops_g=row.cells[index["FLOPs"]].value,
            memory_m=row.cells[index["Memory"]].value,
            marker="".join(table.footnotes[m].symbol for m in row.markers if row.kind == "measured")))
    return points


def _log_ticks(low: float, high: float, most: int = 8) -> list[float]:
    """1-2-5 ticks covering [low/2, high*2]; thinned to 1-5, then to powers of ten, when there are too many."""
    ticks = [t for t in _LOG_TICKS if low / 2 <= t <= high * 2]
    for keep in ("125", "15", "1"):
        thinned = [t for t in ticks if f"{t:g}".lstrip("0.")[0] in keep]
        if len(thinned) <= most:
            return thinned
    return thinned


def _style(point: EfficiencyPoint) -> dict:
    colour = _MEASURED_COLOUR if point.kind == "measured" else (
        _MIRAGE_COLOUR if point.name.startswith("MIRAGE") else _PUBLISHED_COLOUR)
    face = colour if point.comparable else "none"
    return {"facecolors": face, "edgecolors": colour, "alpha": 0.6 if point.comparable else 1.0,
            "linewidths": 1.5, "marker": "D" if point.kind == "measured" else "o"}


def _figure(points: list[EfficiencyPoint], width_in: float) -> Figure:
    figure = Figure(figsize=(width_in, width_in * 0.42), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas; no pyplot, no global backend switch
    axes = figure.subplots(1, 2, sharey=True)
    for ax, attribute, label in ((axes[0], "params_m", "Params (M)"), (axes[1], "flops_g", "FLOPs (G)")):
        for point in points:
            x = getattr(point, attribute)
            if x is None:
                continue
            size = (point.memory_m or _DEFAULT_MEMORY) / 8.0
            ax.scatter([x], [point.psnr], s=size, **_style(point))
            ax.annotate(point.name + point.marker, (x, point.psnr), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=8, parse_math=False)  # a "$" in a run's label is a dollar sign
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.12, y=0.15)
    axes[0].set_ylabel("PSNR (dB), 3deg Average")
    axes[1].set_xscale("log")
    flops = [p.flops_g for p in points if p.flops_g]
    if flops:
        axes[1].set_xticks(_log_ticks(min(flops), max(flops)))
    axes[1].xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    axes[1].xaxis.set_minor_formatter(NullFormatter())
    figure.suptitle("PSNR vs. params and FLOPs (bubble area ∝ memory)", fontsize=10)
    return figure


def efficiency_chart(points: list[EfficiencyPoint], fmt: str = "svg", width_in: float = 10.0) -> bytes:
    """The chart as a whole ``svg`` or ``pdf`` file (for a paper), without timestamps: same data, same bytes."""
    figure = _figure(points, width_in)
    buffer = io.BytesIO()
    metadata = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None,
                                                                "Producer": None}}.get(fmt)
    if metadata is None:
        raise ValueError(f"unknown chart format '{fmt}'; expected svg or pdf")
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "bench-ir", "pdf.fonttype": 42}):
        figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def efficiency_chart_svg(points: list[EfficiencyPoint], width_in: float = 10.0) -> str:
    """Two panels (params, FLOPs) as an ``<svg>`` element; measured runs are green diamonds, hollow when
    not comparable (sample data, --limit, random weights)."""
    text = efficiency_chart(points, "svg", width_in).decode("utf-8")
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", '<svg id="efficiency-chart" role="img" aria-label="efficiency chart" ', 1)
