"""A `--registry` folder: its `*.yaml` and `*.yml` cards are read, a name identifies one card, and a lookup in a
folder without cards says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench_ir.cards import get_card, list_models
from bench_ir.cli import app
from bench_ir.yamlio import SpecError

runner = CliRunner(env={"COLUMNS": "400"})  # one line whatever the length of tmp_path


def _card(folder: Path, file_name: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(yaml.safe_dump({"name": name, "display_name": file_name, "factory": "torch.nn:Identity",
                                    "expected_params": 0}))
    return path


def test_two_cards_declaring_one_name_are_refused_when_the_registry_is_read(tmp_path):
    first, second = _card(tmp_path, "a.yaml", "twin"), _card(tmp_path, "b.yaml", "twin")
    with pytest.raises(SpecError, match=re.escape(f"{first} and {second} both declare the name 'twin'")):
        get_card("twin", registry=tmp_path)


def test_validate_refuses_both_cards_of_a_folder_that_declare_one_name(tmp_path):
    first, second = _card(tmp_path, "a.yaml", "twin"), _card(tmp_path, "b.yaml", "twin")
    _card(tmp_path, "c.yaml", "single")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    refused = f"{first} and {second} both declare the name 'twin'"
    assert result.output.count(refused) == 2, result.output
    assert f"ok {first}" not in result.output and f"ok {second}" not in result.output
    assert f"ok {tmp_path / 'c.yaml'}: model card 'single'" in result.output


def test_a_yml_card_is_read_from_a_registry_folder(tmp_path):
    _card(tmp_path, "goodyml.yml", "goodyml")
    assert list_models(registry=tmp_path) == ["goodyml"]
    assert get_card("goodyml", registry=tmp_path).source == str(tmp_path / "goodyml.yml")


def test_a_model_looked_up_in_a_registry_without_cards_says_the_registry_holds_none(tmp_path):
    with pytest.raises(KeyError, match=re.escape(f"unknown model 'mine': the model registry {tmp_path} holds no "
                                                 "model cards")):
        get_card("mine", registry=tmp_path)
