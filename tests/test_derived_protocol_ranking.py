"""A protocol file of the user's own that includes a shipped protocol inherits its published table; its runs are
ranked against that table (by `report` and `compare --leaderboard` alike) only where they measure as the shipped
protocol that owns the table does: metric convention, crop rule, and the dataset and noise of the task that fills
each published column. Otherwise the run is not ranked, and the reason names what differs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from conftest import write_scored_run

from bench_ir.compare import rank_against_leaderboard
from bench_ir.protocol import load_protocol, protocol_record
from bench_ir.report import build_table
from bench_ir.resources import protocols_dir

NOT_RANKED = ": not comparable with published numbers; not ranked"


def _derived_file(folder: Path, **fields) -> Path:
    """``my3deg.yaml`` in ``folder``: ``include: 3deg`` with ``fields`` over it."""
    path = folder / "my3deg.yaml"
    path.write_text(yaml.safe_dump({"name": "my3deg", "include": "3deg", **fields}, sort_keys=False))
    return path


def _tasks_3deg(change: dict[str, dict]) -> list[dict]:
    """The 3deg tasks as its file lists them, each task named in ``change`` updated with those fields."""
    tasks = yaml.safe_load((protocols_dir() / "3deg.yaml").read_text())["tasks"]
    return [{**task, **change.get(task["name"], {})} for task in tasks]


def _run_of(protocol_file: Path, run_dir: Path) -> Path:
    """A run of ``protocol_file`` whose manifest records the protocol as a run records it (table, crop, each task's
    dataset, noise and leaderboard column, the file's metric convention), one image per task scored above every
    published row."""
    protocol = load_protocol(protocol_file)
    tasks = [{"name": task.name, "label": task.label, "dataset": task.dataset, "leaderboard": task.leaderboard,
              "noise": dataclasses.asdict(task.noise) if task.noise else None} for task in protocol.tasks]
    record = {**protocol_record(protocol), "tasks": tasks, "average": list(protocol.average),
              "leaderboard_table": protocol.leaderboard_table, "crop": dataclasses.asdict(protocol.crop)}
    return write_scored_run(run_dir, tasks, [(task["name"], "a.png", 45.0, 0.999) for task in tasks],
                            protocol=record, convention={"id": protocol.convention}, label="Mine")


def test_compare_leaderboard_does_not_rank_a_run_of_a_file_that_changes_the_convention(tmp_path):
    ranks = rank_against_leaderboard(_run_of(_derived_file(tmp_path, convention="M5"), tmp_path / "run"))
    assert ranks["rank"].isna().all() and not ranks["comparable"].any()
    assert ranks.attrs["reasons"] == ["metric convention M5, not M1 of the published table's protocol 3deg"]


def test_the_report_of_the_file_does_not_rank_that_run_and_names_the_convention(tmp_path):
    path = _derived_file(tmp_path, convention="M5")
    table = build_table(str(path), [_run_of(path, tmp_path / "run")])
    assert not table.row("Mine").ranked
    assert (f"metric convention M5, not M1 of the published table's protocol 3deg{NOT_RANKED}"
            in [note.text for note in table.footnotes])


def test_a_file_with_another_crop_rule_is_not_ranked_and_the_reason_names_the_crop(tmp_path):
    ranks = rank_against_leaderboard(_run_of(_derived_file(tmp_path, crop={"rule": "none"}), tmp_path / "run"))
    assert ranks.attrs["reasons"] == ["crop rule none, not rule center_multiple of the published table's protocol 3deg"]


def test_a_file_with_another_noise_sigma_is_not_ranked_and_the_reason_names_the_sigma(tmp_path):
    noise = {"noise": {"sigma": 30, "stream_sigmas": [15, 30, 50]}}
    ranks = rank_against_leaderboard(_run_of(_derived_file(tmp_path, tasks=_tasks_3deg({"denoise-25": noise})),
                                             tmp_path / "run"))
    assert ranks.attrs["reasons"] == ["task denoise-25 noise sigma 30, stream_sigmas [15, 30, 50], not sigma 25, "
                                      "stream_sigmas [15, 25, 50] of the published table's protocol 3deg"]


def test_a_published_column_filled_with_another_dataset_is_found_by_its_column_not_its_task_name(tmp_path):
    tasks = _tasks_3deg({"dehaze": {"name": "haze", "dataset": "sots-indoor"}})
    path = _derived_file(tmp_path, tasks=tasks, average=[task["name"] for task in tasks])
    ranks = rank_against_leaderboard(_run_of(path, tmp_path / "run"))
    assert ranks.attrs["reasons"] == ["task haze dataset sots-indoor, not sots-outdoor of the published table's "
                                      "protocol 3deg"]


def test_a_file_that_averages_other_tasks_is_not_ranked_and_the_reason_names_both_averages(tmp_path):
    """Its Average is another quantity than the published Average, though each task column measures the same."""
    path = _derived_file(tmp_path, average=["dehaze", "derain"])
    ranks = rank_against_leaderboard(_run_of(path, tmp_path / "run"))
    assert ranks.attrs["reasons"] == ["Average over [SOTS-outdoor, Rain100L], not [SOTS-outdoor, Rain100L, BSD68 σ=15, "
                                      "BSD68 σ=25, BSD68 σ=50] of the published table's protocol 3deg"]


def test_a_task_given_a_crop_rule_of_its_own_is_not_ranked_and_the_reason_names_it(tmp_path):
    path = _derived_file(tmp_path, tasks=_tasks_3deg({"derain": {"crop": {"rule": "none"}}}))
    ranks = rank_against_leaderboard(_run_of(path, tmp_path / "run"))
    assert ranks.attrs["reasons"] == ["task derain crop rule none, not rule center_multiple of the published table's "
                                      "protocol 3deg"]
