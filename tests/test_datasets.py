"""Layouts under --data-root, the pairing rules, and TaskDataset items, sizes, errors and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import reference_noisy_crops
from PIL import Image

from bench_ir.data.datasets import (
    DatasetNotFoundError,
    ImageSizeMismatchError,
    PairingError,
    build_folder_dataset,
    build_task_dataset,
    pair_files,
    resolve_layout,
)
from bench_ir.data.io import ImageReadError
from bench_ir.data.synthesis import gaussian_noise_uint8, per_image_rng
from bench_ir.protocol import (
    PAIRING_EXPLAINED,
    PAIRING_RULES,
    CropSpec,
    LayoutSpec,
    NoiseSpec,
    Protocol,
    TaskSpec,
    load_protocol,
)


def _image(seed: int, height: int = 40, width: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write(folder: Path, name: str, seed: int = 0, height: int = 40, width: int = 56) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    image = _image(seed, height, width)
    Image.fromarray(image).save(folder / name)
    return image


def _pairs(rule: str, inputs: list[str], targets: list[str], tmp_path: Path, **kwargs):
    for i, name in enumerate(inputs):
        _write(tmp_path / "in", name, seed=i, height=8, width=8)
    for i, name in enumerate(targets):
        _write(tmp_path / "gt", name, seed=100 + i, height=8, width=8)
    layout = LayoutSpec(target="gt", input="in", pairing=rule)
    pairing = pair_files(layout, tmp_path / "in", tmp_path / "gt", **kwargs)
    return pairing, [(p.input_path.name, p.target_path.name) for p in pairing.pairs]


# ------------------------------------------------------------------------------------------ pairing
def test_same_name_pairs_identical_names_and_reports_unused_targets(tmp_path):
    pairing, pairs = _pairs("same_name", ["b.png", "a.png"], ["a.png", "b.png", "c.png"], tmp_path)
    assert pairs == [("a.png", "a.png"), ("b.png", "b.png")]
    assert [p.name for p in pairing.unpaired_targets] == ["c.png"]
    assert [p.name for p in pairing.pairs] == ["a.png", "b.png"]


def test_a_target_folder_that_is_the_input_folder_pairing_files_with_themselves_is_refused(tmp_path):
    _write(tmp_path / "photos", "a.png")
    layout = LayoutSpec(target="photos", input="photos", pairing="same_name")
    with pytest.raises(PairingError, match=r"inputs paired with themselves as targets .* 1: a.png; the input and the "
                                           r"target of a pair must be two files \(is the target folder the input"):
        pair_files(layout, tmp_path / "photos", tmp_path / "photos")


def test_names_that_differ_only_in_unicode_normal_form_pair(tmp_path):
    """A target copied from macOS (NFD: "o" and a combining diaeresis) pairs with the input's composed name."""
    composed, decomposed = "ph\u00f6to.png", "pho\u0308to.png"
    _, pairs = _pairs("same_name", [composed], [decomposed], tmp_path)
    assert pairs == [(composed, decomposed)]


def test_stem_pairs_across_extensions(tmp_path):
    _, pairs = _pairs("stem", ["1.jpg", "2.jpg"], ["1.png", "2.png"], tmp_path)
    assert pairs == [("1.jpg", "1.png"), ("2.jpg", "2.png")]


def test_sots_pairs_the_name_up_to_the_first_underscore_with_png(tmp_path):
    _, pairs = _pairs("sots", ["0001_0.8_0.2.jpg", "0001_0.9_0.1.jpg", "0002_1_0.16.jpg"],
                      ["0001.png", "0002.png"], tmp_path)
    assert pairs == [("0001_0.8_0.2.jpg", "0001.png"), ("0001_0.9_0.1.jpg", "0001.png"),
                     ("0002_1_0.16.jpg", "0002.png")]


def test_rain100l_accepts_same_names_and_rain_norain_names(tmp_path):
    _, pairs = _pairs("rain100l", ["1.png", "rain-2.png", "rain-10.png"], ["1.png", "norain-2.png", "norain-10.png"],
                      tmp_path)
    assert pairs == [("1.png", "1.png"), ("rain-10.png", "norain-10.png"), ("rain-2.png", "norain-2.png")]


def test_raindrop_pairs_rain_with_clean(tmp_path):
    _, pairs = _pairs("raindrop", ["3_rain.png", "12_rain.png"], ["3_clean.png", "12_clean.png"], tmp_path)
    assert pairs == [("12_rain.png", "12_clean.png"), ("3_rain.png", "3_clean.png")]


def test_outdoor_rain_pairs_the_first_seven_characters(tmp_path):
    _, pairs = _pairs("outdoor_rain", ["im_0001_s80_a04.png", "im_0002_s95_a06.png"], ["im_0001.png", "im_0002.png"],
                      tmp_path)
    assert pairs == [("im_0001_s80_a04.png", "im_0001.png"), ("im_0002_s95_a06.png", "im_0002.png")]


def test_position_pairs_the_two_lists_in_natural_order_with_digits_compared_as_numbers(tmp_path):
    """As Histoformer's metric script (natsorted): 2 before 10 on both sides, so N.png meets N_gt.png; code-point
    order would pair 1.png with 10_gt.png and 10.png with 1_gt.png."""
    _, pairs = _pairs("position", ["1.png", "2.png", "10.png"], ["1_gt.png", "2_gt.png", "10_gt.png"], tmp_path)
    assert pairs == [("1.png", "1_gt.png"), ("2.png", "2_gt.png"), ("10.png", "10_gt.png")]


def test_position_pairing_refuses_a_target_folder_with_an_extra_image_naming_the_counts_and_the_way_out(tmp_path):
    """One extra target would shift every later pair (a↔clean_a, b↔clean_a_copy, c↔clean_b): refused, not scored."""
    with pytest.raises(PairingError) as err:
        _pairs("position", ["a.png", "b.png", "c.png"], ["clean_a.png", "clean_a_copy.png", "clean_b.png",
                                                         "clean_c.png"], tmp_path)
    message = str(err.value)
    assert "holds 3 image(s)" in message and f"{tmp_path / 'gt'} 4;" in message
    assert "Targets left without an input at the end — 1: clean_c.png" in message
    assert "same images" in message and "--pairing stem" in message


def test_position_pairing_refuses_an_input_folder_with_more_images_than_targets_even_with_allow_unpaired(tmp_path):
    with pytest.raises(PairingError, match=r"holds 3 image\(s\) .* 2; .*Inputs left without a target at the end — "
                                           r"1: 10.png"):
        _pairs("position", ["1.png", "2.png", "10.png"], ["1_gt.png", "2_gt.png"], tmp_path, allow_unpaired=True)


def test_same_name_names_the_target_with_the_same_stem_and_another_extension_and_suggests_stem_pairing(tmp_path):
    with pytest.raises(PairingError) as err:
        _pairs("same_name", ["a.png", "b.png"], ["a.jpg", "b.png"], tmp_path)
    message = str(err.value)
    assert "inputs without a target" in message and "1: a.png" in message
    assert "1 of them have a target with the same stem and another extension (a.png → a.jpg)" in message
    assert "`--pairing stem`" in message


def test_same_name_suggests_no_stem_pairing_where_no_target_shares_the_stem(tmp_path):
    with pytest.raises(PairingError) as err:
        _pairs("same_name", ["a.png", "b.png"], ["b.png", "c.jpg"], tmp_path)
    assert "--pairing stem" not in str(err.value)


def test_targets_no_input_pairs_with_are_kept_on_the_dataset_but_a_target_of_many_inputs_is_paired(tmp_path):
    """SOTS-style many-to-one: 0001.png is the target of two hazy images; only 0003.png has no input at all."""
    for i, name in enumerate(["0001_0.8_0.2.png", "0001_0.9_0.1.png", "0002_0.8_0.2.png"]):
        _write(tmp_path / "in", name, seed=i)
    for i, name in enumerate(["0001.png", "0002.png", "0003.png"]):
        _write(tmp_path / "gt", name, seed=10 + i)
    protocol = Protocol(name="p", title="p", version=1, tasks=[
        TaskSpec(name="t", label="T", dataset="d", layouts=[LayoutSpec(target="gt", input="in", pairing="sots")])])
    dataset = build_task_dataset(protocol, "t", data_root=tmp_path)
    assert len(dataset) == 3 and [p.name for p in dataset.unpaired_targets] == ["0003.png"]


def test_unpaired_inputs_are_an_error_listing_the_first_ten_and_the_count(tmp_path):
    inputs = [f"{i:02d}.png" for i in range(12)] + ["ok.png"]
    with pytest.raises(PairingError) as err:
        _pairs("same_name", inputs, ["ok.png"], tmp_path)
    message = str(err.value)
    assert "12: 00.png, 01.png" in message and "09.png" in message and "10.png" not in message
    assert "and 2 more" in message


def test_allow_unpaired_keeps_the_pairs_and_warns(tmp_path):
    with pytest.warns(UserWarning, match="orphan.png"):
        pairing, pairs = _pairs("same_name", ["a.png", "orphan.png"], ["a.png"], tmp_path, allow_unpaired=True)
    assert pairs == [("a.png", "a.png")] and [p.name for p in pairing.unpaired_inputs] == ["orphan.png"]


def test_non_image_and_hidden_files_are_skipped_with_a_warning(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    (tmp_path / "in" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "gt" / "readme.txt").write_text("hi")
    (tmp_path / "gt" / "nested").mkdir()
    with pytest.warns(UserWarning, match="non-image"):
        pairing = pair_files(LayoutSpec(target="gt", input="in"), tmp_path / "in", tmp_path / "gt")
    assert sorted(p.name for p in pairing.non_images) == [".DS_Store", "readme.txt"]
    assert len(pairing.pairs) == 1


def test_each_skipped_file_warning_names_the_folder_that_holds_it(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    (tmp_path / "in" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "gt" / "Thumbs.db").write_bytes(b"\0")
    with pytest.warns(UserWarning) as caught:
        pair_files(LayoutSpec(target="gt", input="in"), tmp_path / "in", tmp_path / "gt")
    messages = sorted(str(w.message) for w in caught)
    assert messages == [f"skipped non-image files (1: .DS_Store) in {tmp_path / 'in'}",
                        f"skipped non-image files (1: Thumbs.db) in {tmp_path / 'gt'}"]


def test_unknown_pairing_rule_is_an_error(tmp_path):
    _write(tmp_path / "gt", "a.png")
    with pytest.raises(ValueError, match="unknown pairing rule 'fuzzy'"):
        pair_files(LayoutSpec(target="gt", input="gt", pairing="fuzzy"), tmp_path / "gt", tmp_path / "gt")


# ------------------------------------------------------------------------------------------ layouts
def test_first_existing_layout_wins_and_missing_input_folder_skips_a_layout(tmp_path):
    task = load_protocol("5deg").task("deblur")
    _write(tmp_path / "deblur/gopro/target", "a.png")  # first layout: input folder missing
    _write(tmp_path / "deblurring/GoPro/test/input", "a.png")
    _write(tmp_path / "deblurring/GoPro/test/target", "a.png")
    resolved = resolve_layout(task, tmp_path)
    assert resolved.layout.source == "MoCE-IR layout"
    assert resolved.input_dir == tmp_path / "deblurring/GoPro/test/input"


def test_missing_layout_error_names_task_every_path_tried_and_the_way_out(tmp_path):
    task = load_protocol("3deg").task("dehaze")
    (tmp_path / "dehaze" / "target").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as err:
        resolve_layout(task, tmp_path, protocol_name="3deg")
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "'dehaze'" in message and "SOTS-outdoor" in message
    assert f"input {tmp_path / 'dehaze/input'} (missing)" in message
    assert f"target {tmp_path / 'dehaze/target'} (exists)" in message
    for layout in task.layouts:
        assert str(tmp_path / layout.target) in message and layout.source in message
    assert "--sample" in message and f"bench-ir data check --protocol 3deg --data-root {tmp_path}" in message


def test_a_folder_pair_that_is_not_two_folders_says_which_path_is_a_file_or_missing(tmp_path):
    from bench_ir.runner import folder_protocol

    _write(tmp_path, "a.png")
    task = folder_protocol(tmp_path / "a.png", tmp_path / "nowhere").tasks[0]
    with pytest.raises(DatasetNotFoundError) as err:
        resolve_layout(task, None, protocol_name="folders")
    message = str(err.value)
    assert f"input {tmp_path / 'a.png'} (a file, not a folder), target {tmp_path / 'nowhere'} (missing)" in message
    assert "--input-dir and --target-dir take two folders of images." in message
    assert "data check" not in message and "--sample" not in message


def test_relative_layouts_without_a_data_root_say_so():
    task = load_protocol("derain").task("derain")
    with pytest.raises(DatasetNotFoundError, match="needs --data-root"):
        resolve_layout(task, None)


# ------------------------------------------------------------------------------------------ items
def _task(layouts, noise=None, crop=None, name="t"):
    return TaskSpec(name=name, label=name.upper(), dataset=name, layouts=layouts, noise=noise, crop=crop)


def _protocol(*tasks, crop=CropSpec(rule="center_multiple", base=16)):
    return Protocol(name="p", title="p", version=1, tasks=list(tasks), crop=crop)


def test_items_are_cropped_float_tensors_equal_to_uint8_over_255(tmp_path):
    noisy = _write(tmp_path / "in", "a.png", seed=1, height=41, width=57)
    clean = _write(tmp_path / "gt", "a.png", seed=2, height=41, width=57)
    protocol = _protocol(_task([LayoutSpec(target="gt", input="in")]))
    dataset = build_task_dataset(protocol, "t", data_root=tmp_path)
    item = dataset[0]
    assert item["name"] == "a.png" and dataset.names == ["a.png"] and len(dataset) == 1
    assert item["input"].dtype == torch.float32 and item["input"].shape == (3, 32, 48)
    expected = torch.from_numpy(noisy[4:36, 4:52]).permute(2, 0, 1).float() / 255
    assert torch.equal(item["input"], expected)
    assert torch.equal(item["target"], torch.from_numpy(clean[4:36, 4:52]).permute(2, 0, 1).float() / 255)
    assert dataset.item_sizes() == [(32, 48)]


@pytest.mark.parametrize("rule", ["none", "pad_multiple"])
def test_no_crop_for_none_and_pad_multiple(tmp_path, rule):
    _write(tmp_path / "in", "a.png", height=41, width=57)
    _write(tmp_path / "gt", "a.png", height=41, width=57)
    protocol = _protocol(_task([LayoutSpec(target="gt", input="in")]), crop=CropSpec(rule=rule, base=8))
    dataset = build_task_dataset(protocol, "t", data_root=tmp_path)
    assert dataset[0]["input"].shape == (3, 41, 57) and dataset.item_sizes() == [(41, 57)]


def test_item_sizes_come_from_headers_and_decoding_errors_name_the_file(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    data = (tmp_path / "in" / "a.png").read_bytes()
    (tmp_path / "in" / "a.png").write_bytes(data[:200])  # header intact, pixels truncated
    dataset = build_folder_dataset(tmp_path / "in", tmp_path / "gt")
    assert dataset.item_sizes() == [(32, 48)]
    with pytest.raises(ImageReadError, match=r"in/a\.png"):
        dataset[0]


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    _write(tmp_path / "in", "a.png", height=40, width=56)
    _write(tmp_path / "gt", "a.png", height=40, width=64)
    dataset = build_folder_dataset(tmp_path / "in", tmp_path / "gt")
    for call in (dataset.item_sizes, lambda: dataset[0]):
        with pytest.raises(ImageSizeMismatchError) as err:
            call()
        message = str(err.value)
        assert str(tmp_path / "in" / "a.png") in message and str(tmp_path / "gt" / "a.png") in message
        assert "40x56" in message and "40x64" in message


def test_non_image_with_an_image_extension_names_the_file(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    (tmp_path / "in" / "b.png").write_text("oops")
    _write(tmp_path / "gt", "b.png")
    dataset = build_folder_dataset(tmp_path / "in", tmp_path / "gt")
    with pytest.raises(ImageReadError, match=r"b\.png"):
        dataset.item_sizes()


def _noise_dataset(tmp_path, stream="reference", sigma=25.0):
    sizes = {"b.png": (40, 56), "a.png": (33, 47), "c.png": (19, 35)}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        _write(tmp_path / "clean", name, seed=i, height=h, width=w)
    noise = NoiseSpec(sigma=sigma, seed=0, stream=stream)
    protocol = _protocol(_task([LayoutSpec(target="clean")], noise=noise, name="denoise"))
    return build_task_dataset(protocol, "denoise", data_root=tmp_path)


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def test_noise_task_follows_the_reference_loop_over_the_sorted_cropped_images(tmp_path):
    dataset = _noise_dataset(tmp_path)
    assert dataset.names == ["a.png", "b.png", "c.png"]
    expected = reference_noisy_crops(tmp_path / "clean", dataset.names)
    for i, name in enumerate(dataset.names):
        item = dataset[i]
        assert torch.equal(item["target"], _chw(expected[name][0]))
        assert torch.equal(item["input"], _chw(expected[name][1]))


def test_limit_and_subset_never_change_an_images_noise(tmp_path):
    dataset = _noise_dataset(tmp_path)
    expected = reference_noisy_crops(tmp_path / "clean", ["a.png", "b.png", "c.png"])
    last = dataset.subset([2])
    assert last.names == ["c.png"] and torch.equal(last[0]["input"], _chw(expected["c.png"][1]))
    limited = dataset.limit(2)
    assert limited.names == ["a.png", "b.png"] and len(limited) == 2
    assert torch.equal(limited[1]["input"], _chw(expected["b.png"][1]))


def test_per_image_noise_uses_the_name_task_and_seed_generator(tmp_path):
    dataset = _noise_dataset(tmp_path, stream="per_image", sigma=15.0)
    item = dataset.subset([1])[0]
    target = (item["target"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    draws = per_image_rng("b.png", "denoise", 0).standard_normal(target.shape)
    expected = torch.from_numpy(gaussian_noise_uint8(target, 15.0, draws)).permute(2, 0, 1).float() / 255
    assert torch.equal(item["input"], expected)


def test_build_task_dataset_uses_the_protocol_layouts(tmp_path):
    for name in ("GOPR0384_11_00_000001.png", "GOPR0384_11_00_000002.png"):
        _write(tmp_path / "deblur/gopro/input", name)
        _write(tmp_path / "deblur/gopro/target", name)
    dataset = build_task_dataset(load_protocol("5deg"), "deblur", data_root=tmp_path)
    assert len(dataset) == 2 and not dataset.is_sample
    assert dataset.layout.layout.source.startswith("MIRAGE")
    assert dataset.source_paths(0) == (tmp_path / "deblur/gopro/input/GOPR0384_11_00_000001.png",
                                       tmp_path / "deblur/gopro/target/GOPR0384_11_00_000001.png")


def test_empty_layout_is_a_dataset_not_found_error(tmp_path):
    (tmp_path / "enhance/lol/input").mkdir(parents=True)
    (tmp_path / "enhance/lol/target").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="holds no image pairs"):
        build_task_dataset(load_protocol("5deg"), "lowlight", data_root=tmp_path)


def test_folder_dataset_pairs_and_crops_by_default(tmp_path):
    _write(tmp_path / "in", "rain-1.png")
    _write(tmp_path / "gt", "norain-1.png")
    dataset = build_folder_dataset(tmp_path / "in", tmp_path / "gt", pairing="rain100l")
    assert dataset.names == ["rain-1.png"] and dataset.item_sizes() == [(32, 48)]


@pytest.mark.parametrize("rule", PAIRING_RULES)
def test_every_pairing_rule_is_explained_by_an_example_that_holds(rule, tmp_path):
    explained = PAIRING_EXPLAINED[rule]
    assert explained.rule == rule and explained.explanation.endswith(".")
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in" / explained.example_input)
    Image.fromarray(pixels).save(tmp_path / "gt" / explained.example_target)
    if rule != "position":  # position pairing refuses folders that hold different numbers of images
        Image.fromarray(pixels).save(tmp_path / "gt" / "zzz_unrelated.png")  # never the partner (sorted last)
    layout = LayoutSpec(input="in", target="gt", pairing=rule)
    pairing = pair_files(layout, tmp_path / "in", tmp_path / "gt")
    assert [(p.input_path.name, p.target_path.name) for p in pairing.pairs] == [
        (explained.example_input, explained.example_target)]


def test_the_advice_for_missing_data_of_a_users_protocol_names_its_file_which_data_check_takes(tmp_path):
    from conftest import write_one_pair_protocol

    protocol_file = write_one_pair_protocol(tmp_path / "mine", "toy")
    with pytest.raises(DatasetNotFoundError) as err:
        build_task_dataset(load_protocol(protocol_file), "t", data_root=tmp_path / "elsewhere")
    assert f"bench-ir data check --protocol {protocol_file} --data-root" in str(err.value)
