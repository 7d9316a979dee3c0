"""A training run's final.safetensors records the model card and the arguments its network was built with, and
loading it with other arguments of that card says which ones it was trained with and how to load it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAINING as FAST
from conftest import TINY_MIRAGE_ARGS as TINY
from safetensors import safe_open
from typer.testing import CliRunner

from bench_ir.cards import count_parameters, factory_from, get_card
from bench_ir.checkpoints import (
    TRAINED_ARGS_KEY,
    TRAINED_CARD_KEY,
    CheckpointMismatchError,
    create_model,
    model_args_metadata,
    trained_model,
)
from bench_ir.cli import app
from bench_ir.train.checkpointing import export_safetensors
from bench_ir.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

TRAINED_WITH = ("It was trained with other arguments of model card 'mirage-t': dim=6, num_blocks=[1, 1, 1, 1], "
                "num_refinement_blocks=1")
EXAMPLE_CARD = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
FLAGS = "--model-arg dim=6 --model-arg 'num_blocks=[1,1,1,1]' --model-arg num_refinement_blocks=1"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step run of the sample recipe with the tiny MIRAGE-T arguments (so it writes model-card.yaml)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train("sample", "mirage-t", None, run, max_steps=1, **FAST)
    return run


def test_final_weights_record_the_card_and_the_arguments_its_network_was_built_with(run_dir):
    with safe_open(str(run_dir / "final.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert metadata[TRAINED_CARD_KEY] == "mirage-t"
    assert json.loads(metadata[TRAINED_ARGS_KEY]) == {"variant": "tiny", **TINY}  # the card's args and --model-arg
    assert trained_model(run_dir / "final.safetensors").args == {"variant": "tiny", **TINY}


def test_the_same_weights_and_arguments_in_another_order_export_to_the_same_bytes(tmp_path):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    first = export_safetensors(layer, tmp_path / "a.safetensors",
                               {TRAINED_ARGS_KEY: model_args_metadata({"dim": 6, "num_blocks": [1, 1]})})
    second = export_safetensors(layer, tmp_path / "b.safetensors",
                                {TRAINED_ARGS_KEY: model_args_metadata({"num_blocks": (1, 1), "dim": 6})})
    assert first.read_bytes() == second.read_bytes()


def test_loading_without_the_runs_arguments_names_them_and_the_card_the_run_wrote(run_dir):
    with pytest.raises(CheckpointMismatchError) as caught:
        create_model("mirage-t", checkpoint=run_dir / "final.safetensors")
    message = str(caught.value)
    assert "matches no registered model" not in message
    assert message.splitlines()[-1] == (
        f"{TRAINED_WITH} (given: dim, num_blocks, num_refinement_blocks left to the factory's defaults); load it "
        f"with `--model {run_dir / 'model-card.yaml'}` (the card its training run wrote) or "
        f"`--model mirage-t {FLAGS}`.")


def test_weights_away_from_their_run_are_loaded_with_the_model_arg_flags_they_name(run_dir, tmp_path):
    weights = Path(shutil.copy(run_dir / "final.safetensors", tmp_path / "weights.safetensors"))
    with pytest.raises(CheckpointMismatchError) as caught:
        create_model("mirage-t", checkpoint=weights, dim=12)
    assert str(caught.value).splitlines()[-1] == (
        f"{TRAINED_WITH} (given: dim=12; num_blocks, num_refinement_blocks left to the factory's defaults); load it "
        f"with `--model mirage-t {FLAGS}`.")
    assert create_model("mirage-t", checkpoint=weights, **TINY) is not None  # the flags it names load it


def test_bench_ir_run_with_the_card_alone_points_at_the_runs_model_card(run_dir, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "--protocol", "5deg", "--sample", "--task", "derain", "--limit", "1", "--model", "mirage-t",
        "--checkpoint", str(run_dir / "final.safetensors"), "--runs-root", str(tmp_path / "runs")],
        terminal_width=2000)
    assert result.exit_code == 2
    assert f"load it with `--model {run_dir / 'model-card.yaml'}` (the card its training run wrote)" in result.output


@pytest.fixture(scope="module")
def card_file_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step run of the example tiny-unet card FILE (its module lives next to it) with --model-arg width=8."""
    run = tmp_path_factory.mktemp("trained-card-file") / "run"
    train("sample", str(EXAMPLE_CARD), None, run, max_steps=1, model_args={"width": 8},
          **{key: value for key, value in FAST.items() if key != "model_args"})
    return run


def test_the_model_card_a_run_of_a_card_file_writes_builds_its_network_and_loads_its_weights(card_file_run,
                                                                                           monkeypatch):
    """As a new process would: the example card's folder, which importing that card put on sys.path, is not there."""
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if Path(entry) != EXAMPLE_CARD.parent])
    monkeypatch.delitem(sys.modules, "tiny_unet", raising=False)
    model = create_model(str(card_file_run / "model-card.yaml"), checkpoint=card_file_run / "final.safetensors")
    assert count_parameters(model) == count_parameters(create_model(str(EXAMPLE_CARD), width=8))


def test_the_hint_for_weights_of_a_card_file_names_the_file_not_its_name(card_file_run, tmp_path):
    weights = Path(shutil.copy(card_file_run / "final.safetensors", tmp_path / "weights.safetensors"))
    with pytest.raises(CheckpointMismatchError) as caught:
        create_model(str(EXAMPLE_CARD), checkpoint=weights)
    assert str(caught.value).splitlines()[-1].endswith(f"load it with `--model {EXAMPLE_CARD} --model-arg width=8`.")
    assert create_model(str(EXAMPLE_CARD), checkpoint=weights, width=8) is not None  # what it names loads it


def test_a_run_card_names_a_module_beside_its_card_relative_to_the_run_folder(card_with_sample, tmp_path):
    run = tmp_path / "runs" / "train" / "tiny-unet-sample"
    assert factory_from(get_card(str(card_with_sample)), run) == "../../../card/tiny_unet.py:TinyUNet"
    assert factory_from(get_card("mirage-t"), run) == get_card("mirage-t").factory  # an installed module
