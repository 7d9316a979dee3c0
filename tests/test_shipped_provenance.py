"""Provenance never records a machine path: shipped JSON/YAML hold no absolute paths, and writers record paths
relative to the run, the data root or the project."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import FAST_TRAINING

from bench_ir.cards import get_card
from bench_ir.checkpoints import convert_checkpoint
from bench_ir.manifest import portable_path, project_root

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("registry", "protocols", "examples", "suites", "bench/results")
MACHINE_PATH = re.compile(r"(^|[\s\"'=(\[,:])(/(home|Users|root|tmp|work|mnt|opt|var|private|data|scratch)/|~/)"
                          r"|^/[^/\s]|^[A-Za-z]:[\\/]")


def _shipped_files() -> list[Path]:
    files = []
    for folder in SHIPPED:
        if (ROOT / folder).is_dir():
            files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".json", ".yaml", ".yml")]
    return sorted(files)


def _strings(value, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, where)
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


def test_the_scan_finds_the_shipped_files_and_recognises_machine_paths():
    names = {p.name for p in _shipped_files()}
    assert {"mirage-t-sample.safetensors.json", "mirage-t.yaml", "5deg.yaml", "tiny-unet.yaml"} <= names
    for path in ("/work/main/registry/mirage-t.yaml", "/home/ann/x", "~/datasets", "C:\\Users\\x", "--root=/tmp/x"):
        assert MACHINE_PATH.search(path), path
    for text in ("registry/mirage-t.yaml", "https://github.com/x/y", "H/W multiple of 16", "PSNR/SSIM", "1/255"):
        assert not MACHINE_PATH.search(text), text


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_shipped_json_or_yaml_file_records_an_absolute_path(path):
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    found = [(where, text) for where, text in _strings(data) if MACHINE_PATH.search(text)]
    assert found == [], f"{path.relative_to(ROOT)} records machine paths: {found[:5]}"


def test_portable_paths_are_relative_to_a_given_root_then_the_project_else_just_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path(project_root() / "registry" / "mirage-t.yaml") == "registry/mirage-t.yaml"
    assert portable_path(tmp_path / "run" / "images" / "a.png", {"run": tmp_path / "run"}) == "images/a.png"
    assert portable_path(tmp_path / "card.yaml") == "card.yaml"  # under the current folder
    elsewhere = tmp_path.parent / "someone-else" / "weights.pt"
    monkeypatch.chdir(project_root())
    assert portable_path(elsewhere) == "weights.pt"
    assert portable_path("entry point my-nets (my_pkg.bench:cards)") == "entry point my-nets (my_pkg.bench:cards)"
    assert portable_path(None) is None


def test_convert_records_the_card_relative_to_the_project(tmp_path):
    info = convert_checkpoint(ROOT / "examples" / "tiny-unet.safetensors", tmp_path / "out.safetensors",
                              get_card(str(ROOT / "examples" / "tiny-unet.yaml")))
    assert info["card_source"] == "examples/tiny-unet.yaml"
    assert json.loads((tmp_path / "out.safetensors.json").read_text())["card_source"] == "examples/tiny-unet.yaml"


def test_a_run_manifest_records_its_protocol_and_card_by_project_relative_paths(tmp_path):
    from bench_ir.runner import RunConfig, run_protocol

    outcome = run_protocol(RunConfig(protocol="5deg", model="input", sample=True, limit=1, tasks=["denoise-25"],
                                     run_dir=tmp_path / "run"))
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    assert manifest["protocol"]["source"] == "protocols/5deg.yaml"
    assert manifest["model"]["card"]["source"] == "registry/input.yaml"


def test_a_command_line_is_recorded_with_its_path_arguments_made_portable(monkeypatch):
    from bench_ir.manifest import portable_command

    monkeypatch.chdir(project_root())
    weights = Path("/home/ann/runs/stage5/final.safetensors")
    argv = ["bench-ir", "train", "--recipe", "sample-cpu", "--init-weights", str(weights), "--run-dir=/tmp/x/run6",
            "--seed", "47", str(project_root() / "registry" / "mirage-t.yaml")]
    assert portable_command(argv) == ["bench-ir", "train", "--recipe", "sample-cpu", "--init-weights",
                                      "final.safetensors", "--run-dir=run6", "--seed", "47", "registry/mirage-t.yaml"]


def test_a_training_manifest_records_its_command_start_weights_and_validations_without_machine_paths(tmp_path):
    """What a shipped checkpoint's training manifest holds, written by the trainer itself."""
    import dataclasses

    from bench_ir.train.recipes import ValidationSpec, load_recipe
    from bench_ir.train.trainer import train

    train("sample", "mirage-t", None, tmp_path / "first", max_steps=1, **FAST_TRAINING)
    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(
        protocol="5deg", sample=True, limit=1, tasks=["denoise-25"], every_steps=None, every_epochs=None))
    weights = tmp_path / "first" / "final.safetensors"
    train(recipe, "mirage-t", None, tmp_path / "second", max_steps=1, init_weights=weights,
          command=["bench-ir", "train", "--init-weights", str(weights), "--run-dir", str(tmp_path / "second")],
          **{**FAST_TRAINING, "validate": True})
    manifest = json.loads((tmp_path / "second" / "train_manifest.json").read_text())
    found = [(where, text) for where, text in _strings(manifest) if MACHINE_PATH.search(text)]
    assert found == []
    assert manifest["init_weights"]["path"] == "final.safetensors"
    assert [v["run_dir"] for v in manifest["validation"]] == ["val/step-0000001"]
