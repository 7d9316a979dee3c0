"""BENCH_IR_DATA_ROOT: the data root of run, data check, suite and train when --data-root is not given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import FAST_TRAINING, write_one_pair_protocol
from test_train_data import make_train_tree
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.suite import plan_suite
from bench_ir.train.data import training_data_root
from bench_ir.train.recipes import load_recipe
from bench_ir.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

runner = CliRunner()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A one-task protocol 'toy' whose data lies under tmp_path/data, named by BENCH_IR_DATA_ROOT only."""
    protocol = write_one_pair_protocol(tmp_path / "data", "toy")
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path / "data"))
    return protocol


def _run(tmp_path, *args: str):
    return runner.invoke(app, ["run", "--model", "input", "--run-dir", str(tmp_path / "run"), *args])


def test_run_reads_its_data_from_the_environment_and_records_the_folder(tmp_path, toy):
    result = _run(tmp_path, "--protocol", str(toy))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["data_root"] == str((tmp_path / "data").resolve())


def test_run_says_which_folder_it_took_from_the_environment(tmp_path, toy):
    result = _run(tmp_path, "--protocol", str(toy))
    assert f"data root from BENCH_IR_DATA_ROOT: {tmp_path / 'data'}" in " ".join(result.stderr.split())


def test_an_explicit_data_root_wins_over_the_environment(tmp_path, toy, monkeypatch):
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path / "elsewhere"))
    result = _run(tmp_path, "--protocol", str(toy), "--data-root", str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    assert "BENCH_IR_DATA_ROOT" not in result.stderr


def test_a_sample_run_does_not_read_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path / "missing"))
    result = _run(tmp_path, "--protocol", "derain", "--sample", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["data_root"] is None


def test_a_folder_pair_run_is_not_in_conflict_with_the_environment(tmp_path, toy):
    result = _run(tmp_path, "--input-dir", str(tmp_path / "data/toy/input"), "--target-dir",
                  str(tmp_path / "data/toy/target"))
    assert result.exit_code == 0, result.output


def test_without_data_root_or_environment_the_error_names_both(tmp_path):
    result = _run(tmp_path, "--protocol", "3deg")
    assert result.exit_code == 2
    assert "pass --data-root or set BENCH_IR_DATA_ROOT" in " ".join(result.stderr.split())


def test_data_check_reads_the_environment(tmp_path, toy):
    result = runner.invoke(app, ["data", "check", "--protocol", str(toy), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["data_root"] == str(tmp_path / "data")


def test_data_check_of_a_recipe_reads_the_environment_and_says_so(tmp_path, monkeypatch):
    make_train_tree(tmp_path / "data")
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path / "data"))
    result = runner.invoke(app, ["data", "check", "--recipe", "derain", "--patch-size", "32"])
    assert result.exit_code == 0, result.output
    assert f"data root from BENCH_IR_DATA_ROOT: {tmp_path / 'data'}" in " ".join(result.stderr.split())


def test_a_suite_on_real_data_takes_its_data_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path))
    plan = plan_suite("mirage-paper", tmp_path / "out", checkpoint_dir=tmp_path)
    assert plan.data_root == str(tmp_path.resolve())


def test_suite_run_on_real_data_reads_the_environment_and_says_so(tmp_path, toy):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "toy-suite", "protocols": [str(toy)], "options": {"device": "cpu"},
                                     "entries": [{"model": "input"}]}))
    result = runner.invoke(app, ["suite", "run", str(suite), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"data root from BENCH_IR_DATA_ROOT: {(tmp_path / 'data').resolve()}" in " ".join(result.stderr.split())
    assert json.loads((tmp_path / "out/runs/input__toy/manifest.json").read_text())["data_root"] == str(
        (tmp_path / "data").resolve())


def test_a_sample_suite_ignores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path))
    assert plan_suite("sample", tmp_path / "out").data_root is None


def test_a_training_recipe_with_folders_takes_its_data_root_from_the_environment(tmp_path, monkeypatch):
    make_train_tree(tmp_path)
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path))
    assert training_data_root(load_recipe("derain"), None) == tmp_path
    assert training_data_root(load_recipe("sample-cpu"), None) is None


def test_training_records_the_data_root_it_took_from_the_environment(tmp_path, monkeypatch):
    make_train_tree(tmp_path / "data")
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path / "data"))
    train("derain", "mirage-t", None, tmp_path / "run", max_steps=1, **FAST_TRAINING)
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["data"]["root"] == str((tmp_path / "data").resolve())
    assert f"data root from BENCH_IR_DATA_ROOT: {tmp_path / 'data'}" in manifest["notices"]


# ------------------------------------------------------------------------------ BENCH_IR_CHECKPOINT_DIR
def test_a_suite_reads_relative_checkpoints_from_the_checkpoint_folder_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    plan = plan_suite("mirage-paper", tmp_path / "out", data_root=tmp_path)
    cell = plan.cell("mirage-t-5Deg_tiny__5deg")
    assert cell.checkpoint == str((tmp_path / "ckpt/mirage/5Deg_tiny.ckpt").resolve())
    assert (plan.checkpoint_dir, plan.checkpoint_dir_origin) == (str((tmp_path / "ckpt").resolve()),
                                                                 "BENCH_IR_CHECKPOINT_DIR")


def test_an_explicit_checkpoint_dir_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    plan = plan_suite("mirage-paper", tmp_path / "out", data_root=tmp_path, checkpoint_dir=tmp_path / "ckpt")
    assert plan.cell("mirage-t-5Deg_tiny__5deg").checkpoint == str((tmp_path / "ckpt/mirage/5Deg_tiny.ckpt").resolve())
    assert plan.checkpoint_dir_origin == "--checkpoint-dir"


def test_the_suite_files_own_checkpoint_folder_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "mine", "protocols": ["3deg"], "checkpoint_dir": "weights",
                                     "entries": [{"model": "mirage-t", "checkpoint": "mine.ckpt"}]}))
    plan = plan_suite(suite, tmp_path / "out", data_root=tmp_path)
    assert plan.cell("mirage-t-mine__3deg").checkpoint == str((tmp_path / "weights/mine.ckpt").resolve())
    assert plan.checkpoint_dir_origin == "suite file"


def test_without_a_checkpoint_folder_the_error_names_the_option_and_the_variable(tmp_path):
    with pytest.raises(ValueError, match="pass --checkpoint-dir or set BENCH_IR_CHECKPOINT_DIR"):
        plan_suite("mirage-paper", tmp_path / "out", data_root=tmp_path)


def test_a_suite_without_relative_checkpoints_records_no_checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    plan = plan_suite("sample", tmp_path / "out")
    assert (plan.checkpoint_dir, plan.checkpoint_dir_origin) == (None, None)


def test_suite_run_takes_the_checkpoint_folder_from_the_environment_and_says_so(tmp_path, toy, monkeypatch):
    card = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
    monkeypatch.setenv("BENCH_IR_CHECKPOINT_DIR", str(card.parent))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "toy-suite", "protocols": [str(toy)], "profile": {"enabled": False},
                                     "options": {"device": "cpu"},
                                     "entries": [{"model": str(card), "checkpoint": "tiny-unet.safetensors"}]}))
    result = runner.invoke(app, ["suite", "run", str(suite), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"checkpoint folder from BENCH_IR_CHECKPOINT_DIR: {card.parent}" in " ".join(result.stderr.split())
    manifest = json.loads((tmp_path / "out/runs/tiny-unet-tiny-unet__toy/manifest.json").read_text())
    assert manifest["checkpoint"]["path"] == str(card.parent / "tiny-unet.safetensors")
    status = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["suite", "status", str(tmp_path / "out")])
    assert f"data: {(tmp_path / 'data').resolve()}" in status.stdout
    assert f"checkpoints: {card.parent} (from BENCH_IR_CHECKPOINT_DIR)" in status.stdout


def test_suite_run_names_the_folders_it_took_from_the_environment_before_a_check_fails(tmp_path, monkeypatch):
    """A missing checkpoint's path can then be traced to the variable that named its folder."""
    monkeypatch.setenv("BENCH_IR_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("BENCH_IR_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    result = runner.invoke(app, ["suite", "run", "mirage-paper", "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    stderr = " ".join(result.stderr.split())
    assert f"data root from BENCH_IR_DATA_ROOT: {(tmp_path / 'data').resolve()}" in stderr
    assert f"checkpoint folder from BENCH_IR_CHECKPOINT_DIR: {(tmp_path / 'ckpt').resolve()}" in stderr
    assert f"checkpoint file not found: {(tmp_path / 'ckpt').resolve()}/mirage/3Deg_tiny.ckpt" in stderr
