"""Brightness augmentation of training pairs (the `sample` recipes): dark photos are not only low-light inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench_ir.data.sample import load_sample_photo
from bench_ir.train.data import brightness_factor, build_training_set, darken
from bench_ir.train.recipes import BrightnessSpec, DataSpec, load_recipe
from bench_ir.yamlio import SpecError


def _sets(spec: BrightnessSpec):
    """The sample recipe's training set with ``spec`` and without any darkening."""
    recipe = load_recipe("sample")
    plain = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], brightness=None)])
    lit = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], brightness=spec)])
    return build_training_set(lit, None, 32, seed=3), build_training_set(plain, None, 32, seed=3)


def _uint8(t: torch.Tensor) -> np.ndarray:
    return (t * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("recipe", ["sample", "sample-cpu", "sample-cpu-finetune"])
def test_the_sample_recipes_darken_some_pairs_but_never_low_light_pairs(recipe):
    for part in load_recipe(recipe).data:
        spec = part.brightness
        assert spec is not None and 0 < spec.probability < 1 and spec.min_factor <= 0.1
        assert spec.skip == ["low_light"]


def test_a_darkened_degradation_item_degrades_the_darkened_photo(monkeypatch):
    """The degradation gets the darker photo (so rain streaks and airlight keep their full strength, as on the
    sample test photo hubble_deep_field); recorded through an identity degradation."""
    import bench_ir.train.data as train_data

    given = []
    monkeypatch.setattr(train_data, "apply_degradations", lambda clean, *args: given.append(clean) or clean)
    lit, plain = _sets(BrightnessSpec(probability=1.0, min_factor=0.1, max_factor=0.5))
    checked = 0
    for index in range(0, len(lit), 37):
        part, pair, variant = lit.locate(index)
        factor = brightness_factor(part.spec.brightness, variant, 3, 0, index)
        if variant[0] != "degradation" or factor is None:
            continue
        item, base = lit[(0, index)], plain[(0, index)]
        assert np.array_equal(given[-2], darken(given[-1], factor))
        assert np.array_equal(_uint8(item["target"]), darken(_uint8(base["target"]), factor))
        assert torch.equal(item["input"], item["target"])  # identity degradation of the darker photo
        checked += 1
    assert checked >= 5


def test_a_darkened_stored_pair_is_its_input_and_target_scaled_by_one_factor(tmp_path):
    from PIL import Image

    photo = load_sample_photo("astronaut")
    for folder, image in (("input", photo // 2 + 60), ("target", photo)):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "pairs" / folder / "astronaut.png")
    recipe = load_recipe("sample")
    stored = DataSpec(task="pairs", layout="paired", root="pairs", input="input", target="target")
    sets = [build_training_set(dataclasses.replace(recipe, data=[dataclasses.replace(stored, brightness=light)]),
                               tmp_path, 32, seed=3) for light in (BrightnessSpec(probability=1.0), None)]
    factor = brightness_factor(BrightnessSpec(probability=1.0), sets[0].locate(0)[2], 3, 0, 0)
    (dark, base) = (s[(0, 0)] for s in sets)
    assert factor is not None and factor < 1
    for key in ("input", "target"):
        assert np.array_equal(_uint8(dark[key]), darken(_uint8(base[key]), factor))


def test_a_darkened_noise_item_is_a_darker_clean_patch_with_the_same_noise_at_full_sigma():
    lit, plain = _sets(BrightnessSpec(probability=1.0, min_factor=0.1, max_factor=0.5))
    noise_items = [i for i in range(len(lit)) if lit.locate(i)[2][0] == "noise"]
    for index in noise_items[::40][:6]:
        sigma = lit.locate(index)[2][1]
        factor = brightness_factor(lit.parts[0].spec.brightness, ("noise", sigma), 3, 0, index)
        dark, base = lit[(0, index)], plain[(0, index)]
        dark_in, dark_target = _uint8(dark["input"]).astype(int), _uint8(dark["target"]).astype(int)
        base_in, base_target = _uint8(base["input"]).astype(int), _uint8(base["target"]).astype(int)
        assert np.array_equal(dark_target, darken(base_target.astype(np.uint8), factor))
        unclipped = (dark_in > 0) & (dark_in < 255) & (base_in > 0) & (base_in < 255)
        assert unclipped.mean() > 0.3
        # the very noise of the plain item, not that noise x factor
        assert np.array_equal((dark_in - dark_target)[unclipped], (base_in - base_target)[unclipped])


def test_low_light_pairs_are_never_darkened():
    lit, plain = _sets(BrightnessSpec(probability=1.0))
    low_light = [i for i in range(len(lit)) if lit.locate(i)[2] == ("degradation", "low_light")]
    assert low_light
    for index in low_light[:6]:
        assert torch.equal(lit[(0, index)]["input"], plain[(0, index)]["input"])
        assert torch.equal(lit[(0, index)]["target"], plain[(0, index)]["target"])


def test_noise_in_skip_leaves_every_noise_item_as_it_is_and_still_darkens_the_others():
    spec = BrightnessSpec(probability=1.0, skip=["noise"])
    assert all(brightness_factor(spec, ("noise", sigma), 0, 0, index) is None
               for sigma in (15.0, 25.0, 50.0) for index in range(20))
    assert brightness_factor(spec, ("degradation", "low_light"), 0, 0, 0) is not None
    assert brightness_factor(spec, ("degradation", "haze"), 0, 0, 0) is not None


def test_an_unknown_name_in_skip_is_a_recipe_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninclude: " + str(load_recipe("sample").source) + "\ndata:\n"
                    "  - {task: sample, layout: sample, sigmas: [25],\n"
                    "     brightness: {probability: 0.5, skip: [lowlight]}}\n")
    with pytest.raises(SpecError, match="names no degradation"):
        load_recipe(path)


def test_the_share_of_darkened_items_follows_the_probability():
    spec = BrightnessSpec(probability=0.3)
    draws = [brightness_factor(spec, ("noise", 25.0), 0, epoch, index) for epoch in range(4) for index in range(500)]
    share = sum(d is not None for d in draws) / len(draws)
    assert share == pytest.approx(0.3, abs=0.03)


def test_an_impossible_brightness_range_is_a_recipe_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninclude: " + str(load_recipe("sample").source) + "\ndata:\n"
                    "  - {task: sample, layout: sample, sigmas: [25], brightness: {probability: 0.5, min_factor: 0}}\n")
    with pytest.raises(SpecError, match="brightness needs"):
        load_recipe(path)


def test_float_noise_images_are_darkened_without_quantisation():
    image = np.linspace(0, 1, 12).reshape(2, 2, 3)
    assert np.array_equal(darken(image, 0.25), image * 0.25)
