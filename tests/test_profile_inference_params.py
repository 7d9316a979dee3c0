"""Inference parameters are counted on the model profiled (all parameters but its declared training-only modules);
a card's ``inference_params`` counts the model of the card's own args, so --model-arg drops it, and
``validate --import`` checks it as it checks ``expected_params``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from bench_ir.cards import get_card, with_model_args
from bench_ir.checkpoints import create_model
from bench_ir.profiling import inference_parameter_count
from bench_ir.validation import validate_file
from bench_ir.yamlio import SpecError

pytestmark = pytest.mark.usefixtures("one_thread")


class NetWithHead(nn.Module):
    """A 1x1 conv restorer (12 parameters) and a training-only head (15): 27 in all, 12 at inference."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 3, 1)
        self.head = nn.Linear(3, 5, bias=False)

    def training_only_modules(self) -> list[str]:
        return ["head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _card(tmp_path: Path, inference_params: int) -> Path:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({"name": "with-head", "display_name": "WithHead",
                                    "factory": f"{__name__}:NetWithHead", "expected_params": 27,
                                    "inference_params": inference_params}))
    return path


def test_a_card_with_model_args_states_no_inference_parameter_count_of_its_own_args():
    changed = with_model_args(get_card("mirage-t"), {"dim": 6})
    assert get_card("mirage-t").inference_params is not None and changed.inference_params is None


def test_inference_parameters_of_a_model_built_with_other_args_are_counted_on_that_model():
    card = with_model_args(get_card("mirage-t"), {"dim": 6})
    model = create_model(card)
    total = sum(p.numel() for p in model.parameters())
    spd_head = sum(p.numel() for name in model.training_only_modules()
                   for p in model.get_submodule(name).parameters())
    count, source = inference_parameter_count(model, get_card("mirage-t"))  # even beside the unchanged card
    assert count == total - spd_head < get_card("mirage-t").inference_params
    assert source.startswith("all parameters except reduce_shallow")


def test_validate_import_refuses_an_inference_params_other_than_the_models_count(tmp_path):
    with pytest.raises(SpecError, match=r"card\.yaml: inference_params is 99999999 but the model built from "
                                        r"\S+:NetWithHead has 12 parameters outside its training-only modules; "
                                        r"correct inference_params or the factory and its args"):
        validate_file(_card(tmp_path, 99999999), import_factory=True)


def test_validate_import_accepts_the_models_inference_parameter_count(tmp_path):
    assert validate_file(_card(tmp_path, 12), import_factory=True) == ("model card", "with-head")
