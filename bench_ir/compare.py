"""Compare runs: paired per-image deltas with bootstrap confidence intervals, and a run's rank among the
published rows of its protocol.

Conventions: every delta is B - A (or run - published), in the metric's unit (PSNR in dB; SSIM and
LPIPS unitless). Images are paired by (task, image name); images scored in only one run are counted,
never paired. An image where B is better (higher PSNR/SSIM, lower LPIPS) is a win of B, one where A is better a win
of A, and one where both score the same a tie (a win for neither): ``wins_b + wins_a + ties == n_paired``, and
``win_rate`` is B's share. The confidence interval is the percentile interval of the mean difference over
``n_boot`` resamples of the paired images (with replacement), from a NumPy generator seeded with
(seed, task), so the numbers do not depend on which other tasks are present. Pairs where either
value is NaN/Inf are left out and counted in ``n_nonfinite``. Only stored records are read.

:func:`largest_image_changes` lists, per task, the paired images where B loses most against A and those where it
gains most (for figures and failure cases).

The "Average" rows follow the protocol (run A's manifest ``protocol.average``): the mean over those tasks of
the per-task mean difference, with a stratified bootstrap (images resampled within each task). A task with
fewer than :data:`MIN_CI_IMAGES` paired images gets a warning in ``attrs["warnings"]``: a percentile
bootstrap over so few images says little.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from bench_ir.comparability import setup_differences
from bench_ir.counts import check_counts
from bench_ir.leaderboard import (
    AVERAGE,
    find_table,
    has_average,
    leaderboard_columns,
    protocol_rows,
    published_rows,
)
from bench_ir.report.measured import as_runs, average_tasks, measure, nonfinite_means
from bench_ir.report.model import metric_column
from bench_ir.results import Run

__all__ = ["paired_bootstrap_ci", "compare_runs", "largest_image_changes", "rank_against_leaderboard",
           "nonfinite_means", "COMPARE_COLUMNS", "IMAGE_CHANGE_COLUMNS", "RANK_COLUMNS", "MIN_CI_IMAGES", "AVERAGE_ROW"]

# metric name in the tables -> (record column, higher is better)
_METRICS = {"PSNR": ("psnr", True), "SSIM": ("ssim", True), "LPIPS": ("lpips", False)}
_BOOT_CELLS = 4_000_000  # resampled values held in memory at once
MIN_CI_IMAGES = 20  # fewer paired images than this: the bootstrap CI is flagged as not meaning much
MIN_N_BOOT = 1000  # fewer resamples than this: the percentile interval is flagged as unstable
AVERAGE_ROW = "Average"
COMPARE_COLUMNS = ["task", "metric", "n_a", "n_b", "n_paired", "only_a", "only_b", "n_nonfinite", "mean_a", "mean_b",
                   "delta", "ci_low", "ci_high", "win_rate", "within_noise", "wins_b", "wins_a", "ties"]
IMAGE_CHANGE_COLUMNS = ["task", "change", "image", "metric", "a", "b", "delta"]
RANK_COLUMNS = ["column", "metric", "value", "rank", "n_ranked", "best_method", "best_value", "delta_best",
                "mirage_t", "delta_mirage_t", "mirage_s", "delta_mirage_s", "comparable"]


def paired_bootstrap_ci(differences: np.ndarray, n_boot: int = 10000, confidence: float = 0.95,
                        rng: np.random.Generator | None = None, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (one value per image).

    Resamples the images ``n_boot`` times with replacement, vectorised in chunks; ``rng`` (or a generator
    seeded with ``seed``) makes it reproducible. Returns (nan, nan) for an empty input.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    check_counts([("--n-boot", n_boot, 1)])
    values = np.asarray(differences, dtype=np.float64).ravel()
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = rng if rng is not None else np.random.default_rng(seed)
    return _interval(_bootstrap_means(values, n_boot, rng), confidence)


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of ``values`` resampled with replacement, vectorised in chunks."""
    n = values.size
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, _BOOT_CELLS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def _interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def _task_records(run: Run, task: str) -> pd.DataFrame:
    records = run.records[run.records["task"] == task]
    return records.drop_duplicates("image", keep="last").set_index("image")


def _task_rng(seed: int, task: str, metric: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task.encode()), zlib.crc32(metric.encode())])


def _paired_frame(run_a: Run, run_b: Run, task: str, field: str) -> tuple[pd.DataFrame, int, int]:
    """Columns ``a`` and ``b`` (float64, NaN where not a number) on the images both runs scored, indexed by image
    name in A's order, and the image counts of A and B."""
    a, b = _task_records(run_a, task), _task_records(run_b, task)
    shared = a.index.intersection(b.index, sort=False)
    pairs = pd.DataFrame({"a": pd.to_numeric(a.loc[shared, field], errors="coerce").astype("float64"),
                          "b": pd.to_numeric(b.loc[shared, field], errors="coerce").astype("float64")})
    return pairs, len(a), len(b)


def _paired_values(run_a: Run, run_b: Run, task: str, field: str) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Values of A and B on the images both scored, and the counts (n_a, n_b, shared)."""
    pairs, n_a, n_b = _paired_frame(run_a, run_b, task, field)
    return pairs["a"].to_numpy(), pairs["b"].to_numpy(), n_a, n_b, len(pairs)


def _outcomes(diff: np.ndarray, higher_is_better: bool) -> dict[str, int]:
    """Paired images where B is better, where A is better and where they score the same (``diff`` = B - A)."""
    gain = diff if higher_is_better else -diff
    return {"wins_b": int((gain > 0).sum()), "wins_a": int((gain < 0).sum()), "ties": int((gain == 0).sum())}


def _compare_task(run_a: Run, run_b: Run, task: str, n_boot: int, seed: int, confidence: float) -> list[dict]:
    rows = []
    for metric, (field, higher_is_better) in _METRICS.items():
        values_a, values_b, n_a, n_b, n_shared = _paired_values(run_a, run_b, task, field)
        if metric == "LPIPS" and not (np.isfinite(values_a).any() and np.isfinite(values_b).any()):
            continue  # LPIPS not scored in both runs
        finite = np.isfinite(values_a) & np.isfinite(values_b)
        diff = values_b[finite] - values_a[finite]
        low, high = paired_bootstrap_ci(diff, n_boot, confidence, rng=_task_rng(seed, task, metric))
        outcomes = _outcomes(diff, higher_is_better)
        rows.append({
            "task": task, "metric": metric, "n_a": n_a, "n_b": n_b, "n_paired": int(finite.sum()),
            "only_a": n_a - n_shared, "only_b": n_b - n_shared,
            "n_nonfinite": int((~finite).sum()),
            "mean_a": float(values_a[finite].mean()) if diff.size else float("nan"),
            "mean_b": float(values_b[finite].mean()) if diff.size else float("nan"),
            "delta": float(diff.mean()) if diff.size else float("nan"), "ci_low": low, "ci_high": high,
            "win_rate": outcomes["wins_b"] / diff.size if diff.size else float("nan"),
            "within_noise": bool(low <= 0.0 <= high) if diff.size else pd.NA, **outcomes,
        })
    return rows


def compare_runs(run_a: Run | str | Path, run_b: Run | str | Path, n_boot: int = 10000, seed: int = 0,
                 confidence: float = 0.95) -> pd.DataFrame:
    """Per task and metric: mean B - A over the images both runs scored, its paired bootstrap CI, the win
    rate (fraction of paired images where B beats A: higher PSNR/SSIM, lower LPIPS), ``within_noise``
    (the CI contains 0) and the counts ``wins_b``, ``wins_a`` and ``ties`` (they add up to ``n_paired``; in the
    Average row they are totals over its tasks, while its win rate weighs each task equally).
    Columns: :data:`COMPARE_COLUMNS`; ``attrs`` holds the run ids and settings, and
    ``warnings`` (few paired images; a run whose records do not cover what its manifest plans: "incomplete: ...";
    a run with images tiled after a GPU out-of-memory error;
    setups whose paired images are different measurements: :func:`~bench_ir.comparability.setup_differences`)."""
    first, second = _scored_runs([run_a, run_b])
    tasks = list(dict.fromkeys([*first.records["task"], *second.records["task"]]))
    rows = [row for task in tasks for row in _compare_task(first, second, str(task), n_boot, seed, confidence)]
    _require_shared_images(first, second, rows)
    averaged = average_tasks(first.manifest.get("protocol") or {})
    if not all(task in tasks for task in averaged):
        averaged = []  # no Average row: a task it needs was scored by neither run
    if averaged:
        rows += _compare_average(first, second, averaged, rows, n_boot, seed, confidence)
    frame = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    frame["within_noise"] = frame["within_noise"].astype("boolean")
    small = [f"{row['task']} (n={row['n_paired']})" for row in rows
             if row["metric"] == "PSNR" and row["task"] != AVERAGE_ROW and row["n_paired"] < MIN_CI_IMAGES]
    warnings = [f"few paired images in {', '.join(small)}: a bootstrap CI over fewer than {MIN_CI_IMAGES} images "
                "says little; read these intervals with care"] if small else []
    if n_boot < MIN_N_BOOT:
        warnings.append(f"{n_boot} bootstrap resamples: a percentile interval from fewer than {MIN_N_BOOT} moves "
                        "with the seed (the default is 10000)")
    warnings += [f"{run.run_dir}: {note}" for run in (first, second) if (note := run.incomplete())]
    warnings += [f"{run.run_dir}: {tiling}: near tile seams these outputs differ from whole-image inference, and "
                 "their deltas include that" for run in (first, second)
                 if run.auto_tiled_images() and (tiling := run.tiling())]
    if Path(first.run_dir).resolve() == Path(second.run_dir).resolve():
        warnings.append(f"A and B are the same run ({first.run_dir}): every delta is 0 by construction")
    protocol_a, protocol_b = _protocol_name(first), _protocol_name(second)
    if protocol_a != protocol_b:
        warnings.append(f"the runs are on different protocols (A {protocol_a}, B {protocol_b}): only the tasks of the "
                        "same name are paired" + (f", and the Average is {protocol_a}'s" if averaged else ""))
    warnings += setup_differences(first.manifest, second.manifest)
    frame.attrs.update(run_a=first.label, run_b=second.label, run_a_id=_run_id(first), run_b_id=_run_id(second),
                       n_boot=n_boot, seed=seed, confidence=confidence,
                       method="paired percentile bootstrap over images", average_tasks=averaged,
                       warnings=warnings)
    return frame


def largest_image_changes(run_a: Run | str | Path, run_b: Run | str | Path, n: int = 3,
                          metric: str = "PSNR") -> pd.DataFrame:
    """Per task (in order of appearance), the ``n`` paired images where B loses most against A by ``metric``
    (``change`` "loss", largest loss first), then the ``n`` where B gains most ("gain", largest gain first).

    Columns :data:`IMAGE_CHANGE_COLUMNS`: ``a`` and ``b`` are the two runs' values (PSNR in dB), ``delta`` is B - A.
    Better means higher PSNR/SSIM and lower LPIPS; an image where both runs score the same is neither, and pairs
    with a NaN/Inf value are left out. ``attrs``: run labels, ``metric`` and ``n``."""
    check_counts([("--images", n, 1)])
    if metric not in _METRICS:
        raise ValueError(f"unknown metric '{metric}'; choose one of {', '.join(_METRICS)}")
    first, second = _scored_runs([run_a, run_b])
    field, higher_is_better = _METRICS[metric]
    if not all(run.records[field].notna().any() for run in (first, second)):
        raise ValueError(f"{metric} was not scored in both runs (LPIPS: `bench-ir run ... --lpips`)")
    rows = []
    for task in dict.fromkeys([*first.records["task"], *second.records["task"]]):
        pairs, _, _ = _paired_frame(first, second, str(task), field)
        pairs = pairs[np.isfinite(pairs["a"]) & np.isfinite(pairs["b"])]
        pairs["delta"] = pairs["b"] - pairs["a"]
        gain = pairs["delta"] if higher_is_better else -pairs["delta"]
        for change, chosen in (("loss", gain[gain < 0].sort_values(kind="stable").index[:n]),
                               ("gain", gain[gain > 0].sort_values(ascending=False, kind="stable").index[:n])):
            rows += [{"task": str(task), "change": change, "image": str(image), "metric": metric,
                      **pairs.loc[image, ["a", "b", "delta"]].astype(float).to_dict()} for image in chosen]
    frame = pd.DataFrame(rows, columns=IMAGE_CHANGE_COLUMNS)
    frame.attrs.update(run_a=first.label, run_b=second.label, metric=metric, n=n)
    return frame


def _protocol_name(run: Run) -> str:
    return str((run.manifest.get("protocol") or {}).get("name") or "?")


def _require_shared_images(run_a: Run, run_b: Run, rows: list[dict]) -> None:
    """A ValueError when the runs scored no image of the same name in a task of the same name: nothing pairs."""
    if any(row["n_a"] - row["only_a"] > 0 for row in rows):
        return
    tasks_a, tasks_b = (list(dict.fromkeys(map(str, run.records["task"]))) for run in (run_a, run_b))
    shared = [task for task in tasks_a if task in tasks_b]
    empty = [f"{which} ({run.run_dir}, status {run.manifest.get('status') or '?'})"
             for which, run in (("A", run_a), ("B", run_b)) if run.records.empty]
    advice = "compare two runs of the same protocol and data"
    if empty:
        why = f"{' and '.join(empty)} {'has' if len(empty) == 1 else 'have'} no scored image"
        advice = "continue it with the command that made it plus --resume --run-dir"
    elif shared:
        why = f"their shared tasks ({', '.join(shared)}) have no image of the same name in both"
    else:
        why = (f"they share no task (A, protocol {_protocol_name(run_a)}: {', '.join(tasks_a)}; "
               f"B, protocol {_protocol_name(run_b)}: {', '.join(tasks_b)})")
    raise ValueError(f"nothing to compare between {run_a.run_dir} and {run_b.run_dir}: {why}; {advice}")


def _scored_runs(runs: list[Run | str | Path]) -> list[Run]:
    """The runs loaded; a profile run (no per-image scores) is a ValueError that says where its figures go."""
    return [run.require_scores("compare") for run in as_runs(runs)]


def _run_id(run: Run) -> str:
    return str(run.manifest.get("run_id") or run.run_dir.name)


def _compare_average(run_a: Run, run_b: Run, tasks: list[str], task_rows: list[dict], n_boot: int, seed: int,
                     confidence: float) -> list[dict]:
    """The protocol's Average per metric: mean over ``tasks`` of the per-task means (A, B, B - A) and win rates,
    with a stratified bootstrap CI (each task's images resampled within the task, then the task means averaged);
    counts (images, wins, ties) are totals over ``tasks``. Where a task has no paired image the Average is not
    computed: its paired, win and tie counts are 0 and its win rate and CI NaN (the image counts stay)."""
    rows = []
    for metric, (field, higher_is_better) in _METRICS.items():
        per_task = [row for row in task_rows if row["metric"] == metric and row["task"] in tasks]
        if len(per_task) != len(tasks):
            continue
        rng = _task_rng(seed, AVERAGE_ROW, metric)
        boot = np.zeros(n_boot)
        wins, paired = 0.0, 0
        for task in tasks:
            values_a, values_b, *_ = _paired_values(run_a, run_b, task, field)
            finite = np.isfinite(values_a) & np.isfinite(values_b)
            diff = values_b[finite] - values_a[finite]
            if diff.size == 0:
                boot[:] = np.nan
                break
            boot += _bootstrap_means(diff, n_boot, rng) / len(tasks)
            wins += float((diff > 0 if higher_is_better else diff < 0).mean()) / len(tasks)
            paired += int(diff.size)
        finite_boot = bool(np.isfinite(boot).all())
        low, high = _interval(boot, confidence) if finite_boot else (float("nan"), float("nan"))

        def mean_of(name: str, rows_: list[dict] = per_task) -> float:
            return float(np.mean([row[name] for row in rows_]))

        rows.append({
            "task": AVERAGE_ROW, "metric": metric, "n_a": sum(r["n_a"] for r in per_task),
            "n_b": sum(r["n_b"] for r in per_task), "n_paired": paired if finite_boot else 0,
            "only_a": sum(r["only_a"] for r in per_task), "only_b": sum(r["only_b"] for r in per_task),
            "n_nonfinite": sum(r["n_nonfinite"] for r in per_task), "mean_a": mean_of("mean_a"),
            "mean_b": mean_of("mean_b"), "delta": mean_of("delta"), "ci_low": low, "ci_high": high,
            "win_rate": wins if finite_boot else float("nan"),
            "within_noise": bool(low <= 0.0 <= high) if finite_boot else pd.NA,
            **{name: sum(r[name] for r in per_task) if finite_boot else 0 for name in ("wins_b", "wins_a", "ties")},
        })
    return rows


def rank_against_leaderboard(run: Run | str | Path, include_assisted: bool = False) -> pd.DataFrame:
    """Rank ``run`` among the published rows of its protocol: Average PSNR first, then Average SSIM, then
    each dataset column. ``rank`` = 1 + number of published rows strictly better on printed values (the run's
    value rounded to the paper's precision, :func:`~bench_ir.report.model.metric_column`; ties share a rank),
    among the main-section rows (``include_assisted`` adds the assisted ones); it is NA for runs that are not
    comparable (sample data, --limit, random weights, a task mean that is NaN or inf: :func:`nonfinite_means`).
    Deltas are the unrounded run value - published.
    Columns: :data:`RANK_COLUMNS`; ``attrs`` names the run, protocol and table, and ``reasons`` says why the run is
    not comparable (empty when it is)."""
    (loaded,) = _scored_runs([run])
    measured = measure(loaded)
    reasons = list(measured.reasons)  # nonfinite_means among them
    rows = protocol_rows(measured.protocol, measured.leaderboard_table)
    published = [p for p in published_rows(rows) if include_assisted or p.section == "main"]
    metrics = [m for m in _METRICS if (rows["metric"] == m).any()]
    keys = ([((AVERAGE, ""), AVERAGE)] if has_average(rows) else []) + [
        (column.key, column.label) for column in leaderboard_columns(rows)]
    by_key = {p.model_key: p for p in published}
    records = []
    for key, label in keys:
        for metric in metrics:
            column = metric_column(key, label, metric)
            value = measured.value(key, metric)
            entries = [(p.display_name, v) for p in published if (v := p.value(*key, metric)) is not None]
            sign = 1.0 if column.higher_is_better else -1.0
            best = max(entries, key=lambda entry: sign * entry[1]) if entries else (None, float("nan"))
            rank = pd.NA
            if value is not None and not reasons:
                printed = column.rounded(value)
                rank = 1 + sum(sign * (v - printed) > 1e-12 for _, v in entries)
            reference = {name: (by_key[name].value(*key, metric) if name in by_key else None)
                         for name in ("MIRAGE-T", "MIRAGE-S")}
            records.append({
                "column": label, "metric": metric, "value": value, "rank": rank, "n_ranked": len(entries) + 1,
                "best_method": best[0], "best_value": best[1], "delta_best": _delta(value, best[1]),
                "mirage_t": reference["MIRAGE-T"], "delta_mirage_t": _delta(value, reference["MIRAGE-T"]),
                "mirage_s": reference["MIRAGE-S"], "delta_mirage_s": _delta(value, reference["MIRAGE-S"]),
                "comparable": not reasons,
            })
    frame = pd.DataFrame(records, columns=RANK_COLUMNS)
    frame["rank"] = frame["rank"].astype("Int64")
    for name in ("value", "best_value", "delta_best", "mirage_t", "delta_mirage_t", "mirage_s", "delta_mirage_s"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame.attrs.update(run=measured.label, run_id=measured.run_id, protocol=measured.protocol,
                       table=measured.leaderboard_table or find_table(measured.protocol),
                       reasons=reasons)
    return frame


def _delta(value: float | None, reference: float | None) -> float:
    if value is None or reference is None:
        return float("nan")
    return float(value) - float(reference)
