"""Progress where stderr is no terminal (a log file, nohup, a Slurm log): plain lines, written as the work goes, instead
of a rich live display that would appear only at the end (run, restore, suite run, train)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_suite import _write_suite
from typer.testing import CliRunner

from bench_ir import cli
from bench_ir.cli import app
from bench_ir.train import command

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()  # its stderr is no terminal
ELAPSED = r"\d+:\d\d:\d\d elapsed"


@pytest.fixture(autouse=True)
def _a_line_at_every_event(monkeypatch):
    """Interval 0: every event writes its line (raising=False: without the constant the test itself, not this fixture,
    fails); FORCE_COLOR / TTY_COMPATIBLE would make rich take the runner's stderr for a terminal."""
    monkeypatch.setattr(cli, "PROGRESS_LINE_EVERY_S", 0.0, raising=False)
    monkeypatch.setattr(command, "PROGRESS_LINE_EVERY_S", 0.0, raising=False)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def test_run_writes_a_line_per_task_start_and_image_with_elapsed_eta_and_psnr(tmp_path):
    result = runner.invoke(app, ["run", "--protocol", "5deg", "--sample", "--limit", "1", "--task", "derain",
                                 "--model", "input", "--device", "cpu", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert re.fullmatch(rf"derain: 0/1 images, {ELAPSED}, ETA -:--:--", lines[0]), result.stderr
    assert any(re.fullmatch(rf"derain: 1/1 images, {ELAPSED}, ETA 0:00:00, PSNR \d+\.\d\d dB", line)
               for line in lines), result.stderr
    assert "━" not in result.stderr  # no bar drawn once at the end


def test_restore_writes_images_done_elapsed_and_eta_as_lines(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(2):
        pixels = np.random.default_rng(index).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(inputs / f"{index}.png")
    result = runner.invoke(app, ["restore", "--input-dir", str(inputs), "--out", str(tmp_path / "out"), "--model",
                                 "input", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("restore:")]
    assert [line.split(",")[0] for line in lines] == ["restore: 0/2 images", "restore: 1/2 images",
                                                      "restore: 2/2 images"], result.stderr
    assert re.fullmatch(rf"restore: 2/2 images, {ELAPSED}, ETA 0:00:00", lines[-1])
    assert "━" not in result.stderr


def test_suite_run_writes_a_line_per_cell_start_and_end_and_the_overview_once(tmp_path):
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": ["5deg"]}])
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert "suite tiny-sample: 1 of 1 cells to run" in lines, result.stderr
    start = next((re.fullmatch(r"cell input__5deg: running, 0/(\d+) images", line) for line in lines
                  if line.startswith("cell input__5deg: running, 0/")), None)
    assert start, result.stderr
    images = start.group(1)  # one per task of 5deg (limit 1)
    assert any(re.fullmatch(rf"cell input__5deg: running, 1/{images} images, \d+\.\d s.*", line) for line in lines)
    assert any(re.fullmatch(rf"cell input__5deg: complete, {images}/{images} images, \d+\.\d s, suite ETA 0:00:00",
                            line) for line in lines), result.stderr
    assert result.stderr.count("┃ cell") == 1, result.stderr  # the overview table, once at the end


def test_train_writes_step_loss_throughput_and_eta_as_lines(tmp_path):
    card = str(ROOT / "examples" / "tiny-unet.yaml")
    result = runner.invoke(app, ["train", "--recipe", "sample", "--model", card, "--max-steps", "2", "--device", "cpu",
                                 "--batch-size", "2", "--patch-size", "16", "--workers", "0", "--no-val",
                                 "--no-tensorboard", "--log-every", "1", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("train:")]
    assert [line.split(",")[0] for line in lines] == ["train: step 0/2", "train: step 1/2", "train: step 2/2"]
    assert re.fullmatch(rf"train: step 2/2, {ELAPSED}, ETA 0:00:00, ep \d+ lr \S+ loss \d+\.\d{{4}} \(.*\) "
                        r"\d+\.\d img/s", lines[-1]), lines
    assert "━" not in result.stderr
