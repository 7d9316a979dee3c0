"""`bench-ir validate` checks a card without running its code; `--import` imports it; args meet the signature."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench_ir.cards import load_card
from bench_ir.checkpoints import create_model
from bench_ir.cli import app
from bench_ir.resources import registry_dir
from bench_ir.validation import validate_file
from bench_ir.yamlio import SpecError

runner = CliRunner()

NET = '''
from pathlib import Path
from torch import nn

Path(__file__).with_name("imported.marker").write_text("the module ran")


class Net(nn.Module):
    def __init__(self, width: int, depth: int = 2, *, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=bias)

    def forward(self, x):
        return self.conv(x)


def make(**kwargs):
    return Net(**kwargs)


Built = type("Built", (nn.Module,), {})
'''


def _card(tmp_path: Path, factory: str = "mynet:Net", args: dict | None = None) -> Path:
    """A card in ``tmp_path`` whose module has a name of its own (imported modules stay in sys.modules)."""
    module = "net_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"{module}.py").write_text(NET)
    factory = factory.replace("mynet", module)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "display_name": "Mine", "factory": factory,
                                    "args": {"width": 4} if args is None else args}))
    return path


def test_a_card_is_validated_without_importing_its_module(tmp_path):
    assert validate_file(_card(tmp_path)) == ("model card", "mine")
    assert not (tmp_path / "imported.marker").exists()


def test_import_option_imports_the_factory_and_checks_the_real_signature(tmp_path):
    result = runner.invoke(app, ["validate", "--import", str(_card(tmp_path))])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "imported.marker").exists()


@pytest.mark.parametrize("args, message", [
    ({"width": 4, "widht": 5}, r"unknown argument\(s\) widht for net_\w+:Net .* it accepts: width, depth, bias"),
    ({"depth": 3}, r"needs argument\(s\) width"),
])
def test_args_that_do_not_fit_the_signature_are_caught_statically(tmp_path, args, message):
    with pytest.raises(SpecError, match=message):
        validate_file(_card(tmp_path, args=args))
    assert not (tmp_path / "imported.marker").exists()


@pytest.mark.parametrize("factory, message", [
    ("mynet.Net", "expected 'module.path:callable' or 'file.py:callable'"),
    ("my-net:Net", "neither a dotted module name nor a .py file"),
    ("mynet:", "expected 'module.path:callable'"),
    ("nothere:Net", "cannot import module 'nothere' .*nothing was imported"),
    ("nothere.py:Net", "cannot import file nothere.py"),
])
def test_a_factory_string_of_the_wrong_shape_or_without_a_module_file_is_invalid(tmp_path, factory, message):
    with pytest.raises(SpecError, match=message):
        validate_file(_card(tmp_path, factory=factory))


@pytest.mark.parametrize("factory", ["mynet:Nett", "mynet.py:Nett"])
def test_a_factory_name_its_module_file_does_not_define_is_invalid_without_importing_it(tmp_path, factory):
    result = runner.invoke(app, ["validate", str(_card(tmp_path, factory=factory))])
    assert result.exit_code == 1
    assert re.search(r"card\.yaml: field 'factory': module 'net_\w+(\.py)?' has no attribute 'Nett'", result.output)
    assert not (tmp_path / "imported.marker").exists()


def test_a_factory_name_bound_to_a_literal_value_is_not_callable(tmp_path):
    path = _card(tmp_path, factory="mynet:WIDTH")
    module = next(tmp_path.glob("net_*.py"))
    module.write_text(module.read_text() + "\nWIDTH = 4\n")
    with pytest.raises(SpecError, match=r"field 'factory': net_\w+:WIDTH is not callable"):
        validate_file(path)


def test_a_factory_may_be_a_python_file_next_to_the_card(tmp_path):
    path = _card(tmp_path, factory="mynet.py:Net")
    assert validate_file(path) == ("model card", "mine")
    model = create_model(load_card(path))
    assert type(model).__name__ == "Net"


def test_a_signature_that_cannot_be_read_statically_is_a_note_and_import_checks_it(tmp_path):
    path = _card(tmp_path, factory="mynet:Built", args={"width": 4})
    notes: list[str] = []
    assert validate_file(path, notes=notes) == ("model card", "mine")
    assert len(notes) == 1 and "cannot be read" in notes[0] and "--import" in notes[0]
    result = runner.invoke(app, ["validate", "--import", str(path)])
    assert result.exit_code == 1
    assert "unknown argument(s) width" in result.output


def test_a_factory_with_keyword_arguments_accepts_any_args(tmp_path):
    assert validate_file(_card(tmp_path, factory="mynet:make", args={"anything": 1})) == ("model card", "mine")


def test_unknown_card_args_fail_before_the_model_is_built(tmp_path):
    path = _card(tmp_path, args={"width": 4, "colour": 1})
    with pytest.raises(SpecError, match=r"card .*card.yaml: unknown argument\(s\) colour"):
        create_model(load_card(path))


def test_every_shipped_card_validates_statically_without_importing_an_architecture():
    cards = sorted(registry_dir().glob("*.yaml")) + [Path(__file__).parents[1] / "examples" / "tiny-unet.yaml"]
    code = ("import sys\nfrom bench_ir.validation import validate_file\n"
            f"paths = {[str(p) for p in cards]!r}\n"
            "notes = []\n"
            "kinds = [validate_file(p, notes=notes)[0] for p in paths]\n"
            "assert kinds == ['model card'] * len(paths) and notes == [], notes\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('bench_ir.models.') or m == 'tiny_unet')\n"
            "assert loaded == [], loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_file_that_is_not_yaml_is_one_line_naming_the_file_line_and_column(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntasks: [a, b\n")
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["run", "--protocol", str(broken), "--sample"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {broken}: not valid YAML: line 3, column 1: expected ',' or ']', but got "
                                      "'<stream end>' (while parsing a flow sequence at line 2, column 8)")


def test_import_builds_the_model_and_a_count_other_than_expected_params_is_an_error_naming_the_card_and_both(tmp_path):
    path = _card(tmp_path)  # Net(width=4): one 1x1 conv, 3*3 weights + 3 biases = 12 parameters
    card = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**card, "expected_params": 999}))
    assert validate_file(path) == ("model card", "mine")  # static: nothing is built, the count is not known
    with pytest.raises(SpecError, match=r"card\.yaml: expected_params is 999 but the model built from net_\w+:Net "
                                        r"has 12 parameters"):
        validate_file(path, import_factory=True)
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["validate", "--import", str(path)])
    assert result.exit_code == 1
    assert "expected_params is 999" in result.output and "has 12 parameters" in result.output

    path.write_text(yaml.safe_dump({**card, "expected_params": 12}))
    assert validate_file(path, import_factory=True) == ("model card", "mine")


@pytest.mark.parametrize("import_factory", [False, True], ids=["static", "import"])
def test_a_default_checkpoint_missing_relative_to_the_card_is_invalid_naming_the_field_and_path(tmp_path,
                                                                                              import_factory):
    path = _card(tmp_path)
    card = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**card, "default_checkpoint": "weights/mine.safetensors"}))
    resolved = (tmp_path / "weights" / "mine.safetensors").resolve()
    with pytest.raises(SpecError) as caught:
        validate_file(path, import_factory=import_factory)
    assert f"{path}: field 'default_checkpoint': weights/mine.safetensors names {resolved}, which does not exist" \
        in str(caught.value)

    resolved.parent.mkdir()
    resolved.write_bytes(b"")  # found next to the card, whatever the current folder
    assert validate_file(path, import_factory=import_factory) == ("model card", "mine")
