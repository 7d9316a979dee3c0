"""`bench-ir data check --recipe R`: a recipe's training sets checked before a training job, every problem listed
(folders, pairing, unreadable files, pair sizes, images smaller than the patch), as `train` would meet them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_train_data import _photo, _save, make_train_tree
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.train.data_check import check_training_data
from bench_ir.train.recipes import load_recipe

runner = CliRunner()


def _check(*args: str):
    return runner.invoke(app, ["data", "check", *args], terminal_width=300)


def test_a_complete_training_tree_is_ready_with_the_official_counts_as_warnings(tmp_path):
    make_train_tree(tmp_path)
    result = _check("--recipe", "5deg", "--data-root", str(tmp_path), "--patch-size", "32")
    assert result.exit_code == 0, result.output
    assert "ready: all 5 training set(s) ok" in result.output
    assert "derain: warning: 2 images found in" in result.output and "the official recipe uses 200" in result.output
    assert result.output.rstrip().endswith(
        "validation during training scores test sets (found under --val-data-root, else --data-root); check them "
        f"with: bench-ir data check --protocol 5deg --data-root {tmp_path} (or train with --no-val)")


def test_every_problem_of_every_training_set_is_listed_in_one_check(tmp_path):
    make_train_tree(tmp_path)
    _save(tmp_path / "Train/Derain/rainy/rain-2.png", _photo(1, height=60))
    _save(tmp_path / "Train/Enhance/gt/10.png", _photo(0, height=20))
    (tmp_path / "Train/Enhance/low/11.png").write_bytes(b"not a png")
    checks = {c.task: c for c in check_training_data(load_recipe("5deg"), tmp_path, patch_size=32)}
    assert [task for task, check in checks.items() if not check.ok] == ["derain", "lowlight"]
    assert checks["derain"].problems == [
        f"task 'derain': {tmp_path}/Train/Derain/rainy/rain-2.png is 60x72 (HxW) but its target "
        f"{tmp_path}/Train/Derain/gt/norain-2.png is 56x72"]
    lowlight = checks["lowlight"].problems
    assert len(lowlight) == 2
    assert lowlight[0].startswith(f"task 'lowlight': {tmp_path}/Train/Enhance/low/10.png is 56x72 (HxW) but its "
                                  f"target {tmp_path}/Train/Enhance/gt/10.png is 20x72")
    assert lowlight[1] == f"task 'lowlight': {tmp_path}/Train/Enhance/low/11.png: not an image or an unsupported format"


def test_missing_training_folders_are_problems_naming_the_paths_tried(tmp_path):
    result = _check("--recipe", "derain", "--data-root", str(tmp_path))
    assert result.exit_code == 1
    assert (f"derain: error: task 'derain' (layout 'derain'): training folder not found; tried {tmp_path}/Train/Derain"
            in result.output)
    assert "not ready: 1 of 1 training set(s) with problems (exit code 1)" in result.output


def test_images_smaller_than_the_recipes_patch_are_problems_and_a_long_list_is_shortened(tmp_path):
    for i in range(12):
        _save(tmp_path / "Train/Denoise" / f"{i:05d}.png", _photo(i))
    result = _check("--recipe", "denoise", "--data-root", str(tmp_path))  # the recipe's 128 px patch
    assert result.exit_code == 1
    assert f"denoise: error: {tmp_path}/Train/Denoise/00000.png is 48x64 (HxW) after the x16 centre crop, smaller " \
           "than the 128 px patch" in result.output
    assert "denoise: ... and 2 more errors (--json lists them all)" in result.output
    listed = json.loads(_check("--recipe", "denoise", "--data-root", str(tmp_path), "--json").output)
    assert len(listed[0]["problems"]) == 12 and listed[0]["ok"] is False


def test_task_selects_training_sets_and_an_unknown_task_is_an_error(tmp_path):
    make_train_tree(tmp_path)
    listed = json.loads(_check("--recipe", "5deg", "--data-root", str(tmp_path), "--patch-size", "32", "--task",
                               "deblur", "--json").output)
    assert [(c["task"], c["layout"], c["pairs"], c["ok"]) for c in listed] == [("deblur", "paired", 2, True)]
    result = _check("--recipe", "5deg", "--data-root", str(tmp_path), "--task", "snow")
    assert result.exit_code == 2
    assert "error: recipe '5deg' trains no task 'snow'; its tasks: denoise, derain, dehaze, deblur, lowlight" in \
        result.output


def test_the_sample_recipe_needs_no_data_root():
    result = _check("--recipe", "sample")
    assert result.exit_code == 0, result.output
    assert "built-in sample photos" in result.output
    assert "validation during training" not in result.output  # it validates on the sample protocol


def test_data_check_takes_a_protocol_or_a_recipe(tmp_path):
    assert "error: give --protocol (test sets) or --recipe (training sets)\n" in _check("--data-root",
                                                                                       str(tmp_path)).output
    both = _check("--protocol", "3deg", "--recipe", "3deg", "--data-root", str(tmp_path))
    assert both.exit_code == 2 and "not both" in both.output
    patch = _check("--protocol", "3deg", "--data-root", str(tmp_path), "--patch-size", "64")
    assert patch.exit_code == 2 and "--patch-size applies to --recipe" in patch.output
    no_root = _check("--protocol", "3deg")
    assert no_root.exit_code == 2 and ("error: --protocol needs the folder holding its test sets: pass --data-root "
                                       "or set BENCH_IR_DATA_ROOT") in " ".join(no_root.output.split())


def test_train_refuses_bad_training_data_naming_the_first_problems_and_the_check_that_lists_them(tmp_path):
    make_train_tree(tmp_path)
    for name in ("rain-1.png", "rain-2.png"):
        Image.fromarray(np.zeros((60, 72, 3), np.uint8)).save(tmp_path / "Train/Derain/rainy" / name)
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = runner.invoke(app, ["train", "--recipe", "derain", "--model", str(examples / "tiny-unet.yaml"),
                                 "--data-root", str(tmp_path), "--runs-root", str(tmp_path / "runs"), "--max-steps",
                                 "1", "--patch-size", "32", "--no-val"], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "error: 2 problem(s) in the training data: task 'derain': " in result.output
    assert (f"`bench-ir data check --recipe derain --data-root {tmp_path} --patch-size 32` lists every problem"
            in result.output)
    assert not (tmp_path / "runs").exists()


def test_a_rain_target_without_its_rainy_input_is_a_warning_naming_it(tmp_path):
    make_train_tree(tmp_path)
    _save(tmp_path / "Train/Derain/gt/norain-8.png", _photo(2))
    result = _check("--recipe", "5deg", "--data-root", str(tmp_path), "--patch-size", "32")
    assert result.exit_code == 0, result.output
    assert (f"derain: warning: 1 target(s) in {tmp_path}/Train/Derain/gt without an input in "
            f"{tmp_path}/Train/Derain/rainy (pairing rule 'rain100l') are not used: norain-8.png") in result.output
