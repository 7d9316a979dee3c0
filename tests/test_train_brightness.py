"""Brightness augmentation of training pairs (the `sample` recipes): dark photos are not only low-light inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench_ir.train.data import build_training_set, darken, draw_darkening
from bench_ir.train.recipes import BrightnessSpec, load_recipe
from bench_ir.yamlio import SpecError


def _sets(spec: BrightnessSpec):
    """The sample recipe's first training part with ``spec`` and without any darkening (and no contrast change)."""
    recipe = load_recipe("sample")
    plain = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], brightness=None, contrast=None)])
    lit = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], brightness=spec, contrast=None)])
    return build_training_set(lit, None, 32, seed=3), build_training_set(plain, None, 32, seed=3)


def _uint8(t: torch.Tensor) -> np.ndarray:
    return (t * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("recipe", ["sample", "sample-cpu", "sample-cpu-finetune"])
def test_the_sample_recipes_darken_some_pairs_as_dark_as_hubble_keeping_white_but_never_low_light_pairs(recipe):
    hubble_median, photo_median = 0.051, 0.471  # hubble_deep_field and astronaut at 192 px
    for part in load_recipe(recipe).data:
        spec = part.brightness
        assert spec is not None and 0 < spec.probability < 1
        assert spec.min_factor == spec.max_factor == 1.0  # white stays white (an under-exposed input is dim)
        assert photo_median**spec.max_gamma <= hubble_median < photo_median**spec.min_gamma
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
        darkening = draw_darkening(part.spec.brightness, variant, 3, 0, index)
        if variant[0] != "degradation" or darkening is None:
            continue
        item, base = lit[(0, index)], plain[(0, index)]
        assert np.array_equal(given[-2], darken(given[-1], *darkening))
        assert np.array_equal(_uint8(item["target"]), darken(_uint8(base["target"]), *darkening))
        assert torch.equal(item["input"], item["target"])  # identity degradation of the darker photo
        checked += 1
    assert checked >= 5


def test_a_darkened_stored_pair_is_its_input_and_target_scaled_by_one_factor(stored_pair_sets):
    sets = stored_pair_sets("brightness", [BrightnessSpec(probability=1.0), None])
    darkening = draw_darkening(BrightnessSpec(probability=1.0), sets[0].locate(0)[2], 3, 0, 0)
    (dark, base) = (s[(0, 0)] for s in sets)
    assert darkening is not None and darkening.factor < 1
    for key in ("input", "target"):
        assert np.array_equal(_uint8(dark[key]), darken(_uint8(base[key]), *darkening))


def test_a_darkened_noise_item_is_a_darker_clean_patch_with_the_same_noise_at_full_sigma():
    lit, plain = _sets(BrightnessSpec(probability=1.0, min_factor=0.1, max_factor=0.5))
    noise_items = [i for i in range(len(lit)) if lit.locate(i)[2][0] == "noise"]
    for index in noise_items[::40][:6]:
        sigma = lit.locate(index)[2][1]
        darkening = draw_darkening(lit.parts[0].spec.brightness, ("noise", sigma), 3, 0, index)
        dark, base = lit[(0, index)], plain[(0, index)]
        dark_in, dark_target = _uint8(dark["input"]).astype(int), _uint8(dark["target"]).astype(int)
        base_in, base_target = _uint8(base["input"]).astype(int), _uint8(base["target"]).astype(int)
        assert np.array_equal(dark_target, darken(base_target.astype(np.uint8), *darkening))
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
    assert all(draw_darkening(spec, ("noise", sigma), 0, 0, index) is None
               for sigma in (15.0, 25.0, 50.0) for index in range(20))
    assert draw_darkening(spec, ("degradation", "low_light"), 0, 0, 0) is not None
    assert draw_darkening(spec, ("degradation", "haze"), 0, 0, 0) is not None


def test_an_unknown_name_in_skip_is_a_recipe_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninclude: " + str(load_recipe("sample").source) + "\ndata:\n"
                    "  - {task: sample, layout: sample, sigmas: [25],\n"
                    "     brightness: {probability: 0.5, skip: [lowlight]}}\n")
    with pytest.raises(SpecError, match="names no degradation"):
        load_recipe(path)


def test_the_share_of_darkened_items_follows_the_probability():
    spec = BrightnessSpec(probability=0.3)
    draws = [draw_darkening(spec, ("noise", 25.0), 0, epoch, index) for epoch in range(4) for index in range(500)]
    share = sum(d is not None for d in draws) / len(draws)
    assert share == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize(("setting", "message"), [("min_factor: 0", "0 < min_factor"),
                                                   ("max_factor: 1.5", "max_factor <= 1"),
                                                   ("min_gamma: 0.5", "1 <= min_gamma")])
def test_an_impossible_brightness_range_is_a_recipe_error(tmp_path, setting, message):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninclude: " + str(load_recipe("sample").source) + "\ndata:\n"
                    f"  - {{task: sample, layout: sample, sigmas: [25], "
                    f"brightness: {{probability: 0.5, {setting}}}}}\n")
    with pytest.raises(SpecError, match=message):
        load_recipe(path)


def test_float_noise_images_are_darkened_without_quantisation():
    image = np.linspace(0, 1, 12).reshape(2, 2, 3)
    assert np.array_equal(darken(image, 0.25), image * 0.25)


def test_a_gamma_darkens_the_mid_tones_but_keeps_black_black_and_white_white():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert darken(image, 1.0, 2.0).tolist() == [[[0, 64, 255]]]  # 255 * (128/255)^2 = 64.25
    assert darken(image, 0.5, 2.0).tolist() == [[[0, 32, 128]]]  # then the factor: 127.5 rounds half to even


def test_a_gamma_on_float_noise_images_is_not_quantised():
    image = np.linspace(0, 1, 12).reshape(2, 2, 3)
    assert np.allclose(darken(image, 0.5, 3.0), 0.5 * image**3)


def test_a_gamma_range_leaves_the_choice_and_factor_of_every_item_as_without_it():
    """The gamma is drawn after the factor, so adding a gamma range changes nothing else of an item."""
    plain = BrightnessSpec(probability=0.5, min_factor=0.2)
    curved = dataclasses.replace(plain, min_gamma=1.5, max_gamma=4.0)
    for index in range(200):
        without, with_gamma = (draw_darkening(spec, ("noise", 25.0), 1, 2, index) for spec in (plain, curved))
        assert (without is None) == (with_gamma is None)
        if without is not None:
            assert without == (with_gamma.factor, 1.0) and 1.5 <= with_gamma.gamma <= 4.0

