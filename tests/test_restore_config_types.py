"""RestoreConfig (the Python API of `bench-ir restore`) checks its field types when it is built, and restore_folder
checks every value before it writes the output folder or restore.json."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.folder_restore import RestoreConfig, restore_folder

runner = CliRunner()


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("overwrite", "no", "True or False"),
    ("recursive", "false", "True or False"),
    ("exact", "False", "True or False"),
    ("use_sample_checkpoint", 1, "True or False"),
    ("tile", "16", "an integer or None"),
    ("tile_overlap", 8.0, "an integer"),
    ("model_args", ["width=16"], "a dict of card argument names to values"),
    ("input_dir", None, "a path (str or Path)"),
    ("out_dir", 3, "a path (str or Path)"),
    ("device", None, "a string"),
    ("dtype", 16, "a string"),
    ("pad", 0, "a string or None"),
    ("checkpoint", 5, "a path (str or Path) or None"),
    ("command", "bench-ir restore", "a list of strings or None"),
    ("model", 3, "a model card name, a YAML path or a ModelCard"),
])
def test_a_field_of_the_wrong_type_is_refused_naming_the_field_and_what_it_takes(tmp_path, field, value, expected):
    fields = {"input_dir": tmp_path / "in", "out_dir": tmp_path / "out", field: value}
    message = f"RestoreConfig {field} must be {expected}, got {value!r}"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}"):
        RestoreConfig(**fields)


def test_an_integer_type_is_taken_as_an_int(tmp_path):
    config = RestoreConfig(tmp_path / "in", tmp_path / "out", tile=np.int64(64), tile_overlap=np.int32(8))
    assert type(config.tile) is int and type(config.tile_overlap) is int


def test_restore_folder_refuses_anything_but_a_restore_config():
    with pytest.raises(TypeError, match=r"^restore_folder takes a RestoreConfig, got 'in1' \(str\)"):
        restore_folder("in1")  # type: ignore[arg-type]


def test_an_unknown_dtype_is_refused_before_the_output_folder_is_written(tmp_path, inputs):
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", dtype="fp8"))
    assert not (tmp_path / "out").exists()


def test_a_tile_no_larger_than_its_overlap_names_the_option_to_change(tmp_path, inputs):
    result = runner.invoke(app, ["restore", "-i", str(inputs), "-o", str(tmp_path / "out"), "--model", "input",
                                 "--device", "cpu", "--tile", "16"])
    assert result.exit_code == 2
    assert ("tile overlap 32 must be smaller than the tile size 16: give a smaller tile_overlap (--tile-overlap, 32 "
            "by default) or a larger tile (--tile)") in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
