"""The MIRAGE-T sample checkpoint shipped in registry/weights: what it is, where it came from, and that the README's
main command restores with it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from bench_ir.cards import get_card
from bench_ir.checkpoints import create_model, sha256_file, sidecar_path
from bench_ir.cli import app
from bench_ir.data.sample import SAMPLE_EVAL_IMAGES, SAMPLE_TRAIN_IMAGES
from bench_ir.resources import registry_dir
from bench_ir.results import load_run, protocol_average
from bench_ir.runner import RunConfig, run_protocol
from bench_ir.train.recipes import load_recipe

CARD = get_card("mirage-t")
WEIGHTS = registry_dir() / CARD.default_checkpoint
TRAINING_MANIFEST = WEIGHTS.with_name(WEIGHTS.name.removesuffix(".safetensors") + ".train-manifest.json")


def test_mirage_t_ships_a_default_checkpoint_of_at_most_15_mb():
    assert WEIGHTS.is_file()
    assert WEIGHTS.stat().st_size <= 15 * 2**20


def test_sample_weights_are_fp16_and_load_strictly_into_mirage_t():
    tensors = load_file(WEIGHTS)
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    model = create_model(CARD, checkpoint=WEIGHTS)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_provenance_sidecar_describes_this_very_file():
    sidecar = json.loads(sidecar_path(WEIGHTS).read_text())
    assert sidecar["output_sha256"] == sha256_file(WEIGHTS)
    assert sidecar["model"] == "mirage-t" and sidecar["dtype"] == "float16"


def test_training_manifest_shows_a_complete_sample_recipe_run_on_photos_disjoint_from_the_test_photos():
    manifest = json.loads(TRAINING_MANIFEST.read_text())
    assert manifest["status"] == "complete" and manifest["model"]["name"] == "mirage-t"
    assert manifest["recipe"]["name"].startswith("sample")
    assert manifest["steps_done"] == manifest["steps_target"]
    assert not set(SAMPLE_TRAIN_IMAGES) & set(SAMPLE_EVAL_IMAGES)


# The one whole-protocol MIRAGE-T run of the suite (35 forwards on the CPU, the README's main command), shared by the
# tests below: 99 s alone on 2 cores, over 300 s on a loaded 2-core machine. pytest-timeout counts a fixture in the
# first test that uses it, so every test of the fixture gets the worst-case limit (1800 s); the other runs of the
# suite use --limit 1.


@dataclass
class SampleRun:
    """A finished sample run: its manifest, per-task means and protocol Average, and (for the CLI run) its output."""

    manifest: dict
    summary: pd.DataFrame
    average: pd.Series
    output: str = ""


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory) -> tuple[SampleRun, SampleRun]:
    """MIRAGE-T through the README's main command, `bench-ir run --protocol 5deg --sample` (with a --run-dir), and
    the degraded inputs through the Python API."""
    root = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(app, ["run", "--protocol", "5deg", "--sample", "--run-dir", str(root / "mirage")],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    run = load_run(root / "mirage")
    summary = run.summary()
    mirage = SampleRun(run.manifest, summary, protocol_average(summary, run.manifest["protocol"]["average"]),
                       result.output)
    degraded = run_protocol(RunConfig(protocol="5deg", model="input", sample=True, run_dir=root / "input"))
    return mirage, SampleRun(degraded.manifest, degraded.summary, degraded.average)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_readme_command_prints_the_paper_table_of_the_sample_data_with_the_average(sample_runs):
    output = sample_runs[0].output
    assert "Average" in output and "MIRAGE-T" in output
    assert "sample (synthetic)" in output and "random weights" not in output
    table = output.split("Average")[0]
    assert table.count("sample data (synthetic)") == 7
    assert not [name for name in ("SOTS", "Rain100L", "BSD68", "GoPro", "LOLv1") if name in table]
    assert sample_runs[0].manifest["model"]["params"] == 6207412
    assert sample_runs[0].manifest["checkpoint"]["path"].endswith("mirage-t-sample.safetensors")


def _readme_row(label: str) -> list[float]:
    """PSNR cells of the README's sample table row ``label`` (dehaze ... Average)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| {label} |"))
    return [float(cell) for cell in row.strip("|").split("|")[1:]]


@pytest.mark.parametrize(("model", "label"), [(0, "MIRAGE-T (sample checkpoint)"), (1, "input")])
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_sample_run_reproduces_the_readme_table_to_a_hundredth_of_a_db(sample_runs, model, label):
    outcome = sample_runs[model]
    tasks = ["dehaze", "derain", "denoise-15", "denoise-25", "denoise-50", "deblur", "lowlight"]
    measured = [*outcome.summary.loc[tasks, "psnr"], outcome.average["psnr"]]
    shown = dict(zip([*tasks, "Average"], measured, strict=True))
    assert measured == pytest.approx(_readme_row(label), abs=0.0051), shown


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sample_runs_use_the_shipped_checkpoint(sample_runs):
    mirage, _ = sample_runs
    assert mirage.manifest["checkpoint"]["sha256"] == sha256_file(WEIGHTS)
    assert mirage.manifest["random_weights"] is False


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mirage_t_beats_the_input_on_the_protocol_average_by_over_a_db(sample_runs):
    mirage, degraded = sample_runs
    assert mirage.average["psnr"] - degraded.average["psnr"] > 1.0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mirage_t_improves_psnr_over_the_input_on_every_task_of_the_sample_protocol(sample_runs):
    """The rule a shipped sample checkpoint must meet (σ15, σ25 and σ50 count as tasks)."""
    mirage, degraded = sample_runs
    gain = mirage.summary["psnr"] - degraded.summary["psnr"]
    assert len(gain) == 7 and (gain > 0).all(), gain.to_dict()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mirage_t_denoises_sigma_25_and_50_by_several_db(sample_runs):
    mirage, degraded = sample_runs
    gain = mirage.summary["psnr"] - degraded.summary["psnr"]
    assert (gain[["denoise-25", "denoise-50"]] >= 3.0).all(), gain.to_dict()


# ------------------------------------------------------------------------------------------ lineage
LINEAGE = WEIGHTS.with_name(WEIGHTS.name.removesuffix(".safetensors") + ".lineage")


def _stage_paths() -> list[Path]:
    """The training manifests of the chain of runs behind the shipped weights, oldest first: the lineage folder's
    ``<n>-<run>.train-manifest.json``, then the shipped training manifest."""
    earlier = sorted(LINEAGE.glob("*.train-manifest.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [*earlier, TRAINING_MANIFEST]


def test_the_lineage_chains_every_fine_tune_to_the_weights_of_the_run_before_it():
    """Each run's --init-weights is the previous run's final weights, or their fp16 conversion (recorded beside
    it); the first run starts from scratch; the shipped file is the fp16 conversion of the last run."""
    stages = [json.loads(path.read_text()) for path in _stage_paths()]
    conversions = [json.loads(path.read_text()) for path in LINEAGE.glob("*.fp16.json")]
    fp32_of = {c["output_sha256"]: c["source_sha256"] for c in conversions}
    assert len(stages) >= 2 and stages[0].get("init_weights") is None
    for before, after in zip(stages, stages[1:], strict=False):
        start = after["init_weights"]["sha256"]
        assert fp32_of.get(start, start) == before["final_weights"]["sha256"], after["run_id"]
    assert json.loads(sidecar_path(WEIGHTS).read_text())["source_sha256"] == stages[-1]["final_weights"]["sha256"]


def test_every_run_of_the_lineage_is_a_complete_mirage_t_run_on_the_sample_training_photos():
    for path in _stage_paths():
        stage = json.loads(path.read_text())
        assert stage["status"] == "complete" and stage["model"]["name"] == "mirage-t", path.name
        assert stage["steps_done"] == stage["steps_target"], path.name
        assert {part["layout"] for part in stage["recipe"]["resolved"]["data"]} == {"sample"}, path.name


def test_every_fine_tune_of_the_lineage_reloads_as_the_very_recipe_it_ran():
    """``bench-ir train --recipe <manifest>`` repeats a run. The first run predates the brightness option, whose
    unset value is part of today's hash, so only the fine-tunes are checked."""
    for path in _stage_paths()[1:]:
        assert load_recipe(path).sha256 == json.loads(path.read_text())["recipe"]["sha256"], path.name
