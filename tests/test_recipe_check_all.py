"""`bench-ir data check --recipe R` lists every problem of every training set in one check (a pairing problem does
not hide the others), and a pairing problem inside a recipe advises what to write in the recipe's data entry, not
the evaluation's `--pairing` option."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import FAST_TRAINING as FAST
from test_train_data import _photo, _save, make_train_tree
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.data.datasets import PairingError
from bench_ir.train.data_check import check_training_data
from bench_ir.train.recipes import load_recipe
from bench_ir.train.trainer import train


def _own_recipe(path: Path, **entry) -> Path:
    """A recipe 'mine' training one ``paired`` entry, task 'deblur', from Train/Deblur/blur -> sharp."""
    data = {"task": "deblur", "layout": "paired", "root": "Train/Deblur", "input": "blur", "target": "sharp", **entry}
    path.write_text(yaml.safe_dump({"name": "mine", "title": "Mine", "data": [data]}), encoding="utf-8")
    return path


def _deblur_pairs(root: Path, target_suffix: str = ".png", count: int = 2) -> Path:
    for i in range(count):
        _save(root / "Train/Deblur/blur" / f"GOPR_{i}.png", _photo(i) // 2)
        _save(root / "Train/Deblur/sharp" / f"GOPR_{i}{target_suffix}", _photo(i))
    return root


# ----------------------------------------------------------------------------------------- every problem
def test_a_pairing_problem_does_not_hide_the_other_problems_of_its_training_set(tmp_path):
    make_train_tree(tmp_path)
    _save(tmp_path / "Train/Deblur/blur/GOPR_7.png", _photo(0))  # an input without a target
    _save(tmp_path / "Train/Deblur/blur/GOPR_1.png", _photo(1, height=60))  # a pair of two sizes
    result = CliRunner().invoke(app, ["data", "check", "--recipe", "5deg", "--data-root", str(tmp_path),
                                      "--patch-size", "32"], terminal_width=400)
    assert result.exit_code == 1
    assert (f"deblur: error: {tmp_path}/Train/Deblur/blur: inputs without a target in {tmp_path}/Train/Deblur/sharp "
            "(pairing rule 'same_name') — 1: GOPR_7.png\n") in result.output
    assert (f"deblur: error: {tmp_path}/Train/Deblur/blur/GOPR_1.png is 60x72 (HxW) but its target "
            f"{tmp_path}/Train/Deblur/sharp/GOPR_1.png is 56x72\n") in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ deblur"))
    assert "│     2 │" in row and "2 problem(s)" in row  # the 2 pairs found are counted and checked


def test_listed_files_that_are_missing_do_not_hide_the_problems_of_the_listed_files_found(tmp_path):
    make_train_tree(tmp_path)
    (tmp_path / "Train/Derain/rainTrain.txt").write_text("rainy/rain-1.png\nrainy/rain-9.png\n", encoding="utf-8")
    _save(tmp_path / "Train/Derain/rainy/rain-1.png", _photo(0, height=60))
    derain = check_training_data(load_recipe("derain"), tmp_path, patch_size=32)[0]
    assert derain.problems == [
        f"task 'derain': 1 file(s) of the list rainTrain.txt are missing under {tmp_path}/Train/Derain: "
        "rainy/rain-9.png",
        f"task 'derain': {tmp_path}/Train/Derain/rainy/rain-1.png is 60x72 (HxW) but its target "
        f"{tmp_path}/Train/Derain/gt/norain-1.png is 56x72"]
    assert derain.pairs == 1


# -------------------------------------------------------------------------------------- pairing advice
def test_unpaired_inputs_in_a_recipe_advise_the_pairing_of_its_data_entry(tmp_path):
    root = _deblur_pairs(tmp_path, target_suffix=".jpg")
    check = check_training_data(load_recipe(_own_recipe(tmp_path / "mine.yaml")), root)[0]
    assert check.problems == [
        f"task 'deblur': {root}/Train/Deblur/blur: inputs without a target in {root}/Train/Deblur/sharp (pairing rule "
        "'same_name') — 2: GOPR_0.png, GOPR_1.png. 2 of them have a target with the same stem and another extension "
        "(GOPR_0.png → GOPR_0.jpg, GOPR_1.png → GOPR_1.jpg): pair by stem with `pairing: stem` in the data entry of "
        "task 'deblur' of the recipe 'mine'"]


def test_position_pairing_of_unequal_folders_in_a_recipe_advises_the_pairing_of_its_data_entry(tmp_path):
    root = _deblur_pairs(tmp_path)
    _save(root / "Train/Deblur/blur/GOPR_2.png", _photo(2))
    check = check_training_data(load_recipe(_own_recipe(tmp_path / "mine.yaml", pairing="position")), root)[0]
    assert len(check.problems) == 1 and "--pairing" not in check.problems[0]
    assert check.problems[0].endswith(
        "Make the two folders hold the same images, or pair by name: `pairing: same_name` or `pairing: stem` in the "
        "data entry of task 'deblur' of the recipe 'mine'.")


def test_the_advice_for_a_shipped_recipe_is_for_a_copy_of_it(tmp_path):
    make_train_tree(tmp_path)
    _save(tmp_path / "Train/Deblur/blur/GOPR_7.png", _photo(0))
    _save(tmp_path / "Train/Deblur/sharp/GOPR_7.jpg", _photo(0))
    deblur = check_training_data(load_recipe("5deg"), tmp_path, patch_size=32, tasks=["deblur"])[0]
    assert deblur.problems[0].endswith("pair by stem with `pairing: stem` in the data entry of task 'deblur' of a "
                                       "copy of the official recipe '5deg'")


def test_train_refuses_unpaired_inputs_with_the_advice_of_the_recipe(tmp_path):
    root = _deblur_pairs(tmp_path, target_suffix=".jpg")
    with pytest.raises(PairingError) as caught:
        train(_own_recipe(tmp_path / "mine.yaml"), "mirage-t", root, tmp_path / "run", max_steps=1, **FAST)
    assert str(caught.value).startswith(f"task 'deblur': {root}/Train/Deblur/blur: inputs without a target")
    assert str(caught.value).endswith("pair by stem with `pairing: stem` in the data entry of task 'deblur' of the "
                                      "recipe 'mine'")
