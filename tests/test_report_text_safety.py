"""Report and compare text stays safe whatever a run's label holds: LaTeX names the characters pdflatex cannot
typeset and maps common maths symbols, runs left off the efficiency chart are named on stderr, the compare Average
counts agree with its n, labels are one non-blank line (refused at run time, shown on one line from older runs),
and Markdown escapes ``$`` and ``<`` in report and compare alike."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.compare import compare_runs
from bench_ir.compare_output import compare_text, paired_notes
from bench_ir.report import build_table, render
from bench_ir.report.render import latex_document, latex_escape
from bench_ir.runner import RunConfig

runner = CliRunner()
TASKS_3DEG = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
COMPARE_TASKS = [{"name": "dehaze"}, {"name": "derain"}]
IMAGES = ["1.png", "2.png", "3.png"]


def _labelled_run(run_dir: Path, label: str) -> Path:
    return write_scored_run(run_dir, TASKS_3DEG, [("dehaze", "x.png", 30.0, 0.9)], average=[], label=label)


def _latex_warnings(table) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render(table, "latex")
    return [w for w in caught if "pdflatex" in str(w.message)]


# ------------------------------------------------------------------------------------ LaTeX characters
def test_latex_maps_common_maths_symbols_to_math_commands():
    assert latex_escape("PSNR ≠ ∞, λ ∈ Λ ⇒ ok") == r"PSNR $\neq$ $\infty$, $\lambda$ $\in$ $\Lambda$ $\Rightarrow$ ok"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_a_table_with_mapped_maths_symbols_and_accented_letters_compiles_with_pdflatex(tmp_path):
    run = _labelled_run(tmp_path / "a", "Net ≠ ∞ ≡ ≪ ∑ √ ∂ ∇ ∀ ∃ ∅ ⊂ ⊕ ← ⇒ ⇔ ∓ ℓ ′ é Ł ő ñ ç — “q”")
    (tmp_path / "t.tex").write_text(latex_document([render(build_table("3deg", [run]), "latex")]), encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_latex_warns_once_per_table_naming_the_characters_pdflatex_cannot_typeset_and_their_row(tmp_path):
    from bench_ir.report import ReportWarning

    runs = [_labelled_run(tmp_path / "a", "模型 中文"), _labelled_run(tmp_path / "b", "Пример 😀")]
    (warning,) = _latex_warnings(build_table("3deg", runs))
    assert warning.category is ReportWarning
    message = str(warning.message)
    assert "模 型 中 文 in row '模型 中文'" in message and "П р и м е 😀 in row 'Пример 😀'" in message
    assert "Label the run in Latin letters" in message and "XeLaTeX or LuaLaTeX" in message


def test_latex_does_not_warn_about_letters_and_symbols_pdflatex_typesets(tmp_path):
    run = _labelled_run(tmp_path / "a", "é α Ł ñ ő ü ç — “q” ‘q’ ≠ ∞ ≤ ≥ ± × →")
    assert _latex_warnings(build_table("3deg", [run])) == []


def test_report_latex_warns_on_stderr_about_characters_pdflatex_cannot_typeset(tmp_path):
    run = _labelled_run(tmp_path / "a", "中文 Net")
    result = runner.invoke(app, ["report", "--protocol", "3deg", str(run), "--format", "latex", "--standalone",
                                 "--no-leaderboard", "--runs-root", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert re.search(r"^warning: the LaTeX table of 3deg holds characters pdflatex cannot typeset .*中 文 in row",
                     result.stderr, re.M), result.stderr


# -------------------------------------------------------------------------------- runs left off the chart
def test_report_chart_out_names_on_stderr_the_runs_left_off_for_want_of_a_profile(tmp_path):
    run = _labelled_run(tmp_path / "unprofiled", "Net")
    result = runner.invoke(app, ["report", "--protocol", "3deg", str(run), "--format", "markdown", "--chart-out",
                                 str(tmp_path / "fig" / "efficiency"), "--runs-root", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig" / "efficiency.svg").is_file()
    assert re.search(r"^warning: Left out, without a profile of the same model card, arguments and checkpoint .*: "
                     r"unprofiled\. `bench-ir profile", result.stderr, re.M), result.stderr


def test_report_efficiency_csv_names_on_stderr_the_runs_it_leaves_out(tmp_path):
    run = _labelled_run(tmp_path / "unprofiled", "MyUnprofiledNet")
    result = runner.invoke(app, ["report", "--protocol", "efficiency", str(run), "--format", "csv",
                                 "--runs-root", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert "MyUnprofiledNet" not in result.stdout
    assert "warning: Left out, without a profile" in result.stderr and ": unprofiled." in result.stderr


# ------------------------------------------------------------------------------------- compare Average
def _compare_pair(tmp_path: Path, average: list[str]) -> pd.DataFrame:
    """A scored both tasks, B only dehaze, with the same values (every paired image a tie)."""
    records = [(task, image, 30.0, 0.9) for task in ("dehaze", "derain") for image in IMAGES]
    own = {"average": average, "protocol_name": "my-protocol"}  # a user's file: its Average is the one it recorded
    a = write_scored_run(tmp_path / "a", COMPARE_TASKS, records, **own)
    b = write_scored_run(tmp_path / "b", COMPARE_TASKS, records[:len(IMAGES)], **own)
    return compare_runs(a, b, n_boot=100)


@pytest.mark.parametrize("average", [["derain", "dehaze"], ["dehaze", "derain"]])
def test_an_average_not_computed_for_a_task_without_pairs_counts_no_pair_win_or_tie(tmp_path, average):
    frame = _compare_pair(tmp_path, average)
    averages = frame[frame["task"] == "Average"]
    assert len(averages) == 2
    assert (averages[["n_paired", "wins_b", "wins_a", "ties"]] == 0).all().all()
    assert (frame["wins_b"] + frame["wins_a"] + frame["ties"] == frame["n_paired"]).all()


def test_the_ties_note_leaves_out_an_average_that_is_not_computed(tmp_path):
    notes = paired_notes(_compare_pair(tmp_path, ["derain", "dehaze"]))
    (ties,) = [note for note in notes if note.startswith("Ties")]
    assert ties.endswith("dehaze PSNR 3 of 3, SSIM 3 of 3.")
    assert "Average PSNR, SSIM not computed: no paired image in derain." in notes


# ------------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize("label", ["Line1\n\nLine2 | pipe", "tab\there", "a\rb"])
def test_a_run_label_with_a_control_character_is_refused(label):
    with pytest.raises(ValueError, match=r"holds control characters .*: a label is one line of text"):
        RunConfig(protocol="3deg", label=label)


@pytest.mark.parametrize("label", ["", "   ", "\u3000"])
def test_a_blank_run_label_is_refused(label):
    with pytest.raises(ValueError, match="is blank: give the name the reports show for this run"):
        RunConfig(protocol="3deg", label=label)


def test_a_label_of_any_script_on_one_line_is_taken():
    assert RunConfig(protocol="3deg", label="α-Net 中文 😀").label == "α-Net 中文 😀"


@pytest.fixture
def newline_table(tmp_path):
    """The table of an older run whose manifest label holds a blank line and a pipe."""
    return build_table("3deg", [_labelled_run(tmp_path / "old", "Line1\n\nLine2 | pipe")], leaderboard=False)


def test_a_newline_in_an_older_label_is_a_space_in_markdown(newline_table):
    lines = render(newline_table, "markdown").splitlines()
    (row,) = [line for line in lines if line.startswith("| Line1")]
    assert row.startswith(r"| Line1 Line2 \| pipe | measured |") and "Line2 \\| pipe" not in lines


def test_a_newline_in_an_older_label_is_a_space_in_latex(newline_table):
    assert "\nLine1 Line2 $|$ pipe & " in render(newline_table, "latex")


def test_a_newline_in_an_older_label_is_a_space_in_csv_and_html(newline_table):
    text = render(newline_table, "csv")
    assert "Line1\n" not in text and list(csv.DictReader(io.StringIO(text)))[0]["method"] == "Line1 Line2 | pipe"
    assert ">Line1 Line2 | pipe<" in render(newline_table, "html")


# ------------------------------------------------------------------------------------------ Markdown
def test_report_markdown_escapes_a_dollar_sign_so_that_github_shows_no_math(tmp_path):
    text = render(build_table("3deg", [_labelled_run(tmp_path / "a", "Cost $x$ <b>")], leaderboard=False),
                  "markdown")
    assert r"| Cost \$x\$ \<b> | measured |" in text


def test_compare_markdown_escapes_the_labels_in_its_title(tmp_path):
    records = [("dehaze", image, 30.0, 0.9) for image in IMAGES]
    a = write_scored_run(tmp_path / "a", COMPARE_TASKS, records, average=[], label="<b>")
    b = write_scored_run(tmp_path / "b", COMPARE_TASKS, records, average=[], label="$B$ *x*")
    text = compare_text("markdown", paired=compare_runs(a, b, n_boot=100))
    assert r"**B - A: \$B\$ \*x\* vs \<b>**" in text.splitlines()
