"""Checkpoint advice that must not mislead: no key prefix is proposed that fixes nothing or that would give two keys
one name (two weight sets collapsing into one), a near-copy of the requested model is called that model, damaged,
and a whole pickled model or a state_dict beside metadata loads. Small modules stand in for the registered models
(SmallNet for Restormer, WithFrequencyNet for AdaIR, TwoPartNet for NDR-Restore), so nothing big is built."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from bench_ir import checkpoints
from bench_ir.cards import CheckpointSpec, ModelCard
from bench_ir.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    convert_checkpoint,
    load_weights,
    read_state_dict,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class SmallNet(nn.Module):
    """Conv + BatchNorm + Linear: 9 tensors, parameters and buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)


class FrequencyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.para1 = nn.Parameter(torch.zeros(1))
        self.score_gen = nn.Linear(4, 4)


class WithFrequencyNet(SmallNet):
    """SmallNet plus blocks of its own under ``fre1.``, as AdaIR is Restormer plus frequency blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.fre1 = FrequencyBlock()


class TwoPartNet(nn.Module):
    """A restoration network and a degradation part, as NDR-Restore's ``restoration_net`` and
    ``degradation_net`` / ``degradation_representations``."""

    def __init__(self) -> None:
        super().__init__()
        self.degradation_representations = nn.Parameter(torch.zeros(2, 4))
        self.restoration_net = SmallNet()
        self.degradation_net = nn.Linear(4, 4)


def _card(name: str, display_name: str, factory: str, **checkpoint) -> ModelCard:
    return ModelCard(name=name, display_name=display_name, factory=f"{__name__}:{factory}",
                     checkpoint=CheckpointSpec(**checkpoint))


SMALL = _card("small-net", "SmallNet", "SmallNet")
WITH_FREQUENCY = _card("with-frequency", "WithFrequencyNet", "WithFrequencyNet")
TWO_PART = _card("two-part", "TwoPartNet", "TwoPartNet")
LIGHTNING_SMALL = replace(SMALL, name="lightning-small", checkpoint=CheckpointSpec(strip_prefixes=["net."]))


@pytest.fixture()
def registry(monkeypatch):
    """The registry the guesses search holds only the small cards above."""
    monkeypatch.setattr(checkpoints, "list_cards", lambda registry=None: [SMALL, WITH_FREQUENCY, TWO_PART])


def _seeded(factory, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return factory()


def _load_error(model: nn.Module, path: Path, card: ModelCard) -> str:
    with pytest.raises(CheckpointMismatchError) as caught:
        load_weights(model, path, card)
    return str(caught.value)


def _two_set_file(path: Path) -> tuple[Path, dict, dict]:
    """A Lightning file holding a SmallNet under ``net.`` and an EMA copy of other values under ``net_ema.``:
    (path, the net weights, the EMA weights)."""
    net, ema = _seeded(SmallNet, 0).state_dict(), _seeded(SmallNet, 1).state_dict()
    state = {**{f"net.{k}": v for k, v in net.items()}, **{f"net_ema.{k}": v for k, v in ema.items()}}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.1.0"}, path)
    return path, net, ema


# --------------------------------------------------------------------------------- prefixes that fix nothing
def test_a_bigger_models_file_names_that_model_not_a_prefix_to_strip(tmp_path, registry):
    torch.save(WithFrequencyNet().state_dict(), tmp_path / "adair-like.pth")
    message = _load_error(SmallNet(), tmp_path / "adair-like.pth", SMALL)
    assert "Removing the prefix" not in message
    assert message.endswith("Its keys and shapes match WithFrequencyNet exactly: did you mean --model with-frequency?")


def test_a_file_with_one_extra_key_names_it_and_gets_no_prefix_to_strip(tmp_path, registry):
    torch.save({**SmallNet().state_dict(), "extra.weight": torch.zeros(3)}, tmp_path / "extra.pth")
    message = _load_error(SmallNet(), tmp_path / "extra.pth", SMALL)
    assert "Removing the prefix" not in message
    assert ("Every tensor of SmallNet (small-net) is in the checkpoint with its shape; it also holds keys the model "
            "lacks (1: extra.weight).") in message


# ------------------------------------------------------------------------------- two weight sets, one name
def test_a_strip_giving_two_keys_one_name_is_an_error_naming_both(tmp_path):
    path, _, _ = _two_set_file(tmp_path / "net_and_ema.ckpt")
    with pytest.raises(CheckpointError, match=re.escape(
            "removing the key prefixes [\"net.\", \"net_ema.\"] gives 18 of its keys only 9 names (e.g. "
            "'net.conv.weight' and 'net_ema.conv.weight' both become 'conv.weight')")):
        read_state_dict(path, CheckpointSpec(strip_prefixes=["net.", "net_ema."]))


def test_convert_writes_nothing_when_its_strip_prefix_would_merge_two_weight_sets(tmp_path):
    path, _, _ = _two_set_file(tmp_path / "net_and_ema.ckpt")
    with pytest.raises(CheckpointError, match="the file holds more than one set of weights"):
        convert_checkpoint(path, tmp_path / "out.safetensors", LIGHTNING_SMALL, strip_prefixes=["net_ema."])
    assert list(tmp_path.iterdir()) == [path]


def test_convert_never_proposes_a_strip_prefix_that_would_merge_two_weight_sets(tmp_path, registry):
    path, _, _ = _two_set_file(tmp_path / "net_and_ema.ckpt")
    with pytest.raises(CheckpointMismatchError) as caught:
        convert_checkpoint(path, tmp_path / "out.safetensors", LIGHTNING_SMALL)
    message = str(caught.value)
    assert "--strip-prefix" not in message and "Removing the prefix" not in message
    assert "They hold another set of the model's weights (under 'net_ema.'; this load took the set under 'net.')" \
        in message


def test_the_advice_for_a_file_with_two_weight_sets_loads_the_set_it_names(tmp_path, registry):
    path, _, ema = _two_set_file(tmp_path / "net_and_ema.ckpt")
    advice = "`checkpoint: {strip_prefixes: [\"net_ema.\"], strict: false}` (the set under 'net_ema.')"
    assert advice in _load_error(SmallNet(), path, LIGHTNING_SMALL)
    target = _seeded(SmallNet, 2)
    with pytest.warns(UserWarning, match="non-strict load"):
        load_weights(target, path, replace(SMALL, checkpoint=CheckpointSpec(strip_prefixes=["net_ema."],
                                                                            strict=False)))
    assert all(torch.equal(value, ema[key]) for key, value in target.state_dict().items())


# ------------------------------------------------------------------------ a near-copy of the requested model
def test_the_requested_model_with_one_tensor_missing_is_called_that_model_damaged(tmp_path, registry):
    state = SmallNet().state_dict()
    del state["head.bias"]
    torch.save(state, tmp_path / "missing.pth")
    message = _load_error(SmallNet(), tmp_path / "missing.pth", SMALL)
    assert message.endswith("It is SmallNet (small-net) with 1 of its 9 tensors missing (head.bias): the file is "
                            "damaged, modified, or of another version of the model (it matches no registered model "
                            "better).")


def test_the_requested_model_with_one_tensor_of_another_shape_is_called_that_model_damaged(tmp_path, registry):
    torch.save({**SmallNet().state_dict(), "head.weight": torch.zeros(2, 5)}, tmp_path / "shape.pth")
    message = _load_error(SmallNet(), tmp_path / "shape.pth", SMALL)
    assert "It is SmallNet (small-net) with 1 of its 9 tensors of another shape (first: head.weight, [2, 5] instead " \
           "of [2, 4])" in message


def test_the_missing_parts_of_a_partial_file_are_named_by_their_key_prefix(tmp_path, registry):
    state = {k: v for k, v in TwoPartNet().state_dict().items() if k.startswith("restoration_net.")}
    torch.save(state, tmp_path / "restoration_only.pth")
    message = _load_error(TwoPartNet(), tmp_path / "restoration_only.pth", TWO_PART)
    assert "It is TwoPartNet (two-part) with 3 of its 12 tensors missing ('degradation_representations' and all 2 " \
           "under 'degradation_net.')" in message


# ---------------------------------------------------------------------------------- what _extract takes
def test_a_trusted_pickle_of_a_whole_model_converts_its_state_dict(tmp_path):
    source = _seeded(SmallNet, 0)
    torch.save(source, tmp_path / "whole_model.pth")
    sidecar = convert_checkpoint(tmp_path / "whole_model.pth", tmp_path / "out.safetensors", SMALL, trust_pickle=True)
    assert sidecar["source_format"] == "module" and sidecar["tensors"] == len(source.state_dict())


def test_a_state_dict_beside_a_metadata_entry_loads_its_tensors(tmp_path):
    source = _seeded(SmallNet, 0)
    torch.save({**source.state_dict(), "epoch": 5}, tmp_path / "with_epoch.pth")
    target = _seeded(SmallNet, 1)
    load_weights(target, tmp_path / "with_epoch.pth", SMALL)
    assert all(torch.equal(value, source.state_dict()[key]) for key, value in target.state_dict().items())


def test_top_level_tensors_beside_another_entry_holding_tensors_are_refused_naming_it(tmp_path):
    torch.save({**SmallNet().state_dict(), "ema": SmallNet().state_dict()}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match=r"beside entries holding tensors in another form \('ema'\): which are "
                                              r"the weights is unclear"):
        read_state_dict(tmp_path / "mixed.pth")


def test_weights_under_an_unknown_entry_name_get_the_card_key_that_loads_them(tmp_path):
    torch.save({"net": SmallNet().state_dict()}, tmp_path / "net_entry.pth")
    with pytest.raises(CheckpointError, match=re.escape("Entries holding tensors: 'net' (9 tensors); to load one, "
                                                        "name it in a copy of the model card: `checkpoint: "
                                                        "{key: net}`")):
        read_state_dict(tmp_path / "net_entry.pth")
    assert len(read_state_dict(tmp_path / "net_entry.pth", CheckpointSpec(key="net"))) == 9


def test_convert_names_the_model_arg_an_airnet_file_was_trained_with(tmp_path):
    """bench-ir convert gives the same hint as a load: the MoCo queue's width says train_batch_size=3."""
    from bench_ir.checkpoints import convert_checkpoint, create_model

    torch.save(create_model("airnet", train_batch_size=3).state_dict(), tmp_path / "Denoise.pth")
    with pytest.raises(CheckpointMismatchError) as caught:
        convert_checkpoint(tmp_path / "Denoise.pth", tmp_path / "out.safetensors", "airnet")
    assert "--model-arg train_batch_size=3" in str(caught.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_does_not_offer_a_non_strict_card_as_its_own_fix(tmp_path):
    """A prefix that fits but leaves keys unused needs a non-strict load, which convert never does."""
    from bench_ir.checkpoints import convert_checkpoint

    card = ModelCard(name="conv-net", display_name="ConvNet", factory="torch.nn:Conv1d",
                     args={"in_channels": 2, "out_channels": 5, "kernel_size": 3})
    state = {f"model.{key}": value for key, value in nn.Conv1d(2, 5, 3).state_dict().items()}
    torch.save({**state, "model.extra": torch.zeros(2)}, tmp_path / "net.pth")
    with pytest.raises(CheckpointMismatchError) as caught:
        convert_checkpoint(tmp_path / "net.pth", tmp_path / "out.safetensors", card)
    assert "strict: false}` in the model card and run or restore with that card: convert keeps every tensor" in str(
        caught.value)
