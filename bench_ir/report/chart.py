"""Efficiency chart in the style of the paper's Fig. 1e: PSNR (3deg Average) against params and against
FLOPs, bubble area proportional to memory. Drawn with matplotlib (an Agg canvas, no pyplot state) from the
efficiency :class:`TableModel`, so the chart shows exactly the table's numbers; returned as inline SVG
with text kept as text and no timestamp, so the same data gives the same bytes.

A point's label with characters that none of matplotlib's fonts (``font.family``) has (CJK with the default DejaVu
Sans) is drawn with boxes: one :class:`~bench_ir.report.render.ReportWarning` per chart names the labels and
characters and how to give matplotlib a font that has them, in place of matplotlib's warning per glyph and draw.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench_ir.report.model import TableModel
from bench_ir.report.render import ReportWarning
from bench_ir.shortlist import shortlist

__all__ = ["EfficiencyPoint", "efficiency_points", "efficiency_chart", "efficiency_charts", "efficiency_chart_svg",
           "missing_glyphs"]

_PUBLISHED_COLOUR = "#4c72b0"
_MIRAGE_COLOUR = "#c44e52"
_MEASURED_COLOUR = "#2ca02c"
_DEFAULT_MEMORY = 2000.0  # bubble size for a point without a memory figure
_METADATA = {"svg": {"Date": None, "Creator": None},  # savefig metadata: no timestamp, no version
             "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}
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


def _chart_fonts() -> list:
    """The fonts matplotlib draws the chart's text with, in its order: one per entry of ``font.family`` (a generic
    family such as sans-serif through its rcParams list), each glyph taken from the first that has it."""
    fonts = []
    for family in FontProperties().get_family():
        prop = FontProperties()
        prop.set_family(family)  # not FontProperties(family=...): a lone string is read as a fontconfig pattern
        try:
            fonts.append(get_font(findfont(prop, fallback_to_default=False)))
        except ValueError:  # not installed: matplotlib skips it too
            continue
    return fonts or [get_font(findfont(FontProperties()))]


def missing_glyphs(text: str) -> list[str]:
    """The characters of ``text`` (once each, in order; spaces aside) that none of matplotlib's fonts has
    (``get_char_index`` 0 in each of :func:`_chart_fonts`): matplotlib draws them as boxes."""
    fonts = _chart_fonts()
    return list(dict.fromkeys(char for char in text if not char.isspace()
                              and all(font.get_char_index(ord(char)) == 0 for font in fonts)))


def _warn_missing_glyphs(points: list[EfficiencyPoint]) -> list[str]:
    """One :class:`ReportWarning` naming the labels with characters matplotlib's fonts lack, and how to give it a
    font that has them; returns those characters (none: no warning)."""
    found = {point.name: chars for point in points if (chars := missing_glyphs(point.name + point.marker))}
    if not found:
        return []
    families = ", ".join(FontProperties().get_family())
    fonts = ", ".join(dict.fromkeys(font.family_name for font in _chart_fonts()))
    places = [f"{' '.join(chars)} in {name!r}" for name, chars in found.items()]
    warnings.warn(f"the efficiency chart's fonts ({fonts}) have no glyph for {shortlist(places, 5, '; ')}: "
                  "matplotlib draws them as boxes. Name a font installed here that has them after matplotlib's "
                  f"font.family ({families}), which takes each glyph from the first font that has it: the line "
                  f"`font.family: {families}, Noto Sans CJK JP` (for CJK) in a matplotlibrc file, or that list in "
                  "matplotlib.rcParams['font.family'] from Python (`fc-list : family` lists the installed fonts); or "
                  "label the run in Latin letters (`bench-ir run ... --label NAME`).", ReportWarning, stacklevel=3)
    return list(dict.fromkeys(char for chars in found.values() for char in chars))


@contextmanager
def _without_glyph_warnings(chars: list[str]) -> Iterator[None]:
    """matplotlib's own "Glyph N missing from font(s)" warnings for ``chars`` (one per glyph and draw) left out:
    :func:`_warn_missing_glyphs` said it once. Other characters' warnings are kept."""
    with warnings.catch_warnings():
        if chars:
            codes = "|".join(str(ord(char)) for char in chars)
            warnings.filterwarnings("ignore", message=rf"Glyph ({codes}) \(.*\) missing from font",
                                    category=UserWarning)
        yield


def efficiency_charts(points: list[EfficiencyPoint], formats: tuple[str, ...] = ("pdf", "svg"),
                      width_in: float = 10.0) -> dict[str, bytes]:
    """The chart drawn once and saved as a whole file per format (``svg``, ``pdf``; for a paper), without
    timestamps: same data, same bytes. Labels with characters matplotlib's fonts lack get one
    :class:`ReportWarning` (see the module docstring)."""
    unknown = [fmt for fmt in formats if fmt not in _METADATA]
    if unknown:
        raise ValueError(f"unknown chart format '{unknown[0]}'; expected svg or pdf")
    missing = _warn_missing_glyphs(points)
    figure = _figure(points, width_in)
    files = {}
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "bench-ir", "pdf.fonttype": 42}), \
            _without_glyph_warnings(missing):
        for fmt in formats:
            buffer = io.BytesIO()
            figure.savefig(buffer, format=fmt, metadata=_METADATA[fmt])
            files[fmt] = buffer.getvalue()
    return files


def efficiency_chart(points: list[EfficiencyPoint], fmt: str = "svg", width_in: float = 10.0) -> bytes:
    """The chart as a whole ``svg`` or ``pdf`` file (see :func:`efficiency_charts`)."""
    return efficiency_charts(points, (fmt,), width_in)[fmt]


def efficiency_chart_svg(points: list[EfficiencyPoint], width_in: float = 10.0) -> str:
    """Two panels (params, FLOPs) as an ``<svg>`` element; measured runs are green diamonds, hollow when
    not comparable (sample data, --limit, random weights)."""
    text = efficiency_chart(points, "svg", width_in).decode("utf-8")
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", '<svg id="efficiency-chart" role="img" aria-label="efficiency chart" ', 1)
