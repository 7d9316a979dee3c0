"""Result store: append-only records survive interruption; aggregation follows the per-image-mean convention."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from bench_ir.results import RunStore, aggregate, load_run, protocol_average


def _record(task, image, psnr, ssim=0.5, nonfinite=False):
    return {"task": task, "image": image, "psnr": psnr, "ssim": ssim, "lpips": None, "height": 8, "width": 8,
            "seconds": 0.1, "nonfinite": nonfinite}


def test_records_are_read_back_in_append_order(tmp_path):
    store = RunStore(tmp_path)
    store.write_manifest({"protocol": {"average": []}})
    store.extend([_record("a", "1.png", 30.0), _record("a", "2.png", 32.0)])
    run = load_run(tmp_path)
    assert list(run.records["image"]) == ["1.png", "2.png"]


def test_a_torn_last_line_from_a_killed_run_is_ignored_and_repaired(tmp_path):
    store = RunStore(tmp_path)
    store.write_manifest({})
    store.append(_record("a", "1.png", 30.0))
    with open(store.records_path, "a") as handle:
        handle.write('{"task": "a", "image": "2.p')
    assert store.scored_keys() == {("a", "1.png")}
    store.repair()
    store.append(_record("a", "2.png", 31.0))
    assert [r["image"] for r in store.iter_records()] == ["1.png", "2.png"]


def test_task_mean_is_the_arithmetic_mean_of_per_image_values():
    frame = pd.DataFrame([_record("a", "1", 30.0, 0.8), _record("a", "2", 40.0, 0.9), _record("b", "1", 20.0)])
    summary = aggregate(frame)
    assert summary.loc["a", "psnr"] == pytest.approx(35.0)
    assert summary.loc["a", "ssim"] == pytest.approx(0.85)
    assert summary.loc["a", "images"] == 2


def test_a_nonfinite_image_makes_its_task_mean_nan_and_is_counted():
    frame = pd.DataFrame([_record("a", "1", 30.0), _record("a", "2", float("nan"), float("nan"), nonfinite=True)])
    summary = aggregate(frame)
    assert math.isnan(summary.loc["a", "psnr"])
    assert summary.loc["a", "nonfinite"] == 1


def test_protocol_average_weights_each_task_equally_not_each_image():
    frame = pd.DataFrame([_record("a", "1", 30.0), _record("a", "2", 30.0), _record("a", "3", 30.0),
                          _record("b", "1", 20.0)])
    average = protocol_average(aggregate(frame), ["a", "b"])
    assert average["psnr"] == pytest.approx(25.0)



def test_a_task_whose_mean_is_nan_makes_the_protocol_average_nan_not_the_mean_of_the_others():
    frame = pd.DataFrame([_record("a", "1", 30.0), _record("b", "1", float("nan"), float("nan"), nonfinite=True),
                          _record("c", "1", 20.0)])
    average = protocol_average(aggregate(frame), ["a", "b", "c"])
    assert math.isnan(average["psnr"]) and math.isnan(average["ssim"])

def test_protocol_average_is_none_when_a_task_is_missing():
    frame = pd.DataFrame([_record("a", "1", 30.0)])
    assert protocol_average(aggregate(frame), ["a", "b"]) is None


def test_loading_a_folder_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a bench-ir run directory"):
        load_run(tmp_path)


@pytest.mark.parametrize(("marker", "says"), [
    ("train_manifest.json", "it is a training run: score its weights with `bench-ir run ... --checkpoint "
                            "{folder}/final.safetensors`"),
    ("checkpoints/last.pt", "it is a training run: score its weights with `bench-ir run ... --checkpoint "
                            "{folder}/checkpoints/last.pt`"),
    ("restore.json", "it holds restored images (bench-ir restore), which have no scores"),
    ("plan.json", "it is a suite directory: `bench-ir suite report {folder}` renders its tables, and its runs are "
                  "in {folder}/runs"),
    ("some-run/manifest.json", "it holds runs: name one of them (`bench-ir list runs --runs-root {folder}` lists "
                               "them)"),
])
def test_a_folder_of_another_kind_given_as_a_run_says_what_it_is(tmp_path, marker, says):
    (tmp_path / marker).parent.mkdir(exist_ok=True)
    (tmp_path / marker).write_text("{}")
    if marker.startswith("checkpoints/"):  # a training run stopped before its end
        (tmp_path / "train_manifest.json").write_text("{}")
    expected = r"not a bench-ir run directory \(no manifest.json\); " + re.escape(says.format(folder=tmp_path))
    with pytest.raises(FileNotFoundError, match=expected):
        load_run(tmp_path)


def test_atomically_written_files_get_the_mode_of_ordinary_files(tmp_path):
    import os

    from bench_ir.atomic import atomic_write

    with atomic_write(tmp_path / "out.json") as handle:
        handle.write("{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~mask
