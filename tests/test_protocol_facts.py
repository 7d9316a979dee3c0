"""The shipped protocols, their pages and the report notes state what the official code and docs say, and only that:
folders the reference scripts read, options that reproduce a reference, and no unverified fact stated as a fact."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench_ir.data.datasets import build_task_dataset
from bench_ir.geometry import FitPolicy, run_tiled
from bench_ir.protocol import NoiseSpec, list_protocols, load_protocol
from bench_ir.protocol_docs import protocol_markdown
from bench_ir.report.tables import ASTERISK_NOTE

LEADERBOARD_README = Path(__file__).resolve().parent.parent / "registry" / "leaderboard" / "README.md"
DENOISE_TASKS = ["denoise-15", "denoise-25", "denoise-50"]


def _write_image(folder: Path, name: str, seed: int = 0, size: int = 16) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / name)
    return image


def _write_3deg_tree(root: Path) -> None:
    """One image per 3deg task under ``root`` in the official folder names (SOTS and Rain100L names as released)."""
    _write_image(root / "dehaze" / "input", "0001_0.8_0.2.png")
    _write_image(root / "dehaze" / "target", "0001.png", seed=1)
    _write_image(root / "derain" / "Rain100L" / "input", "1.png")
    _write_image(root / "derain" / "Rain100L" / "target", "1.png", seed=1)
    _write_image(root / "denoise" / "bsd68", "3096.png")


def _source(protocol: str, task: str, data_root: Path) -> str:
    dataset = build_task_dataset(load_protocol(protocol), task, data_root)
    assert len(dataset) >= 1
    return dataset.layout.layout.source


# ------------------------------------------------------------------------------------------ folders
@pytest.mark.parametrize("protocol", ["3deg", "5deg", "denoise"])
def test_bsd68_in_moce_ir_folder_is_found_for_every_denoising_task(tmp_path, protocol):
    _write_image(tmp_path / "denoising" / "cBSD68" / "original_png", "3096.png")
    assert {_source(protocol, task, tmp_path) for task in DENOISE_TASKS} == {"MoCE-IR layout"}


def test_promptir_test_folder_is_found_for_every_3deg_task(tmp_path):
    _write_3deg_tree(tmp_path / "test")
    for task in ["dehaze", "derain", *DENOISE_TASKS]:
        assert _source("3deg", task, tmp_path).startswith("PromptIR INSTALL.md"), task


def test_adair_data_test_folder_is_found_for_every_5deg_task(tmp_path):
    test = tmp_path / "data" / "test"
    _write_3deg_tree(test)
    for folder in ["deblur/gopro", "enhance/lol"]:
        _write_image(test / folder / "input", "1.png")
        _write_image(test / folder / "target", "1.png", seed=1)
    for task in ["dehaze", "derain", *DENOISE_TASKS, "deblur", "lowlight"]:
        assert _source("5deg", task, tmp_path).startswith("AdaIR INSTALL.md"), task


def test_the_official_test_layout_stays_the_first_layout_of_each_3deg_task():
    for task in load_protocol("3deg").tasks:
        assert task.layouts[0].source == "MIRAGE / PromptIR / AdaIR test layout", task.name


# ------------------------------------------------------------------------------------------ options the notes give
def test_udc_tiling_advice_splits_a_2048_wide_image_into_two_1024_wide_halves():
    reference = load_protocol("udc").reference
    match = re.search(r"--tile (\d+) --tile-overlap (\d+)", reference)
    assert match, reference
    widths = []

    def forward(patch: torch.Tensor) -> torch.Tensor:
        widths.append(patch.shape[-1])
        return patch

    run_tiled(forward, torch.zeros(1, 1, 1024, 2048), FitPolicy(8), tile=int(match[1]), overlap=int(match[2]))
    assert widths == [1024, 1024]


def test_5deg_note_on_moce_ir_noise_gives_the_noise_that_reproduces_moce_ir(tmp_path):
    """MoCE-IR scores sigma 25 alone: seed 0, then one randn draw per image in sorted order, truncated to uint8."""
    protocol = load_protocol("5deg")
    match = re.search(r"noise: (\{[^}]*\})", protocol.notes)
    assert match, protocol.notes
    folder = tmp_path / "denoise" / "bsd68"
    clean = {name: _write_image(folder, name, seed) for seed, name in enumerate(["b.png", "a.png"])}
    task = dataclasses.replace(protocol.task("denoise-25"), noise=NoiseSpec(**yaml.safe_load(match[1])))
    dataset = build_task_dataset(protocol, task, tmp_path)
    saved = np.random.get_state()
    try:
        np.random.seed(0)
        expected = {name: np.clip(clean[name] + np.random.randn(16, 16, 3) * 25, 0, 255).astype(np.uint8)
                    for name in sorted(clean)}
    finally:
        np.random.set_state(saved)
    for item in (dataset[i] for i in range(len(dataset))):
        noisy = (item["input"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(noisy, expected[item["name"]], err_msg=item["name"])


# ------------------------------------------------------------------------------------------ facts and sources
def test_the_asterisk_note_says_the_source_table_does_not_define_its_mark():
    assert "source table" in ASTERISK_NOTE and "does not define" in ASTERISK_NOTE
    assert "usually" in ASTERISK_NOTE


@pytest.mark.parametrize("name", list_protocols())
def test_shipped_protocols_and_their_pages_cite_no_document_outside_bench_ir(name):
    assert "PROTOCOLS.md" not in protocol_markdown(name)


def test_the_leaderboard_readme_names_only_files_that_ship():
    readme = LEADERBOARD_README.read_text(encoding="utf-8")
    assert "PROTOCOLS.md" not in readme and "build_from_paper_text.py" not in readme


def test_unverified_sizes_are_called_unverified():
    allweather = load_protocol("allweather").notes
    assert "58 images" not in allweather and "size unverified" in allweather
    udc = load_protocol("udc")
    for sentence in re.split(r"(?<=\.) ", f"{udc.reference} {udc.notes}"):
        assert "1024x2048" not in sentence or "unverified" in sentence, sentence


@pytest.mark.parametrize("name", ["dehaze", "derain", "denoise"])
def test_single_task_protocols_have_no_average_as_table_b(name):
    assert load_protocol(name).average == []
