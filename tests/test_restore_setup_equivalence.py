"""`bench-ir restore` continues a folder when the effective setup is the same (the padding applied, the model's
arguments after --model-arg), however it was written, and a restore.json of an older bench-ir compares alike; the
card's sample checkpoint follows the effective arguments too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_ir.cards import chosen_checkpoint, get_card, with_model_args
from bench_ir.checkpoints import sha256_file
from bench_ir.folder_restore import RestoreConfig, restore_folder
from bench_ir.runner import RunConfig, folder_protocol, run_protocol

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY_UNET = {"model": str(EXAMPLES / "tiny-unet.yaml"), "checkpoint": EXAMPLES / "tiny-unet.safetensors",
             "device": "cpu"}  # pad mode reflect, width 16


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (11, 13, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_pad_naming_the_cards_own_pad_mode_continues_the_folder(tmp_path, inputs):
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    again = restore_folder(RestoreConfig(inputs, tmp_path / "out", pad="reflect", **TINY_UNET))
    assert len(again.kept) == 2 and again.restored == []


def test_another_pad_mode_is_still_refused_naming_the_padding_applied(tmp_path, inputs):
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    with pytest.raises(ValueError, match="another setup: padding: reflect to a multiple of 2 → replicate to a "
                                         "multiple of 2"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", pad="replicate", **TINY_UNET))


def test_a_pad_mode_on_a_model_that_pads_nothing_continues_the_folder(tmp_path, inputs):
    """The input model's multiple is 1: no image is ever padded."""
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    again = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", pad="replicate"))
    assert len(again.kept) == 2


def test_a_model_arg_repeating_the_cards_own_value_continues_the_folder(tmp_path, inputs):
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    again = restore_folder(RestoreConfig(inputs, tmp_path / "out", model_args={"width": 16}, **TINY_UNET))
    assert len(again.kept) == 2 and again.manifest["model"]["args_overrides"] is None


def test_a_restore_json_with_a_raw_pad_and_overrides_and_no_fit_compares_by_its_effective_setup(tmp_path, inputs):
    """As an older bench-ir wrote it: `--pad reflect --model-arg width=16` recorded as given, no fit policy."""
    out = tmp_path / "out"
    restore_folder(RestoreConfig(inputs, out, **TINY_UNET))
    manifest = json.loads((out / "restore.json").read_text())
    manifest.pop("fit")
    manifest.pop("input_root", None)
    manifest.update(pad="reflect", model={**manifest["model"], "args_overrides": {"width": 16}})
    (out / "restore.json").write_text(json.dumps(manifest))
    again = restore_folder(RestoreConfig(inputs, out, **TINY_UNET))
    assert len(again.kept) == 2 and again.restored == []


def test_the_sample_checkpoint_serves_a_model_arg_repeating_the_cards_own_value(tmp_path, inputs, card_with_sample):
    outcome = restore_folder(RestoreConfig(inputs, tmp_path / "out", model=str(card_with_sample), device="cpu",
                                           use_sample_checkpoint=True, model_args={"width": 16}))
    assert outcome.manifest["checkpoint"]["sha256"] == sha256_file(card_with_sample.parent / "tiny-unet.safetensors")


def test_the_sample_checkpoint_is_found_for_a_card_whose_overrides_change_nothing(card_with_sample):
    card = with_model_args(get_card(str(card_with_sample)), {"width": 16})
    assert chosen_checkpoint(card, None, True) == card_with_sample.parent / "tiny-unet.safetensors"


def test_a_sample_checkpoint_that_does_not_fit_the_changed_arguments_says_so_in_restore_and_run(
        tmp_path, inputs, card_with_sample):
    weights = {"model": str(card_with_sample), "use_sample_checkpoint": True, "model_args": {"width": 8},
               "device": "cpu"}
    with pytest.raises(ValueError) as restore_refusal:
        restore_folder(RestoreConfig(inputs, tmp_path / "out", **weights))
    protocol = folder_protocol(tmp_path / "missing-in", tmp_path / "missing-gt")  # not read: refused before
    with pytest.raises(ValueError) as run_refusal:
        run_protocol(RunConfig(protocol=protocol, run_dir=tmp_path / "run", **weights))
    assert str(restore_refusal.value) == str(run_refusal.value) == (
        "model 'tiny-unet' ships a sample checkpoint trained with the card's own arguments, and --model-arg changes "
        "them (width=8, where the card has 16), so it does not fit this model; pass --checkpoint FILE with weights "
        "for these arguments, or leave out --model-arg to use the sample checkpoint")
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
