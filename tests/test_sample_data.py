"""Built-in sample data: bundled scikit-image photos, and a sample dataset for every task of every protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench_ir.data.datasets import TaskDataset
from bench_ir.data.sample import (
    SAMPLE_EVAL_IMAGES,
    SAMPLE_MAX_SIDE,
    SAMPLE_NONE_CROP_MULTIPLE,
    SAMPLE_TRAIN_IMAGES,
    build_sample_task_dataset,
    load_sample_photo,
)
from bench_ir.data.synthesis import apply_degradations, gaussian_noise_uint8
from bench_ir.protocol import list_protocols, load_protocol

ALL_TASKS = [(p, t.name) for p in list_protocols() for t in load_protocol(p).tasks]


def test_evaluation_and_training_photos_are_disjoint():
    assert not set(SAMPLE_EVAL_IMAGES) & set(SAMPLE_TRAIN_IMAGES)
    assert SAMPLE_EVAL_IMAGES == ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")


@pytest.mark.parametrize("name", SAMPLE_EVAL_IMAGES + SAMPLE_TRAIN_IMAGES)
def test_every_sample_photo_loads_offline_as_rgb_with_a_long_side_of_at_most_the_default(name):
    photo = load_sample_photo(name)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    assert max(photo.shape[:2]) <= SAMPLE_MAX_SIDE and min(photo.shape[:2]) >= 64


def test_downscaling_keeps_the_aspect_ratio_with_realistic_odd_sizes():
    assert load_sample_photo("coffee", max_side=256).shape[:2] == (171, 256)  # 400x600
    assert load_sample_photo("chelsea", max_side=256).shape[:2] == (170, 256)  # 300x451
    assert load_sample_photo("astronaut", max_side=128).shape[:2] == (128, 128)
    assert load_sample_photo("chelsea", max_side=1000).shape[:2] == (300, 451)  # never enlarged


def test_sample_photo_is_deterministic_and_a_private_copy():
    first = load_sample_photo("rocket")
    first[:] = 0
    assert load_sample_photo("rocket").any()
    assert load_sample_photo("rocket").tobytes() == load_sample_photo("rocket").tobytes()


def test_unknown_sample_photo_lists_the_known_ones():
    with pytest.raises(KeyError, match="astronaut"):
        load_sample_photo("lena")


@pytest.mark.parametrize("protocol_name,task_name", ALL_TASKS)
def test_every_task_of_every_protocol_has_a_sample_dataset(protocol_name, task_name):
    protocol = load_protocol(protocol_name)
    dataset = build_sample_task_dataset(protocol, task_name)
    crop = protocol.crop_for(protocol.task(task_name))
    assert isinstance(dataset, TaskDataset) and dataset.is_sample
    assert dataset.names == sorted(SAMPLE_EVAL_IMAGES)
    sizes = dataset.item_sizes()
    for index, name in enumerate(dataset.names):
        item = dataset[index]
        assert item["name"] == name
        assert item["input"].shape == item["target"].shape == (3, *sizes[index])
        assert not torch.equal(item["input"], item["target"])
        photo_size = load_sample_photo(name).shape[:2]
        if crop.rule == "center_multiple":
            assert sizes[index] == (photo_size[0] // crop.base * crop.base, photo_size[1] // crop.base * crop.base)
        elif crop.rule == "none":
            assert all(side % SAMPLE_NONE_CROP_MULTIPLE == 0 for side in sizes[index])
        else:
            assert sizes[index] == photo_size


def test_sample_datasets_are_deterministic():
    protocol = load_protocol("cdd11")
    first = build_sample_task_dataset(protocol, "low_haze_snow")[2]
    again = build_sample_task_dataset(protocol, "low_haze_snow")[2]
    assert torch.equal(first["input"], again["input"]) and torch.equal(first["target"], again["target"])


def test_sample_input_is_the_tasks_degradations_seeded_by_image_and_task():
    protocol = load_protocol("allweather")
    dataset = build_sample_task_dataset(protocol, "outdoor-rain")
    item = dataset[0]
    clean = (item["target"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    expected = apply_degradations(clean, ["haze", "heavy_rain"], "astronaut", "outdoor-rain", "sample")
    assert torch.equal(item["input"], torch.from_numpy(expected).permute(2, 0, 1).float() / 255)


def test_sample_noise_follows_the_reference_stream_over_the_sorted_sample_list():
    protocol = load_protocol("3deg")
    dataset = build_sample_task_dataset(protocol, "denoise-50")
    cleans = [(dataset[i]["target"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
              for i in range(len(dataset))]
    rng = np.random.RandomState(0)
    for _sigma in (15, 25):
        for clean in cleans:
            rng.randn(*clean.shape)
    for i, clean in enumerate(cleans):
        expected = gaussian_noise_uint8(clean, 50, rng.randn(*clean.shape))
        assert torch.equal(dataset[i]["input"], torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
