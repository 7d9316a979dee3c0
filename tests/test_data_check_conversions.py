"""`bench-ir data check` states the conversions `run` makes on reading (grayscale, alpha, 16 bit ...) as warnings."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from bench_ir import listing
from bench_ir.data import check as data_check
from bench_ir.data.check import check_protocol, check_task
from bench_ir.data.io import InputWarning
from bench_ir.protocol import CropSpec, LayoutSpec, NoiseSpec, Protocol, TaskSpec

HEIGHT, WIDTH = 40, 56


def _save(folder: Path, name: str, mode: str = "RGB") -> None:
    """A small image of PIL ``mode``: 'RGB', 'L', 'RGBA' or 'I;16' (a 16-bit grayscale PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng((len(name), sum(folder.name.encode())))  # an input and its target differ
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16))
    else:
        channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
        image = Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, *channels), dtype=np.uint8), mode)
    image.save(folder / name)


def _protocol(expected: int | None = None) -> Protocol:
    """'pairs' reads in/ and gt/; 'noise' reads the same gt/ (clean only), so both tasks share its files."""
    paired = TaskSpec(name="pairs", label="Pairs", dataset="pairs", expected_count=expected,
                      layouts=[LayoutSpec(input="in", target="gt", source="pairs")])
    noisy = TaskSpec(name="noise", label="Noise", dataset="clean", noise=NoiseSpec(sigma=25),
                     layouts=[LayoutSpec(target="gt", source="clean only")])
    return Protocol(name="toy", title="toy", version=1, tasks=[paired, noisy],
                    crop=CropSpec(rule="center_multiple", base=8))


def _mixed_pairs(root: Path) -> None:
    """Pair a: grayscale input, RGBA target; pair b: grayscale input, 16-bit grayscale target."""
    _save(root / "in", "a.png", "L")
    _save(root / "gt", "a.png", "RGBA")
    _save(root / "in", "b.png", "L")
    _save(root / "gt", "b.png", "I;16")


def test_conversions_are_warnings_grouped_by_kind_naming_the_files_not_problems(tmp_path):
    _mixed_pairs(tmp_path)
    check = check_task(_protocol(expected=2), "pairs", tmp_path)
    assert check.ok and check.problems == [] and check.status == "warnings"
    assert check.conversions == {"grayscale": ["in/a.png", "in/b.png", "gt/b.png"], "alpha_dropped": ["gt/a.png"],
                                 "16_bit": ["gt/b.png"]}
    assert check.warnings == [
        "3 grayscale images replicated to 3 RGB channels (as run reads them): in/a.png, in/b.png, gt/b.png",
        "1 image whose alpha channel is dropped without compositing (as run reads them): gt/a.png",
        "1 16-bit image scaled to 8 bits with round(v/257) (as run reads them): gt/b.png"]


def test_many_files_of_one_kind_name_the_first_three_and_count_the_rest(tmp_path):
    names = [f"{stem}.png" for stem in "abcde"]
    for name in names:
        _save(tmp_path / "in", name, "L")
        _save(tmp_path / "gt", name)
    check = check_task(_protocol(expected=5), "pairs", tmp_path)
    assert check.warnings == ["5 grayscale images replicated to 3 RGB channels (as run reads them): in/a.png, "
                              "in/b.png, in/c.png ... and 2 more"]
    assert check.to_dict()["conversions"] == {"grayscale": [f"in/{name}" for name in names]}


@pytest.mark.parametrize("name, kind", [("a.pgm", "netpbm_maxval"), ("a.tif", "32_bit")])
def test_high_maxval_pgm_and_32_bit_integer_files_are_named_under_their_kind(tmp_path, name, kind):
    for folder in ("in", "gt"):
        (tmp_path / folder).mkdir()
        if name.endswith(".pgm"):  # 10 bits: maxval 1023, two bytes per sample
            pixels = np.full((HEIGHT, WIDTH), 500, dtype=">u2").tobytes()
            (tmp_path / folder / name).write_bytes(f"P5\n{WIDTH} {HEIGHT}\n1023\n".encode() + pixels)
        else:
            Image.fromarray(np.full((HEIGHT, WIDTH), 70000, dtype=np.int32)).save(tmp_path / folder / name)
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert check.ok and check.conversions == {"grayscale": ["in/" + name, "gt/" + name], kind: ["in/" + name,
                                                                                                  "gt/" + name]}


def test_files_decoded_once_for_several_tasks_are_reported_in_each_task(tmp_path):
    _mixed_pairs(tmp_path)
    pairs, noise = check_protocol(_protocol(expected=2), tmp_path)
    assert pairs.conversions["alpha_dropped"] == ["gt/a.png"] and noise.conversions["alpha_dropped"] == ["gt/a.png"]
    assert noise.conversions == {"grayscale": ["gt/b.png"], "alpha_dropped": ["gt/a.png"], "16_bit": ["gt/b.png"]}


def test_a_target_shared_by_several_inputs_is_named_once(tmp_path):
    protocol = Protocol(name="toy", title="toy", version=1, crop=CropSpec(rule="center_multiple", base=8), tasks=[
        TaskSpec(name="derain", label="Derain", dataset="rain", expected_count=2,
                 layouts=[LayoutSpec(input="in", target="gt", pairing="sots", source="SOTS naming")])])
    _save(tmp_path / "in", "0001_0.8_0.2.png")
    _save(tmp_path / "in", "0001_0.9_0.1.png")
    _save(tmp_path / "gt", "0001.png", "L")
    check = check_task(protocol, "derain", tmp_path)
    assert check.pairs == 2 and check.conversions == {"grayscale": ["gt/0001.png"]}


def test_reading_headers_only_reports_no_conversions(tmp_path):
    _mixed_pairs(tmp_path)
    check = check_task(_protocol(expected=2), "pairs", tmp_path, decode=False)
    assert check.conversions == {} and check.warnings == [] and check.status == "ok"


def test_a_conversion_of_an_unknown_kind_is_named_with_its_message(tmp_path, monkeypatch):
    _save(tmp_path / "in", "a.png")
    _save(tmp_path / "gt", "a.png")
    read = data_check.read_rgb_uint8

    def read_with_a_new_conversion(path):
        warnings.warn(f"{path}: CMYK image converted to RGB", InputWarning, stacklevel=2)
        return read(path)

    monkeypatch.setattr(data_check, "read_rgb_uint8", read_with_a_new_conversion)
    check = check_task(_protocol(expected=1), "pairs", tmp_path)
    assert check.warnings == ["2 images changed on reading (as run reads them): in/a.png (CMYK image converted to "
                              "RGB), gt/a.png (CMYK image converted to RGB)"]


def test_the_text_and_the_json_output_show_the_conversion_warnings(tmp_path):
    _mixed_pairs(tmp_path)
    checks = check_protocol(_protocol(expected=2), tmp_path, tasks=["pairs"])
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    for renderable in listing.data_check_renderables(checks):
        console.print(renderable, soft_wrap=isinstance(renderable, str))
    report = json.loads(json.dumps([check.to_dict() for check in checks]))[0]
    assert report["ok"] and report["status"] == "warnings" and report["conversions"] == checks[0].conversions
    assert len(report["warnings"]) == 3
    for warning in report["warnings"]:
        assert f"pairs: warning: {warning}\n" in out.getvalue()
