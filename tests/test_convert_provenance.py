"""`bench-ir convert`'s sidecar records what the conversion did: the key prefixes actually removed, the entry of the
file that held the weights, and the --model-arg values the network was built with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from bench_ir.checkpoints import CheckpointMismatchError, create_model, read_checkpoint
from bench_ir.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY_CARD = ROOT / "examples" / "tiny-unet.yaml"
TINY_WEIGHTS = ROOT / "examples" / "tiny-unet.safetensors"
SAMPLE_WEIGHTS = ROOT / "registry" / "weights" / "mirage-t-sample.safetensors"
runner = CliRunner(env={"COLUMNS": "300"})


def _convert(source: Path, *options: str) -> dict:
    """Convert ``source`` to out.safetensors beside it and return its sidecar."""
    out = source.with_name("out.safetensors")
    result = runner.invoke(app, ["convert", str(source), str(out), *options])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_name("out.safetensors.json").read_text())


def _tiny(prefix: str = "") -> dict[str, torch.Tensor]:
    return {f"{prefix}{key}": value for key, value in load_file(str(TINY_WEIGHTS)).items()}


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_an_automatically_removed_prefix_is_recorded_as_stripped(tmp_path, prefix):
    torch.save(_tiny(prefix), tmp_path / "ddp.pth")
    sidecar = _convert(tmp_path / "ddp.pth", "--model", str(TINY_CARD))
    assert sidecar["stripped_prefixes"] == [prefix]


def test_a_card_prefix_that_matches_no_key_is_not_recorded_as_stripped(tmp_path):
    shutil.copy(SAMPLE_WEIGHTS, tmp_path / "plain.safetensors")  # mirage-t's card strips net.; these keys have none
    sidecar = _convert(tmp_path / "plain.safetensors", "--model", "mirage-t")
    assert sidecar["stripped_prefixes"] == [] and sidecar["weights_key"] is None


def test_a_strip_prefix_behind_the_automatic_one_records_both_in_the_order_removed(tmp_path):
    torch.save({"state_dict": _tiny("module.model.")}, tmp_path / "wrapped.pth")
    sidecar = _convert(tmp_path / "wrapped.pth", "--model", str(TINY_CARD), "--strip-prefix", "model.")
    assert sidecar["stripped_prefixes"] == ["module.", "model."]


def test_a_lightning_file_records_its_state_dict_entry_and_the_net_prefix(tmp_path):
    torch.save({"state_dict": _tiny("net."), "pytorch-lightning_version": "2.6.0"}, tmp_path / "last.ckpt")
    sidecar = _convert(tmp_path / "last.ckpt", "--model", str(TINY_CARD))
    assert (sidecar["weights_key"], sidecar["stripped_prefixes"]) == ("state_dict", ["net."])


def test_the_weight_set_chosen_from_a_basicsr_file_is_recorded(tmp_path):
    torch.save({"params": _tiny(), "params_ema": _tiny()}, tmp_path / "net_g.pth")
    with pytest.warns(UserWarning, match="holds 2 weight sets"):
        sidecar = _convert(tmp_path / "net_g.pth", "--model", str(TINY_CARD))
    assert sidecar["weights_key"] == "params"


def test_read_checkpoint_keeps_the_prefixes_it_tried_apart_from_those_it_removed(tmp_path):
    torch.save(_tiny("module."), tmp_path / "ddp.pth")
    from bench_ir.cards import get_card

    contents = read_checkpoint(tmp_path / "ddp.pth", get_card("mirage-t").checkpoint)
    assert (contents.prefixes, contents.stripped) == (("net.",), ("module.",))
    assert list(contents.state_dict) == list(_tiny())


@pytest.fixture()
def narrow_tiny_unet(tmp_path) -> Path:
    """Weights of TinyUNet built with width 8 (the card says 16), as a plain state_dict file."""
    torch.manual_seed(0)
    torch.save(create_model(str(TINY_CARD), width=8).state_dict(), tmp_path / "narrow.pth")
    return tmp_path / "narrow.pth"


def test_convert_takes_model_args_and_records_them(narrow_tiny_unet):
    sidecar = _convert(narrow_tiny_unet, "--model", str(TINY_CARD), "--model-arg", "width=8")
    assert sidecar["model_args"] == {"width": 8}
    assert sidecar["display_name"] == "TinyUNet (example) (width=8)"


def test_convert_without_model_args_records_none(tmp_path):
    torch.save(_tiny(), tmp_path / "plain.pth")
    assert _convert(tmp_path / "plain.pth", "--model", str(TINY_CARD))["model_args"] == {}


def test_weights_converted_with_model_args_name_them_when_loaded_with_the_cards_own(narrow_tiny_unet):
    _convert(narrow_tiny_unet, "--model", str(TINY_CARD), "--model-arg", "width=8")
    with pytest.raises(CheckpointMismatchError, match="--model-arg width=8"):
        create_model(str(TINY_CARD), checkpoint=narrow_tiny_unet.with_name("out.safetensors"))


def test_an_unknown_model_arg_is_one_error_naming_it(narrow_tiny_unet):
    result = runner.invoke(app, ["convert", str(narrow_tiny_unet), str(narrow_tiny_unet.with_name("out.safetensors")),
                                 "--model", str(TINY_CARD), "--model-arg", "depth=3"])
    assert result.exit_code == 2 and "depth" in result.stderr
    assert not narrow_tiny_unet.with_name("out.safetensors").exists()
