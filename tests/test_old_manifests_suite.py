"""A suite cell whose run was recorded before manifests kept the resolved protocol stays complete after an edit of
its protocol file that changes no record."""

from __future__ import annotations

import json

from conftest import write_one_pair_protocol, write_sample_suite

from bench_ir.suite import SuitePlan, cell_status_reason, plan_suite, run_suite


def test_a_complete_cell_of_an_old_manifest_stays_complete_after_an_edit_of_notes_and_layouts(tmp_path):
    toy = write_one_pair_protocol(tmp_path / "data", "toy")
    path = write_sample_suite(tmp_path, "old", [], entries=[{"model": "input", "protocols": [str(toy)]}],
                              options={"device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    done = SuitePlan.load(tmp_path / "out")
    manifest_path = done.run_dir(done.cell("input__toy")) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["protocol"]["resolved"]  # as bench-ir wrote it before f1eaa40
    manifest_path.write_text(json.dumps(manifest))
    toy.write_text(toy.read_text().replace("- input: toy/input", "- input: elsewhere/input\n    target: elsewhere/"
                                           "target\n  - input: toy/input") + "notes: written after the run\n")
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    assert cell_status_reason(plan, plan.cell("input__toy")) == ("complete", None)
