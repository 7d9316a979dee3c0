"""A researcher's own suite: what `validate` refuses (random weights on sample data, a tile no larger than its
overlap), the tile overlap option, the row labels and the stale files of `suite report`, and where `list runs` and
`suite run` point a user."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import write_one_pair_protocol, write_sample_suite
from typer.testing import CliRunner

import bench_ir.suite.report as suite_report
from bench_ir.cli import app
from bench_ir.suite import SuitePlan, cell_status, load_suite, plan_suite, run_suite, write_suite_report
from bench_ir.yamlio import SpecError

ROOT = Path(__file__).resolve().parents[1]
TINY_CARD = str(ROOT / "examples" / "tiny-unet.yaml")  # ships no sample checkpoint (no default_checkpoint)
TINY_WEIGHTS = str(ROOT / "examples" / "tiny-unet.safetensors")
TABLE_SUFFIXES = (".tex", ".csv", ".md", ".html")
runner = CliRunner(env={"COLUMNS": "400"})


def _write_suite(folder: Path, entries: list[dict] | None = None, **changes) -> Path:
    """A suite of the `input` row on 3deg and 5deg, sample data, one image per task, no profiles."""
    entries = entries if entries is not None else [{"model": "input", "label": "Input (old label)"}]
    return write_sample_suite(folder, **{"name": "mylab", "protocols": ["3deg", "5deg"], "entries": entries, **changes})


@pytest.fixture(scope="module")
def ran_suite(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, suite directory): the `input` row on two one-pair protocols of our own, toy and toy2, both cells
    complete; copy the suite directory before changing it."""
    folder = tmp_path_factory.mktemp("ran")
    protocols = [str(write_one_pair_protocol(folder / "data", name)) for name in ("toy", "toy2")]
    path = _write_suite(folder, protocols=protocols, options={"device": "cpu"})
    run_suite(path, suite_dir=folder / "out", data_root=folder / "data")
    return folder / "data", folder / "out"


@pytest.fixture()
def pages_without_charts(monkeypatch):
    """Each table's HTML page as a stub: the full page draws a matplotlib chart (about a second) and its content is
    not what these tests check; the other formats are rendered as they are."""
    render = suite_report.render_table

    def render_table(protocol, runs, fmt, out, standalone=False):
        if fmt != "html":
            return render(protocol, runs, fmt, out, standalone)
        out.write_text(f"<html>{protocol}</html>", encoding="utf-8")
        return out

    monkeypatch.setattr(suite_report, "render_table", render_table)


def _copy(ran: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(ran[1], copy)
    return copy


def _replan(ran: tuple[Path, Path], suite_dir: Path, protocols: tuple[str, ...] = ("toy", "toy2"),
            entries: list[dict] | None = None, **overrides) -> SuitePlan:
    """What `suite run` does first with an edited suite file (``protocols`` of ours, ``entries``): the plan of
    ``suite_dir`` saved again (no cell needs to run)."""
    data_root = ran[0]
    suite_file = _write_suite(suite_dir.parent / "edited", entries=entries, options={"device": "cpu"},
                              protocols=[str(data_root / f"{name}.yaml") for name in protocols])
    plan = plan_suite(suite_file, suite_dir, data_root=data_root, overrides=overrides or None)
    plan.save()
    return plan


def _tables(folder: Path, protocol: str) -> list[Path]:
    return [folder / f"{protocol}{suffix}" for suffix in TABLE_SUFFIXES]


# ------------------------------------------------------------------------------------------ checkpoints
def test_sample_data_with_a_card_that_ships_no_sample_checkpoint_needs_a_checkpoint(tmp_path):
    path = _write_suite(tmp_path, entries=[{"model": "input"}, {"model": TINY_CARD}])
    with pytest.raises(SpecError, match=r"entries\[1\]: field 'checkpoint': required for 'tiny-unet': its card "
                                        r"ships no sample checkpoint \(no 'default_checkpoint'\), so even on sample "
                                        "data it would run random weights"):
        load_suite(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "ships no sample checkpoint" in result.output


def test_sample_data_with_a_card_that_ships_a_sample_checkpoint_needs_none(tmp_path):
    card = yaml.safe_load(Path(TINY_CARD).read_text())
    (tmp_path / "card").mkdir()
    shutil.copy(ROOT / "examples" / "tiny_unet.py", tmp_path / "card")
    shutil.copy(TINY_WEIGHTS, tmp_path / "card" / "tiny-unet.safetensors")
    (tmp_path / "card" / "tiny-unet.yaml").write_text(yaml.safe_dump({**card, "default_checkpoint":
                                                                      "tiny-unet.safetensors"}))
    suite = load_suite(_write_suite(tmp_path, entries=[{"model": "card/tiny-unet.yaml"}]))
    assert suite.entries[0].checkpoint is None


def test_a_relative_checkpoint_without_a_checkpoint_folder_names_the_suite_files_checkpoint_dir(tmp_path):
    path = _write_suite(tmp_path, entries=[{"model": TINY_CARD, "checkpoint": "weights/tiny.safetensors"}])
    with pytest.raises(ValueError, match=re.escape(f"pass --checkpoint-dir or set BENCH_IR_CHECKPOINT_DIR, or give "
                                                   f"the suite file {path} a field 'checkpoint_dir' (a folder "
                                                   "relative to the suite file)")):
        plan_suite(path, tmp_path / "out")


# ------------------------------------------------------------------------------------------------ tiles
@pytest.mark.parametrize("options, entries, message", [
    ({"tile": 16}, [{"model": "input"}],
     r"options: fields 'tile' \(16\) and 'tile_overlap' \(32\): for entries\[0\] \('input'\) on protocol '3deg', "
     r"tile overlap 32 must be smaller than the tile size 16; give a larger 'tile' or a smaller 'tile_overlap'"),
    ({"tile": 33}, [{"model": TINY_CARD, "checkpoint": TINY_WEIGHTS}],
     r"for entries\[0\] \('tiny-unet'\) on protocol '3deg', tile overlap 32 must be smaller than the tile size 32 "
     r"\(33 pixels fitted to a multiple of 2\); give a larger 'tile'"),
    ({"tile": 64, "tile_overlap": -1}, [{"model": "input"}],
     r"options: field 'tile_overlap' must be 0 or more, got -1"),
], ids=["tile-below-overlap", "tile-rounded-to-the-overlap", "negative-overlap"])
def test_a_tile_no_larger_than_its_overlap_is_refused_when_the_suite_is_read(tmp_path, options, entries, message):
    path = _write_suite(tmp_path, entries=entries, options={"sample": True, "limit": 1, **options})
    with pytest.raises(SpecError, match=message):
        load_suite(path)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 1


def test_the_tile_overlap_option_reaches_every_cells_run(tmp_path):
    path = _write_suite(tmp_path, options={"sample": True, "limit": 1, "tile": 16, "tile_overlap": 8})
    plan = plan_suite(path, tmp_path / "out")
    configs = [plan.run_config(cell) for cell in plan.cells]
    assert [(config.tile, config.tile_overlap) for config in configs] == [(16, 8), (16, 8)]
    commands = [" ".join(plan.command(cell)) for cell in plan.cells]
    assert all("--tile 16 --tile-overlap 8" in command for command in commands), commands


# ----------------------------------------------------------------------------------------------- report
def test_the_report_labels_rows_as_the_suite_file_does_now_not_as_the_run_recorded(ran_suite, tmp_path,
                                                                                   pages_without_charts):
    suite_dir = _copy(ran_suite, tmp_path)
    plan = _replan(ran_suite, suite_dir, protocols=("toy",), entries=[{"model": "input", "label": "Input (new label)"}])
    assert [cell_status(plan, cell) for cell in plan.cells] == ["complete"]  # a label changes no record
    write_suite_report(suite_dir, pdf=False)
    for table in _tables(suite_dir / "report", "toy")[:3]:  # .tex, .csv, .md
        text = table.read_text()
        assert "Input (new label)" in text and "Input (old label)" not in text, table


def test_a_report_removes_the_tables_of_a_protocol_an_earlier_report_wrote_and_this_one_does_not(
        ran_suite, tmp_path, pages_without_charts):
    suite_dir = _copy(ran_suite, tmp_path)
    report = suite_dir / "report"
    write_suite_report(suite_dir, pdf=False)
    assert all(path.is_file() for path in _tables(report, "toy2"))
    _replan(ran_suite, suite_dir, protocols=("toy",))  # toy2 left the suite

    second = write_suite_report(suite_dir, pdf=False)
    assert not any(path.exists() for path in _tables(report, "toy2"))
    assert sorted(second.removed) == sorted(_tables(report, "toy2"))
    assert all(path.is_file() for path in _tables(report, "toy"))
    assert json.loads((report / "report.json").read_text())["files"] == sorted(
        ["index.html", *(path.name for path in _tables(report, "toy"))])


def test_suite_report_prints_a_line_for_each_table_removed_when_its_cells_became_outdated(ran_suite, tmp_path,
                                                                                         pages_without_charts):
    suite_dir = _copy(ran_suite, tmp_path)
    _replan(ran_suite, suite_dir, protocols=("toy",))
    assert runner.invoke(app, ["suite", "report", str(suite_dir), "--no-pdf"]).exit_code == 0
    plan = _replan(ran_suite, suite_dir, protocols=("toy",), convention="M2")
    assert [cell_status(plan, cell) for cell in plan.cells] == ["outdated"]

    result = runner.invoke(app, ["suite", "report", str(suite_dir), "--no-pdf"])
    assert result.exit_code == 0, result.output
    removed = _tables(suite_dir / "report", "toy")
    assert not any(path.exists() for path in removed)
    for path in removed:
        assert f"note: removed {path}: an earlier `suite report` wrote it" in result.output
    assert (suite_dir / "report" / "index.html").is_file()


def test_a_report_never_removes_a_file_it_did_not_write(ran_suite, tmp_path, pages_without_charts):
    suite_dir = _copy(ran_suite, tmp_path)
    _replan(ran_suite, suite_dir, protocols=("toy",))
    report = suite_dir / "report"
    report.mkdir()
    mine = [report / "mine.tex", report / "toy2-notes.md", tmp_path / "outside.txt"]
    for path in mine:
        path.write_text("my own file")
    (report / "report.json").write_text(json.dumps({"written_by": "bench-ir suite report",
                                                    "files": ["../../outside.txt", str(mine[0]), "toy.tex"]}))
    (report / "toy.tex").write_text("an earlier table")  # listed, and written again: toy still has a complete cell
    write_suite_report(suite_dir, pdf=False)
    assert all(path.read_text() == "my own file" for path in mine)
    assert "Input (old label)" in (report / "toy.tex").read_text()


# ---------------------------------------------------------------------------------------------- list runs
def test_list_runs_of_a_suite_directory_points_to_suite_status_and_its_runs_folder(tmp_path):
    suite_dir = tmp_path / "suite dir"
    plan_suite(_write_suite(tmp_path), suite_dir).save()
    result = runner.invoke(app, ["list", "runs", "--runs-root", str(suite_dir)])
    assert result.exit_code == 0, result.output
    assert " ".join(result.stdout.split()) == (
        f"no runs in {suite_dir}: it is a suite directory (it holds plan.json), whose runs are in "
        f"{suite_dir / 'runs'}; "
        f"`bench-ir suite status {shlex.quote(str(suite_dir))}` shows its cells and `bench-ir list runs --runs-root "
        f"{shlex.quote(str(suite_dir / 'runs'))}` its runs")
