"""`bench-ir profile` for small and own models: tiny figures keep their significant digits in the Markdown table,
the training step's size and batch are options (so a size rule other than 128's can be met), and one checkpoint is
never applied to every model of --all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.profiling import ProfileResult, profile_to_markdown

runner = CliRunner()

pytestmark = pytest.mark.usefixtures("one_thread")


def _result(params: int, flops: int) -> ProfileResult:
    return ProfileResult(
        model="m", display_name="M", device="cpu", device_name="cpu", dtype="float32", size=224, batch=1,
        params_total=params, params_inference=params, params_inference_source="all parameters", flops=flops,
        flops_with_training_heads=None, flops_counted_ops={}, flops_uncounted_ops={}, peak_memory_bytes=None,
        latency_ms_median=1.0, latency_ms_p90=1.0, throughput_images_per_s=1000.0, repeats=1, warmup=0)


def _row(result: ProfileResult) -> str:
    return profile_to_markdown(result).splitlines()[2]


def _conv_card(tmp_path: Path) -> Path:
    """A 1x1 conv (12 parameters) whose card takes only multiples of 3."""
    path = tmp_path / "conv3.yaml"
    path.write_text(yaml.safe_dump({"name": "conv3", "display_name": "Conv3", "factory": "torch.nn:Conv2d",
                                    "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 1},
                                    "expected_params": 12, "input_multiple": 3}))
    return path


def test_a_tiny_models_params_and_flops_keep_three_significant_digits():
    assert _row(_result(251, 261_360)).startswith("| M | 0.000251 | 0.000251 | 0.000261 |")


def test_published_size_models_keep_two_decimals_of_params_and_three_of_flops():
    assert _row(_result(6_207_412, 16_275_474_368)).startswith("| M | 6.21 | 6.21 | 16.275 |")


def test_profile_all_with_a_checkpoint_is_refused_before_profiling_anything(tmp_path):
    result = runner.invoke(app, ["profile", "--all", "--checkpoint", str(tmp_path / "w.safetensors"), "--runs-root",
                                 str(tmp_path / "runs")], terminal_width=400)
    assert result.exit_code == 2
    assert ("--checkpoint holds the weights of one model and --all profiles every registered model: give --model "
            "NAME with --checkpoint FILE, or --all without --checkpoint") in result.output
    assert not (tmp_path / "runs").exists()


def test_a_train_size_the_card_cannot_take_names_the_option_that_sets_it(tmp_path):
    result = runner.invoke(app, ["profile", "--model", str(_conv_card(tmp_path)), "--size", "6", "--train",
                                 "--device", "cpu", "--runs-root", str(tmp_path / "runs")], terminal_width=400)
    assert result.exit_code == 2
    assert "--train-size 128 is not. Use 126 or 129." in result.output


def test_the_training_step_takes_its_size_and_batch_from_the_options(tmp_path):
    result = runner.invoke(app, ["profile", "--model", str(_conv_card(tmp_path)), "--size", "6", "--train",
                                 "--train-size", "9", "--train-batch", "2", "--repeats", "1", "--warmup", "0",
                                 "--device", "cpu", "--json", "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    train = json.loads(result.stdout)["train"]
    assert (train["batch"], train["size"]) == (2, 9)
