"""Pairing traps of the evaluation data path: a model is never scored against its own input, the `data check`
command a run suggests checks the data the run read, and the data check label of a noise task names no pairing."""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.data.datasets import PairingError, ResolvedLayout, pair_files
from bench_ir.protocol import LayoutSpec
from bench_ir.runner import RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU


def _rainy_and_clean(index: int) -> tuple[np.ndarray, np.ndarray]:
    clean = np.random.default_rng(index).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return 255 - clean, clean


def _rain100l_release(root: Path, copies_in_target: bool = True) -> Path:
    """A Rain100L layout of the derain protocol under ``root`` with two pairs; the target folder also holds copies
    of the rainy images (the original release folder used as the target folder) when ``copies_in_target``."""
    folder = root / "derain" / "Rain100L"
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True)
    for index in (1, 2):
        rainy, clean = _rainy_and_clean(index)
        Image.fromarray(rainy).save(folder / "input" / f"rain-{index:03d}.png")
        Image.fromarray(clean).save(folder / "target" / f"norain-{index:03d}.png")
        if copies_in_target:
            Image.fromarray(rainy).save(folder / "target" / f"rain-{index:03d}.png")
    return folder


def _pair_names(input_dir: Path, target_dir: Path, rule: str = "rain100l") -> list[tuple[str, str]]:
    layout = LayoutSpec(target=str(target_dir), input=str(input_dir), pairing=rule)  # type: ignore[arg-type]
    return [(p.input_path.name, p.target_path.name) for p in pair_files(layout, input_dir, target_dir).pairs]


def _derain_run(root: Path, run_dir: Path):
    return run_protocol(RunConfig(protocol="derain", model="input", data_root=root, run_dir=run_dir, device="cpu"))


# ------------------------------------------------------------------------------------------ rain100l
def test_rain100l_pairs_a_rainy_image_with_its_clean_image_when_the_target_folder_also_holds_its_copy(tmp_path):
    folder = _rain100l_release(tmp_path)
    assert _pair_names(folder / "input", folder / "target") == [("rain-001.png", "norain-001.png"),
                                                                 ("rain-002.png", "norain-002.png")]


def test_rain100l_prefers_the_clean_image_with_another_extension_over_a_copy_with_the_rainy_name(tmp_path):
    for folder in ("in", "gt"):
        (tmp_path / folder).mkdir()
    rainy, clean = _rainy_and_clean(1)
    Image.fromarray(rainy).save(tmp_path / "in" / "rain-1.png")
    Image.fromarray(rainy).save(tmp_path / "gt" / "rain-1.png")
    Image.fromarray(clean).save(tmp_path / "gt" / "norain-1.jpg")
    assert _pair_names(tmp_path / "in", tmp_path / "gt") == [("rain-1.png", "norain-1.jpg")]


def test_a_derain_run_on_a_target_folder_holding_rainy_copies_scores_the_input_against_the_clean_images(tmp_path):
    _rain100l_release(tmp_path / "data")
    scores = _derain_run(tmp_path / "data", tmp_path / "run").summary.loc["derain"]
    assert math.isfinite(scores["psnr"]) and scores["psnr"] < 10 and scores["ssim"] < 0.5  # rainy = 255 - clean


# ------------------------------------------------------------------------------------------ one file
def test_an_input_whose_target_is_a_hard_link_of_it_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(_rainy_and_clean(1)[0]).save(tmp_path / "in" / "a.png")
    os.link(tmp_path / "in" / "a.png", tmp_path / "gt" / "a.png")
    with pytest.raises(PairingError, match=r"inputs paired with themselves as targets .* 1: a.png; the input and the "
                                           r"target of a pair must be two files"):
        _pair_names(tmp_path / "in", tmp_path / "gt", rule="same_name")


# ------------------------------------------------------------------------------------------ data check
def test_the_data_check_label_of_a_noise_task_says_its_input_is_synthesised_and_names_no_pairing(tmp_path):
    layout = ResolvedLayout(LayoutSpec(target="denoise/bsd68", source="MIRAGE test layout"), None,
                            tmp_path / "denoise" / "bsd68")
    assert layout.describe() == f"{tmp_path}/denoise/bsd68 (clean only, input synthesised; MIRAGE test layout)"


def test_the_data_check_command_a_run_suggests_checks_the_data_root_the_run_read(tmp_path):
    root = tmp_path / "my data"  # a space: the command quotes it
    _rain100l_release(root, copies_in_target=False)
    notice = next(n for n in _derain_run(root, tmp_path / "run").notices if "100 expected" in n)
    command = notice[notice.index("(bench-ir ") + 1:notice.index(" says what differs)")]
    assert command == f"bench-ir data check --protocol derain --data-root '{root}'"
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    assert "2 pairs found, 100 expected" in result.output


# ------------------------------------------------------------------------------------------ same bytes
def test_data_check_warns_about_pairs_whose_target_file_is_a_copy_of_the_input(tmp_path):
    """A target folder holding copies of the inputs under the clean names passes the pairing rule; its pairs would
    score every model against an unchanged image. Such pairs are a warning (a real set may hold an image its
    degradation left unchanged), named with the advice to check the target folder."""
    from bench_ir.data.check import check_task
    from bench_ir.protocol import load_protocol

    folder = _rain100l_release(tmp_path, copies_in_target=False)
    rainy, _ = _rainy_and_clean(2)
    Image.fromarray(rainy).save(folder / "target" / "norain-002.png")  # the rainy image under the clean name
    check = check_task(load_protocol("derain"), "derain", tmp_path)
    assert check.same_content == ["rain-002.png"]
    assert any(w.startswith("input and target files hold the same bytes") and "1: rain-002.png" in w
               for w in check.warnings), check.warnings
    assert check.to_dict()["same_content"] == ["rain-002.png"] and check.ok
