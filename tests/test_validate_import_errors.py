"""`validate --import`: a module that fails when imported (a SyntaxError, an error raised by its code) is reported
for the file that names it, and the other files are still validated. Statically, a module without Python source
(``os`` or ``sys``, frozen or built into the interpreter) is refused for that reason, not as a module not found."""

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


def _module(tmp_path: Path, stem: str, code: str) -> str:
    """A module file in ``tmp_path`` with a name of its own (imported modules stay in sys.modules); its name."""
    name = stem + "_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"{name}.py").write_text(code)
    return name


def _card(tmp_path: Path, file_name: str, factory: str, **fields) -> Path:
    path = tmp_path / file_name
    path.write_text(yaml.safe_dump({"name": path.stem, "display_name": path.stem, "factory": factory, **fields}))
    return path


def test_a_syntax_error_in_a_factory_module_is_reported_for_its_card_and_the_other_files_are_still_checked(tmp_path):
    broken = _module(tmp_path, "synerr", "def Net(:\n")
    first = _card(tmp_path, "a-broken.yaml", f"{broken}:Net")
    last = _card(tmp_path, "z-fine.yaml", "torch.nn:Identity", expected_params=0)
    result = runner.invoke(app, ["validate", "--import", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert f"invalid {first}: importing {broken}: SyntaxError: invalid syntax ({broken}.py, line 1)" in result.output
    assert f"ok {last}: model card 'z-fine'" in result.output
    assert "unexpected" not in result.output


def test_an_error_raised_by_a_factory_module_at_import_names_the_card_the_module_and_the_error(tmp_path):
    raising = _module(tmp_path, "raises", "raise RuntimeError('no GPU library here')\n\ndef Net():\n    pass\n")
    card = _card(tmp_path, "card.yaml", f"{raising}:Net")
    with pytest.raises(SpecError, match=rf"^{re.escape(str(card))}: importing {raising}: RuntimeError: no GPU library "
                                        "here"):
        validate_file(card, import_factory=True)


def test_a_hook_module_that_fails_at_import_is_reported_with_its_field(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = _module(tmp_path, "objective", "def Objective(:\n")
    card = _card(tmp_path, "card.yaml", "torch.nn:Identity", expected_params=0,
                 options={"objective": f"{broken}:Objective"})
    with pytest.raises(SpecError, match=rf"options\.objective: importing {broken}: SyntaxError: .* line 1\)"):
        validate_file(card, import_factory=True)


def test_a_factory_in_a_module_without_python_source_is_refused_for_that_reason(tmp_path):
    card = _card(tmp_path, "card.yaml", "sys:exit")  # built in on every Python (os is frozen from Python 3.11)
    with pytest.raises(SpecError, match=r"field 'factory': module 'sys' has no Python source in which to check "
                                        r"'exit' and its signature \(it is built into the Python interpreter\)"):
        validate_file(card)
