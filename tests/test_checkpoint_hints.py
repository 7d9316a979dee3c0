"""What a checkpoint that does not fit its card says to do: the registered model it matches, judged with each
card's own key prefixes (not those of the card it was given to), and the card argument values its shapes call for
(``checkpoint.arg_dims``). Small torch.nn modules stand in for the registered models, so nothing big is built."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from bench_ir import checkpoints
from bench_ir.cards import CheckpointSpec, ModelCard, get_card, load_card
from bench_ir.checkpoints import CheckpointMismatchError, guess_models, load_weights
from bench_ir.yamlio import SpecError

LIGHTNING_CARD = ModelCard(name="lightning-net", display_name="LightningNet", factory="torch.nn:Linear",
                           args={"in_features": 4, "out_features": 3})
DDP_CARD = ModelCard(name="ddp-net", display_name="DdpNet", factory="torch.nn:Conv2d",
                     args={"in_channels": 2, "out_channels": 2, "kernel_size": 1})
PLAIN_CARD = ModelCard(name="plain-net", display_name="PlainNet", factory="torch.nn:Conv1d",
                       args={"in_channels": 2, "out_channels": 5, "kernel_size": 3})


def _with_prefixes(card: ModelCard, *prefixes: str) -> ModelCard:
    return replace(card, checkpoint=CheckpointSpec(strip_prefixes=list(prefixes)))


# like PromptIR (net.), NDR-Restore (module.) and Restormer (none) in the registry
FAKE_REGISTRY = [_with_prefixes(LIGHTNING_CARD, "net."), _with_prefixes(DDP_CARD, "module."), PLAIN_CARD]


@pytest.fixture()
def fake_registry(monkeypatch):
    """The registry the guesses search holds only the three small cards above."""
    monkeypatch.setattr(checkpoints, "list_cards", lambda registry=None: list(FAKE_REGISTRY))


def _lightning_file(path: Path) -> Path:
    """A Lightning checkpoint of the lightning-net model: its keys are 'net.' + the model's keys."""
    state = {f"net.{key}": value for key, value in nn.Linear(4, 3).state_dict().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.1.0", "epoch": 0}, path)
    return path


@pytest.mark.parametrize("given", [DDP_CARD, PLAIN_CARD], ids=["card-stripping-module", "card-stripping-nothing"])
def test_a_lightning_file_given_to_the_wrong_card_names_the_card_it_fits_whatever_that_card_strips(
        tmp_path, fake_registry, given):
    card = next(c for c in FAKE_REGISTRY if c.name == given.name)
    model = checkpoints.resolve_factory(card)(**card.args)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_weights(model, _lightning_file(tmp_path / "promptir-like.ckpt"), card)
    assert "match LightningNet exactly: did you mean --model lightning-net?" in str(caught.value)


def test_guesses_apply_each_cards_own_prefixes_to_the_keys_as_stored(fake_registry):
    stored = {"net.weight": (3, 4), "net.bias": (3,)}
    guesses = guess_models(stored, checkpoint_format="lightning")
    assert guesses[0].name == "lightning-net" and guesses[0].exact


def test_guesses_of_a_ddp_file_strip_module_for_every_card(fake_registry):
    stored = {f"module.{key}": tuple(value.shape) for key, value in nn.Conv1d(2, 5, 3).state_dict().items()}
    guesses = guess_models(stored, checkpoint_format="state_dict")
    assert guesses[0].name == "plain-net" and guesses[0].exact


# ------------------------------------------------------------------------- argument values read from shapes
class _QueueNet(nn.Module):
    """The keys of AirNet that matter here: E.E.queue (256 x 256*train_batch_size) and one weight."""

    def __init__(self, train_batch_size: int = 5) -> None:
        super().__init__()
        self.E = nn.Module()
        self.E.E = nn.Module()
        self.E.E.register_buffer("queue", torch.zeros(256, 256 * train_batch_size))
        self.head = nn.Linear(2, 2)


def _airnet_file(path: Path, train_batch_size: int, **changes: torch.Tensor) -> Path:
    state = {**_QueueNet(train_batch_size).state_dict(), **changes}
    torch.save(state, path)
    return path


def _load_error(model: nn.Module, path: Path, card: ModelCard) -> str:
    with pytest.raises(CheckpointMismatchError) as caught:
        load_weights(model, path, card)
    return str(caught.value)


@pytest.mark.parametrize(("name", "batch"), [("Denoise.pth", 3), ("Derain.pth", 1), ("Dehaze.pth", 1)])
def test_an_airnet_single_task_checkpoint_names_the_train_batch_size_that_loads_it(tmp_path, fake_registry, name,
                                                                                   batch):
    message = _load_error(_QueueNet(5), _airnet_file(tmp_path / name, batch), get_card("airnet"))
    assert f"E.E.queue checkpoint [256, {256 * batch}] vs model [256, 1280]" in message
    assert f"`--model airnet --model-arg train_batch_size={batch}`" in message
    assert "256 x train_batch_size" in message and "given: train_batch_size=5" in message
    assert "matches no registered model" not in message


def test_no_argument_is_named_when_another_tensor_differs_too(tmp_path, fake_registry):
    path = _airnet_file(tmp_path / "other.pth", 3, **{"head.weight": torch.zeros(2, 3)})
    message = _load_error(_QueueNet(5), path, get_card("airnet"))
    assert "--model-arg" not in message and "matches no registered model" in message


def test_no_argument_is_named_when_the_dimension_is_no_whole_multiple(tmp_path, fake_registry):
    path = _airnet_file(tmp_path / "odd.pth", 5, **{"E.E.queue": torch.zeros(256, 700)})
    message = _load_error(_QueueNet(5), path, get_card("airnet"))
    assert "--model-arg" not in message and "matches no registered model" in message


def _card_file(tmp_path: Path, arg_dims: str) -> Path:
    path = tmp_path / "queued.yaml"
    path.write_text("name: queued\ndisplay_name: Queued\nfactory: torch.nn:Linear\n"
                    "args: {in_features: 4, out_features: 3}\n"
                    f"checkpoint:\n  arg_dims:\n    - {arg_dims}\n")
    return path


def test_a_card_states_which_argument_sets_a_tensor_dimension(tmp_path, fake_registry):
    card = load_card(_card_file(tmp_path, "{key: weight, dim: 1, arg: in_features}"))
    torch.save(nn.Linear(6, 3).state_dict(), tmp_path / "wide.pth")
    message = _load_error(nn.Linear(4, 3), tmp_path / "wide.pth", card)
    assert "`--model queued --model-arg in_features=6`" in message


@pytest.mark.parametrize("entry", ["{key: weight, dim: -1, arg: in_features}",
                                   "{key: weight, dim: 1, arg: in_features, per_unit: 0}"])
def test_an_arg_dims_entry_with_an_impossible_dimension_or_unit_is_refused_when_the_card_is_read(tmp_path, entry):
    with pytest.raises(SpecError, match=r"queued.yaml: field 'checkpoint': field 'arg_dims'\[0\]"):
        load_card(_card_file(tmp_path, entry))
