"""`list runs` reads every run's records; aggregate and protocol_average are vectorised for it, and must give what
the straightforward pandas computation gives, to the last bit (NaN and nonfinite handling, column order, dtypes)."""

import numpy as np
import pandas as pd
import pytest

from bench_ir.results import RECORD_COLUMNS, aggregate, protocol_average

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # Inf - Inf, both ways

TASKS = [f"task{i}" for i in range(11)]  # more tasks and images than 8: numpy's pairwise sums differ from a loop's


def _reference_aggregate(records: pd.DataFrame) -> pd.DataFrame:
    """Per-task means as a pandas groupby computes them (psnr/ssim NaN when any image is NaN; lpips skips NaN but is
    NaN for a task with a nonfinite image, whose record holds no LPIPS)."""
    frame = records.copy()
    for column in ("psnr", "ssim", "lpips"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["nonfinite"] = frame["nonfinite"].fillna(False).astype(bool)
    grouped = frame.groupby("task", sort=False)
    return pd.DataFrame({
        "psnr": grouped["psnr"].agg(lambda s: s.mean(skipna=False)),
        "ssim": grouped["ssim"].agg(lambda s: s.mean(skipna=False)),
        "lpips": grouped["lpips"].mean().where(grouped["nonfinite"].sum() == 0),
        "images": grouped.size(),
        "nonfinite": grouped["nonfinite"].sum().astype(int),
    })


def _reference_average(summary: pd.DataFrame, tasks: list[str]) -> pd.Series:
    return summary.loc[tasks, ["psnr", "ssim", "lpips"]].apply(pd.to_numeric, errors="coerce").mean(skipna=False)


def _records(seed: int, lpips: bool = False, nonfinite: bool = False) -> pd.DataFrame:
    """Records as load_run builds them: tasks interleaved, 1 to 40 images each; with ``lpips`` some tasks have LPIPS
    (one image without); with ``nonfinite`` NaN and ±Inf scores flagged nonfinite, and flags that are missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in TASKS:
        for image in range(int(rng.integers(1, 40))):
            rows.append({"task": task, "image": str(image), "psnr": float(rng.uniform(10, 40)),
                         "ssim": float(rng.uniform(0, 1)), "height": 8, "width": 8, "seconds": 0.1,
                         "lpips": float(rng.uniform(0, 1)) if lpips and task < "task5" and image else None,
                         "nonfinite": False})
    rng.shuffle(rows)
    if nonfinite:
        for row, bad in zip(rows[::7], [float("nan"), float("inf"), float("-inf")] * len(rows), strict=False):
            row.update(psnr=bad, ssim=bad if bad != bad else row["ssim"], nonfinite=True)
        for row in rows[3::11]:
            row["nonfinite"] = None
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("lpips", "nonfinite"), [(False, False), (True, False), (False, True), (True, True)])
def test_aggregate_equals_the_pandas_groupby_to_the_last_bit(seed, lpips, nonfinite):
    records = _records(seed, lpips=lpips, nonfinite=nonfinite)
    pd.testing.assert_frame_equal(aggregate(records), _reference_aggregate(records), check_exact=True,
                                  check_index_type=True, check_column_type=True)


@pytest.mark.parametrize("task_dtype", ["str", object])
def test_aggregate_counts_integer_scores_and_leaves_out_records_without_task(task_dtype):
    records = pd.DataFrame([
        {"task": "a", "image": "1", "psnr": 30, "ssim": 1, "lpips": None, "nonfinite": None},
        {"task": None, "image": "2", "psnr": 20, "ssim": 0, "lpips": None, "nonfinite": True},
        {"task": "b", "image": "3", "psnr": 25, "ssim": 0, "lpips": 0.5, "nonfinite": False},
        {"task": "a", "image": "4", "psnr": 31, "ssim": 0, "lpips": None, "nonfinite": True},
    ]).astype({"task": task_dtype})
    pd.testing.assert_frame_equal(aggregate(records), _reference_aggregate(records), check_exact=True,
                                  check_index_type=True, check_column_type=True)


@pytest.mark.parametrize("seed", range(3))
def test_protocol_average_equals_the_pandas_mean_to_the_last_bit(seed):
    summary = aggregate(_records(seed, lpips=True, nonfinite=seed == 2))
    tasks = list(np.random.default_rng(seed).permutation(TASKS))
    pd.testing.assert_series_equal(protocol_average(summary, tasks), _reference_average(summary, tasks),
                                   check_exact=True, check_index_type=True)
