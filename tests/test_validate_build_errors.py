"""`bench-ir validate` reports an error of a card's own code for the card file and goes on with the other files:
an error raised while `--import` builds the model or counts its parameters, and (statically) a factory or hook
module that is not valid Python."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.validation import validate_file
from bench_ir.yamlio import SpecError

runner = CliRunner(env={"COLUMNS": "400"})  # one line whatever the length of tmp_path


def _card(tmp_path: Path, file_name: str, factory: str, code: str | None = None, **fields) -> Path:
    """A card file in ``tmp_path``; with ``code``, the factory's ``file.py`` next to it holds that code."""
    if code is not None:
        (tmp_path / factory.partition(":")[0]).write_text(code)
    path = tmp_path / file_name
    path.write_text(yaml.safe_dump({"name": path.stem, "display_name": path.stem, "factory": factory, **fields}))
    return path


def _net_with(method: str) -> str:
    """The code of a module with a ``Net(nn.Module)`` that has ``method`` (one line: signature and body)."""
    return f"from torch import nn\n\n\nclass Net(nn.Module):\n    def {method}\n"


def _validate(*args: str):
    return runner.invoke(app, ["validate", *args])


def test_a_factory_that_raises_is_reported_for_its_card_and_the_next_files_are_validated(tmp_path):
    broken = _card(tmp_path, "a-boom.yaml", "boom.py:build", "def build(**kw):\n    raise RuntimeError('boom')\n")
    last = _card(tmp_path, "z-fine.yaml", "torch.nn:Identity", expected_params=0)
    result = _validate("--import", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert f"invalid {broken}: boom.py:build() raised RuntimeError: boom" in result.output
    assert f"ok {last}: model card 'z-fine'" in result.output


def test_an_error_of_the_model_while_it_is_built_names_the_card_and_the_next_files_are_validated(tmp_path):
    code = _net_with("train(self, mode=True): raise RuntimeError('boom')")  # called by eval()
    broken = _card(tmp_path, "a-eval.yaml", "evalnet.py:Net", code)
    last = _card(tmp_path, "z-fine.yaml", "torch.nn:Identity", expected_params=0)
    result = _validate("--import", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert f"invalid {broken}: building the model raised RuntimeError: boom (the card's model code fails" in (
        result.output)
    assert f"ok {last}: model card 'z-fine'" in result.output


def test_an_error_of_the_model_while_its_parameters_are_counted_does_not_stop_validate(tmp_path):
    code = _net_with("training_only_modules(self): return 1 / 0")
    broken = _card(tmp_path, "a-count.yaml", "countnet.py:Net", code, inference_params=0)
    last = _card(tmp_path, "z-fine.yaml", "torch.nn:Identity", expected_params=0)
    result = _validate("--import", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert (f"invalid {broken}: counting the model's parameters for inference_params raised ZeroDivisionError: "
            "division by zero") in result.output
    assert f"ok {last}: model card 'z-fine'" in result.output
    assert "unexpected" not in result.output


def test_a_factory_file_that_is_not_valid_python_is_reported_statically_with_the_card_that_names_it(tmp_path):
    card = _card(tmp_path, "card.yaml", "broken.py:Net", "def Net(:\n")
    expected = f"{card}: field 'factory': {tmp_path / 'broken.py'}:1: invalid Python ("
    with pytest.raises(SpecError, match=rf"^{re.escape(expected)}.*\); correct the file$"):
        validate_file(card)


def test_a_hook_module_that_is_not_valid_python_is_reported_statically_with_the_card_and_field(tmp_path,
                                                                                                monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_objective_static.py").write_text("def Objective(:\n")
    card = _card(tmp_path, "card.yaml", "torch.nn:Identity", expected_params=0,
                 options={"objective": "broken_objective_static:Objective"})
    expected = f"{card}: options.objective: {tmp_path / 'broken_objective_static.py'}:1: invalid Python"
    with pytest.raises(SpecError, match=f"^{re.escape(expected)}"):
        validate_file(card)
