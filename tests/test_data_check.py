"""`bench-ir data check` findings: layout, counts, pairing, unreadable files, size mismatches and size rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_ir.data.check import check_protocol, check_task
from bench_ir.data.datasets import DatasetNotFoundError
from bench_ir.protocol import CropSpec, LayoutSpec, NoiseSpec, Protocol, TaskSpec


def _write(folder: Path, name: str, height: int = 40, width: int = 56) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    seed = (height * width, sum(folder.name.encode()))  # an input and its target differ (same bytes: a warning)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / name)


def _protocol(crop: CropSpec = CropSpec(rule="center_multiple", base=16), expected: int | None = 2) -> Protocol:
    paired = TaskSpec(name="pairs", label="Pairs", dataset="pairs", expected_count=expected,
                      layouts=[LayoutSpec(input="missing/in", target="missing/gt", source="first layout"),
                               LayoutSpec(input="in", target="gt", source="second layout")])
    noisy = TaskSpec(name="noise", label="Noise", dataset="clean", noise=NoiseSpec(sigma=25),
                     layouts=[LayoutSpec(target="gt", source="clean only")])
    return Protocol(name="toy", title="toy", version=1, tasks=[paired, noisy], crop=crop)


def test_a_complete_folder_is_ok_with_counts_and_a_size_summary(tmp_path):
    for name in ("a.png", "b.png"):
        _write(tmp_path / "in", name)
        _write(tmp_path / "gt", name)
    _write(tmp_path / "in", "c.png", 48, 64)
    _write(tmp_path / "gt", "c.png", 48, 64)
    check = check_task(_protocol(expected=3), "pairs", tmp_path)
    assert check.ok and check.problems == [] and check.warnings == []
    assert check.layout.layout.source == "second layout" and check.pairs == 3 and check.expected == 3
    assert check.sizes == {(40, 56): 2, (48, 64): 1}
    assert check.size_summary() == "40x56 x2, 48x64 x1; min 40x56, max 48x64"
    info = check.to_dict()
    assert info["ok"] and info["pairs"] == 3 and info["min_size"] == [40, 56] and info["max_size"] == [48, 64]
    json.dumps(info)


def test_a_count_different_from_the_expected_one_is_a_warning_not_a_problem(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    check = check_task(_protocol(expected=100), "pairs", tmp_path)
    assert check.ok and check.warnings == ["1 pairs found, 100 expected"]


def test_unpaired_inputs_are_problems_unused_targets_and_non_images_are_warnings(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    _write(tmp_path / "in", "orphan.png")
    _write(tmp_path / "gt", "unused.png")
    (tmp_path / "gt" / "notes.txt").write_text("x")
    check = check_task(_protocol(), "pairs", tmp_path)
    assert not check.ok
    assert check.unpaired_inputs == ["orphan.png"] and check.unpaired_targets == ["unused.png"]
    assert check.non_images == [str(tmp_path / "gt" / "notes.txt")]
    assert len(check.problems) == 1 and "orphan.png" in check.problems[0]
    assert any("unused.png" in w for w in check.warnings) and any("notes.txt" in w for w in check.warnings)


def test_truncated_files_are_found_by_decoding_and_named(tmp_path):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    data = (tmp_path / "gt" / "a.png").read_bytes()
    (tmp_path / "gt" / "a.png").write_bytes(data[:300])
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert not check.ok and check.unreadable[0][0] == str(tmp_path / "gt" / "a.png")
    assert "gt/a.png" in check.problems[0]
    assert check_task(_protocol(expected=1), "pairs", tmp_path, decode=False).ok  # the header alone is intact


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "header"])
def test_a_float_image_that_run_refuses_is_reported_unreadable(tmp_path, decode):
    _write(tmp_path / "in", "a.tif")
    (tmp_path / "gt").mkdir()
    Image.fromarray(np.random.default_rng(0).random((40, 56), np.float32)).save(tmp_path / "gt" / "a.tif")
    check = check_task(_protocol(expected=1), "pairs", tmp_path, decode=decode)
    assert not check.ok
    assert check.unreadable == [(str(tmp_path / "gt" / "a.tif"),
                                 "floating-point images (PIL mode F) are not supported; save as 8 or 16 bit")]


def test_a_grayscale_16_bit_dataset_is_ok_and_its_conversions_are_not_printed_per_file(tmp_path, recwarn):
    for folder in ("in", "gt"):
        (tmp_path / folder).mkdir()
        pixels = np.random.default_rng(1).integers(0, 65536, (40, 56), dtype=np.uint16)
        Image.fromarray(pixels).save(tmp_path / folder / "a.png")
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert check.ok and check.sizes == {(40, 56): 1} and len(recwarn) == 0


def test_input_target_size_mismatch_is_a_problem_naming_the_image(tmp_path):
    _write(tmp_path / "in", "a.png", 40, 56)
    _write(tmp_path / "gt", "a.png", 40, 64)
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert check.size_mismatches == [("a.png", (40, 56), (40, 64))]
    assert not check.ok and "a.png 40x56 vs 40x64" in check.problems[0]


def test_a_size_mismatch_that_an_exif_quarter_turn_explains_says_so(tmp_path):
    _write(tmp_path / "gt", "a.png", 40, 56)
    exif = Image.Exif()
    exif[0x0112] = 8
    pixels = np.zeros((56, 40, 3), np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(pixels).save(tmp_path / "in" / "a.png", exif=exif.tobytes())
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert check.problems == [
        f"input/target size mismatch (HxW): 1: a.png 56x40 vs 40x56; turned a quarter turn in viewers by their EXIF "
        f"orientation: 1: {tmp_path / 'in' / 'a.png'} (EXIF orientation 8), but pixels are read as stored, as the "
        "reference scripts read them: save such images upright (e.g. with PIL.ImageOps.exif_transpose)"]


def test_uncropped_protocols_need_sides_divisible_by_8(tmp_path):
    _write(tmp_path / "in", "a.png", 40, 56)
    _write(tmp_path / "gt", "a.png", 40, 56)
    _write(tmp_path / "in", "b.png", 41, 56)
    _write(tmp_path / "gt", "b.png", 41, 56)
    uncropped = check_task(_protocol(crop=CropSpec(rule="none")), "pairs", tmp_path)
    assert uncropped.multiple == 8 and uncropped.not_multiple == ["b.png 41x56"] and not uncropped.ok
    assert check_task(_protocol(), "pairs", tmp_path).ok  # centre crop makes any size fit
    assert check_task(_protocol(), "pairs", tmp_path, multiple=8).not_multiple == ["b.png 41x56"]


def test_images_smaller_than_the_crop_multiple_are_problems(tmp_path):
    _write(tmp_path / "in", "tiny.png", 12, 56)
    _write(tmp_path / "gt", "tiny.png", 12, 56)
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert check.too_small == ["tiny.png"] and not check.ok


def test_missing_layout_reports_the_paths_tried(tmp_path):
    check = check_task(_protocol(), "pairs", tmp_path)
    assert not check.ok and check.layout is None
    assert str(tmp_path / "missing/gt") in check.problems[0] and str(tmp_path / "gt") in check.problems[0]
    info = check.to_dict()
    assert info["layout"] is None and info["pairs"] == 0 and info["size_summary"] == ""
    json.dumps(info)


def test_check_protocol_covers_every_task_including_clean_only_ones(tmp_path):
    for name in ("a.png", "b.png"):
        _write(tmp_path / "in", name)
        _write(tmp_path / "gt", name)
    checks = check_protocol(_protocol(), tmp_path)
    assert [c.task for c in checks] == ["pairs", "noise"]
    assert all(c.ok for c in checks)
    assert checks[1].pairs == 2 and checks[1].layout.input_dir is None


def test_check_protocol_checks_only_the_tasks_asked_for_as_run_task_scores_them(tmp_path):
    _write(tmp_path / "gt", "a.png")  # the noise task's data only: the paired task's inputs are missing
    (checks,) = check_protocol(_protocol(), tmp_path, tasks=["noise"])
    assert checks.task == "noise" and checks.ok
    with pytest.raises(KeyError, match=r"protocol 'toy' has no task\(s\) \['haze'\]; tasks: \['pairs', 'noise'\]"):
        check_protocol(_protocol(), tmp_path, tasks=["haze"])


def test_fewer_pairs_than_expected_mark_the_task_incomplete_more_do_not(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _write(tmp_path / "in", name)
        _write(tmp_path / "gt", name)
    short = check_task(_protocol(expected=4), "pairs", tmp_path)
    extra = check_task(_protocol(expected=2), "pairs", tmp_path)
    assert short.ok and short.incomplete and short.status == "incomplete"
    assert extra.ok and not extra.incomplete and extra.status == "warnings"
    assert check_task(_protocol(expected=3), "pairs", tmp_path).status == "ok"


def test_a_missing_data_root_is_one_error_not_one_per_task(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"^data root .*nope does not exist$"):
        check_protocol(_protocol(), tmp_path / "nope")


@pytest.mark.parametrize(("crop", "convention", "raw", "scored"), [
    (CropSpec(rule="pad_multiple", base=8), "M4", (5, 5), "5x5"),  # AllWeather-style: padding keeps the size
    (CropSpec(rule="none"), "M2", (8, 1000), "8x1000"),  # a side multiple of 8, thinner than the 11 px window
    (CropSpec(rule="center_multiple", base=8), "M4", (9, 40), "8x40"),  # the size after the crop counts
], ids=["pad-M4", "none-M2", "centre-M4"])
def test_an_image_smaller_than_the_conventions_ssim_window_is_a_problem_as_run_refuses_it(tmp_path, crop, convention,
                                                                                           raw, scored):
    for name, (height, width) in (("ok.png", (40, 56)), ("thin.png", raw)):
        _write(tmp_path / "in", name, height, width)
        _write(tmp_path / "gt", name, height, width)
    protocol = Protocol(name="toy", title="toy", version=1, tasks=_protocol().tasks, crop=crop, convention=convention)
    check = check_task(protocol, "pairs", tmp_path)
    names = {"M4": "M4 (histoformer-allweather)", "M2": "M2 (skimage-gaussian)"}
    assert not check.ok and check.too_small_for_ssim == [f"thin.png {scored}"]
    assert check.problems == [
        f"1 image is smaller than the 11 px SSIM window of convention {names[convention]} after the crop rule (HxW "
        f"as scored): thin.png {scored}; too small for this convention's SSIM, remove it from the test set or use "
        "another convention (run --convention)"]
    assert check.to_dict()["convention"] == convention
    assert check_task(protocol, "pairs", tmp_path, convention="M6").ok  # DiffUIR's 3-D SSIM pads: any size scores


def test_an_image_too_small_only_for_an_alternative_convention_is_a_warning_naming_it(tmp_path):
    _write(tmp_path / "in", "thin.png", 8, 1000)
    _write(tmp_path / "gt", "thin.png", 8, 1000)
    protocol = Protocol(name="toy", title="toy", version=1, tasks=_protocol(expected=1).tasks,
                        crop=CropSpec(rule="none"), convention="M1", alternative_conventions=["M3", "M2"])
    check = check_task(protocol, "pairs", tmp_path)
    assert check.ok and check.warnings == [
        "smaller than the 11 px SSIM window of the alternative convention M2 (skimage-gaussian) after the crop rule, "
        "so `run --convention M2` would refuse them: 1: thin.png 8x1000"]


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "header"])
def test_an_empty_file_is_reported_as_empty(tmp_path, decode):
    _write(tmp_path / "in", "a.png")
    _write(tmp_path / "gt", "a.png")
    (tmp_path / "in" / "a.png").write_bytes(b"")
    check = check_task(_protocol(expected=1), "pairs", tmp_path, decode=decode)
    assert check.unreadable == [(str(tmp_path / "in" / "a.png"), "empty file (0 bytes)")]


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "header"])
def test_a_float_rgb_tiff_gets_the_advice_of_a_float_gray_one(tmp_path, decode):
    import tifffile

    _write(tmp_path / "in", "a.tif")
    (tmp_path / "gt").mkdir()
    tifffile.imwrite(tmp_path / "gt" / "a.tif", np.full((40, 56, 3), 0.5, np.float32), photometric="rgb")
    check = check_task(_protocol(expected=1), "pairs", tmp_path, decode=decode)
    assert check.unreadable == [(str(tmp_path / "gt" / "a.tif"), "floating-point images (float32 TIFF, 3 samples "
                                 "per pixel: RGB) are not supported; save as 8 or 16 bit")]


def test_a_pair_whose_exif_orientations_differ_is_a_warning_naming_both(tmp_path):
    from bench_ir.data.io import write_png_uint8

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    write_png_uint8(tmp_path / "in" / "a.png", pixels, orientation=6)  # square: the sizes cannot tell
    write_png_uint8(tmp_path / "gt" / "a.png", pixels)
    write_png_uint8(tmp_path / "in" / "b.png", pixels, orientation=3)
    write_png_uint8(tmp_path / "gt" / "b.png", 255 - pixels, orientation=3)  # alike orientations: nothing to say
    check = check_task(_protocol(), "pairs", tmp_path)
    assert check.ok and check.exif_differs == ["a.png (input 6, target 1)"]
    assert check.warnings == [
        "input and target EXIF orientations differ, so viewers show these pairs turned differently: 1: a.png (input "
        "6, target 1), but pixels are read as stored, as the reference scripts read them: save such images upright "
        "(e.g. with PIL.ImageOps.exif_transpose)"]
