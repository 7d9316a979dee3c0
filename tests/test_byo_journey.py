"""The bring-your-own-model journey of docs/byo-model.md, end to end on CPU with the example model:
run (sample data, trained example weights) -> profile -> report, the new row beside MIRAGE-T and MIRAGE-S."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_ir.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey")
    run = runner.invoke(app, ["run", "--protocol", "5deg", "--model", str(EXAMPLES / "tiny-unet.yaml"),
                              "--checkpoint", str(EXAMPLES / "tiny-unet.safetensors"), "--sample",
                              "--run-dir", str(root / "run")])
    assert run.exit_code == 0, run.output
    profile = runner.invoke(app, ["profile", "--model", str(EXAMPLES / "tiny-unet.yaml"), "--size", "64",
                                  "--repeats", "2", "--warmup", "1", "--json", "--runs-root", str(root)])
    assert profile.exit_code == 0, profile.output
    profile_dir = json.loads(profile.stdout)["run_dir"]
    report = runner.invoke(app, ["report", "--protocol", "5deg", "--runs", str(root / "run"), "--format", "latex"])
    assert report.exit_code == 0, report.output
    return root, run.output, profile_dir, report.output


def test_trained_example_weights_improve_on_the_degraded_input_for_denoising(journey):
    root, _, _, _ = journey
    from bench_ir.runner import RunConfig, run_protocol

    inputs = run_protocol(RunConfig(protocol="5deg", model="input", sample=True, run_dir=root / "input",
                                    tasks=["denoise-25"]))
    ours = json.loads((root / "run" / "manifest.json").read_text())
    assert ours["random_weights"] is False and ours["checkpoint"]["sha256"]
    from bench_ir.results import load_run

    restored = load_run(root / "run").summary()
    assert restored.loc["denoise-25", "psnr"] > inputs.summary.loc["denoise-25", "psnr"] + 0.5


def test_latex_table_places_the_new_model_beside_mirage_t_and_s_marked_as_sample(journey):
    _, _, _, latex = journey
    lines = latex.splitlines()
    ours = [line for line in lines if "TinyUNet" in line]
    assert ours, latex
    assert any("MIRAGE-T" in line for line in lines) and any("MIRAGE-S" in line for line in lines)
    assert "sample (synthetic)" in latex


def test_profile_of_the_example_is_stored_with_its_parameter_count(journey):
    _, _, profile_dir, _ = journey
    profile = json.loads((Path(profile_dir) / "profile.json").read_text())
    assert profile["params"] == 33379 and profile["flops"] > 0
