"""A suite entry's model_args and the suite's profile size are checked against the entry's card by `validate` and
before `suite run` plans any cell, instead of failing every cell of the entry once it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench_ir.suite.plan import plan_suite
from bench_ir.suite.run import run_suite
from bench_ir.validation import validate_file
from bench_ir.yamlio import SpecError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _suite(tmp_path: Path, model_args: dict | None = None, profile: dict | None = None) -> Path:
    """A sample-data suite of the example tiny-unet card (input_multiple 2) with its shipped weights."""
    entry = {"model": str(EXAMPLES / "tiny-unet.yaml"), "checkpoint": str(EXAMPLES / "tiny-unet.safetensors")}
    if model_args is not None:
        entry["model_args"] = model_args
    data = {"name": "probe", "protocols": ["3deg"], "options": {"sample": True, "limit": 1}, "entries": [entry],
            "profile": profile or {"size": 32}}
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("import_factory", [False, True], ids=["static", "import"])
def test_validate_refuses_an_entry_whose_model_args_the_factory_does_not_take(tmp_path, import_factory):
    path = _suite(tmp_path, model_args={"widht": 4})
    with pytest.raises(SpecError, match=r"entries\[0\]: field 'model_args': .*unknown argument\(s\) widht .*it "
                                        r"accepts: width"):
        validate_file(path, import_factory=import_factory)


def test_validate_refuses_a_profile_size_that_the_entry_card_cannot_take(tmp_path):
    path = _suite(tmp_path, profile={"size": 33})
    with pytest.raises(SpecError, match=r"profile: field 'size': for entries\[0\] \(tiny-unet\): .*divisible by 2.* "
                                        r"Use 32 or 34"):
        validate_file(path)


def test_a_suite_that_does_not_profile_takes_any_profile_size(tmp_path):
    assert validate_file(_suite(tmp_path, profile={"enabled": False, "size": 33})) == ("suite", "probe")


def test_suite_run_refuses_unknown_model_args_before_any_cell_runs(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SpecError, match=r"entries\[0\]: field 'model_args': .*unknown argument\(s\) widht"):
        run_suite(_suite(tmp_path, model_args={"widht": 4}), out)
    assert not out.exists()


def test_suite_planning_refuses_a_profile_size_that_the_entry_card_cannot_take(tmp_path):
    with pytest.raises(SpecError, match=r"profile: field 'size': .*Use 32 or 34"):
        plan_suite(_suite(tmp_path, profile={"size": 33}), tmp_path / "out")
