"""A researcher's own protocol files: a suite refuses two of one name, `bench-ir docs` writes their pages; the
single-task protocols cut from 3deg do not inherit its notes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import write_one_pair_protocol
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.protocol import load_protocol
from bench_ir.protocol_docs import protocol_markdown

runner = CliRunner()


def _two_files_named_mine(root: Path) -> tuple[Path, Path]:
    """``root/mine.yaml`` and ``root/other.yaml``, two one-pair protocols that both say ``name: mine``."""
    first = write_one_pair_protocol(root, "mine")
    second = write_one_pair_protocol(root, "other")
    second.write_text(second.read_text(encoding="utf-8").replace("name: other", "name: mine"), encoding="utf-8")
    assert load_protocol(second).name == "mine"
    return first, second


def _suite_file(root: Path, suite: dict) -> Path:
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "title": "s", **suite}), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- suites
def test_validate_refuses_a_suite_entry_running_two_protocol_files_of_one_name_naming_both(tmp_path):
    first, second = _two_files_named_mine(tmp_path)
    path = _suite_file(tmp_path, {"protocols": ["mine.yaml", "other.yaml"], "entries": [{"model": "input"}]})
    result = runner.invoke(app, ["validate", str(path)], terminal_width=400)
    assert result.exit_code == 1
    assert str(first) in result.output and str(second) in result.output
    assert "share the name 'mine'" in result.output and "give one of them another `name`" in result.output
    assert "distinct 'name's" not in result.output  # renaming the entry would not help


def test_validate_refuses_two_protocol_files_of_one_name_in_different_entries(tmp_path):
    """The cells differ (e1__mine, e2__mine), but `suite report` would put both in one table 'mine'."""
    _two_files_named_mine(tmp_path)
    path = _suite_file(tmp_path, {"entries": [{"name": "e1", "model": "input", "protocols": ["mine.yaml"]},
                                              {"name": "e2", "model": "input", "protocols": ["other.yaml"]}]})
    result = runner.invoke(app, ["validate", str(path)], terminal_width=400)
    assert result.exit_code == 1
    assert "share the name 'mine'" in result.output


def test_suite_run_refuses_two_protocol_files_of_one_name_before_any_cell(tmp_path):
    _two_files_named_mine(tmp_path)
    path = _suite_file(tmp_path, {"protocols": ["mine.yaml", "other.yaml"], "entries": [{"model": "input"}]})
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"],
                           terminal_width=400)
    assert result.exit_code != 0 and "share the name 'mine'" in result.output
    assert not (tmp_path / "out" / "runs").exists()


# ------------------------------------------------------------------------------------- docs
def test_docs_writes_the_page_of_an_own_protocol_file_and_an_index_of_it(tmp_path):
    path = write_one_pair_protocol(tmp_path, "mine")
    out = tmp_path / "pages"
    result = runner.invoke(app, ["docs", str(path), "--out", str(out)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "mine.md"]
    page = (out / "mine.md").read_text(encoding="utf-8")
    assert page == protocol_markdown(load_protocol(path))
    assert "*Generated from `mine.yaml` (version 1)" in page and "protocols/mine.yaml" not in page
    assert "[mine](mine.md)" in (out / "README.md").read_text(encoding="utf-8")


def test_docs_takes_a_folder_of_protocol_files(tmp_path):
    for name in ("a", "b"):
        write_one_pair_protocol(tmp_path / "mine", name)
    result = runner.invoke(app, ["docs", str(tmp_path / "mine"), "--out", str(tmp_path / "pages")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["README.md", "a.md", "b.md"]


def test_docs_of_own_files_needs_an_out_folder(tmp_path, monkeypatch):
    """Without --out the pages would go to docs/protocols and replace the shipped index."""
    monkeypatch.chdir(tmp_path)
    path = write_one_pair_protocol(tmp_path, "mine")
    result = runner.invoke(app, ["docs", str(path)], terminal_width=400)
    assert result.exit_code == 2
    assert "--out" in result.output and not (tmp_path / "docs").exists()


def test_docs_refuses_two_protocol_files_of_one_name_naming_both(tmp_path):
    first, second = _two_files_named_mine(tmp_path)
    result = runner.invoke(app, ["docs", str(first), str(second), "--out", str(tmp_path / "pages")],
                           terminal_width=400)
    assert result.exit_code == 2
    assert str(first) in result.output and str(second) in result.output and "'mine'" in result.output
    assert not (tmp_path / "pages").exists()


# ------------------------------------------------------------------------------------- shipped protocols
@pytest.mark.parametrize("name", ["derain", "dehaze"])
def test_a_single_task_protocol_cut_from_3deg_has_no_notes_about_its_noise_order(name):
    assert load_protocol("3deg").notes  # what it would inherit
    assert load_protocol(name).notes == ""
    assert "## Notes" not in protocol_markdown(name)
