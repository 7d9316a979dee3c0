"""`bench-ir compare` counts ties beside the wins (wins of A + wins of B + ties = paired images), and its rank table
shows the values at the printed precision the ranks are decided at."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_scored_run

from bench_ir.compare import compare_runs, rank_against_leaderboard
from bench_ir.compare_output import compare_text, paired_notes, rank_explanation, rank_table
from bench_ir.results import RunStore

TASKS = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}},
         {"name": "derain", "label": "Rain100L", "leaderboard": {"dataset": "Rain100L", "subset": None}}]
IMAGES = ["1.png", "2.png", "3.png", "4.png", "5.png"]
# B - A on PSNR: B better on 1 and 2, A better on 3, tied on 4 and 5; SSIM equal everywhere
PSNR_A, PSNR_B = [30.0, 30.0, 30.0, 30.0, 30.0], [31.0, 30.5, 29.0, 30.0, 30.0]


def _write_run(run_dir: Path, dehaze: list[float], derain: list[float] | None = None) -> Path:
    """A run with these PSNRs on IMAGES (SSIM 0.9); with ``derain`` the protocol averages both tasks."""
    psnr = {"dehaze": dehaze, **({"derain": derain} if derain else {})}
    records = [(task, image, value, 0.9) for task, values in psnr.items()
               for image, value in zip(IMAGES, values, strict=True)]
    return write_scored_run(run_dir, TASKS, records, average=list(psnr) if derain else [], protocol_name="my-protocol")


def _row(frame: pd.DataFrame, metric: str, task: str = "dehaze") -> pd.Series:
    return frame[(frame["task"] == task) & (frame["metric"] == metric)].iloc[0]


def _tied_pair(tmp_path: Path) -> pd.DataFrame:
    return compare_runs(_write_run(tmp_path / "a", PSNR_A), _write_run(tmp_path / "b", PSNR_B), n_boot=100)


def test_wins_of_each_run_and_ties_add_up_to_the_paired_images(tmp_path):
    result = _tied_pair(tmp_path)
    psnr, ssim = _row(result, "PSNR"), _row(result, "SSIM")
    assert (psnr["wins_b"], psnr["wins_a"], psnr["ties"], psnr["n_paired"]) == (2, 1, 2, 5)
    assert (ssim["wins_b"], ssim["wins_a"], ssim["ties"]) == (0, 0, 5)
    assert psnr["win_rate"] == pytest.approx(0.4)  # still B's share of the paired images


def test_a_lower_lpips_is_a_win_and_an_equal_one_a_tie(tmp_path):
    runs = [write_scored_run(tmp_path / name, TASKS, [], average=[]) for name in ("a", "b")]
    for run, lpips in zip(runs, ([0.3, 0.3, 0.3], [0.2, 0.4, 0.3]), strict=True):  # B lower, higher, equal
        RunStore(run).extend({"task": "dehaze", "image": image, "psnr": 30.0, "ssim": 0.9, "lpips": value,
                              "height": 8, "width": 8, "seconds": 0.0, "nonfinite": False}
                             for image, value in zip(IMAGES[:3], lpips, strict=True))
    lpips = _row(compare_runs(*runs, n_boot=100), "LPIPS")
    assert (lpips["wins_b"], lpips["wins_a"], lpips["ties"]) == (1, 1, 1)


def test_the_average_row_totals_the_wins_and_ties_of_its_tasks(tmp_path):
    a = _write_run(tmp_path / "a", PSNR_A, derain=PSNR_A)
    b = _write_run(tmp_path / "b", PSNR_B, derain=PSNR_A)  # derain: A = B on every image
    result = compare_runs(a, b, n_boot=100)
    total = _row(result, "PSNR", task="Average")
    assert (total["wins_b"], total["wins_a"], total["ties"], total["n_paired"]) == (2, 1, 7, 10)
    assert total["win_rate"] == pytest.approx((0.4 + 0.0) / 2)  # the win share still weighs each task equally
    assert "its n and ties are totals over those tasks" in " ".join(paired_notes(result))


def test_the_notes_list_the_ties_per_task_and_metric(tmp_path):
    notes = paired_notes(_tied_pair(tmp_path))
    assert ("Ties, paired images where A and B score the same (a win for neither; A is better on the others B does "
            "not win): dehaze PSNR 2 of 5, SSIM 5 of 5.") in notes


def test_without_ties_the_notes_say_a_wins_every_image_b_does_not(tmp_path):
    result = compare_runs(_write_run(tmp_path / "a", PSNR_A), _write_run(tmp_path / "b", [31, 29, 31, 29, 31]),
                          n_boot=100)
    result = result[result["metric"] == "PSNR"]
    assert ("No paired image is a tie (A and B scoring the same), so A is better on every one B does not win."
            in paired_notes(result))


def test_csv_and_json_carry_the_win_and_tie_counts(tmp_path):
    result = _tied_pair(tmp_path)
    row = next(csv.DictReader(io.StringIO(compare_text("csv", paired=result))))
    assert (row["wins_b"], row["wins_a"], row["ties"]) == ("2", "1", "2")
    document = json.loads(compare_text("json", paired=result))
    assert {key: document["paired"]["rows"][0][key] for key in ("wins_b", "wins_a", "ties")} == {
        "wins_b": 2, "wins_a": 1, "ties": 2}


def test_the_rank_table_shows_value_and_best_at_the_printed_precision_the_rank_is_decided_at(tmp_path):
    run = write_scored_run(tmp_path / "run", TASKS[:1], [("dehaze", "a.png", 30.0, 0.9816)], average=[])
    ranks = rank_against_leaderboard(run)
    ssim = ranks[(ranks["column"] == "SOTS-outdoor") & (ranks["metric"] == "SSIM")].index[0]
    assert ranks.loc[ssim, "rank"] == 1 and ranks.loc[ssim, "delta_best"] == pytest.approx(-0.0004)  # .982 printed
    cells = {column.header: list(column.cells)[ssim] for column in rank_table(ranks).columns}
    assert (cells["value"], cells["best published"], cells["Δ best"]) == ("0.982", "MIRAGE-T 0.982", "-0.0004")


def test_the_rank_explanation_says_ranks_are_decided_on_printed_values(tmp_path):
    run = write_scored_run(tmp_path / "run", TASKS[:1], [("dehaze", "a.png", 30.0, 0.9816)], average=[])
    assert ("Ranks are decided on printed values, as the paper's tables print them (PSNR 2, SSIM 3 decimals), so "
            "equal printed values share a rank; value and best published are shown at that precision, the Δ columns "
            "from the unrounded value.") in rank_explanation(rank_against_leaderboard(run))
