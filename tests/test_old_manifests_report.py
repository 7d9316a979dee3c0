"""A report takes the Average (its columns and every run's value) from the protocol being reported, as it is now,
never from what an older run's manifest recorded as the protocol's ``average``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write_one_pair_protocol, write_scored_run

from bench_ir.protocol import load_protocol
from bench_ir.report import build_report, build_table
from bench_ir.runner import RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")


def _as_old_manifest(run_dir: Path, average: list[str]) -> None:
    """Make ``run_dir``'s manifest one of a bench-ir before f1eaa40 whose protocol had this ``average``: no
    ``protocol.resolved``, the recorded fields at the top level of ``protocol``."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["protocol"]["resolved"]
    manifest["protocol"]["average"] = average
    manifest["run_id"] = run_dir.name
    path.write_text(json.dumps(manifest))


def test_a_report_mixing_an_old_average_run_and_a_current_run_has_the_current_protocols_columns(tmp_path):
    assert load_protocol("dehaze").average == []  # Table B has no Average
    new = run_protocol(RunConfig(protocol="dehaze", model="input", sample=True, limit=1, device="cpu",
                                 run_dir=tmp_path / "new")).run_dir
    old = tmp_path / "old"
    shutil.copytree(new, old)
    _as_old_manifest(old, ["dehaze"])
    text = build_report("dehaze", [new, old], fmt="markdown")
    assert "Average" not in text
    assert not any(column.key == ("Average", "") for column in build_table("dehaze", [new, old]).columns)


def test_an_old_run_gets_the_average_of_the_protocol_as_it_is_now(tmp_path):
    tasks = [{"name": name, "label": name} for name in load_protocol("3deg").average]
    records = [(task["name"], "1.png", 20.0 + 2 * i, 0.5) for i, task in enumerate(tasks)]
    run = write_scored_run(tmp_path / "old", tasks, records, average=["derain"])  # derain alone: 22.0
    table = build_table("3deg", [run])
    assert table.row("Toy").cells[table.column_index("Average", "PSNR")].value == pytest.approx(24.0)


def test_runs_of_protocol_files_of_one_name_whose_averages_differ_are_not_ranked(tmp_path):
    runs = []
    for name, average in (("a", ""), ("b", "average: [t]\n")):
        path = write_one_pair_protocol(tmp_path / name, "mine")
        path.write_text(average + path.read_text())
        runs.append(run_protocol(RunConfig(protocol=str(path), model="input", data_root=tmp_path / name,
                                           run_dir=tmp_path / name / "run", device="cpu")).run_dir)
    table = build_table("mine", runs)
    assert [row.ranked for row in table.rows] == [False, False]
    assert any("measure differently" in note.text and "average differ" in note.text for note in table.footnotes)


def test_compare_and_list_runs_take_the_average_of_the_protocol_as_it_is_now(tmp_path):
    from bench_ir.compare import compare_runs
    from bench_ir.listing import _run_row
    from bench_ir.results import load_run

    tasks = [{"name": name, "label": name} for name in load_protocol("3deg").average]
    records = [(task["name"], "1.png", 20.0 + 2 * i, 0.5) for i, task in enumerate(tasks)]
    runs = [write_scored_run(tmp_path / name, tasks, records, average=["derain"]) for name in ("a", "b")]
    rows = compare_runs(*runs, n_boot=10)
    average = rows[(rows["task"] == "Average") & (rows["metric"] == "PSNR")]
    assert average["mean_a"].tolist() == pytest.approx([24.0])  # all five tasks, not the recorded derain (22.0)
    assert "24.00" in " ".join(_run_row(load_run(runs[0])))
