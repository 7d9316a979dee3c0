"""`bench-ir compare` prints numbers as its notes say (Markdown at the precision ranks are decided on) and refuses a
negative --seed naming the option."""

from __future__ import annotations

from conftest import write_scored_run
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.compare import rank_against_leaderboard
from bench_ir.compare_output import compare_text

TASKS = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]
runner = CliRunner(env={"COLUMNS": "400"})


def _run(run_dir, psnr: float = 30.004, ssim: float = 0.98351):
    return write_scored_run(run_dir, TASKS, [("dehaze", "a.png", psnr, ssim)], average=[])


def _markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in ``text``, by header."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def test_markdown_shows_value_and_best_published_at_the_printed_precision_ranks_use(tmp_path):
    ranked = rank_against_leaderboard(_run(tmp_path / "run"))
    rows = {row["metric"]: row for row in _markdown_rows(compare_text("markdown", ranked=ranked))
            if row["column"] == "SOTS-outdoor"}
    best = ranked[ranked["column"] == "SOTS-outdoor"].set_index("metric")["best_value"]
    assert (rows["PSNR"]["value"], rows["PSNR"]["best_value"]) == ("30.00", f"{best['PSNR']:.2f}")
    assert (rows["SSIM"]["value"], rows["SSIM"]["best_value"]) == ("0.984", f"{best['SSIM']:.3f}")


def test_compare_refuses_a_negative_seed_naming_the_option(tmp_path):
    result = runner.invoke(app, ["compare", str(_run(tmp_path / "a")), str(_run(tmp_path / "b", 31.0)),
                                 "--seed", "-1"])
    assert result.exit_code == 2
    assert "--seed must be 0 or more, got -1" in result.output
