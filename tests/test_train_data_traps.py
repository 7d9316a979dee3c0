"""Training-data discovery traps: linked and broken files, hidden folders, CDD-11 subsets, list files, root names."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_ir.data.datasets import DatasetNotFoundError
from bench_ir.train.data import TrainPart, build_part, file_problems
from bench_ir.train.recipes import load_recipe


def _save(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(path)


def _part(root: Path, recipe: str, task: str) -> TrainPart:
    loaded = load_recipe(recipe)
    spec = next(spec for spec in loaded.data if spec.task == task)
    return build_part(spec, root, loaded)


def _dehaze_tree(root: Path, listed: list[str] | None = None) -> Path:
    """Train/Dehaze with one hazy image of clean image 0001; its list file names ``listed`` when given."""
    dehaze = root / "Train/Dehaze"
    _save(dehaze / "synthetic/part1/0001_0.8_0.2.jpg", 60)
    _save(dehaze / "original/0001.jpg", 120)
    _save(dehaze / "original/0002.jpg", 130)
    names = ["synthetic/part1/0001_0.8_0.2.jpg", *(listed or [])]
    (dehaze / "hazy_outside.txt").write_text("\n".join(names) + "\n")
    return dehaze


def _cdd11_tree(train: Path, subsets: list[str]) -> Path:
    """A CDD-11 training folder: clear/0.png and one image in each of ``subsets``."""
    _save(train / "clear/0.png", 200)
    for subset in subsets:
        _save(train / subset / "0.png", 20)
    return train


def test_hazy_images_in_a_linked_part_folder_are_found(tmp_path):
    _save(tmp_path / "elsewhere/part4/0002_1_0.16.jpg", 70)
    dehaze = _dehaze_tree(tmp_path, listed=["synthetic/part4/0002_1_0.16.jpg"])
    (dehaze / "synthetic/part4").symlink_to(tmp_path / "elsewhere/part4", target_is_directory=True)
    part = _part(tmp_path, "3deg", "dehaze")
    assert [pair.name for pair in part.pairs] == ["synthetic/part1/0001_0.8_0.2.jpg", "synthetic/part4/0002_1_0.16.jpg"]


def test_a_broken_link_hazy_image_is_named_not_dropped(tmp_path):
    dehaze = _dehaze_tree(tmp_path)
    (dehaze / "hazy_outside.txt").unlink()
    (dehaze / "synthetic/part1/0002_1_0.2.jpg").symlink_to(tmp_path / "unmounted/0002_1_0.2.jpg")
    part = _part(tmp_path, "3deg", "dehaze")  # no list file: every image found is used
    assert any("0002_1_0.2.jpg: broken symbolic link" in problem for problem in file_problems(part, 16))


def test_images_in_hidden_folders_are_not_training_data(tmp_path):
    dehaze = _dehaze_tree(tmp_path)
    (dehaze / "hazy_outside.txt").unlink()
    _save(dehaze / "synthetic/part1/.ipynb_checkpoints/0001_0.8_0.2-checkpoint.jpg")
    _save(dehaze / "synthetic/__MACOSX/part1/0002_0.8_0.2.jpg")
    part = _part(tmp_path, "3deg", "dehaze")  # no list file: every image found is used
    assert [pair.name for pair in part.pairs] == ["synthetic/part1/0001_0.8_0.2.jpg"]


def test_an_empty_cdd11_subset_folder_is_a_problem(tmp_path):
    train = _cdd11_tree(tmp_path / "train", ["haze"])
    (train / "snow").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"subset folder \S+/train/snow holds no images"):
        _part(tmp_path, "cdd11", "cdd11")


def test_missing_cdd11_subsets_are_named_in_a_notice(tmp_path):
    _cdd11_tree(tmp_path / "train", ["low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain"])
    part = _part(tmp_path, "cdd11", "cdd11")
    assert any("3 of the 11 CDD-11 training subsets" in notice and "haze_snow, low_haze_rain, low_haze_snow" in notice
               for notice in part.notices)


def test_a_macosx_folder_is_no_cdd11_subset(tmp_path):
    train = _cdd11_tree(tmp_path / "train", ["haze"])
    (train / "__MACOSX").mkdir()
    (train / "__MACOSX/._0.png").write_bytes(b"\0\5\26\7")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        part = _part(tmp_path, "cdd11", "cdd11")
    assert [pair.name for pair in part.pairs] == ["haze/0.png"]


def test_an_unlisted_rainy_image_without_a_target_does_not_block_training(tmp_path):
    derain = tmp_path / "Train/Derain"
    _save(derain / "rainy/rain-1.png", 50)
    _save(derain / "gt/norain-1.png", 150)
    _save(derain / "rainy/rain-5.png", 50)
    (derain / "rainTrain.txt").write_text("rainy/rain-1.png\n")
    part = _part(tmp_path, "3deg", "derain")
    assert [pair.name for pair in part.pairs] == ["rain-1.png"]


def test_an_unlisted_hazy_image_without_a_clean_image_does_not_block_training(tmp_path):
    dehaze = _dehaze_tree(tmp_path)
    _save(dehaze / "synthetic/part1/0099_1_0.2.jpg")
    part = _part(tmp_path, "3deg", "dehaze")
    assert [pair.name for pair in part.pairs] == ["synthetic/part1/0001_0.8_0.2.jpg"]


def test_promptir_train_folder_does_not_shadow_the_cdd11_training_folder(tmp_path):
    _save(tmp_path / "train/denoise/00001.png")
    _cdd11_tree(tmp_path / "CDD-11_train", ["haze"])
    part = _part(tmp_path, "cdd11", "cdd11")
    assert part.location == str(tmp_path / "CDD-11_train")
