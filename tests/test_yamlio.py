"""Strict YAML reading: a repeated key is an error, and an error in an included file names that file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench_ir.protocol import load_protocol
from bench_ir.resources import protocols_dir
from bench_ir.train.recipes import load_recipe
from bench_ir.yamlio import SpecError, read_yaml, read_yaml_with_includes

ROOT = Path(__file__).resolve().parents[1]


def test_a_key_repeated_at_the_top_level_names_the_file_the_key_and_both_lines(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("name: x\nepochs: 3\nname: y\n")
    with pytest.raises(SpecError) as caught:
        read_yaml(path)
    assert str(caught.value) == (f"{path}: duplicate key 'name' at line 3 (first at line 1); a key may appear once "
                                 "in a mapping")


def test_a_repeated_block_in_a_protocol_is_refused_instead_of_dropping_the_first(tmp_path):
    shutil.copy(protocols_dir() / "3deg.yaml", tmp_path / "3deg.yaml")
    path = tmp_path / "twice.yaml"
    path.write_text((protocols_dir() / "5deg.yaml").read_text() + "tasks:\n  - {name: extra}\n")
    with pytest.raises(SpecError, match=r"twice\.yaml: duplicate key 'tasks' at line \d+ \(first at line \d+\)"):
        load_protocol(path)


def test_a_key_repeated_in_a_nested_mapping_is_refused(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text("name: x\noptimizer:\n  lr: 0.001\n  weight_decay: 0\n  lr: 0.1\n")
    with pytest.raises(SpecError, match=r"nested\.yaml: duplicate key 'lr' at line 5 \(first at line 3\)"):
        read_yaml(path)


def test_a_merge_key_may_be_overridden_by_the_mapping_own_keys(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {lr: 0.1, epochs: 3}\nrun:\n  <<: *base\n  lr: 0.01\n")
    assert read_yaml(path)["run"] == {"lr": 0.01, "epochs": 3}


def test_every_yaml_file_in_the_repository_loads():
    folders = ("registry", "protocols", "suites", "examples")
    paths = sorted(p for folder in folders for p in (ROOT / folder).rglob("*.y*ml"))
    assert len(paths) > 30
    for path in paths:
        assert isinstance(read_yaml(path), dict)


def _protocol_including(tmp_path: Path, base_text: str) -> Path:
    """tmp_path/inc.yaml including tmp_path/base_bad.yaml (holding ``base_text``)."""
    (tmp_path / "base_bad.yaml").write_text(base_text)
    (tmp_path / "inc.yaml").write_text("include: base_bad.yaml\nname: inc\n")
    return tmp_path / "inc.yaml"


def test_a_wrong_value_in_an_included_file_names_that_file_and_the_including_one(tmp_path, monkeypatch):
    shutil.copy(protocols_dir() / "3deg.yaml", tmp_path / "3deg.yaml")
    base = (protocols_dir() / "5deg.yaml").read_text()
    assert "\nversion: 1\n" in base
    _protocol_including(tmp_path, base.replace("\nversion: 1\n", '\nversion: "one"\n'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_protocol("inc.yaml")
    assert str(caught.value) == ("base_bad.yaml: field 'version': expected an integer, got 'one' "
                                 "(from inc.yaml including base_bad.yaml)")


def test_a_wrong_value_in_the_including_file_names_the_including_file(tmp_path, monkeypatch):
    shutil.copy(protocols_dir() / "3deg.yaml", tmp_path / "3deg.yaml")
    (tmp_path / "inc.yaml").write_text('include: 3deg.yaml\nname: inc\nversion: "one"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_protocol("inc.yaml")
    assert str(caught.value) == "inc.yaml: field 'version': expected an integer, got 'one'"


def test_a_missing_include_names_the_including_file_and_its_include_field(tmp_path, monkeypatch):
    (tmp_path / "inc.yaml").write_text("include: nosuch.yaml\nname: inc\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        read_yaml_with_includes(Path("inc.yaml"))
    assert str(caught.value) == f"inc.yaml: field 'include': {tmp_path.resolve() / 'nosuch.yaml'}: file not found"


def test_a_missing_include_of_a_recipe_names_the_including_recipe(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("include: nosuch.yaml\nname: mine\n")
    with pytest.raises(SpecError, match=r"mine\.yaml: field 'include': .*nosuch\.yaml: file not found"):
        load_recipe(path)


def test_bad_yaml_in_an_included_file_names_it_and_the_including_file(tmp_path, monkeypatch):
    _protocol_including(tmp_path, "name: x\ntasks: [a, b\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"base_bad\.yaml: not valid YAML: .* \(from inc\.yaml including "
                                        r"base_bad\.yaml\)$"):
        load_protocol("inc.yaml")


def test_an_unknown_field_in_an_included_file_names_that_file(tmp_path, monkeypatch):
    shutil.copy(protocols_dir() / "3deg.yaml", tmp_path / "3deg.yaml")
    _protocol_including(tmp_path, "include: 3deg.yaml\ncolour: red\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"^base_bad\.yaml: unknown field\(s\) \['colour'\]; allowed: .* \(from "
                                        r"inc\.yaml including base_bad\.yaml\)$"):
        load_protocol("inc.yaml")
