"""A test image replaced by another of the same byte size (an uncompressed BMP of the same dimensions) is other
data: resume refuses it, `suite status` calls the cell outdated and compare names it, from the content sha256 a run
records per pair beside its file names and sizes. Runs recorded before the hashes compare as before."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from bench_ir.comparability import setup_differences
from bench_ir.runner import ResumeError, RunConfig, run_protocol
from bench_ir.suite import SuitePlan, cell_status_reason, run_suite

PROTOCOL = {"name": "bmp", "title": "Two BMP pairs", "version": 1, "convention": "M1",
            "crop": {"rule": "center_multiple", "base": 16},
            "tasks": [{"name": "t", "label": "T", "dataset": "bmp",
                       "layouts": [{"input": "bmp/in", "target": "bmp/gt", "pairing": "same_name"}]}]}


def _write_bmp(path, seed: int) -> None:
    """A 32x32 RGB BMP of random pixels: its byte size depends on its dimensions alone."""
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def bmp(tmp_path):
    """(protocol file, data root) of one task over the pairs 0.bmp and 1.bmp."""
    root = tmp_path / "data"
    for folder in ("bmp/in", "bmp/gt"):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        _write_bmp(root / "bmp" / "gt" / f"{i}.bmp", seed=i)
        _write_bmp(root / "bmp" / "in" / f"{i}.bmp", seed=10 + i)
    protocol = root / "bmp.yaml"
    protocol.write_text(yaml.safe_dump(PROTOCOL), encoding="utf-8")
    return protocol, root


def _run(protocol, root, run_dir, **kwargs):
    return run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=root, run_dir=run_dir,
                                  device="cpu", **kwargs))


def _replace_with_same_size(path, seed: int = 99) -> None:
    size = path.stat().st_size
    _write_bmp(path, seed)
    assert path.stat().st_size == size


def test_a_scored_target_replaced_by_other_content_of_the_same_size_is_refused_naming_it(bmp, tmp_path):
    protocol, root = bmp
    _run(protocol, root, tmp_path / "run", limit=1)  # 0.bmp scored, 1.bmp not yet
    _replace_with_same_size(root / "bmp" / "gt" / "0.bmp")
    with pytest.raises(ResumeError, match=r"data of task 't': 2 pairs → 2 pairs \(changed files: 0.bmp\)"):
        _run(protocol, root, tmp_path / "run", resume=True)


def test_an_unscored_pair_replaced_by_other_content_of_the_same_size_still_resumes(bmp, tmp_path):
    protocol, root = bmp
    _run(protocol, root, tmp_path / "run", limit=1)
    _replace_with_same_size(root / "bmp" / "in" / "1.bmp")
    resumed = _run(protocol, root, tmp_path / "run", resume=True)
    assert resumed.manifest["status"] == "complete"


def test_a_run_records_the_content_sha256_of_each_pairs_files_beside_the_unchanged_rows(bmp, tmp_path):
    protocol, root = bmp
    data = _run(protocol, root, tmp_path / "run").manifest["data"]["t"]
    assert [len(row) for row in data["pairs"]] == [5, 5]
    assert list(data["sha256"]) == ["0.bmp", "1.bmp"]
    assert all(len(sha) == 64 for pair in data["sha256"].values() for sha in pair)


def test_a_run_recorded_before_content_hashes_still_resumes_and_gains_them(bmp, tmp_path):
    protocol, root = bmp
    _run(protocol, root, tmp_path / "run", limit=1)
    path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["data"]["t"]["sha256"]
    path.write_text(json.dumps(manifest))
    resumed = _run(protocol, root, tmp_path / "run", resume=True)
    assert resumed.manifest["status"] == "complete" and "sha256" in resumed.manifest["data"]["t"]


def test_suite_status_calls_a_cell_whose_scored_file_changed_content_outdated(bmp, tmp_path):
    protocol, root = bmp
    suite = {"name": "content", "protocols": [str(protocol)], "options": {"device": "cpu"},
             "entries": [{"model": "input"}], "profile": {"enabled": False}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    run_suite(tmp_path / "suite.yaml", suite_dir=tmp_path / "out", data_root=root)
    plan = SuitePlan.load(tmp_path / "out")
    assert cell_status_reason(plan, plan.cell("input__bmp"))[0] == "complete"
    _replace_with_same_size(root / "bmp" / "gt" / "1.bmp")
    assert cell_status_reason(plan, plan.cell("input__bmp")) == (
        "outdated", "data of task 't': 2 pairs → 2 pairs (changed files: 1.bmp)")


@pytest.fixture
def two_runs_one_content_apart(bmp, tmp_path):
    """The manifests of two runs whose 0.bmp target has the same name and size but other content."""
    protocol, root = bmp
    first = _run(protocol, root, tmp_path / "a").manifest
    _replace_with_same_size(root / "bmp" / "gt" / "0.bmp")
    return first, _run(protocol, root, tmp_path / "b").manifest


def test_compare_names_paired_images_whose_files_have_other_content(two_runs_one_content_apart):
    first, second = two_runs_one_content_apart
    assert setup_differences(first, second) == [
        "task t: 1 paired image(s) come from files of the same name and size with other content (sha256 differs)"]


def test_compare_with_a_run_recorded_before_content_hashes_compares_names_and_sizes(two_runs_one_content_apart):
    first, second = two_runs_one_content_apart
    older = copy.deepcopy(first)
    del older["data"]["t"]["sha256"]
    assert setup_differences(older, second) == []
