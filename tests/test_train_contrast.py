"""Contrast augmentation of training pairs: the overall tone of a photo is not a degradation to undo."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench_ir.data.sample import load_sample_photo
from bench_ir.data.synthesis import apply_degradations
from bench_ir.train.data import build_training_set, draw_contrast, reduce_contrast
from bench_ir.train.recipes import ContrastSpec, load_recipe, recipe_sha256
from bench_ir.yamlio import SpecError

ALWAYS = ContrastSpec(probability=1.0)


def _sets(spec: ContrastSpec):
    """The sample recipe's first training part with ``spec`` and without any contrast change."""
    recipe = load_recipe("sample")
    plain = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], contrast=None)])
    flat = dataclasses.replace(recipe, data=[dataclasses.replace(recipe.data[0], contrast=spec)])
    return build_training_set(flat, None, 32, seed=3), build_training_set(plain, None, 32, seed=3)


def _uint8(t: torch.Tensor) -> np.ndarray:
    return (t * 255).round().byte().permute(1, 2, 0).numpy()


def _items_of(dataset, name: str) -> list[int]:
    return [i for i in range(len(dataset)) if dataset.locate(i)[2] in (("degradation", name), (name, None))
            or (name == "noise" and dataset.locate(i)[2][0] == "noise")]


@pytest.mark.parametrize("recipe", ["sample", "sample-cpu", "sample-cpu-finetune"])
def test_the_sample_recipes_flatten_half_of_the_motion_blur_pairs_and_nothing_else(recipe):
    for part in load_recipe(recipe).data:
        assert part.contrast == ContrastSpec(probability=0.5, only=["motion_blur"])


def test_the_line_lifts_black_and_lowers_white_rounding_half_to_even():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    # 0.25 * 255 = 63.75 -> 64; (0.25 + 0.5 * 128/255) * 255 = 127.75 -> 128; 0.75 * 255 = 191.25 -> 191
    assert reduce_contrast(image, 0.5, 0.25).tolist() == [[[64, 128, 191]]]


def test_float_noise_images_go_through_the_line_without_quantisation():
    image = np.linspace(0, 1, 12).reshape(2, 2, 3)
    assert np.allclose(reduce_contrast(image, 0.6, 0.1), 0.1 + 0.6 * image)


def test_a_changed_item_is_the_plain_item_with_input_and_target_through_one_line():
    """Patch, augmentation, darkening and degradation are drawn as without the option."""
    flat, plain = _sets(ALWAYS)
    blur = _items_of(flat, "motion_blur")
    for index in blur[:: max(1, len(blur) // 6)]:
        change = draw_contrast(ALWAYS, ("degradation", "motion_blur"), 3, 0, index)
        assert change is not None
        item, base = flat[(0, index)], plain[(0, index)]
        for key in ("input", "target"):
            assert np.array_equal(_uint8(item[key]), reduce_contrast(_uint8(base[key]), *change))


def test_for_motion_blur_the_changed_pair_is_the_pair_of_the_changed_photo_within_one_level():
    """The line commutes with a normalised blur kernel, so the changed pair is a correct (blurred, sharp) pair."""
    photo = load_sample_photo("chelsea", 128)
    scale, offset = 0.6, 0.2
    blurred_then_line = reduce_contrast(apply_degradations(photo, ["motion_blur"], "t", "chelsea", 0, 0, 0),
                                        scale, offset)
    line_then_blurred = apply_degradations(reduce_contrast(photo, scale, offset), ["motion_blur"], "t", "chelsea",
                                           0, 0, 0)
    assert np.abs(blurred_then_line.astype(int) - line_then_blurred.astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["noise", "low_light"])
def test_noise_and_low_light_items_are_left_as_they_are_by_default(name):
    flat, plain = _sets(ALWAYS)
    indices = _items_of(flat, name)
    assert indices
    for index in indices[:4]:
        assert torch.equal(flat[(0, index)]["input"], plain[(0, index)]["input"])
        assert torch.equal(flat[(0, index)]["target"], plain[(0, index)]["target"])


def test_only_restricts_the_change_to_the_named_variants():
    spec = ContrastSpec(probability=1.0, only=["motion_blur"])
    assert draw_contrast(spec, ("degradation", "motion_blur"), 0, 0, 0) is not None
    assert all(draw_contrast(spec, ("degradation", other), 0, 0, 0) is None for other in ("haze", "rain"))
    assert draw_contrast(spec, ("pair", None), 0, 0, 0) is None


def test_a_stored_pair_goes_through_the_line_input_and_target_alike(stored_pair_sets):
    sets = stored_pair_sets("contrast", [ALWAYS, None])
    change = draw_contrast(ALWAYS, ("pair", None), 3, 0, 0)
    (flat, base) = (s[(0, 0)] for s in sets)
    assert change is not None
    for key in ("input", "target"):
        assert np.array_equal(_uint8(flat[key]), reduce_contrast(_uint8(base[key]), *change))


def test_scale_and_offset_stay_in_their_ranges_and_white_never_clips():
    spec = ContrastSpec(probability=1.0, min_scale=0.5, max_scale=0.9, min_offset=0.05, max_offset=0.4)
    changes = [draw_contrast(spec, ("degradation", "haze"), 0, epoch, index)
               for epoch in range(3) for index in range(300)]
    assert all(0.5 <= c.scale <= 0.9 and 0.05 <= c.offset <= 0.4 and c.offset + c.scale <= 1 for c in changes)
    assert max(c.offset for c in changes) > 0.3 and min(c.scale for c in changes) < 0.55


def test_the_share_of_changed_items_follows_the_probability():
    spec = ContrastSpec(probability=0.5)
    draws = [draw_contrast(spec, ("degradation", "motion_blur"), 0, epoch, index)
             for epoch in range(4) for index in range(500)]
    assert sum(d is not None for d in draws) / len(draws) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(("setting", "message"), [("min_scale: 0", "0 < min_scale"),
                                                   ("max_scale: 1.2", "max_scale <= 1"),
                                                   ("min_offset: 0.3, max_scale: 0.8", "min_offset \\+ max_scale"),
                                                   ("min_offset: 0.2, max_offset: 0.1", "min_offset <= max_offset"),
                                                   ("only: [blur]", "contrast only \\['blur'\\] names no"),
                                                   ("skip: [lowlight]", "contrast skip")])
def test_an_impossible_contrast_setting_is_a_recipe_error(tmp_path, setting, message):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninclude: " + str(load_recipe("sample").source) + "\ndata:\n"
                    f"  - {{task: sample, layout: sample, sigmas: [25], contrast: {{probability: 0.5, {setting}}}}}\n")
    with pytest.raises(SpecError, match=message):
        load_recipe(path)


def test_a_recipe_without_the_option_keeps_the_hash_it_had_before_the_option_existed():
    """Runs started before ``contrast`` existed still resume: the unset option is not part of the identity."""
    resolved = load_recipe("5deg").to_dict()
    assert all(entry["contrast"] is None for entry in resolved["data"])
    without_key = {**resolved, "data": [{k: v for k, v in entry.items() if k != "contrast"}
                                        for entry in resolved["data"]]}
    assert recipe_sha256(resolved) == recipe_sha256(without_key)
    changed = {**resolved, "data": [{**resolved["data"][0], "contrast": dataclasses.asdict(ALWAYS)},
                                    *resolved["data"][1:]]}
    assert recipe_sha256(changed) != recipe_sha256(resolved)
