"""Every registered model card, one specification (timm style): the card's counts are the model's, the output has
the input's shape, a checkpoint in the card's own official format loads strictly and reproduces the outputs, and a
size the card cannot take is a clear error. Model-specific behaviour lives in the per-model test files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bench_ir.cards import ModelCard, count_parameters, list_cards
from bench_ir.checkpoints import create_model, save_lightning_checkpoint
from bench_ir.profiling import inference_parameter_count

CARDS = [card for card in list_cards() if card.name != "input"]
WITH_INFERENCE_COUNT = [card for card in CARDS if card.inference_params is not None]
WITH_SIZE_RULE = [card for card in CARDS if card.input_multiple > 1]


@pytest.fixture(scope="module", params=CARDS, ids=lambda card: card.name)
def built(request) -> tuple[ModelCard, torch.nn.Module]:
    torch.manual_seed(0)
    return request.param, create_model(request.param)


pytestmark = pytest.mark.usefixtures("one_thread")


def _input_for(card: ModelCard, batch: int = 1) -> torch.Tensor:
    """An input of a size the card takes as is: two multiples of its size rule (at least 16 pixels)."""
    side = math.lcm(card.input_multiple, 16)
    return torch.rand(batch, 3, 2 * side, side, generator=torch.Generator().manual_seed(1))


def _restored(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def _save_in_card_format(model: torch.nn.Module, card: ModelCard, path: Path) -> Path:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    kind = card.checkpoint.format
    if kind == "lightning":
        return save_lightning_checkpoint(model, path)
    torch.save({"params": state} if kind == "basicsr" else state, path)
    return path


def test_model_has_the_card_parameter_count(built):
    card, model = built
    assert count_parameters(model) == card.expected_params


@pytest.mark.parametrize("built", WITH_INFERENCE_COUNT, indirect=True, ids=lambda card: card.name)
def test_model_has_the_card_inference_parameter_count(built):
    card, model = built
    assert inference_parameter_count(model, card)[0] == card.inference_params


def test_model_is_built_in_eval_mode(built):
    _, model = built
    assert not model.training


def test_output_has_the_input_shape(built):
    card, model = built
    x = _input_for(card)
    assert _restored(model, x).shape == x.shape


def test_checkpoint_in_the_card_format_loads_strictly_and_reproduces_outputs(built, tmp_path):
    card, model = built
    path = _save_in_card_format(model, card, tmp_path / "weights.pth")
    loaded = create_model(card, checkpoint=path)
    x = _input_for(card)
    torch.testing.assert_close(_restored(loaded, x), _restored(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("built", WITH_SIZE_RULE, indirect=True, ids=lambda card: card.name)
def test_size_off_the_model_multiple_raises_a_clear_error(built):
    """The network refuses sizes off its multiple with a message naming it (the engine pads or crops to the card's
    rule before calling it)."""
    card, model = built
    side = math.lcm(card.input_multiple, 16)
    with pytest.raises(ValueError, match=str(card.input_multiple)):
        _restored(model, torch.rand(1, 3, side, side + 1))
