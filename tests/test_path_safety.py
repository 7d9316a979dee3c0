"""Outputs stay inside the run directory, relative layout folders inside --data-root: safe task/dataset names,
one `inside`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.data.datasets import resolve_layout
from bench_ir.engine import _save_batch
from bench_ir.protocol import LayoutSpec, TaskSpec, load_protocol
from bench_ir.safety import UnsafePathError, inside, safe_name
from bench_ir.yamlio import SpecError

runner = CliRunner()


def _protocol_file(tmp_path: Path, task_name: str = "denoise", dataset: str = "bsd68",
                   target: str = "denoise/bsd68") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({
        "name": "p", "title": "t", "version": 1,
        "tasks": [{"name": task_name, "label": "L", "dataset": dataset, "layouts": [{"target": target}],
                   "noise": {"sigma": 25}}],
    }))
    return path


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", ".hidden", "", "a b", "x" * 129])
def test_a_task_name_that_is_not_a_safe_identifier_is_refused_when_the_protocol_is_loaded(tmp_path, name):
    path = _protocol_file(tmp_path, task_name=name)
    with pytest.raises(SpecError, match="task name") as err:
        load_protocol(path)
    assert str(path) in str(err.value) and repr(name) in str(err.value)


def test_a_dataset_name_with_a_path_in_it_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"dataset name '\.\./sets'"):
        load_protocol(_protocol_file(tmp_path, dataset="../sets"))


def test_a_layout_folder_climbing_out_of_the_data_root_is_refused_at_load(tmp_path):
    with pytest.raises(SpecError, match=r"layout folder '\.\./\.\./etc' climbs out"):
        load_protocol(_protocol_file(tmp_path, target="../../etc"))


def test_validate_rejects_an_unsafe_task_name_naming_file_and_name(tmp_path):
    path = _protocol_file(tmp_path, task_name="../../x")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "invalid" in result.output and "'../../x'" in result.output and "p.yaml" in result.output


def test_safe_names_are_single_path_components():
    for name in ("denoise-25", "sots-outdoor", "haze_rain", "snow100k-l", "a.b+c"):
        assert safe_name(name, "task name") == name
        assert Path(name).name == name


def test_inside_accepts_paths_below_the_root_and_refuses_any_that_leave_it(tmp_path):
    assert inside(tmp_path, "images/dehaze/a.png") == tmp_path / "images" / "dehaze" / "a.png"
    assert inside(tmp_path, tmp_path / "x") == tmp_path / "x"
    for escaping in ("../x", "images/../../x", "/etc/passwd", str(tmp_path) + "-other/x"):
        with pytest.raises(UnsafePathError, match="leaves"):
            inside(tmp_path, escaping, "saved image")


def test_saved_images_cannot_leave_the_images_folder_even_with_a_hostile_task_name(tmp_path):
    root = tmp_path / "run" / "images"
    batch = {"name": ["a.png"], "input": torch.zeros(1, 3, 4, 4), "target": torch.zeros(1, 3, 4, 4)}
    with pytest.raises(UnsafePathError, match="saved image"):
        _save_batch(root, "../../escaped", batch, torch.zeros(1, 3, 4, 4))
    assert not (tmp_path / "escaped").exists()
    _save_batch(root, "dehaze", batch, torch.zeros(1, 3, 4, 4))
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")) == [
        "dehaze/_input/a.png", "dehaze/_target/a.png", "dehaze/a.png"]


def test_an_absolute_layout_folder_is_read_where_it_is_even_outside_the_data_root(tmp_path):
    """The protocol file names it outright; only relative folders are joined to (and kept inside) the data root."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root").mkdir()
    task = TaskSpec(name="t", label="T", dataset="d",
                    layouts=[LayoutSpec(target=str(tmp_path / "elsewhere"), source="own layout")])
    assert resolve_layout(task, tmp_path / "root").target_dir == tmp_path / "elsewhere"


def test_a_layout_folder_linked_into_the_data_root_is_followed(tmp_path):
    """The check is on the path's text: a dataset the user symlinked into the data root is accepted."""
    (tmp_path / "real" / "clean").mkdir(parents=True)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "bsd68").symlink_to(tmp_path / "real")
    task = TaskSpec(name="t", label="T", dataset="d", layouts=[LayoutSpec(target="bsd68/clean")])
    assert resolve_layout(task, tmp_path / "root").target_dir == tmp_path / "root" / "bsd68" / "clean"


def test_a_run_with_save_images_writes_only_inside_its_run_directory(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    result = runner.invoke(app, ["run", "--protocol", "5deg", "--sample", "--model", "input", "--limit", "1",
                                 "--task", "denoise-25", "--save-images", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(run_dir in p.parents for p in written)
    assert len(list((run_dir / "images" / "denoise-25").glob("*.png"))) == 1


def test_a_suite_cell_cannot_name_a_run_directory_outside_the_suite(tmp_path):
    from bench_ir.suite.plan import Cell, SuitePlan

    plan = SuitePlan(suite_dir=tmp_path / "suite", suite="s", source="s.yaml", options={}, profile={}, data_root=None,
                     cells=[])
    assert plan.run_dir(Cell("a__5deg", "run", "input", "runs/a__5deg")) == tmp_path / "suite" / "runs" / "a__5deg"
    for hostile in ("runs/..", "../elsewhere", "/tmp/elsewhere", "runs/x/../../.."):
        with pytest.raises(UnsafePathError, match="run directory of cell 'x'"):
            plan.run_dir(Cell("x", "run", "input", hostile))


def test_a_training_folder_relative_to_the_data_root_cannot_climb_out_of_it(tmp_path):
    from types import SimpleNamespace

    from bench_ir.train.data import _find_root

    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    spec = SimpleNamespace(task="denoise", layout="custom", roots=["../outside"])
    with pytest.raises(UnsafePathError, match="training folder '../outside'"):
        _find_root(spec, tmp_path / "root")
