"""Reading a file of several frames (multi-page TIFF, APNG, animated WebP) or a CMYK JPEG is stated like the other
conversions: an InputWarning with its kind, header_conversions and data check's warnings by kind. Pixels are read
as before: the first frame, converted as PIL convert('RGB') converts it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_ir.data.check import check_task
from bench_ir.data.io import InputWarning, header_conversions, read_rgb_uint8
from bench_ir.protocol import CropSpec, LayoutSpec, Protocol, TaskSpec

HEIGHT, WIDTH = 16, 24


def _frames(count: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(count)
    return [Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)) for _ in range(count)]


def _animated(path: Path, count: int = 3) -> Path:
    """A file of ``count`` RGB frames: a multi-page TIFF, an APNG (.png) or a lossless animated WebP."""
    first, *rest = _frames(count)
    options = {"lossless": True} if path.suffix == ".webp" else {}
    first.save(path, save_all=True, append_images=rest, **options)
    return path


def _cmyk_jpeg(path: Path) -> Path:
    _frames(1)[0].convert("CMYK").save(path, quality=95)
    return path


def _read(path: Path) -> tuple[np.ndarray, list[InputWarning]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = read_rgb_uint8(path)
    return pixels, [w.message for w in caught if issubclass(w.category, InputWarning)]


def _pil_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("name", ["pages.tif", "animated.png", "animated.webp"])
def test_a_file_of_several_frames_warns_that_only_the_first_is_read(tmp_path, name):
    path = _animated(tmp_path / name)
    _, stated = _read(path)
    assert [(w.kind, str(w)) for w in stated] == [
        ("first_frame", f"{path}: 3 frames (pages or an animation); only the first is read")]


@pytest.mark.parametrize("name", ["pages.tif", "animated.png", "animated.webp"])
def test_the_first_frame_is_read_as_before(tmp_path, name):
    path = _animated(tmp_path / name)
    pixels, _ = _read(path)
    np.testing.assert_array_equal(pixels, _pil_rgb(path))
    if name != "animated.webp":  # lossless WebP keeps them too, but its encoder may round colours
        np.testing.assert_array_equal(pixels, np.asarray(_frames(3)[0]))


def test_a_cmyk_jpeg_warns_that_it_was_converted_and_reads_as_pil_converts_it(tmp_path):
    path = _cmyk_jpeg(tmp_path / "print.jpg")
    pixels, stated = _read(path)
    assert [w.kind for w in stated] == ["cmyk"]
    assert str(stated[0]).startswith(f"{path}: CMYK image converted to RGB as PIL convert('RGB') does")
    np.testing.assert_array_equal(pixels, _pil_rgb(path))


def test_a_camera_jpeg_with_embedded_previews_is_no_multi_frame_file(tmp_path):
    """An MPO JPEG (a photo plus its previews, as many cameras write them): its first image is the photo."""
    first, preview = _frames(2)
    first.save(tmp_path / "camera.jpg", format="MPO", save_all=True, append_images=[preview])
    with Image.open(tmp_path / "camera.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert _read(tmp_path / "camera.jpg")[1] == [] and header_conversions(tmp_path / "camera.jpg") == ()


def test_a_single_frame_file_states_nothing(tmp_path):
    _frames(1)[0].save(tmp_path / "one.tif")
    assert _read(tmp_path / "one.tif")[1] == [] and header_conversions(tmp_path / "one.tif") == ()


@pytest.mark.parametrize(("make", "name", "kinds"), [
    (_animated, "pages.tif", ("first_frame",)),
    (_animated, "animated.png", ("first_frame",)),
    (_animated, "animated.webp", ("first_frame",)),
    (_cmyk_jpeg, "print.jpg", ("cmyk",)),
])
def test_header_conversions_names_the_same_kinds_as_reading(tmp_path, make, name, kinds):
    path = make(tmp_path / name)
    assert header_conversions(path) == kinds == tuple(w.kind for w in _read(path)[1])


def test_a_grayscale_multi_page_tiff_states_both_conversions_in_reading_order(tmp_path):
    first, *rest = [frame.convert("L") for frame in _frames(2)]
    first.save(tmp_path / "gray.tif", save_all=True, append_images=rest)
    assert header_conversions(tmp_path / "gray.tif") == ("grayscale", "first_frame")
    assert [w.kind for w in _read(tmp_path / "gray.tif")[1]] == ["grayscale", "first_frame"]


def test_data_check_groups_them_by_kind_as_warnings(tmp_path):
    protocol = Protocol(name="toy", title="toy", version=1, crop=CropSpec(rule="center_multiple", base=8), tasks=[
        TaskSpec(name="pairs", label="Pairs", dataset="pairs", expected_count=2,
                 layouts=[LayoutSpec(input="in", target="gt", source="pairs", pairing="stem")])])
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    _animated(tmp_path / "in" / "a.webp")
    _cmyk_jpeg(tmp_path / "in" / "b.jpg")
    for stem in "ab":
        _frames(1)[0].save(tmp_path / "gt" / f"{stem}.png")
    check = check_task(protocol, "pairs", tmp_path)
    assert check.ok and check.conversions == {"cmyk": ["in/b.jpg"], "first_frame": ["in/a.webp"]}
    assert check.warnings == [
        "1 CMYK image converted to RGB as PIL convert('RGB') does, without colour management (as run reads them): "
        "in/b.jpg",
        "1 image holding several frames (pages or an animation) of which only the first is read (as run reads "
        "them): in/a.webp"]
