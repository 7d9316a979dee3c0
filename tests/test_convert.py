"""`bench-ir convert`: an existing output is kept unless --overwrite; unreadable files are one line naming them."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from bench_ir.cli import app

SAMPLE_WEIGHTS = Path(__file__).resolve().parents[1] / "registry" / "weights" / "mirage-t-sample.safetensors"
runner = CliRunner(env={"COLUMNS": "300"})


@pytest.fixture()
def converted_once(tmp_path) -> Path:
    """The sample MIRAGE-T weights converted to tmp_path/out.safetensors (with its sidecar)."""
    shutil.copy(SAMPLE_WEIGHTS, tmp_path / "w.safetensors")
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["convert", str(tmp_path / "w.safetensors"), str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_convert_refuses_an_existing_output_without_overwrite(converted_once):
    out = converted_once
    before = out.read_bytes(), (out.parent / "out.safetensors.json").read_bytes()
    result = runner.invoke(app, ["convert", str(out.parent / "w.safetensors"), str(out), "--fp16"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: output {out} already exists; pass --overwrite (overwrite=True) to "
                                     "replace it, or choose another output file")
    assert (out.read_bytes(), (out.parent / "out.safetensors.json").read_bytes()) == before


def test_convert_overwrite_replaces_the_output_and_its_sidecar(converted_once):
    out = converted_once
    result = runner.invoke(app, ["convert", str(out.parent / "w.safetensors"), str(out), "--fp16", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads((out.parent / "out.safetensors.json").read_text())["dtype"] == "float16"


def _truncated_zip(path: Path) -> None:
    torch.save(nn.Linear(2, 2).state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(("name", "write", "explanation"), [
    ("empty.ckpt", lambda p: p.write_bytes(b""), "the file is empty"),
    ("truncated.ckpt", _truncated_zip, "it is a zip archive that is truncated"),
    ("raw.pkl", lambda p: p.write_bytes(pickle.dumps({"a": 1})), "it is a raw Python pickle"),
])
def test_convert_trust_pickle_of_a_file_that_is_no_checkpoint_is_one_line_naming_it(tmp_path, name, write,
                                                                                    explanation):
    write(tmp_path / name)
    result = runner.invoke(app, ["convert", str(tmp_path / name), str(tmp_path / "out.safetensors"), "--trust-pickle"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot read checkpoint {tmp_path / name}: {explanation}")
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_of_keys_behind_one_common_prefix_says_which_strip_prefixes_to_put_in_the_card(tmp_path):
    from safetensors.torch import load_file

    card = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
    weights = load_file(str(card.with_suffix(".safetensors")))
    torch.save({"state_dict": {f"generator.{k}": v for k, v in weights.items()}}, tmp_path / "gan.pth")
    result = runner.invoke(app, ["convert", str(tmp_path / "gan.pth"), str(tmp_path / "out.safetensors"),
                                 "--model", str(card)])
    assert result.exit_code == 2
    assert f"error: checkpoint {tmp_path / 'gan.pth'} does not fit TinyUNet (example) (tiny-unet)" in result.stderr
    assert result.stderr.rstrip().endswith(
        "Removing the prefix 'generator.' from its keys makes them fit: put "
        '`checkpoint: {strip_prefixes: ["generator."]}` in the model card (or convert with `--strip-prefix '
        'generator.`).')
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_strip_prefix_removes_a_wrappers_prefix_and_the_sidecar_records_it(tmp_path):
    from safetensors.torch import load_file

    torch.save({"state_dict": {f"model.{k}": v for k, v in load_file(str(SAMPLE_WEIGHTS)).items()},
                "pytorch-lightning_version": "2.6.0"}, tmp_path / "wrapped.ckpt")
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["convert", str(tmp_path / "wrapped.ckpt"), str(out), "--strip-prefix", "model."])
    assert result.exit_code == 0, result.output
    assert load_file(str(out)).keys() == load_file(str(SAMPLE_WEIGHTS)).keys()
    assert json.loads(out.with_suffix(".safetensors.json").read_text())["stripped_prefixes"] == ["model."]
