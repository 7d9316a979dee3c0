"""Training data: official folder layouts, pairing, repeats, deterministic patches, sharding, bad folders."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from bench_ir.data.datasets import DatasetNotFoundError
from bench_ir.train.data import EpochBatchSampler, TrainingSet, build_training_set, dihedral
from bench_ir.train.recipes import DataSpec, load_recipe

PHOTOS = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]


def _photo(i: int, height: int = 56, width: int = 72) -> np.ndarray:
    photo = PHOTOS[i % len(PHOTOS)]
    return np.ascontiguousarray(photo[100:100 + height, 120:120 + width])


def _save(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def make_train_tree(root) -> None:
    """A miniature of the official Train/ folder: 2 images per task, degraded = clean darkened."""
    for i in range(2):
        clean = _photo(i)
        degraded = (clean // 2).astype(np.uint8)
        _save(root / "Train/Denoise" / f"{i:05d}.png", clean)
        _save(root / "Train/Derain/rainy" / f"rain-{i + 1}.png", degraded)
        _save(root / "Train/Derain/gt" / f"norain-{i + 1}.png", clean)
        _save(root / "Train/Dehaze/synthetic/part1" / f"{i + 1:04d}_0.8_0.2.jpg", degraded)
        _save(root / "Train/Dehaze/original" / f"{i + 1:04d}.jpg", clean)
        _save(root / "Train/Deblur/blur" / f"GOPR_{i}.png", degraded)
        _save(root / "Train/Deblur/sharp" / f"GOPR_{i}.png", clean)
        _save(root / "Train/Enhance/low" / f"{i + 10}.png", degraded)
        _save(root / "Train/Enhance/gt" / f"{i + 10}.png", clean)


def test_dihedral_modes_are_the_official_flips_and_rotations():
    image = _photo(0)
    assert np.array_equal(dihedral(image, 0), image)
    assert np.array_equal(dihedral(image, 1), np.flipud(image))
    assert np.array_equal(dihedral(image, 2), np.rot90(image))
    assert np.array_equal(dihedral(image, 7), np.flipud(np.rot90(image, k=3)))
    assert len({dihedral(image, m).tobytes() for m in range(8)}) == 8


def test_5deg_layout_pairs_every_task_and_counts_repeats(tmp_path):
    make_train_tree(tmp_path)
    dataset = build_training_set(load_recipe("5deg"), tmp_path, patch_size=32, seed=0)
    items = {part["task"]: part["items"] for part in dataset.describe()}
    assert items == {"denoise": 2 * 3 * 3, "derain": 2 * 120, "dehaze": 2, "deblur": 2 * 5, "lowlight": 2 * 20}
    assert len(dataset) == sum(items.values())
    derain = next(p for p in dataset.parts if p.spec.task == "derain")
    assert [(p.input.name, p.target.name) for p in derain.pairs] == [("rain-1.png", "norain-1.png"),
                                                                     ("rain-2.png", "norain-2.png")]
    dehaze = next(p for p in dataset.parts if p.spec.task == "dehaze")
    assert [p.target.name for p in dehaze.pairs] == ["0001.jpg", "0002.jpg"]
    assert any("no list file" in n and "hazy_outside.txt" in n for n in dataset.notices)


def test_a_paired_patch_cuts_input_and_target_at_the_same_place(tmp_path):
    make_train_tree(tmp_path)
    dataset = build_training_set(load_recipe("5deg"), tmp_path, patch_size=32, seed=0)
    start = next(i for i, part in enumerate(dataset.parts) if part.spec.task == "lowlight")
    index = sum(p.size for p in dataset.parts[:start])
    item = dataset[(0, index)]
    assert item["task"] == "lowlight" and item["input"].shape == (3, 32, 32)
    expected = torch.floor(item["target"] * 255 / 2 + 1e-4) / 255  # the degraded file is clean // 2
    assert torch.allclose(item["input"], expected, atol=1e-6)


def test_patches_are_a_pure_function_of_seed_epoch_and_index(tmp_path):
    make_train_tree(tmp_path)
    recipe = load_recipe("5deg")
    first = build_training_set(recipe, tmp_path, patch_size=32, seed=0)
    again = build_training_set(recipe, tmp_path, patch_size=32, seed=0)
    other_seed = build_training_set(recipe, tmp_path, patch_size=32, seed=1)
    for key in [(0, 0), (3, 5), (0, 300)]:
        assert torch.equal(first[key]["input"], again[key]["input"])
        assert torch.equal(first[key]["target"], again[key]["target"])
    assert not torch.equal(first[(0, 0)]["input"], first[(1, 0)]["input"])
    assert not torch.equal(first[(0, 0)]["input"], other_seed[(0, 0)]["input"])


def test_denoising_inputs_are_clipped_gaussian_noise_truncated_to_8_bits(tmp_path):
    make_train_tree(tmp_path)
    dataset = build_training_set(load_recipe("denoise"), tmp_path, patch_size=48, seed=0)
    residuals = []
    for index in range(len(dataset)):
        part, _, (kind, sigma) = dataset.locate(index)
        if sigma != 25.0:
            continue
        item = dataset[(0, index)]
        noisy, clean = item["input"] * 255, item["target"] * 255
        assert torch.allclose(noisy, noisy.round(), atol=1e-3)  # whole 8-bit levels
        inside = (clean > 60) & (clean < 195)  # far from clipping
        residuals.append((noisy - clean)[inside])
    residual = torch.cat(residuals)
    assert residual.std().item() == pytest.approx(25.0, rel=0.05)
    assert residual.mean().item() == pytest.approx(-0.5, abs=0.3)  # truncation toward zero loses half a level


def test_a_list_file_selects_files_and_a_missing_listed_file_is_an_error(tmp_path):
    make_train_tree(tmp_path)
    (tmp_path / "Train/Derain/rainTrain.txt").write_text("rainy/rain-2.png\n")
    recipe = load_recipe("derain")
    dataset = build_training_set(recipe, tmp_path, patch_size=32, seed=0)
    assert [p.input.name for p in dataset.parts[0].pairs] == ["rain-2.png"]
    (tmp_path / "Train/Derain/rainTrain.txt").write_text("rainy/rain-2.png\nrainy/rain-9.png\n")
    with pytest.raises(DatasetNotFoundError, match=r"task 'derain': 1 file\(s\) of the list .*rain-9.png"):
        build_training_set(recipe, tmp_path, patch_size=32, seed=0)


def test_a_missing_training_folder_names_the_task_and_the_paths_tried(tmp_path):
    make_train_tree(tmp_path)
    for path in sorted((tmp_path / "Train/Enhance").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "Train/Enhance").rmdir()
    with pytest.raises(DatasetNotFoundError, match=r"task 'lowlight'.*Train/Enhance"):
        build_training_set(load_recipe("5deg"), tmp_path, patch_size=32, seed=0)


def test_an_empty_training_folder_names_the_task(tmp_path):
    (tmp_path / "Train/Denoise").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"task 'denoise'.*no training images"):
        build_training_set(load_recipe("denoise"), tmp_path, patch_size=32, seed=0)


def test_recipes_with_folders_need_a_data_root():
    needs = r"recipe '3deg' needs the folder holding .* \(pass --data-root or set BENCH_IR_DATA_ROOT\)"
    with pytest.raises(FileNotFoundError, match=needs):
        build_training_set(load_recipe("3deg"), None, patch_size=32, seed=0)


def test_an_image_smaller_than_the_patch_is_an_error_naming_it(tmp_path):
    make_train_tree(tmp_path)
    dataset = build_training_set(load_recipe("derain"), tmp_path, patch_size=64, seed=0)
    with pytest.raises(ValueError, match=r"rain-\d\.png is 48x64 \(HxW\) after the x16 centre crop, smaller than"):
        dataset[(0, 0)]


def test_check_files_finds_an_image_smaller_than_the_patch_before_training(tmp_path):
    make_train_tree(tmp_path)
    dataset = build_training_set(load_recipe("derain"), tmp_path, patch_size=64, seed=0)
    with pytest.raises(ValueError, match=r"norain-1\.png is 48x64 \(HxW\) after the x16 centre crop, smaller than"):
        dataset.check_files()


def test_check_files_finds_a_pair_of_two_sizes_from_the_headers(tmp_path, monkeypatch):
    make_train_tree(tmp_path)
    _save(tmp_path / "Train/Derain/rainy/rain-2.png", _photo(1, height=60))
    dataset = build_training_set(load_recipe("derain"), tmp_path, patch_size=32, seed=0)
    monkeypatch.setattr("bench_ir.train.data.read_rgb_uint8", lambda path: pytest.fail(f"{path} was decoded"))
    with pytest.raises(ValueError, match=r"rain-2\.png is 60x72 \(HxW\) but its target \S+norain-2\.png is 56x72"):
        dataset.check_files()


def test_cdd11_layout_pairs_each_subset_with_clear(tmp_path):
    for i in range(2):
        _save(tmp_path / "train/clear" / f"{i}.png", _photo(i))
        _save(tmp_path / "train/haze" / f"{i}.png", _photo(i) // 2)
        _save(tmp_path / "train/low_rain" / f"{i}.png", _photo(i) // 3)
    recipe = load_recipe("cdd11")
    dataset = build_training_set(recipe, tmp_path, patch_size=32, seed=0)
    assert [p.name for p in dataset.parts[0].pairs] == ["haze/0.png", "haze/1.png", "low_rain/0.png", "low_rain/1.png"]
    assert len(dataset) == 4 * 4
    only = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], subsets=["snow"])])
    with pytest.raises(DatasetNotFoundError, match=r"subset folder\(s\) \['snow'\] not found"):
        build_training_set(only, tmp_path, patch_size=32, seed=0)


def test_sample_recipe_synthesises_each_degradation_of_the_5deg_sample_protocol():
    dataset = build_training_set(load_recipe("sample"), None, patch_size=64, seed=0)
    part = dataset.parts[0]
    assert [v for v in part.variants] == [("degradation", "haze"), ("degradation", "rain"),
                                          ("degradation", "motion_blur"), ("degradation", "low_light"),
                                          ("noise", 15.0), ("noise", 25.0), ("noise", 50.0)]
    assert [v for v in dataset.parts[1].variants] == [("degradation", "motion_blur")]  # blur weighted up
    assert len(dataset) == 14 * (7 * 6 + 16)
    blurred = sum(dataset.locate(i)[2] == ("degradation", "motion_blur") for i in range(len(dataset)))
    assert blurred / len(dataset) == pytest.approx(0.38, abs=0.005)  # 25% with blur drawn twice: not learnt
    item = dataset[(0, 0)]
    assert item["input"].shape == item["target"].shape == (3, 64, 64)
    assert not torch.equal(item["input"], item["target"])


def test_global_batches_do_not_depend_on_the_number_of_processes():
    single = EpochBatchSampler(50, global_batch=8, seed=3)
    ranks = [EpochBatchSampler(50, global_batch=8, seed=3, rank=r, world_size=2) for r in range(2)]
    for sampler in (single, *ranks):
        sampler.set_epoch(4)
    batches = list(single)
    split = [list(s) for s in ranks]
    assert len(batches) == 6  # 50 // 8, drop_last
    for k, batch in enumerate(batches):
        halves = [split[0][k], split[1][k]]
        assert [len(h) for h in halves] == [4, 4]
        assert not set(halves[0]) & set(halves[1])
        assert set(halves[0]) | set(halves[1]) == set(batch)
    resumed = EpochBatchSampler(50, global_batch=8, seed=3)
    resumed.set_epoch(4, start_step=4)
    assert list(resumed) == batches[4:]


def test_a_global_batch_must_split_evenly_over_processes():
    with pytest.raises(ValueError, match="batch size 5 is not divisible by the 2 processes"):
        EpochBatchSampler(50, global_batch=5, seed=0, rank=0, world_size=2)


def test_training_set_rejects_keys_out_of_range():
    dataset = TrainingSet([], patch_size=32, augmentation="none", seed=0)
    with pytest.raises(IndexError):
        dataset[(0, 0)]
    assert DataSpec(task="t", layout="sample").roots == [""]


def test_a_training_folder_that_leaves_a_relative_data_root_is_refused(tmp_path, monkeypatch):
    """The check joins a relative root to --data-root once (a relative --data-root was joined twice, so a root
    climbing out of it passed)."""
    from bench_ir.safety import UnsafePathError
    from bench_ir.train.data import _find_root
    from bench_ir.train.recipes import DataSpec

    (tmp_path / "outside").mkdir()
    (tmp_path / "d" / "good").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = DataSpec(task="derain", layout="derain", root="../../outside")
    with pytest.raises(UnsafePathError, match=f"leaves d/good \\(it resolves to {tmp_path / 'outside'}\\)"):
        _find_root(spec, Path("d/good"))


def test_a_list_file_saved_with_a_byte_order_mark_lists_its_first_entry_by_its_name(tmp_path):
    from bench_ir.train.data import _listed

    (tmp_path / "list.txt").write_bytes("\ufeff0001.png\r\n0002.png\r\n".encode())
    spec = DataSpec(task="derain", layout="derain", root="x", list_file="list.txt")
    assert _listed(spec, tmp_path, []) == {"0001.png", "0002.png"}


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        from bench_ir.data.io import ImageReadError

        raise ImageReadError("/data/rain-1.png: corrupt or truncated image (image file is truncated)")


def test_an_error_in_a_loader_worker_is_raised_as_the_worker_raised_it_not_with_its_traceback():
    from bench_ir.data.io import ImageReadError
    from bench_ir.train.trainer import batches_of

    loader = torch.utils.data.DataLoader(_Unreadable(), num_workers=1)
    with pytest.raises(ImageReadError) as caught:
        next(batches_of(loader))
    assert str(caught.value) == "/data/rain-1.png: corrupt or truncated image (image file is truncated)"
