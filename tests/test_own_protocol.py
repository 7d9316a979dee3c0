"""A user's own protocol (a YAML file with no published table): the commands `run` suggests work, and `report`
takes the protocol as `run` took it and shows the runs alone, unless published rows are asked for."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_one_pair_protocol
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.report import build_report

runner = CliRunner()


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(protocol file, run directory, the `next:` commands the run printed) of `--model input` on a one-image
    protocol named 'mine'."""
    root = tmp_path_factory.mktemp("own")
    path = write_one_pair_protocol(root, "mine")
    run_dir = root / "runs" / "input-mine"
    result = runner.invoke(app, ["run", "--protocol", str(path), "--data-root", str(root), "--model", "input",
                                 "--run-dir", str(run_dir)], terminal_width=400)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    commands = [line.strip() for line in lines[lines.index("next:") + 1:]]
    return path, run_dir, commands


def test_the_suggested_report_command_names_the_protocol_and_runs(own_run):
    _, run_dir, commands = own_run
    (report,) = [c for c in commands if c.startswith("bench-ir report")]
    assert report == f"bench-ir report --protocol mine --runs {shlex.quote(str(run_dir))} --format markdown"
    result = runner.invoke(app, shlex.split(report)[1:])
    assert result.exit_code == 0, result.output
    assert "Input (no restoration)" in result.stdout


def test_no_rank_among_published_rows_is_suggested_where_there_are_none(own_run):
    _, _, commands = own_run
    assert not any("--leaderboard" in c for c in commands)
    assert commands[-1].startswith("bench-ir compare OTHER_RUN")


def test_report_takes_the_protocol_file_as_run_took_it(own_run):
    path, run_dir, _ = own_run
    assert build_report(str(path), [run_dir], "csv") == build_report("mine", [run_dir], "csv")


def test_the_table_of_an_own_protocol_holds_the_runs_alone(own_run):
    _, run_dir, _ = own_run
    text = build_report("mine", [run_dir], "csv")
    assert [line.split(",")[1] for line in text.splitlines()[1:]] == ["measured"]


def test_published_rows_asked_for_where_there_are_none_are_an_error(own_run):
    _, run_dir, _ = own_run
    result = runner.invoke(app, ["report", "--protocol", "mine", "--runs", str(run_dir), "--leaderboard"])
    assert result.exit_code == 2 and "no leaderboard table for protocol 'mine'" in result.output


def test_a_mistyped_protocol_without_runs_is_still_an_error():
    result = runner.invoke(app, ["report", "--protocol", "5dge"])
    assert result.exit_code == 2 and "no leaderboard table for protocol '5dge'" in result.output


def test_a_published_protocol_keeps_its_published_rows_by_default():
    assert "MIRAGE-S" in build_report("5deg", [], "csv")


def test_a_size_the_model_cannot_take_is_refused_before_the_run_folder_is_made(tmp_path):
    """A protocol that neither crops nor pads, a model that needs even sides, an odd-sized pair and --pad none."""
    path = write_one_pair_protocol(tmp_path, "odd")
    protocol = yaml.safe_load(path.read_text())
    protocol["crop"] = {"rule": "none"}
    path.write_text(yaml.safe_dump(protocol))
    image = np.zeros((31, 32, 3), np.uint8)
    for folder in ("input", "target"):
        Image.fromarray(image).save(tmp_path / "odd" / folder / "a.png")
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = runner.invoke(app, ["run", "--protocol", str(path), "--data-root", str(tmp_path), "--model",
                                 str(examples / "tiny-unet.yaml"), "--checkpoint",
                                 str(examples / "tiny-unet.safetensors"), "--pad", "none", "--run-dir",
                                 str(tmp_path / "run")], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "error: t/a.png: 31x32 is not a multiple of 2, which the model needs" in result.output
    assert not (tmp_path / "run").exists()
