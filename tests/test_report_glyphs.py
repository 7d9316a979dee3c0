"""A run label with characters the chart's fonts lack (CJK with matplotlib's DejaVu Sans) gets one ReportWarning that
names the label and how to give matplotlib a font that has them, in place of matplotlib's warning per glyph."""

from __future__ import annotations

import warnings

import matplotlib
import pytest

from bench_ir.report import ReportWarning
from bench_ir.report.chart import EfficiencyPoint, efficiency_chart

DEJAVU = {"font.family": ["DejaVu Sans"]}  # the default font, whatever a matplotlibrc here says


def _point(name: str) -> EfficiencyPoint:
    return EfficiencyPoint(name=name, kind="measured", comparable=True, psnr=30.0, params_m=1.0, flops_g=2.0,
                           memory_m=100.0)


def _chart_warnings(names: list[str]) -> list[warnings.WarningMessage]:
    with matplotlib.rc_context(DEJAVU), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        efficiency_chart([_point(name) for name in names], "svg")
    return caught


@pytest.mark.parametrize(("families", "text", "missing"), [
    (["DejaVu Sans"], "我的 Net é Ж α †", ["我", "的"]),
    (["cmr10"], "Жук", ["Ж", "у", "к"]),
    (["cmr10", "DejaVu Sans"], "Жук", []),  # matplotlib takes each glyph from the first font of font.family with it
])
def test_missing_glyphs_are_the_characters_no_font_of_matplotlibs_font_family_has(families, text, missing):
    from bench_ir.report.chart import missing_glyphs

    with matplotlib.rc_context({"font.family": families}):
        assert missing_glyphs(text) == missing


def test_a_label_the_font_lacks_gets_one_report_warning_naming_it_and_the_fix_and_no_warning_per_glyph():
    caught = _chart_warnings(["我的网络", "Net", "模型"])
    assert [warning.category for warning in caught] == [ReportWarning]  # not matplotlib's "Glyph N missing" each
    message = str(caught[0].message)
    assert "fonts (DejaVu Sans) have no glyph for 我 的 网 络 in '我的网络'; 模 型 in '模型'" in message
    assert "matplotlib draws them as boxes" in message
    assert "`font.family: DejaVu Sans, Noto Sans CJK JP` (for CJK) in a matplotlibrc file" in message
    assert "--label NAME" in message
