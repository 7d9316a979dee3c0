"""The running PSNR mean a run shows while it scores follows the rule of the final mean (bench_ir.results.aggregate):
an image whose output had NaN/Inf values makes it NaN, as the final table's mean is then NaN."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench_ir import cli, runner
from bench_ir.cli import app
from bench_ir.results import aggregate


class _NanOnBright(torch.nn.Module):
    """The identity, except NaN for every image whose mean is above one half."""

    def forward(self, x):
        bright = x.mean(dim=(1, 2, 3), keepdim=True) > 0.5
        return torch.where(bright, x * float("nan"), x)


@pytest.fixture(autouse=True)
def _a_line_at_every_event(monkeypatch):
    """Every progress event writes its line; FORCE_COLOR / TTY_COMPATIBLE would make rich draw a live display."""
    monkeypatch.setattr(cli, "PROGRESS_LINE_EVERY_S", 0.0)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def _record(psnr: float, nonfinite: bool = False) -> dict:
    return {"task": "t", "image": f"{psnr}", "psnr": psnr, "ssim": 0.5, "lpips": None, "nonfinite": nonfinite}


def _running_mean(records: list[dict]) -> float | None:
    mean = runner.RunningPsnr()
    for record in records:
        mean.add(record)
    return mean.mean


@pytest.mark.parametrize("psnrs", [[30.0, 20.0], [30.0, math.nan], [math.nan, 30.0], [math.inf, 30.0],
                                   [math.inf, math.nan]], ids=["finite", "nan-last", "nan-first", "inf", "inf-nan"])
def test_the_running_psnr_mean_is_the_final_task_mean_of_the_same_images(psnrs):
    records = [_record(psnr, nonfinite=math.isnan(psnr)) for psnr in psnrs]
    final = aggregate(pd.DataFrame(records)).loc["t", "psnr"]
    assert _running_mean(records) == pytest.approx(final, nan_ok=True)


def test_the_running_psnr_mean_counts_the_images_with_nan_inf_outputs():
    mean = runner.RunningPsnr()
    for record in (_record(30.0), _record(math.nan, nonfinite=True), _record(math.nan, nonfinite=True)):
        mean.add(record)
    assert (mean.count, mean.nonfinite) == (3, 2)


def test_the_running_psnr_mean_is_none_before_the_first_image():
    assert runner.RunningPsnr().mean is None


def _pair_folders(root, brightness: dict[str, int]):
    """Input/target folders of 16x16 pairs; each input is flat at its brightness, its target a little darker."""
    for folder in ("in", "gt"):
        (root / folder).mkdir()
    for name, level in brightness.items():
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(root / "in" / name)
        Image.fromarray(np.full((16, 16, 3), level - 10, np.uint8)).save(root / "gt" / name)
    return root / "in", root / "gt"


def test_the_progress_line_of_a_task_with_a_nan_output_shows_psnr_nan_and_the_non_finite_images(tmp_path):
    card = tmp_path / "nan-on-bright.yaml"
    card.write_text(f"name: nan-on-bright\ndisplay_name: NaN on bright\nfactory: {__name__}:_NanOnBright\n"
                    "expected_params: 0\n")
    inputs, targets = _pair_folders(tmp_path, {"a.png": 40, "b.png": 220, "c.png": 60})  # b.png: NaN output
    result = CliRunner().invoke(app, ["run", "--model", str(card), "--input-dir", str(inputs), "--target-dir",
                                      str(targets), "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("folder: ")]
    assert lines[1].endswith(", PSNR 28.13 dB"), result.stderr  # a.png alone: finite so far
    assert [re.sub(r".*, PSNR ", "PSNR ", line) for line in lines[2:]] == [
        "PSNR NaN (1 of 2 images non-finite)", "PSNR NaN (1 of 3 images non-finite)"], result.stderr
