"""Paired run comparison with bootstrap confidence intervals, and ranking a run against the leaderboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench_ir import compare
from bench_ir.compare import compare_runs, paired_bootstrap_ci, rank_against_leaderboard
from bench_ir.results import RunStore

STORE = Path(__file__).parent / "fixtures" / "store"
TASKS = [{"name": "denoise-25", "label": "BSD68 σ=25", "leaderboard": {"dataset": "BSD68", "subset": "sigma25"}}]


def _write_run(run_dir: Path, images: list[str], psnr, ssim, lpips=None, task: str = "denoise-25") -> Path:
    store = RunStore(run_dir)
    store.write_manifest({
        "run_id": run_dir.name, "label": None, "created": "2026-01-01T00:00:00+00:00",
        "protocol": {"name": "3deg", "tasks": TASKS, "average": [], "leaderboard_table": "table1_3deg.csv"},
        "model": {"name": run_dir.name, "display_name": run_dir.name, "params": 1}, "checkpoint": None,
        "convention": {"name": "M1", "description": ""}, "sample": False, "limit": None, "random_weights": False})
    for i, image in enumerate(images):
        store.append({"task": task, "image": image, "psnr": float(psnr[i]), "ssim": float(ssim[i]),
                      "lpips": None if lpips is None else float(lpips[i]), "height": 8, "width": 8,
                      "seconds": 0.0, "nonfinite": False})
    return run_dir


def _row(frame: pd.DataFrame, metric: str, task: str = "denoise-25") -> pd.Series:
    return frame[(frame["task"] == task) & (frame["metric"] == metric)].iloc[0]


def test_a_constant_difference_gives_the_degenerate_interval_at_that_difference(tmp_path):
    images = [f"{i:03d}.png" for i in range(50)]
    base = np.linspace(25.0, 35.0, 50)
    a = _write_run(tmp_path / "a", images, base, np.full(50, 0.8))
    b = _write_run(tmp_path / "b", images, base + 0.25, np.full(50, 0.8) + 0.0625)
    result = compare_runs(a, b, n_boot=2000)
    psnr, ssim = _row(result, "PSNR"), _row(result, "SSIM")
    assert (psnr["ci_low"], psnr["delta"], psnr["ci_high"]) == pytest.approx((0.25, 0.25, 0.25), abs=1e-12)
    assert (ssim["ci_low"], ssim["ci_high"]) == pytest.approx((0.0625, 0.0625), abs=1e-12)
    assert psnr["win_rate"] == 1.0 and not psnr["within_noise"]


def test_normal_differences_give_an_interval_around_their_mean_with_the_normal_width():
    sigma, n = 0.5, 400
    differences = np.random.default_rng(7).normal(0.2, sigma, n)
    low, high = paired_bootstrap_ci(differences, n_boot=10000, confidence=0.95, seed=0)
    assert low < differences.mean() < high
    assert (high - low) == pytest.approx(2 * 1.96 * sigma / np.sqrt(n), rel=0.15)


def test_the_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2026)
    covered = [low < 0.2 < high for low, high in (
        paired_bootstrap_ci(rng.normal(0.2, 0.5, 100), n_boot=1000, seed=trial) for trial in range(200))]
    assert 0.90 <= np.mean(covered) <= 0.99


def test_the_interval_narrows_with_lower_confidence():
    differences = np.random.default_rng(1).normal(0.0, 1.0, 200)
    wide = paired_bootstrap_ci(differences, n_boot=4000, confidence=0.99)
    narrow = paired_bootstrap_ci(differences, n_boot=4000, confidence=0.8)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_chunked_resampling_keeps_the_normal_width(monkeypatch):
    monkeypatch.setattr(compare, "_BOOT_CELLS", 1000)  # forces 400-image resamples in chunks of 2
    differences = np.random.default_rng(3).normal(1.0, 2.0, 400)
    low, high = paired_bootstrap_ci(differences, n_boot=3000, seed=5)
    assert (high - low) == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(400), rel=0.15)


def test_bootstrap_is_reproducible_for_a_seed_and_changes_with_the_seed():
    differences = np.random.default_rng(2).normal(0.1, 1.0, 60)
    assert paired_bootstrap_ci(differences, n_boot=500, seed=3) == paired_bootstrap_ci(differences, n_boot=500, seed=3)
    assert paired_bootstrap_ci(differences, n_boot=500, seed=3) != paired_bootstrap_ci(differences, n_boot=500, seed=4)


def test_zero_mean_differences_are_within_noise(tmp_path):
    images = [f"{i:03d}.png" for i in range(80)]
    rng = np.random.default_rng(11)
    base = rng.uniform(25, 35, 80)
    noise = rng.normal(0.0, 0.3, 80)
    noise -= noise.mean()
    a = _write_run(tmp_path / "a", images, base, np.full(80, 0.9))
    b = _write_run(tmp_path / "b", images, base + noise, np.full(80, 0.9))
    row = _row(compare_runs(a, b, n_boot=2000), "PSNR")
    assert row["within_noise"] and row["ci_low"] < 0 < row["ci_high"]
    assert 0.3 < row["win_rate"] < 0.7


def test_partially_overlapping_runs_pair_only_the_shared_images(tmp_path):
    a = _write_run(tmp_path / "a", ["1.png", "2.png", "3.png", "4.png"], [30, 31, 32, 33], [0.9] * 4)
    b = _write_run(tmp_path / "b", ["3.png", "4.png", "5.png"], [33, 32, 20], [0.9] * 3)
    row = _row(compare_runs(a, b, n_boot=500), "PSNR")
    assert (row["n_a"], row["n_b"], row["n_paired"], row["only_a"], row["only_b"]) == (4, 3, 2, 2, 1)
    assert (row["mean_a"], row["mean_b"], row["delta"]) == pytest.approx((32.5, 32.5, 0.0))
    assert row["win_rate"] == 0.5


def test_fixture_runs_pair_three_of_four_dehaze_images():
    result = compare_runs(STORE / "5deg-mirage-t", STORE / "5deg-mynet", n_boot=500)
    dehaze = _row(result, "PSNR", task="dehaze")
    assert (dehaze["n_paired"], dehaze["only_a"], dehaze["only_b"]) == (3, 1, 1)
    assert set(result["task"]) == {"dehaze", "derain", "denoise-15", "denoise-25", "denoise-50", "deblur", "lowlight",
                                   "Average"}  # the protocol's Average, from the manifest
    assert result.attrs["run_b"] == "MyNet (ours)"


def test_runs_that_share_no_task_are_an_error_naming_each_runs_tasks(tmp_path):
    a = _write_run(tmp_path / "a", ["1.png"], [30], [0.9])
    b = _write_run(tmp_path / "b", ["1.png"], [31], [0.9], task="folder")
    with pytest.raises(ValueError, match=r"share no task \(A, protocol 3deg: denoise-25; B, protocol 3deg: folder\)"):
        compare_runs(a, b, n_boot=100)


def test_a_run_without_a_scored_image_is_named_as_the_reason_nothing_pairs(tmp_path):
    a = _write_run(tmp_path / "a", [], [], [])
    b = _write_run(tmp_path / "b", ["1.png"], [31], [0.9])
    with pytest.raises(ValueError, match=r"A \(.*a, status \?\) has no scored image"):
        compare_runs(a, b, n_boot=100)


def test_runs_whose_shared_tasks_hold_no_common_image_are_an_error(tmp_path):
    a = _write_run(tmp_path / "a", ["1.png", "2.png"], [30, 31], [0.9] * 2)
    b = _write_run(tmp_path / "b", ["3.png"], [31], [0.9])
    with pytest.raises(ValueError, match=r"shared tasks \(denoise-25\) have no image of the same name in both"):
        compare_runs(a, b, n_boot=100)


def test_runs_of_two_protocols_are_compared_on_their_shared_tasks_with_a_warning(tmp_path):
    a = _write_run(tmp_path / "a", ["1.png"], [30], [0.9])
    b = _write_run(tmp_path / "b", ["1.png"], [31], [0.9])
    manifest = RunStore(b).read_manifest()
    manifest["protocol"]["name"] = "5deg"
    RunStore(b).write_manifest(manifest)
    result = compare_runs(a, b, n_boot=100)
    assert _row(result, "PSNR")["delta"] == pytest.approx(1.0)
    assert ("the runs are on different protocols (A 3deg, B 5deg): only the tasks of the same name are paired"
            in result.attrs["warnings"])


def test_a_run_compared_with_itself_gets_a_warning_saying_so(tmp_path):
    a = _write_run(tmp_path / "a", ["1.png"], [30], [0.9])
    result = compare_runs(a, tmp_path / "." / "a", n_boot=100)
    assert f"A and B are the same run ({a}): every delta is 0 by construction" in result.attrs["warnings"]


def test_lpips_wins_when_lower_and_is_compared_only_when_both_runs_scored_it(tmp_path):
    images = ["1.png", "2.png", "3.png", "4.png"]
    a = _write_run(tmp_path / "a", images, [30] * 4, [0.9] * 4, lpips=[0.30, 0.30, 0.30, 0.30])
    b = _write_run(tmp_path / "b", images, [30] * 4, [0.9] * 4, lpips=[0.20, 0.25, 0.35, 0.10])
    c = _write_run(tmp_path / "c", images, [30] * 4, [0.9] * 4)
    assert _row(compare_runs(a, b, n_boot=200), "LPIPS")["win_rate"] == 0.75
    assert set(compare_runs(a, c, n_boot=200)["metric"]) == {"PSNR", "SSIM"}


def test_nonfinite_pairs_are_left_out_and_counted(tmp_path):
    images = ["1.png", "2.png", "3.png"]
    a = _write_run(tmp_path / "a", images, [30, 31, 32], [0.9] * 3)
    b = _write_run(tmp_path / "b", images, [31, float("nan"), 33], [0.9] * 3)
    row = _row(compare_runs(a, b, n_boot=200), "PSNR")
    assert (row["n_paired"], row["n_nonfinite"], row["delta"]) == (2, 1, pytest.approx(1.0))


def test_rank_against_the_leaderboard_uses_printed_values_and_gives_deltas_to_mirage():
    ranks = rank_against_leaderboard(STORE / "5deg-mynet")
    assert list(ranks["column"][:2]) == ["Average", "Average"]
    average = ranks.iloc[0]
    expected = (30.90 + 38.31 + 31.28 + 28.40 + 24.10) / 5
    assert average["value"] == pytest.approx(expected)
    assert average["rank"] == 2 and average["n_ranked"] == 18  # 17 main-section rows + this run
    assert average["best_method"] == "MIRAGE-S"
    assert average["delta_mirage_t"] == pytest.approx(expected - 30.41)
    assert average["delta_mirage_s"] == pytest.approx(expected - 30.68)
    lowlight = ranks[(ranks["column"] == "LOLv1") & (ranks["metric"] == "PSNR")].iloc[0]
    assert lowlight["rank"] == 1 and lowlight["delta_best"] == pytest.approx(24.10 - 23.59)


def test_a_run_that_is_not_comparable_gets_no_rank():
    ranks = rank_against_leaderboard(STORE / "5deg-sample")
    assert ranks["rank"].isna().all() and not ranks["comparable"].any()
    assert "sample (synthetic) data" in ranks.attrs["reasons"]
    assert ranks["delta_mirage_t"].notna().all()


@pytest.mark.parametrize("settings, message", [({"n_boot": 0}, "--n-boot must be at least 1, got 0"),
                                               ({"confidence": 1.0}, "confidence must be in (0, 1), got 1.0")])
def test_impossible_bootstrap_settings_are_errors_naming_them(settings, message):
    with pytest.raises(ValueError) as err:
        paired_bootstrap_ci(np.array([0.1, 0.2, 0.3]), **settings)
    assert str(err.value) == message


def test_fewer_than_a_thousand_resamples_are_flagged_and_the_interval_is_labelled_with_its_level(tmp_path):
    from bench_ir.compare_output import paired_table

    images = [f"{i:03d}.png" for i in range(30)]
    base = np.linspace(25.0, 35.0, 30)
    a = _write_run(tmp_path / "a", images, base, np.full(30, 0.8))
    b = _write_run(tmp_path / "b", images, base + np.linspace(-1, 1, 30), np.full(30, 0.8))
    few = compare_runs(a, b, n_boot=100, confidence=0.999)
    assert any(w.startswith("100 bootstrap resamples: a percentile interval from fewer than 1000") for w in
               few.attrs["warnings"])
    assert "99.9% CI" in [column.header for column in paired_table(few).columns]
    assert not any("bootstrap resamples" in w for w in compare_runs(a, b, n_boot=1000).attrs["warnings"])


def test_an_infinite_psnr_is_shown_as_inf_in_the_rank_table_not_as_a_missing_value():
    from bench_ir.compare_output import rank_table

    ranks = rank_against_leaderboard(STORE / "5deg-mynet")
    ranks.loc[(ranks["column"] == "LOLv1") & (ranks["metric"] == "PSNR"), ["value", "delta_best"]] = float("inf")
    table = rank_table(ranks)
    values, deltas = table.columns[2]._cells, table.columns[5]._cells
    assert "inf" in values and "+inf" in deltas
