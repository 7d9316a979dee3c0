"""A researcher's own protocol files: absolute layout folders are read wherever they are, a suite refuses two files
of one name, `bench-ir docs` writes their pages; the single-task protocols cut from 3deg do not inherit its notes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import write_one_pair_protocol
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.data.datasets import DatasetNotFoundError, needs_data_root, resolve_layout
from bench_ir.protocol import load_protocol
from bench_ir.protocol_docs import protocol_markdown
from bench_ir.suite import plan_suite

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


def _absolute_protocol(root: Path) -> Path:
    """``root/abs.yaml``: a one-pair protocol 'abs' whose layout names its folders absolutely."""
    path = write_one_pair_protocol(root, "abs")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["tasks"][0]["layouts"] = [{"input": str(root / "abs" / "input"), "target": str(root / "abs" / "target")}]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- absolute layout folders
def test_absolute_layout_folders_are_used_as_they_are_under_any_data_root(tmp_path):
    task = load_protocol(_absolute_protocol(tmp_path)).tasks[0]
    (tmp_path / "elsewhere").mkdir()
    for data_root in (None, tmp_path / "elsewhere"):
        assert resolve_layout(task, data_root).target_dir == tmp_path / "abs" / "target"


def test_only_relative_layout_folders_need_a_data_root(tmp_path):
    assert not needs_data_root(load_protocol(_absolute_protocol(tmp_path)).tasks)
    assert needs_data_root(load_protocol(write_one_pair_protocol(tmp_path, "rel")).tasks)


def test_data_check_of_a_protocol_with_absolute_folders_needs_no_data_root(tmp_path):
    result = runner.invoke(app, ["data", "check", "--protocol", str(_absolute_protocol(tmp_path))],
                           terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "ready: all 1 task(s) ok" in result.output


@pytest.mark.parametrize("data_root", [[], ["--data-root", "elsewhere"]], ids=["no data root", "another data root"])
def test_run_of_a_protocol_with_absolute_folders_reads_them_with_or_without_a_data_root(tmp_path, data_root):
    (tmp_path / "elsewhere").mkdir()
    data_root = [str(tmp_path / arg) if arg == "elsewhere" else arg for arg in data_root]
    result = runner.invoke(app, ["run", "--protocol", str(_absolute_protocol(tmp_path)), "--model", "input",
                                 "--run-dir", str(tmp_path / "run"), *data_root], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "results:" in result.output


def test_missing_absolute_folders_are_named_without_asking_for_a_data_root(tmp_path):
    task = load_protocol(_absolute_protocol(tmp_path)).tasks[0]
    shutil.rmtree(tmp_path / "abs")
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_layout(task, None, protocol_name="abs")
    message = str(caught.value)
    assert "no layout found. Tried:" in message and str(tmp_path / "abs" / "target") in message
    assert "data root" not in message and "--data-root" not in message, message


def test_a_suite_of_protocols_with_absolute_folders_plans_without_a_data_root(tmp_path):
    _absolute_protocol(tmp_path)
    plan = plan_suite(_suite_file(tmp_path, {"protocols": ["abs.yaml"], "entries": [{"model": "input"}]}),
                      tmp_path / "suite")
    assert plan.data_root is None and "input__abs" in [cell.name for cell in plan.cells]


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
