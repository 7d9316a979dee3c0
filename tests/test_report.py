"""Paper tables and the HTML report, built from the fixture result store (tests/fixtures/store) and the
leaderboard CSVs. Golden files in tests/fixtures/golden/; regenerate with BENCH_IR_UPDATE_GOLDEN=1."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_one_pair_protocol, write_scored_run
from PIL import Image

from bench_ir.report import build_report, build_table, render
from bench_ir.report.model import Cell, NumericColumn, Row, RowBlock, TableModel, mark_best
from bench_ir.report.render import latex_document
from bench_ir.runner import RunConfig, run_protocol

FIXTURES = Path(__file__).parent / "fixtures"
STORE = FIXTURES / "store"
GOLDEN = FIXTURES / "golden"
RUNS_5DEG = [STORE / "5deg-mirage-t", STORE / "5deg-mynet", STORE / "5deg-sample"]
RUNS_PROFILED = [STORE / "3deg-mynet", STORE / "3deg-mirage-t-limit"]
GOLDEN_SUFFIX = {"markdown": "md", "latex": "tex", "html": "html", "csv": "csv"}


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("BENCH_IR_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with BENCH_IR_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.fixture(scope="module")
def table_5deg():
    return build_table("5deg", RUNS_5DEG)


@pytest.fixture(scope="module")
def efficiency_table():
    return build_table("efficiency", RUNS_PROFILED)


@pytest.mark.parametrize("fmt", ["markdown", "latex", "html", "csv"])
def test_5deg_table_matches_its_golden_file(table_5deg, fmt):
    _check_golden(f"5deg.{GOLDEN_SUFFIX[fmt]}", render(table_5deg, fmt))


def test_efficiency_table_matches_its_golden_file(efficiency_table):
    _check_golden("efficiency.md", render(efficiency_table, "markdown"))


def test_published_and_measured_rows_are_told_apart(table_5deg):
    published = table_5deg.row("AdaIR")
    measured = table_5deg.row("MyNet (ours)")
    assert (published.kind, published.source, published.citation) == ("published", "ICLR’25", "Cui et al., 2025")
    assert (measured.kind, measured.source, measured.run_id) == ("measured", "measured", "5deg-mynet")
    assert measured.params == "4.18M"
    # A run labelled like a published row keeps its own, distinct name.
    assert table_5deg.row("MIRAGE-T (5deg-mirage-t)").kind == "measured"


def test_measured_cells_are_the_stored_per_image_means(table_5deg):
    row = table_5deg.row("MyNet (ours)")
    lowlight = row.cells[table_5deg.column_index("LOLv1", "PSNR")]
    assert lowlight.value == pytest.approx(24.10)
    average = row.cells[table_5deg.column_index("Average", "PSNR")].value
    assert average == pytest.approx((30.90 + 38.31 + 31.28 + 28.40 + 24.10) / 5)


def test_best_is_bold_and_second_underlined_per_column(table_5deg):
    column = table_5deg.column_index("LOLv1", "PSNR")
    ranks = {row.name: row.cells[column].rank for row in table_5deg.rows if row.cells[column].rank}
    assert ranks == {"MyNet (ours)": 1, "MIRAGE-S": 2}
    latex = render(table_5deg, "latex")
    assert r"\textbf{24.10}" in latex and r"\underline{23.59}" in latex
    assert "**24.10**" in render(table_5deg, "markdown")
    assert '<td class="num best"><strong>24.10</strong></td>' in render(table_5deg, "html")


def test_sample_limited_and_random_weight_runs_are_marked_and_never_ranked(table_5deg):
    sample = table_5deg.row("MIRAGE-T (sample) [random weights, limit 2]")  # says so without its footnotes
    assert not sample.ranked
    assert all(cell.rank is None for cell in sample.cells)  # 45 dB everywhere, still never bold
    notes = [table_5deg.footnotes[m].text for m in sample.markers]
    assert notes[0].startswith("sample (synthetic) data")
    assert any(note.startswith("--limit 2 (at most 2 images per task)") for note in notes)
    assert any(note.startswith("random weights") for note in notes)
    assert [table_5deg.footnotes[m].symbol for m in sample.markers] == ["†", "‡", "§"]
    assert "MIRAGE-T (sample) [random weights, limit 2]†‡§" in render(table_5deg, "markdown")
    assert r"MIRAGE-T (sample) [random weights, limit 2]\textsuperscript{\dag}" in render(table_5deg, "latex")
    assert "Includes rows on --limit, random weights, sample data" in table_5deg.caption


def test_rows_in_the_assisted_section_are_shown_but_not_ranked(table_5deg):
    assisted = table_5deg.blocks[-1]
    assert assisted.title.startswith("Methods with the assistance of")
    assert [row.name for row in assisted.rows] == ["InstructIR-5D", "ArtPromptIR", "VLU-Net", "RamIR"]
    assert all(not row.ranked and all(c.rank is None for c in row.cells) for row in assisted.rows)


def test_printed_averages_that_are_not_the_mean_of_their_row_get_a_footnote():
    table = build_table("3deg")
    notes = {table.rows[i].name: [table.footnotes[m].text for m in row.markers] for i, row in enumerate(table.rows)}
    assert notes["NDR"] == ["NDR, Average PSNR: printed Average (25.01) is not the mean of the five printed PSNRs "
                            "(27.28)"]  # the CSV's own note
    assert notes["ArtPromptIR"] == ["ArtPromptIR, Average PSNR: printed 32.49, the mean of the printed values "
                                    "is 32.478"]  # found by recomputing; the CSV does not flag it
    assert sum(bool(n) for n in notes.values()) == 2


def test_equal_printed_values_share_a_mark():
    column = NumericColumn(("d", ""), "d", "PSNR", higher_is_better=True, decimals=2)
    rows = [Row(name, "published", "", [Cell(value, column.format(value))], ranked=True)
            for name, value in [("a", 30.004), ("b", 29.996), ("c", 29.5), ("d", 29.0)]]
    table = TableModel("x", "x", "x", [column], [RowBlock("", rows)])
    mark_best(table)
    assert [row.cells[0].rank for row in rows] == [1, 1, 2, None]


def test_lower_is_better_columns_rank_the_smallest_value_first():
    column = NumericColumn(("d", ""), "d", "LPIPS", higher_is_better=False, decimals=3)
    rows = [Row(name, "published", "", [Cell(value, column.format(value))], ranked=True)
            for name, value in [("a", 0.30), ("b", 0.28), ("c", 0.29)]]
    mark_best(TableModel("x", "x", "x", [column], [RowBlock("", rows)]))
    assert [row.cells[0].rank for row in rows] == [None, 1, 2]


def test_psnr_prints_two_decimals_and_ssim_three_with_the_papers_leading_dot(table_5deg):
    row = table_5deg.row("MIRAGE-T")
    assert row.cells[table_5deg.column_index("SOTS-outdoor", "PSNR")].text == "31.35"
    assert row.cells[table_5deg.column_index("SOTS-outdoor", "SSIM")].text == ".979"
    assert "0.979" in render(table_5deg, "csv")  # CSV keeps plain numbers


def test_scored_tasks_outside_the_papers_table_are_named_not_shown(table_5deg):
    assert [c.group for c in table_5deg.columns[::2]] == [
        "SOTS-outdoor", "Rain100L", "BSD68 σ=25", "GoPro", "LOLv1", "Average"]
    assert "Scored but not in the paper's table (not shown): BSD68 σ=15, BSD68 σ=50." in table_5deg.notes


def _write_run(run_dir: Path, tasks: list[dict], records: list[tuple[str, str, float, float]], **manifest) -> Path:
    return write_scored_run(run_dir, tasks, records, **manifest)


def test_run_tasks_fill_the_columns_their_manifest_maps_them_to(tmp_path):
    tasks = [{"name": "haze-task", "label": "Haze", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}},
             {"name": "noise-50", "label": "Noise 50", "leaderboard": {"dataset": "BSD68", "subset": "sigma50"}}]
    run = _write_run(tmp_path / "toy", tasks, [("haze-task", "1", 20.0, 0.5), ("haze-task", "2", 22.0, 0.7),
                                               ("noise-50", "1", 25.0, 0.6)])
    table = build_table("3deg", [run])
    row = table.row("Toy")
    assert row.cells[table.column_index("SOTS-outdoor", "PSNR")].value == pytest.approx(21.0)
    assert row.cells[table.column_index("BSD68 σ=50", "SSIM")].value == pytest.approx(0.6)
    assert row.cells[table.column_index("Rain100L", "PSNR")].text == "–"
    # the Average is the shipped 3deg's as it is now (all its tasks), not the list this manifest recorded
    assert row.cells[table.column_index("Average", "PSNR")].text == "–"


def test_incomplete_or_interrupted_runs_are_marked_and_not_ranked(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "expected_count": 500,
              "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    run = _write_run(tmp_path / "short", tasks, [("dehaze", "1", 40.0, 0.99)], status="interrupted")
    row = build_table("3deg", [run]).row("Toy")
    assert not row.ranked and all(cell.rank is None for cell in row.cells)
    table = build_table("3deg", [run])
    texts = [table.footnotes[m].text for m in table.row("Toy").markers]
    assert any("interrupted" in text for text in texts)
    assert any("SOTS-outdoor 1/500" in text for text in texts)


@pytest.mark.parametrize(("label", "manifest", "name"), [
    ("MIRAGE-T (sample checkpoint)", {"sample": True, "limit": 3}, "MIRAGE-T (sample checkpoint) [sample, limit 3]"),
    ("Unlimited-Net", {"limit": 2}, "Unlimited-Net [limit 2]"),
    ("MyNet [sample]", {"sample": True}, "MyNet [sample]"),
    ("MyNet (sample)", {"sample": True, "limit": 2}, "MyNet (sample) [limit 2]"),
    ("MyNet", {"random_weights": True}, "MyNet [random weights]"),
])
def test_a_measured_rows_name_carries_each_tag_its_label_does_not_already_show(tmp_path, label, manifest, name):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    run = _write_run(tmp_path / "run", tasks, [("dehaze", "1", 20.0, 0.5)], label=label, **manifest)
    assert [row.name for row in build_table("3deg", [run]).rows if row.kind == "measured"] == [name]


def test_runs_of_another_protocol_are_refused():
    with pytest.raises(ValueError, match="protocol '3deg', not '5deg'"):
        build_table("5deg", [STORE / "3deg-mynet"])


def test_without_the_leaderboard_columns_come_from_the_runs():
    table = build_table("5deg", RUNS_5DEG[:2], leaderboard=False)
    assert [row.kind for row in table.rows] == ["measured", "measured"]
    assert [c.group for c in table.columns[::2]] == [
        "SOTS-outdoor", "Rain100L", "BSD68 σ=15", "BSD68 σ=25", "BSD68 σ=50", "GoPro", "LOLv1", "Average"]


@pytest.mark.parametrize(("protocol", "n_columns", "n_rows"), [
    ("3deg", 12, 20), ("5deg", 12, 21), ("cdd11", 24, 8), ("allweather", 10, 12), ("uieb", 2, 8),
    ("udc", 6, 4), ("efficiency", 4, 8), ("denoise", 6, 9),
])
def test_every_paper_table_builds_from_the_leaderboard_alone(protocol, n_columns, n_rows):
    table = build_table(protocol)
    assert (len(table.columns), len(table.rows)) == (n_columns, n_rows)
    assert all(row.kind == "published" for row in table.rows)


def test_efficiency_table_reads_profiles_and_ranks_only_comparable_runs(efficiency_table):
    mynet = efficiency_table.row("MyNet (ours)")
    texts = [cell.text for cell in mynet.cells]
    assert texts == ["32.94", "2823M", "4.18M", "12G"]
    assert [cell.rank for cell in mynet.cells] == [1, 1, 1, 1]
    limited = efficiency_table.row("MIRAGE-T (limit 1)")
    assert not limited.ranked and all(cell.rank is None for cell in limited.cells)
    assert efficiency_table.row("MIRAGE-S").cells[0].rank == 2


def test_a_profile_at_another_size_than_the_published_flops_is_marked_and_not_ranked(tmp_path):
    """Table 6's FLOPs are counted at 224 px: 1.3G at 64 px is not 'the best FLOPs'."""
    run_dir = tmp_path / "3deg-mynet"
    shutil.copytree(STORE / "3deg-mynet", run_dir)
    profile = json.loads((run_dir / "profile.json").read_text())
    (run_dir / "profile.json").write_text(json.dumps({**profile, "input_shape": [1, 3, 64, 64]}))
    table = build_table("efficiency", [run_dir])
    mynet = table.row("MyNet (ours)")
    assert not mynet.ranked and all(cell.rank is None for cell in mynet.cells)
    (marker,) = mynet.markers
    assert table.footnotes[marker].text.startswith("profiled at 64 px, not the 224 px of the published FLOPs")
    assert table.row("MIRAGE-T").cells[3].rank == 1  # the published 16G is the best FLOPs again


def test_a_profile_whose_compile_failed_says_its_memory_was_measured_eagerly(tmp_path):
    run_dir = tmp_path / "3deg-mynet"
    shutil.copytree(STORE / "3deg-mynet", run_dir)
    profile = json.loads((run_dir / "profile.json").read_text())
    execution = {**(profile.get("execution") or {}), "compile_failed": "InvalidCxxCompiler: No working C++ compiler"}
    (run_dir / "profile.json").write_text(json.dumps({**profile, "execution": execution}))
    notes = " ".join(build_table("efficiency", [run_dir]).notes)
    assert "measured eagerly: torch.compile failed (InvalidCxxCompiler: No working C++ compiler)" in notes


def test_two_runs_in_folders_of_one_name_keep_their_own_provenance_and_links(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    for experiment, revision in (("exp1", "aaaaaaaaaaaa"), ("exp2", "bbbbbbbbbbbb")):
        _write_run(tmp_path / experiment / "run", tasks, [("dehaze", "x.jpg", 30.0, 0.9)], label="Net",
                   git_revision=revision)
    runs = [tmp_path / "exp1" / "run", tmp_path / "exp2" / "run"]
    rows = list(csv.DictReader(io.StringIO(build_report("3deg", runs, "csv", leaderboard=False))))
    assert [(r["method"], r["run_id"], r["git"]) for r in rows] == [
        ("Net", "exp1/run", "aaaaaaaaaaaa"), ("Net (exp2/run)", "exp2/run", "bbbbbbbbbbbb")]
    page = build_report("3deg", runs, "html", leaderboard=False)
    assert page.count('id="run-exp1-run"') == 1 and page.count('id="run-exp2-run"') == 1


def test_a_run_with_part_of_its_images_is_tagged_incomplete_in_its_row_and_the_caption(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    run = _write_run(tmp_path / "half", tasks, [("dehaze", "x.jpg", 30.0, 0.9)], label="HalfNet",
                     status="interrupted", planned={"dehaze": 500})
    table = build_table("3deg", [run])
    assert [row.name for row in table.rows if row.kind == "measured"] == ["HalfNet [incomplete]"]
    assert "Includes rows on unfinished runs (part of the images) (not comparable, not ranked)." in table.caption


def test_folder_runs_scored_with_two_metric_conventions_are_not_ranked_against_each_other(tmp_path):
    tasks = [{"name": "folder", "label": "mine"}]
    protocol = {"name": "folders", "tasks": tasks, "average": []}
    runs = [_write_run(tmp_path / name, tasks, [("folder", "x.png", psnr, 0.9)], label=name, protocol=protocol,
                       convention={"name": convention, "description": ""})
            for name, convention, psnr in (("a", "M1", 30.0), ("b", "M2", 31.0), ("c", "M2", 29.0))]
    table = build_table("folders", runs)
    assert [(row.name, row.ranked) for row in table.rows] == [("a", False), ("b", False), ("c", False)]
    assert any("the table mixes metric conventions M1 and M2" in note.text for note in table.footnotes)
    one_convention = build_table("folders", runs[1:])
    assert [row.ranked for row in one_convention.rows] == [True, True]


def _run_of_a_file_named_mine(root: Path, edit: tuple[str, str] = ("", "")) -> Path:
    """A `--model input` run of a one-pair protocol file named 'mine' under ``root``, its YAML text edited by
    ``edit`` (old, new) first; returns the run directory."""
    path = write_one_pair_protocol(root, "mine")
    path.write_text(path.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    return run_protocol(RunConfig(protocol=str(path), model="input", data_root=root, run_dir=root / "run",
                                  device="cpu")).run_dir


def test_runs_of_two_protocol_files_of_one_name_that_measure_differently_are_not_ranked(tmp_path):
    runs = [_run_of_a_file_named_mine(tmp_path / "a"),
            _run_of_a_file_named_mine(tmp_path / "b", ("base: 16", "base: 8"))]
    table = build_table("mine", runs)
    assert [row.ranked for row in table.rows] == [False, False]
    assert any("mixes runs of protocol files named 'mine' that measure differently" in note.text
               and "crop differ" in note.text for note in table.footnotes)


def test_runs_of_protocol_files_of_one_name_that_differ_only_in_descriptions_are_ranked(tmp_path):
    runs = [_run_of_a_file_named_mine(tmp_path / "a"),
            _run_of_a_file_named_mine(tmp_path / "b", ("title: mine", "title: mine, retitled"))]
    assert [row.ranked for row in build_table("mine", runs).rows] == [True, True]


def test_a_markdown_row_name_with_an_html_tag_is_shown_as_text(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    run = _write_run(tmp_path / "b", tasks, [("dehaze", "x.jpg", 30.0, 0.9)], label="<b>Net</b>")
    markdown = render(build_table("3deg", [run]), "markdown")
    assert "| \\<b>Net\\</b> |" in markdown and "| <b>Net" not in markdown


def test_a_latex_row_whose_name_starts_with_a_bracket_is_not_read_as_the_last_rows_spacing(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    run = _write_run(tmp_path / "ours", tasks, [("dehaze", "x.jpg", 30.0, 0.9)], label="[ours] Net")
    latex = render(build_table("3deg", [run]), "latex")
    assert "\n{}[ours] Net & measured" in latex


@pytest.mark.parametrize("label", ["tab:res 50%", "tab:{x}", "tab#1", ""])
def test_a_latex_label_that_would_break_label_is_refused(label):
    table = build_table("3deg")
    table.label = label or None
    if not label:  # no label: the default
        assert "\\label{tab:bench-ir-3deg}" in render(table, "latex")
        return
    with pytest.raises(ValueError, match=r"a LaTeX label holds letters, digits and : \. _ - / \+ only"):
        render(table, "latex")


def test_a_dollar_sign_in_a_run_label_is_drawn_as_it_is_in_the_efficiency_chart():
    from bench_ir.report.chart import EfficiencyPoint, efficiency_chart_svg

    points = [EfficiencyPoint("Net $x^$ b", "measured", True, 30.0, 5.0, 10.0, None),  # not valid mathtext
              EfficiencyPoint("Cost $5 vs $10", "measured", True, 31.0, 6.0, 12.0, None)]
    svg = efficiency_chart_svg(points)
    assert re.search(r">Cost \$5 vs \$10</text>", svg) and re.search(r">Net \$x\^\$ b</text>", svg)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_a_table_with_a_greek_letter_and_a_bracket_in_run_labels_compiles_with_pdflatex(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    runs = [_write_run(tmp_path / name, tasks, [("dehaze", "x.jpg", 30.0, 0.9)], label=label)
            for name, label in (("a", "α-Net (λ=0.1)"), ("b", "[ours] Ω_50% #2"))]
    (tmp_path / "table.tex").write_text(latex_document([render(build_table("3deg", runs), "latex")]), encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "table.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_tables_compile_with_pdflatex(tmp_path):
    tables = [render(build_table(protocol), "latex")
              for protocol in ("3deg", "cdd11", "allweather", "uieb", "udc", "dehaze", "denoise")]
    tables += [render(build_table("5deg", RUNS_5DEG), "latex"), render(build_table("efficiency", RUNS_PROFILED),
                                                                       "latex")]
    (tmp_path / "tables.tex").write_text(latex_document(tables), encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 10_000


@pytest.fixture(scope="module")
def html_page():
    return build_report("5deg", RUNS_5DEG, "html")


def test_html_report_is_one_self_contained_file(html_page):
    assert html_page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html_page)  # nothing loaded from outside
    assert '<table class="bench-ir-table" id="table-5deg"' in html_page
    assert '<svg id="efficiency-chart"' in html_page
    assert html_page.count('src="data:image/png;base64,') == 4  # input, two runs, target


def test_comparison_strip_tiles_share_one_window_and_quote_stored_metrics(html_page):
    strip = html_page[html_page.index('<div class="strip" data-task="dehaze"'):]
    sizes = {Image.open(io.BytesIO(base64.b64decode(data))).size
             for data in re.findall(r'src="data:image/png;base64,([^"]+)"', strip)}
    assert sizes == {(48, 48)}
    # Both saved images have the same PSNR spread between the runs (0.48 dB), so the first by name is shown;
    # captions quote the stored records.
    assert "<h3>SOTS-outdoor: 0002_0.9_0.16.jpg</h3>" in strip
    assert "31.20 dB / .977" in strip and "30.72 dB / .973" in strip


def _save_images(run_dir: Path, task: str, name: str, shade: int, size: tuple[int, int] = (40, 30)) -> None:
    for folder, value in (("", shade), ("_input", 40), ("_target", 200)):
        path = run_dir / "images" / task / folder / f"{Path(name).stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (value, value, value)).save(path)


def test_strip_shows_the_shared_image_with_the_largest_psnr_spread_in_a_common_window(tmp_path):
    tasks = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
    a = _write_run(tmp_path / "a", tasks, [("dehaze", "x.jpg", 30.0, 0.9), ("dehaze", "y.jpg", 30.0, 0.9),
                                           ("dehaze", "z.jpg", 10.0, 0.1)], label="A")
    b = _write_run(tmp_path / "b", tasks, [("dehaze", "x.jpg", 30.1, 0.9), ("dehaze", "y.jpg", 32.0, 0.95)],
                   label="B")
    for run, shade in ((a, 100), (b, 150)):
        for name in ("x.jpg", "y.jpg"):
            _save_images(run, "dehaze", name, shade)
    _save_images(a, "dehaze", "z.jpg", 0)  # scored by A only: never shown
    page = build_report("3deg", [a, b], "html", leaderboard=False)
    strip = page[page.index('<div class="strip"'):page.index('<section id="runs">')]
    assert "<h3>SOTS-outdoor: y.jpg</h3>" in strip
    assert "top 0, left 0, 30&times;40 px" in strip
    tiles = re.findall(r'alt="([^"]+)" src="data:image/png;base64,([^"]+)"', strip)
    assert [alt for alt, _ in tiles] == ["Input", "A", "B", "Target"]
    shades = [Image.open(io.BytesIO(base64.b64decode(data))).getpixel((0, 0))[0] for _, data in tiles]
    assert shades == [40, 100, 150, 200]


def test_html_report_without_runs_has_the_published_tables_and_chart(tmp_path):
    page = build_report("3deg", [], "html")
    assert '<table class="bench-ir-table" id="table-3deg"' in page
    assert '<table class="bench-ir-table" id="table-efficiency"' in page
    assert '<svg id="efficiency-chart"' in page
    assert "No saved images" in page and "No runs given" in page


def test_build_report_writes_the_rendered_text_to_out(tmp_path):
    out = tmp_path / "sub" / "table.md"
    text = build_report("udc", [], "markdown", out=out)
    assert out.read_text(encoding="utf-8") == text
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        build_report("udc", [], "pdf")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_html_report_renders_in_headless_chromium(tmp_path, html_page):
    page = tmp_path / "report.html"
    page.write_text(html_page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        subprocess.run([*flags, "--window-size=1400,2400", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
        dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=120, check=True).stdout
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1400)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # text, table rules and images, not a blank page
    assert 'id="table-5deg"' in dom and 'id="efficiency-chart"' in dom
    # three runs in the 5deg table, and the profiled one again in the efficiency table
    assert dom.count('<tr class="measured') == 4 and 'class="strip"' in dom


def test_a_report_that_fails_to_write_keeps_the_previous_file_whole(tmp_path, monkeypatch):
    import errno

    out = tmp_path / "table.tex"
    build_report("5deg", RUNS_5DEG, "latex", out=out)
    before = out.read_text()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        build_report("5deg", RUNS_5DEG[:1], "latex", out=out)
    assert out.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["table.tex"]


def test_the_report_of_a_protocol_named_in_another_letter_case_is_that_protocols(tmp_path):
    from conftest import write_scored_run

    tasks = [{"name": "derain", "label": "Rain100L"}]
    run = write_scored_run(tmp_path / "r", tasks, [("derain", "1.png", 30.0, 0.9)],
                           protocol={"name": "3deg", "tasks": tasks, "average": ["derain"]})
    assert build_report("3DEG", [run], fmt="csv") == build_report("3deg", [run], fmt="csv")
