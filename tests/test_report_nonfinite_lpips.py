"""An image whose output had NaN/Inf values (its record: psnr and ssim NaN, lpips null, ``nonfinite`` true) makes its
task's LPIPS mean NaN, as it makes the PSNR and SSIM means; and a report, like `compare --leaderboard`, neither
ranks nor marks as best a measured row with such a mean, and says why in its footnotes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from conftest import write_scored_run

from bench_ir.report import build_table
from bench_ir.results import aggregate

TASKS = [{"name": "toled", "label": "TOLED", "leaderboard": {"dataset": "TOLED", "subset": None}},
         {"name": "poled", "label": "POLED", "leaderboard": {"dataset": "POLED", "subset": None}}]
UDC = {"name": "udc", "tasks": TASKS, "average": [], "leaderboard_table": "tableD_udc_toled_poled.csv"}
NAN = float("nan")


def _udc_run(run_dir: Path) -> Path:
    """A udc run of 3 images per task, LPIPS scored, whose TOLED image c.png had a non-finite output. Its POLED means
    (PSNR 40, SSIM 0.99, LPIPS 0.01) beat every published row."""
    scores = {"toled": (30.0, 0.9, 0.2), "poled": (40.0, 0.99, 0.01)}
    run = write_scored_run(run_dir, TASKS, [(task, image, *scores[task][:2]) for task in scores
                                            for image in ("a.png", "b.png", "c.png")], protocol=UDC, label="Mine")
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    for record in records:
        record["lpips"] = scores[record["task"]][2]
        if (record["task"], record["image"]) == ("toled", "c.png"):  # as bench_ir.engine writes it
            record.update(psnr=NAN, ssim=NAN, lpips=None, nonfinite=True)
    (run / "records.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return run


def test_a_task_with_a_nonfinite_image_has_a_nan_lpips_mean():
    records = pd.DataFrame([
        {"task": "t", "image": "a.png", "psnr": 30.0, "ssim": 0.9, "lpips": 0.2, "nonfinite": False},
        {"task": "t", "image": "b.png", "psnr": NAN, "ssim": NAN, "lpips": None, "nonfinite": True},
    ])
    assert math.isnan(aggregate(records).loc["t", "lpips"])


def test_the_report_shows_the_lpips_mean_of_such_a_task_as_missing(tmp_path):
    table = build_table("udc", [_udc_run(tmp_path / "run")])
    cell = table.row("Mine").cells[table.column_index("TOLED", "LPIPS")]
    assert (cell.value, cell.text) == (None, "–")


def test_a_measured_row_with_a_nan_mean_is_marked_neither_best_nor_second(tmp_path):
    table = build_table("udc", [_udc_run(tmp_path / "run")])
    row = table.row("Mine")
    assert not row.ranked and [cell.rank for cell in row.cells] == [None] * len(row.cells)


def test_the_report_says_why_a_row_with_a_nan_mean_is_not_ranked(tmp_path):
    table = build_table("udc", [_udc_run(tmp_path / "run")])
    assert ("its TOLED PSNR and SSIM means of NaN (outputs with NaN/Inf values, the records marked nonfinite): not "
            "comparable with published numbers; not ranked") in [note.text for note in table.footnotes]
