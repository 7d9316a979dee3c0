"""`bench-ir run --sample-checkpoint`: the card's shipped sample checkpoint on any data (folders, a protocol on real
data), refused where `restore --sample-checkpoint` refuses it, recorded in the manifest as any checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench_ir.checkpoints import sha256_file
from bench_ir.cli import app
from bench_ir.folder_restore import RestoreConfig, restore_folder
from bench_ir.results import load_run
from bench_ir.runner import MissingWeightsError, RunConfig, folder_protocol, run_protocol

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def _pair_folders(root: Path, names=("a.png", "b.png")) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for folder in ("in", "gt"):
        (root / folder).mkdir(parents=True)
    for name in names:
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "gt" / name)
        Image.fromarray(255 - image).save(root / "in" / name)
    return root / "in", root / "gt"


def test_run_scores_own_folders_with_the_cards_sample_checkpoint_recorded_by_path_and_sha256(tmp_path,
                                                                                           card_with_sample):
    inputs, targets = _pair_folders(tmp_path)
    result = runner.invoke(app, ["run", "--model", str(card_with_sample), "--sample-checkpoint", "--input-dir",
                                 str(inputs), "--target-dir", str(targets), "--run-dir", str(tmp_path / "run"),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    weights = card_with_sample.parent / "tiny-unet.safetensors"
    assert manifest["checkpoint"] == {"path": str(weights), "sha256": sha256_file(weights)}
    assert manifest["random_weights"] is False and manifest["sample"] is False
    assert len(load_run(tmp_path / "run").records) == 2


def test_a_sample_checkpoint_run_resumes_with_the_same_option(tmp_path, card_with_sample):
    protocol = folder_protocol(*_pair_folders(tmp_path))
    config = RunConfig(protocol=protocol, model=str(card_with_sample), use_sample_checkpoint=True,
                       run_dir=tmp_path / "run", limit=1, device="cpu")
    assert run_protocol(config).manifest["status"] == "complete"
    resumed = run_protocol(RunConfig(**{**config.__dict__, "limit": None, "resume": True}))
    assert resumed.manifest["status"] == "complete"
    assert len(load_run(tmp_path / "run").records) == 2


def _restore_refusal(tmp_path: Path, **weights) -> str:
    """What `restore` says to the same choice of weights (the run must say the same)."""
    folder = tmp_path / "restore-in"
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(folder / "a.png")
    with pytest.raises(ValueError) as refused:
        restore_folder(RestoreConfig(folder, tmp_path / "restore-out", device="cpu", **weights))
    return str(refused.value)


@pytest.mark.parametrize(("weights", "message"), [
    ({"model": "mirage-t", "checkpoint": "other.safetensors", "use_sample_checkpoint": True},
     "--sample-checkpoint and --checkpoint other.safetensors are two choices of weights; give one"),
    ({"model": "restormer", "use_sample_checkpoint": True},
     "model 'restormer' ships no sample checkpoint; pass --checkpoint FILE"),
], ids=["with-checkpoint", "none-shipped"])
def test_sample_checkpoint_is_refused_where_restore_refuses_it_with_the_same_message_before_any_data_work(
        tmp_path, weights, message):
    protocol = folder_protocol(tmp_path / "missing-in", tmp_path / "missing-gt")  # not read: refused before
    with pytest.raises(ValueError) as refused:
        run_protocol(RunConfig(protocol=protocol, run_dir=tmp_path / "run", device="cpu", **weights))
    assert str(refused.value) == message == _restore_refusal(tmp_path, **weights)
    assert not (tmp_path / "run").exists()


def test_random_weights_and_sample_checkpoint_are_refused_together(tmp_path):
    protocol = folder_protocol(tmp_path / "missing-in", tmp_path / "missing-gt")
    with pytest.raises(ValueError, match="^--random-weights allows a model without a checkpoint; it cannot run with "
                                         "--sample-checkpoint$"):
        run_protocol(RunConfig(protocol=protocol, use_sample_checkpoint=True, random_weights=True, device="cpu"))


def test_a_model_without_weights_on_real_data_names_the_sample_checkpoint_option(tmp_path):
    protocol = folder_protocol(*_pair_folders(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"pass --checkpoint FILE \(official checkpoints: .*\), or "
                                                  r"--sample-checkpoint for the sample checkpoint shipped with "
                                                  r"bench-ir .*, or --random-weights"):
        run_protocol(RunConfig(protocol=protocol, model="mirage-t", run_dir=tmp_path / "run", device="cpu"))


def test_use_sample_checkpoint_must_be_true_or_false():
    with pytest.raises(TypeError, match="RunConfig use_sample_checkpoint must be True or False, got 'yes'"):
        RunConfig(protocol="5deg", use_sample_checkpoint="yes")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ what a report makes of such a run
def test_a_run_on_real_data_with_the_sample_checkpoint_records_it_and_says_it_is_not_ranked(tmp_path,
                                                                                          card_with_sample):
    inputs, targets = _pair_folders(tmp_path)
    outcome = run_protocol(RunConfig(protocol=folder_protocol(inputs, targets), model=str(card_with_sample),
                                     use_sample_checkpoint=True, run_dir=tmp_path / "run", device="cpu"))
    assert outcome.manifest["sample_checkpoint"] is True
    assert any("sample checkpoint shipped" in notice and "not rank" in notice for notice in outcome.notices)


def test_a_copy_of_the_sample_checkpoint_given_as_checkpoint_counts_as_the_sample_checkpoint(tmp_path,
                                                                                             card_with_sample):
    inputs, targets = _pair_folders(tmp_path)
    copy = shutil.copy(card_with_sample.parent / "tiny-unet.safetensors", tmp_path / "my-weights.safetensors")
    outcome = run_protocol(RunConfig(protocol=folder_protocol(inputs, targets), model=str(card_with_sample),
                                     checkpoint=copy, run_dir=tmp_path / "run", device="cpu"))
    assert outcome.manifest["sample_checkpoint"] is True


def test_a_report_does_not_rank_or_reproduce_a_run_with_the_sample_checkpoint(tmp_path):
    from conftest import write_scored_run

    from bench_ir.report import build_table

    tasks = [{"name": "derain", "label": "Rain100L", "leaderboard": {"dataset": "Rain100L", "subset": None}}]
    run = write_scored_run(tmp_path / "run", tasks, [("derain", "x.png", 30.0, 0.9)], sample_checkpoint=True,
                           model={"name": "mirage-t", "display_name": "MIRAGE-T", "params": 6207412})
    table = build_table("3deg", [run], delta=True)
    measured = [row for row in table.rows if row.kind == "measured"]
    assert [(row.name, row.ranked) for row in measured] == [("MIRAGE-T [sample checkpoint]", False)]
    assert not any(block.title.startswith("Reproduction") for block in table.blocks)
    assert any("sample checkpoint" in note for note in table.notes)
