"""A resumed run that completes leaves records.jsonl as an uninterrupted run writes it (docs/reliability.md): one
record per (task, image) in the run's order, no unreadable line, no superseded duplicate; a resume over an
unreadable line warns once. The scenario of the fault probe: `run --protocol 5deg --sample --model input`, line 11
of its records replaced with garbage, then the same command plus --resume."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.results import RecordWarning, load_run
from bench_ir.runner import ProgressHook, RunConfig, RunInterrupted, folder_protocol, run_protocol

runner = CliRunner()
BAD_LINE = 11
GARBAGE = "\x00garbage{\n"


def _config(run_dir: Path, **kwargs) -> RunConfig:
    return RunConfig(protocol="5deg", model="input", sample=True, run_dir=run_dir, device="cpu", **kwargs)


def _export(run_dir: Path) -> str:
    result = runner.invoke(app, ["export", str(run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    return result.stdout


def _rows(export: str) -> pd.DataFrame:
    """The rows of a CSV export as text, in their order, without the timing column (an image scored again takes
    another time)."""
    return pd.read_csv(io.StringIO(export), dtype=str, keep_default_na=False).drop(columns=["seconds"])


def _lines(run_dir: Path) -> list[str]:
    return (run_dir / "records.jsonl").read_text().splitlines(keepends=True)


def _write_lines(run_dir: Path, lines: list[str]) -> None:
    (run_dir / "records.jsonl").write_text("".join(lines))


def _record_warnings(action) -> list[str]:
    """The RecordWarning messages ``action()`` issues, every one counted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    return [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]


def _resume_over_damage(config: RunConfig, progress: ProgressHook | None = None):
    """``run_protocol(config)`` of a resume over a damaged records file, which warns of it."""
    with pytest.warns(RecordWarning):
        return run_protocol(config, progress=progress)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_protocol(_config(run_dir))
    return run_dir


@pytest.fixture
def damaged(uninterrupted, tmp_path) -> Path:
    """A copy of the uninterrupted run whose line 11 is unreadable."""
    run_dir = tmp_path / "mid1"
    shutil.copytree(uninterrupted, run_dir)
    lines = _lines(run_dir)
    lines[BAD_LINE - 1] = GARBAGE
    _write_lines(run_dir, lines)
    return run_dir


def test_a_resume_over_an_unreadable_middle_line_warns_once(damaged):
    messages = _record_warnings(lambda: run_protocol(_config(damaged, resume=True)))
    assert len(messages) == 1
    assert f"(line {BAD_LINE})" in messages[0]


def test_the_export_after_the_resume_equals_the_uninterrupted_runs_row_for_row(damaged, uninterrupted):
    _resume_over_damage(_config(damaged, resume=True))
    pd.testing.assert_frame_equal(_rows(_export(damaged)), _rows(_export(uninterrupted)))


def test_after_the_resume_the_records_file_holds_no_unreadable_line_and_reading_it_is_quiet(damaged, uninterrupted):
    _resume_over_damage(_config(damaged, resume=True))
    lines = _lines(damaged)
    assert len(lines) == len(_lines(uninterrupted))
    assert all(json.loads(line)["task"] for line in lines)
    assert _record_warnings(lambda: load_run(damaged)) == []


def test_the_manifest_says_the_unreadable_line_was_dropped_after_its_image_was_scored_again(damaged):
    outcome = _resume_over_damage(_config(damaged, resume=True))
    manifest = load_run(damaged).manifest
    dropped = [n for n in manifest["notices"] if "dropped" in n]
    assert dropped == [f"{damaged / 'records.jsonl'}: 1 unreadable line(s) (line {BAD_LINE}) dropped after their "
                       "images were scored again; the file was rewritten in the run's order"]
    assert manifest["resumes"][-1]["dropped"] == dropped[0]
    assert dropped[0] in outcome.notices


class _StopAtFirstRecord(ProgressHook):
    def record(self, record: dict) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_resume_leaves_the_records_file_as_it_was_plus_its_appends(damaged):
    before = (damaged / "records.jsonl").read_text()
    with pytest.raises(RunInterrupted):
        _resume_over_damage(_config(damaged, resume=True), progress=_StopAtFirstRecord())
    after = (damaged / "records.jsonl").read_text()
    assert after.startswith(before) and after.count("\n") == before.count("\n") + 1
    assert GARBAGE in after


def test_a_superseded_duplicate_is_dropped_and_the_last_record_kept_at_its_place(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    lines = _lines(run_dir)
    first = json.loads(lines[0])
    _write_lines(run_dir, [*lines, json.dumps({**first, "psnr": first["psnr"] + 10.0}) + "\n"])
    _resume_over_damage(_config(run_dir, resume=True))
    rewritten = _lines(run_dir)
    assert len(rewritten) == len(lines)
    assert json.loads(rewritten[0])["psnr"] == first["psnr"] + 10.0
    assert rewritten[1:] == lines[1:]


def test_a_readable_record_the_plan_does_not_name_is_kept_after_the_others(damaged):
    stray = json.dumps({**json.loads(_lines(damaged)[0]), "image": "not-in-the-plan"}) + "\n"
    _write_lines(damaged, [*_lines(damaged), stray])
    _resume_over_damage(_config(damaged, resume=True))
    assert _lines(damaged)[-1] == stray


# ------------------------------------------------------------------ a task whose images have two sizes
SIZES = [(32, 48), (48, 32), (32, 48), (48, 32)]  # (H, W); a run scores 000, 002 (one size), then 001, 003


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("two-sizes")
    inputs, targets = root / "in", root / "gt"
    inputs.mkdir()
    targets.mkdir()
    rng = np.random.default_rng(0)
    for i, (height, width) in enumerate(SIZES):
        clean = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(targets / f"{i:03d}.png")
        Image.fromarray(noisy).save(inputs / f"{i:03d}.png")
    return inputs, targets


def _folder_config(folders: tuple[Path, Path], run_dir: Path, **kwargs) -> RunConfig:
    return RunConfig(protocol=folder_protocol(*folders), model="input", run_dir=run_dir, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def two_sizes_run(two_sizes, tmp_path_factory, one_thread) -> Path:
    run_dir = tmp_path_factory.mktemp("two-sizes-run") / "run"
    run_protocol(_folder_config(two_sizes, run_dir))
    assert [json.loads(line)["image"] for line in _lines(run_dir)] == ["000.png", "002.png", "001.png", "003.png"]
    return run_dir


def test_a_resume_rewrites_a_task_of_two_image_sizes_in_the_uninterrupted_runs_batch_order(two_sizes, two_sizes_run,
                                                                                             tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_sizes_run, run_dir)
    lines = _lines(run_dir)
    _write_lines(run_dir, [lines[0], GARBAGE, *lines[2:]])
    _resume_over_damage(_folder_config(two_sizes, run_dir, resume=True))
    pd.testing.assert_frame_equal(_rows(_export(run_dir)), _rows(_export(two_sizes_run)))


def test_rank_shards_left_by_a_sharded_run_merge_in_the_uninterrupted_runs_batch_order(two_sizes, two_sizes_run,
                                                                                        tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_sizes_run, run_dir)
    lines = _lines(run_dir)  # 000, 002, 001, 003: rank 0 scored 000 and 001, rank 1 002 and 003
    (run_dir / "records.jsonl").unlink()
    (run_dir / "records.rank0.jsonl").write_text(lines[0] + lines[2])
    (run_dir / "records.rank1.jsonl").write_text(lines[1] + lines[3])
    run_protocol(_folder_config(two_sizes, run_dir, resume=True))
    assert not list(run_dir.glob("records.rank*.jsonl"))
    assert _lines(run_dir) == lines
