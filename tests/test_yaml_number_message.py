"""A number YAML 1.1 reads as text (`1e-4`: an exponent without a decimal point or sign; a quoted number) is refused
by a numeric field with the reason and the spelling YAML reads as a number."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from bench_ir.train.recipes import load_recipe
from bench_ir.yamlio import SpecError, build_dataclass, read_yaml


@dataclass(frozen=True)
class Settings:
    rate: float = 0.1
    steps: int = 10


def _settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return build_dataclass(Settings, read_yaml(path), str(path))


def test_a_recipe_lr_in_exponent_form_without_a_decimal_point_says_why_and_how_to_write_it(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("include: 3deg\nname: mine\noptimizer: {name: adamw, lr: 1e-4}\n")
    with pytest.raises(SpecError, match=r"field 'lr': expected a number, got '1e-4' \(YAML 1\.1 reads 1e-4 as text: "
                                        r"a number with an exponent needs a decimal point and a signed exponent\); "
                                        r"write 1\.0e-4$"):
        load_recipe(path)


def test_a_float_field_suggests_a_signed_exponent(tmp_path):
    with pytest.raises(SpecError, match=r"field 'rate': expected a number, got '5e3' .*; write 5\.0e\+3$"):
        _settings(tmp_path, "rate: 5e3\n")


def test_an_integer_field_in_exponent_form_suggests_its_digits(tmp_path):
    with pytest.raises(SpecError, match=r"field 'steps': expected an integer, got '1e3' \(YAML 1\.1 reads 1e3 as "
                                        r"text: .*\); write 1000$"):
        _settings(tmp_path, "steps: 1e3\n")


def test_a_quoted_number_is_said_to_be_text(tmp_path):
    with pytest.raises(SpecError, match=r"field 'rate': expected a number, got '0\.001' \(a quoted number is text to "
                                        r"YAML\); write 0\.001$"):
        _settings(tmp_path, 'rate: "0.001"\n')


def test_a_word_in_a_numeric_field_gets_no_spelling_advice(tmp_path):
    with pytest.raises(SpecError, match=r"field 'rate': expected a number, got 'fast'$"):
        _settings(tmp_path, "rate: fast\n")
