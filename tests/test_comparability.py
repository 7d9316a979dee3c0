"""Whether two runs' paired images are the same measurements: setup differences named by `compare`."""

from __future__ import annotations

import copy

import pytest
from PIL import Image
from skimage import data as skdata

from bench_ir.comparability import setup_differences
from bench_ir.compare import compare_runs
from bench_ir.results import load_run
from bench_ir.runner import RunConfig, folder_protocol, run_protocol


@pytest.fixture(scope="module")
def sample_manifests(tmp_path_factory):
    """The manifests of the input row on 5deg and on 3deg, sample data, one image per task."""
    root = tmp_path_factory.mktemp("runs")
    manifests = {}
    for protocol in ("5deg", "3deg"):
        run_protocol(RunConfig(protocol=protocol, model="input", sample=True, limit=1, device="cpu",
                               run_dir=root / protocol))
        manifests[protocol] = load_run(root / protocol).manifest
    return manifests


def _write_pairs(root, photos: dict[str, object]) -> tuple:
    (root / "in").mkdir(parents=True)
    (root / "gt").mkdir()
    for name, photo in photos.items():
        Image.fromarray(photo).save(root / "gt" / name)
        Image.fromarray(photo // 2).save(root / "in" / name)
    return root / "in", root / "gt"


def test_the_tasks_two_protocols_share_are_the_same_measurements(sample_manifests):
    # 3deg and 5deg synthesise dehaze, derain and the three noise levels alike
    assert setup_differences(sample_manifests["5deg"], sample_manifests["3deg"]) == []


def test_another_metric_convention_is_named_with_both_conventions(sample_manifests):
    other = copy.deepcopy(sample_manifests["3deg"])
    other["convention"] = {"id": "M2", "name": "skimage-gaussian"}
    (difference,) = setup_differences(sample_manifests["5deg"], other)
    assert "different metric conventions" in difference and "A M1 skimage-uniform" in difference
    assert "B M2 skimage-gaussian" in difference


def test_another_noise_order_changes_the_noisy_tasks_only(sample_manifests):
    other = copy.deepcopy(sample_manifests["5deg"])
    other["noise_order"] = "listdir"
    differences = setup_differences(sample_manifests["5deg"], other)
    assert [d.split(":")[0] for d in differences] == ["task denoise-15", "task denoise-25", "task denoise-50"]
    assert all("noise order differ" in d for d in differences)


def test_another_noise_seed_is_named_for_its_task(sample_manifests):
    other = copy.deepcopy(sample_manifests["5deg"])
    next(t for t in other["protocol"]["tasks"] if t["name"] == "denoise-25")["noise"]["seed"] = 1
    assert setup_differences(sample_manifests["5deg"], other) == [
        "task denoise-25: the runs make its inputs differently (noise differ)"]


def test_a_task_with_a_crop_rule_of_its_own_is_named(sample_manifests):
    """A protocol file may give one task its own crop (protocols/*.yaml: a task's ``crop``); the manifest's resolved
    content records it."""
    other = copy.deepcopy(sample_manifests["5deg"])
    next(t for t in other["protocol"]["resolved"]["tasks"] if t["name"] == "derain")["crop"] = {"rule": "none"}
    assert setup_differences(sample_manifests["5deg"], other) == [
        "task derain: the runs make its inputs differently (crop differ)"]


def test_sample_data_against_real_data_is_named(sample_manifests):
    real = copy.deepcopy(sample_manifests["5deg"])
    real["sample"] = False
    assert setup_differences(sample_manifests["5deg"], real) == [
        "only A is on sample (synthetic) data: images of the same name are not the same images"]


def test_compare_warns_when_paired_images_come_from_other_files(tmp_path):
    photos = {"astronaut.png": skdata.astronaut()[:64, :64], "chelsea.png": skdata.chelsea()[:64, :64]}
    first = _write_pairs(tmp_path / "a", photos)
    second = _write_pairs(tmp_path / "b", {**photos, "chelsea.png": skdata.coffee()[:64, :64]})  # same name
    for name, (inputs, targets) in (("run-a", first), ("run-b", second)):
        run_protocol(RunConfig(protocol=folder_protocol(inputs, targets), model="input", device="cpu",
                               run_dir=tmp_path / name))
    frame = compare_runs(tmp_path / "run-a", tmp_path / "run-b", n_boot=10)
    assert "task folder: 1 paired image(s) come from different files (name or size differs)" in frame.attrs["warnings"]
    assert not setup_differences(load_run(tmp_path / "run-a").manifest, load_run(tmp_path / "run-a").manifest)
