"""`bench-ir suite`: suite files, plan and check, resumable cells, the local/node/slurm launchers, the report."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_one_pair_protocol, write_sample_suite
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.results import load_run
from bench_ir.suite import (
    LocalLauncher,
    NodeLauncher,
    SuiteCheckError,
    SuitePlan,
    cell_status,
    cell_status_reason,
    list_suites,
    load_suite,
    plan_suite,
    run_suite,
    write_suite_report,
)
from bench_ir.yamlio import SpecError

ROOT = Path(__file__).resolve().parents[1]
TINY_CARD = str(ROOT / "examples" / "tiny-unet.yaml")
TINY_WEIGHTS = str(ROOT / "examples" / "tiny-unet.safetensors")
runner = CliRunner()


def _write_suite(folder: Path, profile: bool = False, **changes) -> Path:
    """The sample suite made cheap: 2 models (input, tiny-unet) × 2 protocols, 1 image per task."""
    fields = {"entries": [{"model": "input"}, {"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "label": "TinyUNet"}],
              "profile": {"enabled": profile, "size": 32, "repeats": 1, "warmup": 0}, **changes}
    return write_sample_suite(folder, **{"name": "tiny-sample", "protocols": ["3deg", "5deg"], **fields})


def _records(suite_dir: Path) -> dict[str, list[dict]]:
    """Every run cell's per-image records without the timing column."""
    plan = SuitePlan.load(suite_dir)
    out = {}
    for cell in plan.cells:
        if cell.kind == "run":
            frame = load_run(plan.run_dir(cell)).records.drop(columns=["seconds"])
            out[cell.name] = frame.to_dict(orient="records")
    return out


@pytest.fixture(scope="module")
def local_suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    suite_file = _write_suite(folder, profile=True)
    outcome = run_suite(suite_file, suite_dir=folder / "out", launcher=LocalLauncher())
    return suite_file, folder / "out", outcome


# ------------------------------------------------------------------------------------------- suite files
def test_every_shipped_suite_validates():
    assert {"sample", "mirage-paper", "own-checkpoints"} <= set(list_suites())
    for name in list_suites():
        result = runner.invoke(app, ["validate", str(ROOT / "suites" / f"{name}.yaml")])
        assert result.exit_code == 0, result.output
        assert f"suite '{name}'" in result.output


def test_list_suites_shows_every_shipped_suite_with_the_cells_suite_run_plans(tmp_path):
    result = runner.invoke(app, ["list", "suites"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "mirage-paper" in result.output and "own-checkpoints" in result.output
    planned = plan_suite("sample", tmp_path / "out").cells  # 4 runs and a profile of each of its 2 models
    assert len(planned) == 6
    assert any(line.split("│")[1].strip() == "sample" and line.split("│")[-2].strip() == "6 (4 + 2)"
               for line in result.output.splitlines() if "│" in line)


def test_paper_suite_names_the_official_checkpoint_files():
    suite = load_suite("mirage-paper")
    checkpoints = {(e.model, Path(e.checkpoint).name) for e in suite.entries if e.checkpoint}
    assert {("mirage-t", "3Deg_tiny.ckpt"), ("mirage-t", "5Deg_tiny.ckpt"), ("mirage-s", "3Deg_small.ckpt"),
            ("mirage-s", "5Deg_small.ckpt"), ("promptir", "model.ckpt"), ("adair", "adair5d.ckpt"),
            ("airnet", "All.pth"), ("ndr-restore", "model_L.pth"), ("moce-ir", "last.ckpt"),
            ("moce-ir-s", "last.ckpt")} <= checkpoints


@pytest.mark.parametrize("change, message", [
    ({"entries": [{"model": "input", "checkpont": "x.ckpt"}]}, r"entries.*unknown field\(s\) \['checkpont'\]"),
    ({"entries": [{"model": "mirage-x"}]}, r"entries\[0\].*field 'model'.*unknown model 'mirage-x'"),
    ({"protocols": ["6deg"]}, r"entries\[0\]: protocol '6deg'.*unknown protocol"),
    ({"options": {"limit": "one"}}, r"field 'options': field 'limit': expected an integer"),
    ({"options": {"sample": False}, "entries": [{"model": "input"}, {"model": TINY_CARD}]},
     r"entries\[1\]: field 'checkpoint': required for 'tiny-unet' on real data"),
    ({"entries": [{"model": "input"}, {"model": "input"}]}, r"cell 'input__3deg' is also planned by entries\[0\]"),
    ({"options": {"sample": True, "limit": 0}}, r"options: field 'limit' must be at least 1, got 0"),
    ({"options": {"sample": True, "device": "gpu9"}}, r"options: field 'device': unknown device 'gpu9'"),
])
def test_validate_rejects_a_bad_suite_with_a_clear_message(tmp_path, change, message):
    path = _write_suite(tmp_path, **change)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output
    with pytest.raises(SpecError, match=message):
        load_suite(path)


def test_a_profile_size_below_one_is_rejected_when_the_suite_is_read(tmp_path):
    path = _write_suite(tmp_path, profile=True)
    data = yaml.safe_load(path.read_text())
    data["profile"]["size"] = -5
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError, match=r"profile: field 'size' must be at least 1, got -5"):
        load_suite(path)


def test_each_distinct_model_is_profiled_once(tmp_path):
    entries = [{"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "name": "a"},
               {"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "name": "b"},
               {"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "name": "wide", "model_args": {"width": 8}}]
    plan = plan_suite(_write_suite(tmp_path, profile=True, entries=entries), tmp_path / "out")
    profiles = [c for c in plan.cells if c.kind == "profile"]
    assert len(profiles) == 2 and profiles[0].name == "profile__tiny-unet" and profiles[0].model_args == {}
    assert profiles[1].name.startswith("profile__tiny-unet-") and profiles[1].model_args == {"width": 8}
    assert len([c for c in plan.cells if c.kind == "run"]) == 6


def test_the_shipped_sample_suite_plans_two_models_on_two_protocols_on_sample_data(tmp_path):
    plan = plan_suite("sample", tmp_path / "out")
    assert plan.options["sample"] and plan.data_root is None
    assert sorted(c.name for c in plan.cells if c.kind == "run") == [
        "input__3deg", "input__5deg", "mirage-t-sample__3deg", "mirage-t-sample__5deg"]
    assert sorted(c.name for c in plan.cells if c.kind == "profile") == ["profile__input", "profile__mirage-t"]


def test_a_suite_on_real_data_needs_a_data_root_and_a_checkpoint_dir(tmp_path):
    with pytest.raises(ValueError, match="--data-root"):
        plan_suite("mirage-paper", tmp_path / "out", checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="--checkpoint-dir"):
        plan_suite("mirage-paper", tmp_path / "out", data_root=tmp_path)


# ----------------------------------------------------------------------------------- check before running
def _toy_data(root: Path) -> Path:
    """A one-task protocol file 'toy' whose data exists under ``root``."""
    return write_one_pair_protocol(root, "toy")


def test_missing_datasets_and_checkpoints_are_listed_together_before_any_forward(tmp_path):
    toy = _toy_data(tmp_path / "data")
    entries = [{"model": "input", "protocols": [str(toy), "3deg"]},
               {"model": TINY_CARD, "checkpoint": "nowhere/tiny.safetensors", "protocols": [str(toy)]}]
    path = _write_suite(tmp_path, entries=entries, options={"device": "cpu"})
    with pytest.raises(SuiteCheckError) as err:
        run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")
    message = str(err.value)
    assert "checkpoint file not found" in message and "nowhere/tiny.safetensors" in message
    assert "protocol '3deg'" in message and "input__3deg" in message
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran
    # one data-check command per protocol lacking data, instead of a run's advice (--sample) under every task
    assert "--sample" not in message
    assert message.endswith(f"bench-ir data check --protocol 3deg --data-root {tmp_path / 'data'}")
    assert message.count("bench-ir data check") == 1

    outcome = run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data",
                        checkpoint_dir=tmp_path / "ckpt", skip_missing=True)
    assert [r.name for r in outcome.results] == ["input__toy"] and outcome.results[0].status == "complete"
    assert set(sum(outcome.missing.values(), [])) == {"input__3deg", "tiny-unet-tiny__toy"}
    assert outcome.statuses["input__3deg"] == "missing"


def test_an_input_whose_size_differs_from_its_target_is_a_problem_found_before_any_forward(tmp_path):
    toy = _toy_data(tmp_path / "data")
    Image.fromarray(np.zeros((30, 32, 3), np.uint8)).save(tmp_path / "data" / "toy" / "input" / "a.png")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    with pytest.raises(SuiteCheckError) as err:
        run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    message = str(err.value)
    assert (f"- protocol 'toy': task 't': a.png: input {tmp_path / 'data' / 'toy' / 'input' / 'a.png'} is 30x32 "
            "(HxW) but target") in message
    assert message.endswith(f"bench-ir data check --protocol {toy} --data-root {tmp_path / 'data'}")  # the file
    assert not (tmp_path / "out" / "runs").exists()


def test_a_relative_out_folder_above_the_working_directory_holds_the_suite(tmp_path, monkeypatch):
    """`--out ../suites/s1`: each cell's run directory is checked against the suite folder once, not joined to it
    twice (which refused it as leaving the suite folder)."""
    path = _write_suite(tmp_path, entries=[{"model": "input"}], protocols=["5deg"])
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    result = runner.invoke(app, ["suite", "run", str(path), "--out", "../suites/s1", "--limit", "1"])
    assert result.exit_code == 0, result.output
    plan = SuitePlan.load(tmp_path / "suites" / "s1")
    assert [cell_status(plan, cell) for cell in plan.cells] == ["complete"]


def test_a_limit_of_zero_is_refused_before_the_suite_directory_exists(tmp_path):
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": ["5deg"]}])
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--limit", "0"])
    assert result.exit_code == 2 and "error: --limit must be at least 1, got 0" in result.output
    assert not (tmp_path / "out").exists()


def test_a_failing_cell_does_not_stop_the_others_and_the_exit_code_names_it(tmp_path):
    toy = _toy_data(tmp_path / "data")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "broken.safetensors").write_bytes(b"not a safetensors file")
    entries = [{"model": TINY_CARD, "checkpoint": "broken.safetensors", "protocols": [str(toy)]},
               {"model": "input", "protocols": [str(toy)]}]
    path = _write_suite(tmp_path, entries=entries, options={"device": "cpu"})
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--data-root",
                                 str(tmp_path / "data"), "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert result.exit_code == 1
    assert "1 cell(s) did not complete" in result.output and "tiny-unet-broken__toy" in result.output
    plan = SuitePlan.load(tmp_path / "out")
    assert cell_status(plan, plan.cell("input__toy")) == "complete"
    assert cell_status(plan, plan.cell("tiny-unet-broken__toy")) == "failed"
    state = json.loads((tmp_path / "out" / "cells" / "tiny-unet-broken__toy.json").read_text())
    assert state["status"] == "failed" and state["error"]


def test_cells_skipped_as_missing_make_the_exit_code_1_and_are_named(tmp_path):
    """`suite run --skip-missing && suite report` does not carry on as if the suite were complete."""
    toy = _toy_data(tmp_path / "data")
    entries = [{"model": "input", "protocols": [str(toy)]},
               {"model": TINY_CARD, "checkpoint": "nowhere/tiny.safetensors", "protocols": [str(toy)]}]
    path = _write_suite(tmp_path, entries=entries, options={"device": "cpu"})
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--data-root",
                                 str(tmp_path / "data"), "--checkpoint-dir", str(tmp_path / "ckpt"),
                                 "--skip-missing"])
    assert result.exit_code == 1, result.output
    assert (f"missing: tiny-unet-tiny__toy: checkpoint file not found: "
            f"{tmp_path / 'ckpt' / 'nowhere' / 'tiny.safetensors'}." in result.stderr)
    assert "1 cell(s) did not complete: tiny-unet-tiny__toy" in result.stderr
    assert "next:" not in result.stdout
    plan = SuitePlan.load(tmp_path / "out")
    assert cell_status(plan, plan.cell("input__toy")) == "complete"


def test_a_corrupt_plan_json_is_named_with_the_command_that_writes_it_again(tmp_path):
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    out = tmp_path / "out"
    run_suite(path, suite_dir=out, data_root=tmp_path / "data")
    (out / "plan.json").write_text('{"suite": "tiny\n-sample"}')  # a raw newline inside a string
    result = runner.invoke(app, ["suite", "status", str(out)], terminal_width=400)
    assert result.exit_code == 2
    assert (f"error: {out / 'plan.json'}: not a readable suite plan (JSONDecodeError: Invalid control character at: "
            f"line 1 column 16 (char 15)). `bench-ir suite run SUITE --out {out}` with the suite's file writes it "
            f"again; the cells' runs and profiles in {out} are kept (complete ones are skipped)") in result.output
    rerun = runner.invoke(app, ["suite", "run", str(path), "--out", str(out), "--data-root", str(tmp_path / "data")])
    assert rerun.exit_code == 0, rerun.output
    assert "1 cell(s) already complete, skipped" in rerun.stdout


def test_a_corrupt_cell_state_file_counts_as_absent_with_a_warning_naming_it(tmp_path):
    """The run directory is the truth about scores: the cell is what its run says, here complete."""
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    out = tmp_path / "out"
    run_suite(path, suite_dir=out, data_root=tmp_path / "data")
    state = out / "cells" / "input__toy.json"
    state.write_text('{"status": "compl')  # cut short
    with pytest.warns(UserWarning, match="unreadable cell state"):
        result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["suite", "status", str(out)])
    assert result.exit_code == 0, result.output
    assert f"warning: {state}: unreadable cell state (JSONDecodeError: " in result.stderr
    assert "taken as absent: the cell's state comes from its run directory" in result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "input__toy" in line]
    assert [c.strip() for c in row.split("│")[2:4]] == ["complete", "1/1"]


def test_the_overview_written_to_a_file_ends_its_last_line(tmp_path):
    """A suite run's live table on a non-terminal stderr (a log file) ends with a newline, as run's progress does,
    so that what is printed next starts on a line of its own."""
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--data-root",
                                 str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "input__toy" in result.stderr and result.stderr.endswith("\n")


def test_a_second_suite_run_on_a_busy_suite_directory_is_refused_before_it_changes_anything(tmp_path):
    from bench_ir.resume import RunLock

    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    (tmp_path / "out").mkdir()
    with RunLock(tmp_path / "out"):  # stands in for a `suite run` in progress in that directory
        result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--data-root",
                                     str(tmp_path / "data")], terminal_width=400)
    assert result.exit_code == 2
    assert (f"error: {tmp_path / 'out'} is being written by another bench-ir process (PID {os.getpid()}); wait for "
            "it to finish or stop it, then run the same command again") in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run.lock"]  # no plan.json, no cell touched


def test_a_complete_suite_run_ends_with_the_report_command_which_writes_into_the_suite_directory(tmp_path):
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--data-root",
                                 str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    words = shlex.split(line.removeprefix("next: "))
    assert words[:3] == ["bench-ir", "suite", "report"]
    report = runner.invoke(app, [*words[1:], "--no-pdf"])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "out" / "report" / "index.html").is_file()
    assert (tmp_path / "out" / "report" / "toy.csv").is_file()


@pytest.mark.parametrize("content", ["[]", "null", '{"status": "compl'])
def test_a_cell_whose_manifest_is_unreadable_is_run_again_not_a_crash(tmp_path, content):
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    plan = SuitePlan.load(tmp_path / "out")
    cell = plan.cell("input__toy")
    (plan.run_dir(cell) / "manifest.json").write_text(content)
    assert cell_status(plan, cell) == "pending"


# ---------------------------------------------------------------------------------------- run and report
def test_the_sample_suite_runs_end_to_end(local_suite):
    _, suite_dir, outcome = local_suite
    assert not outcome.failed
    runs = {r.name for r in outcome.results if not r.name.startswith("profile__")}
    assert runs == {"input__3deg", "input__5deg", "tiny-unet-tiny-unet__3deg", "tiny-unet-tiny-unet__5deg"}
    assert {r.name for r in outcome.results if r.name.startswith("profile__")} == {"profile__input",
                                                                                   "profile__tiny-unet"}
    run = load_run(suite_dir / "runs" / "tiny-unet-tiny-unet__5deg")
    assert run.manifest["status"] == "complete" and run.manifest["limit"] == 1 and run.manifest["sample"]
    assert run.manifest["label"] == "TinyUNet" and run.manifest["checkpoint"]["path"] == TINY_WEIGHTS
    assert len(run.records) == 7  # one image per task of 5deg
    command = run.manifest["command"]
    assert command[:2] == ["bench-ir", "run"] and command[-3:] == ["--run-dir", str(run.run_dir), "--resume"]


def test_efficiency_rows_join_each_run_to_its_models_profile(local_suite):
    from bench_ir.suite.report import join_profiles

    _, suite_dir, _ = local_suite
    plan = SuitePlan.load(suite_dir)
    runs = [load_run(plan.run_dir(c)) for c in plan.cells if c.kind == "run"]
    profiles = [load_run(plan.run_dir(c)) for c in plan.cells if c.kind == "profile"]
    measured = join_profiles(runs, profiles)
    for run in measured[:len(runs)]:
        model = run.manifest["model"]["name"]
        assert run.profile_run is not None and run.profile_run.manifest["model"]["name"] == model
        assert run.profile is not None and run.profile["size"] == 32


def test_suite_report_writes_every_table_and_an_index(local_suite, tmp_path):
    _, suite_dir, _ = local_suite
    report = write_suite_report(suite_dir, tmp_path / "report", pdf=False)
    assert set(report.tables) == {"3deg", "5deg", "efficiency"}
    for name, files in report.tables.items():
        assert {f.suffix for f in files.values()} == {".tex", ".csv", ".md", ".html"}
        assert all(f.is_file() and f.stat().st_size > 0 for f in files.values())
        assert "TinyUNet" in (tmp_path / "report" / f"{name}.csv").read_text()
    index = report.index.read_text()
    for name in ("3deg", "5deg", "efficiency"):
        assert f'href="{name}.tex"' in index and f'href="{name}.html"' in index
    assert "input__3deg" in index


def test_a_second_run_does_no_work(local_suite):
    suite_file, suite_dir, _ = local_suite
    records = sorted(suite_dir.glob("runs/*/records.jsonl")) + sorted(suite_dir.glob("profiles/*/profile.json"))
    before = {p: p.stat().st_mtime_ns for p in records}
    outcome = run_suite(suite_file, suite_dir=suite_dir, launcher=LocalLauncher())
    assert outcome.results == []
    assert len(outcome.skipped) == 6
    assert {p: p.stat().st_mtime_ns for p in records} == before


def test_a_complete_cell_with_other_options_is_run_again(tmp_path):
    entries = [{"model": "input", "protocols": ["5deg"]}]
    path = _write_suite(tmp_path, entries=entries)
    run_suite(path, suite_dir=tmp_path / "out")
    outcome = run_suite(path, suite_dir=tmp_path / "out", overrides={"limit": 2})
    assert [r.name for r in outcome.results] == ["input__5deg"] and outcome.results[0].images == 7
    assert len(load_run(tmp_path / "out" / "runs" / "input__5deg").records) == 14


# ------------------------------------------------------------------------ what makes a complete cell outdated
def _tiny_unet_3deg(suite_dir: Path) -> tuple[SuitePlan, object]:
    plan = SuitePlan.load(suite_dir)
    return plan, plan.cell("tiny-unet-tiny-unet__3deg")


@pytest.mark.parametrize("change, reason", [
    ({"options": {"sample": True, "limit": 1, "device": "cpu", "convention": "M2"}},
     "convention: M1 (skimage-uniform) → M2 (skimage-gaussian)"),
    ({"options": {"sample": True, "limit": 1, "device": "cpu", "exact": True}},
     "execution: fast mode on cpu (compile None, channels-last False) → exact mode on cpu"),
    ({"options": {"sample": True, "limit": 1, "device": "cpu", "lpips": "alex"}}, "LPIPS: off → on (alex)"),
    ({"options": {"sample": True, "limit": 1, "device": "cpu", "tile": 64}},
     "tiling: whole images → tiles of 64 px, overlap 32"),
    ({"options": {"sample": True, "limit": 1, "device": "cuda"}},
     "execution: fast mode on cpu (compile None, channels-last False) → fast mode on cuda"),
    ({"entries": [{"model": "input"}, {"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "label": "TinyUNet",
                                       "model_args": {"width": 8}}]},
     "model: card 'tiny-unet' (factory tiny_unet:TinyUNet, args {'width': 16}, input multiple 2, pad reflect) → "
     "card 'tiny-unet' (factory tiny_unet:TinyUNet, args {'width': 8}, overrides {'width': 8}"),
], ids=["convention", "exact", "lpips", "tile", "device", "model_args"])
def test_a_complete_cell_planned_with_another_setting_is_outdated_and_says_which(local_suite, tmp_path, change,
                                                                                 reason):
    _, suite_dir, _ = local_suite
    plan = plan_suite(_write_suite(tmp_path, profile=True, **change), suite_dir)
    cell = plan.cell("tiny-unet-tiny-unet__3deg")
    assert cell_status(plan, cell) == "outdated"
    status, why = cell_status_reason(plan, cell)
    assert status == "outdated" and why.startswith(reason), why


def test_a_complete_cell_whose_checkpoint_file_changed_at_the_same_path_is_outdated(tmp_path):
    import torch
    from safetensors.torch import save_file

    from bench_ir.checkpoints import create_model, sha256_file

    toy = _toy_data(tmp_path / "data")
    weights = tmp_path / "tiny.safetensors"
    shutil.copyfile(TINY_WEIGHTS, weights)
    entries = [{"model": TINY_CARD, "checkpoint": str(weights), "name": "tiny", "protocols": [str(toy)]}]
    path = _write_suite(tmp_path, entries=entries, options={"device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    before = sha256_file(weights)
    torch.manual_seed(1)  # other weights, written over the same file
    save_file({k: v.contiguous() for k, v in create_model(TINY_CARD).state_dict().items()}, str(weights))
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    assert cell_status(plan, plan.cell("tiny__toy")) == "outdated"
    assert cell_status_reason(plan, plan.cell("tiny__toy"))[1] == (
        f"weights: checkpoint sha256 {before} → checkpoint sha256 {sha256_file(weights)}")



def _toy_pair(folder: Path, name: str, seed: int) -> None:
    """A 32x32 pair ``name`` in the toy protocol's folders under ``folder`` (input the negative of the target)."""
    image = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / "target" / name)
    Image.fromarray(255 - image).save(folder / "input" / name)


def test_a_complete_cell_whose_test_set_file_changed_is_outdated_and_names_the_file(tmp_path):
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    target = tmp_path / "data" / "toy" / "target" / "a.png"
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(target)  # the target replaced: another file size
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    assert cell_status_reason(plan, plan.cell("input__toy")) == (
        "outdated", "data of task 't': 1 pairs → 1 pairs (changed files: a.png)")


def test_a_cell_stays_complete_when_its_protocol_file_is_only_redescribed_and_is_outdated_when_it_measures_anew(
        tmp_path):
    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    text = toy.read_text()
    toy.write_text(text.replace("title: toy", "title: toy, retitled") + "description: written after the run\n")
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    assert cell_status_reason(plan, plan.cell("input__toy")) == ("complete", None)
    toy.write_text(text.replace("base: 16", "base: 8"))
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    assert cell_status_reason(plan, plan.cell("input__toy")) == (
        "outdated", "protocol: the file of 'toy' now defines another measurement (crop changed)")


def test_a_complete_cell_of_an_own_model_whose_factory_code_changed_is_outdated(tmp_path):
    toy = _toy_data(tmp_path / "data")
    shutil.copy(TINY_CARD, tmp_path / "tiny-unet.yaml")
    shutil.copy(ROOT / "examples" / "tiny_unet.py", tmp_path / "tiny_unet.py")
    entries = [{"model": str(tmp_path / "tiny-unet.yaml"), "checkpoint": TINY_WEIGHTS, "name": "tiny",
                "protocols": [str(toy)]}]
    path = _write_suite(tmp_path, entries=entries, options={"device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    factory = tmp_path / "tiny_unet.py"
    factory.write_text(factory.read_text().replace("return x + self.head", "return x - self.head"))
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    status, why = cell_status_reason(plan, plan.cell("tiny__toy"))
    assert status == "outdated" and why.startswith("model: the source file of factory tiny_unet:TinyUNet"), why


def test_a_test_set_file_the_cell_did_not_score_past_its_limit_leaves_it_complete(tmp_path):
    toy = _toy_data(tmp_path / "data")
    _toy_pair(tmp_path / "data" / "toy", "b.png", seed=1)
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}],
                        options={"device": "cpu", "limit": 1})
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(tmp_path / "data" / "toy" / "target" / "b.png")
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data")
    assert cell_status_reason(plan, plan.cell("input__toy")) == ("complete", None)

def test_suite_status_says_why_a_cell_is_outdated(tmp_path):
    toy = _toy_data(tmp_path / "data")
    entries = [{"model": "input", "protocols": [str(toy)]}]
    run_suite(_write_suite(tmp_path, entries=entries, options={"device": "cpu"}), suite_dir=tmp_path / "out",
              data_root=tmp_path / "data")
    changed = _write_suite(tmp_path, entries=entries, options={"device": "cpu", "convention": "M2"})
    plan_suite(changed, tmp_path / "out", data_root=tmp_path / "data").save()  # as `suite run` saves it first
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["suite", "status", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if "input__toy" in line]
    assert [c.strip() for c in row.split("│")[2:5]] == [
        "outdated", "1", "convention: M1 (skimage-uniform) → M2 (skimage-gaussian)"]


def test_a_complete_cell_stays_complete_when_only_the_batch_size_changes(local_suite, tmp_path):
    """The batch size changes no record: like a resume (bench_ir.resume), a suite does not compare it."""
    _, suite_dir, _ = local_suite
    options = {"sample": True, "limit": 1, "device": "cpu", "batch_size": 4}
    plan = plan_suite(_write_suite(tmp_path, profile=True, options=options), suite_dir)
    assert cell_status(plan, plan.cell("tiny-unet-tiny-unet__3deg")) == "complete"


@pytest.mark.parametrize("limit, reason", [(2, "limit: --limit 1 → --limit 2"),
                                           (None, "limit: --limit 1 → the full test sets")], ids=["2", "none"])
def test_a_cell_run_with_a_narrower_limit_than_the_suite_asks_is_outdated(local_suite, tmp_path, limit, reason):
    _, suite_dir, _ = local_suite
    options = {"sample": True, "limit": limit, "device": "cpu"}
    plan = plan_suite(_write_suite(tmp_path, profile=True, options=options), suite_dir)
    assert cell_status_reason(plan, plan.cell("tiny-unet-tiny-unet__3deg")) == ("outdated", reason)


def test_a_suite_run_with_a_narrower_limit_skips_the_cells_run_with_a_wider_one(tmp_path):
    entries = [{"model": "input", "protocols": ["5deg"]}]
    path = _write_suite(tmp_path, entries=entries, options={"sample": True, "limit": 2, "device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out")
    records = tmp_path / "out" / "runs" / "input__5deg" / "records.jsonl"
    before = records.stat().st_mtime_ns
    result = runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "1 cell(s) already complete, skipped" in result.stdout
    assert records.stat().st_mtime_ns == before
    plan = SuitePlan.load(tmp_path / "out")
    assert plan.options["limit"] == 1 and cell_status(plan, plan.cell("input__5deg")) == "complete"


def test_the_report_of_a_suite_last_run_with_a_narrower_limit_has_its_tables(tmp_path):
    entries = [{"model": "input", "protocols": ["5deg"]}]
    path = _write_suite(tmp_path, entries=entries, options={"sample": True, "limit": 2, "device": "cpu"})
    run_suite(path, suite_dir=tmp_path / "out")
    run_suite(path, suite_dir=tmp_path / "out", overrides={"limit": 1})
    report = write_suite_report(tmp_path / "out", pdf=False)
    assert set(report.tables) == {"5deg"} and report.notes == []


# ---------------------------------------------------------------------------------------------- running cells
def test_a_cell_shows_running_while_its_images_are_scored(tmp_path):
    from bench_ir.suite import SuiteEvents, execute_cell

    toy = _toy_data(tmp_path / "data")
    path = _write_suite(tmp_path, entries=[{"model": "input", "protocols": [str(toy)]}], options={"device": "cpu"})
    plan_suite(path, tmp_path / "out", data_root=tmp_path / "data").save()
    seen = []

    class Look(SuiteEvents):
        def cell_record(self, name, record):
            plan = SuitePlan.load(tmp_path / "out")
            seen.append(cell_status(plan, plan.cell(name)))

    assert execute_cell(tmp_path / "out", "input__toy", Look()).status == "complete"
    assert seen == ["running"]


def test_a_profile_cell_shows_running_while_it_profiles(tmp_path, monkeypatch):
    import bench_ir.profile_run
    from bench_ir.suite import execute_cell

    plan_suite(_write_suite(tmp_path, profile=True), tmp_path / "out").save()
    seen = []

    def profile(*args, **kwargs):
        plan = SuitePlan.load(tmp_path / "out")
        seen.append(cell_status(plan, plan.cell("profile__input")))

    monkeypatch.setattr(bench_ir.profile_run, "profile_and_store", profile)
    execute_cell(tmp_path / "out", "profile__input")
    assert seen == ["running"]


def test_suite_status_shows_the_running_cell_with_its_process(tmp_path):
    from bench_ir.resume import RunLock
    from bench_ir.suite.execute import record_cell_state

    plan = plan_suite(_write_suite(tmp_path), tmp_path / "out")
    plan.save()
    cell = plan.cell("input__5deg")
    record_cell_state(plan, cell, status="running", started="now")
    plan.run_dir(cell).mkdir(parents=True)
    with RunLock(plan.run_dir(cell)):  # stands in for the process scoring the cell
        result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["suite", "status", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "1 running · 3 pending" in result.stdout
    (row,) = [line for line in result.stdout.splitlines() if "input__5deg" in line]
    assert [c.strip() for c in row.split("│")[2:5]] == ["running", "0", f"PID {os.getpid()} on {socket.gethostname()}"]


def test_suite_run_leaves_a_cell_another_process_runs_to_it_and_exits_1_naming_it(tmp_path):
    """As when a Slurm job of an earlier --no-wait call still scores the cell: started again, it would only fail on
    the run directory's lock."""
    from bench_ir.resume import RunLock
    from bench_ir.suite.execute import record_cell_state

    path = _write_suite(tmp_path, protocols=["3deg"])
    plan = plan_suite(path, tmp_path / "out")
    plan.save()
    cell = plan.cell("input__3deg")
    record_cell_state(plan, cell, status="running", started="now")
    plan.run_dir(cell).mkdir(parents=True)
    with RunLock(plan.run_dir(cell)):
        result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["suite", "run", str(path), "--out",
                                                                str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "running elsewhere, not started again: input__3deg" in result.output
    assert "1 cell(s) did not complete: input__3deg" in result.output
    assert json.loads((tmp_path / "out" / "cells" / "input__3deg.json").read_text())["status"] == "running"
    assert not (plan.run_dir(cell) / "manifest.json").exists()


def test_a_running_cell_whose_process_was_killed_is_interrupted(tmp_path):
    from bench_ir.results import write_json_atomic
    from bench_ir.suite.execute import record_cell_state

    plan = plan_suite(_write_suite(tmp_path), tmp_path / "out")
    plan.save()
    cell = plan.cell("input__5deg")
    record_cell_state(plan, cell, status="running", started="now")
    run_dir = plan.run_dir(cell)
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "manifest.json", {"status": "running"})  # what a run leaves when it is killed
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from bench_ir.resume import RunLock; "
                               f"RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == b"held\n"
        assert cell_status(plan, cell) == "running"
    finally:
        holder.kill()  # SIGKILL: nothing of the process runs again, the kernel drops its lock
        holder.wait()
    assert cell_status(plan, cell) == "interrupted"



def test_a_profile_cell_whose_process_was_killed_is_interrupted_with_the_process_named(tmp_path):
    from bench_ir.suite.execute import record_cell_state

    plan = plan_suite(_write_suite(tmp_path, profile=True), tmp_path / "out")
    plan.save()
    cell = plan.cell("profile__input")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)  # a process of this host that has ended
    record_cell_state(plan, cell, status="running", started="now", pid=pid)  # what a profile killed with -9 leaves
    status, why = cell_status_reason(plan, cell)
    assert status == "interrupted" and why.startswith(f"its process (PID {pid} on "), why


def test_a_cell_whose_live_process_loads_its_model_before_holding_the_lock_is_not_interrupted(tmp_path):
    from bench_ir.suite.execute import record_cell_state

    plan = plan_suite(_write_suite(tmp_path, profile=True), tmp_path / "out")
    plan.save()
    cell = plan.cell("profile__input")
    record_cell_state(plan, cell, status="running", started="now")  # this live process, no lock yet
    assert cell_status(plan, cell) == "pending"

# -------------------------------------------------------------------------------------------- another suite
def test_a_suite_directory_holding_another_suite_is_refused_naming_both(tmp_path):
    toy = _toy_data(tmp_path / "data")
    entries = [{"model": "input", "protocols": [str(toy)]}]
    run_suite(_write_suite(tmp_path, entries=entries, options={"device": "cpu"}), suite_dir=tmp_path / "out",
              data_root=tmp_path / "data")
    plan_json = (tmp_path / "out" / "plan.json").read_bytes()
    (tmp_path / "other").mkdir()
    other = _write_suite(tmp_path / "other", name="other-suite", entries=entries, options={"device": "cpu"})
    result = runner.invoke(app, ["suite", "run", str(other), "--out", str(tmp_path / "out"), "--data-root",
                                 str(tmp_path / "data")], terminal_width=400)
    assert result.exit_code == 2
    assert (f"error: {tmp_path / 'out'} holds suite 'tiny-sample' (from {tmp_path / 'suite.yaml'}); suite "
            f"'other-suite' (from {other}) cannot run into it: its plan.json would replace the cells of "
            "'tiny-sample'. Choose another --out for 'other-suite' (default runs/suite-other-suite)") in result.output
    assert (tmp_path / "out" / "plan.json").read_bytes() == plan_json


@pytest.mark.slow
def test_the_node_launcher_with_two_workers_gives_the_local_records(local_suite, tmp_path):
    _, suite_dir, _ = local_suite
    outcome = run_suite(_write_suite(tmp_path), suite_dir=tmp_path / "node", launcher=NodeLauncher(gpus=2))
    assert not outcome.failed and len(outcome.results) == 4
    assert _records(tmp_path / "node") == _records(suite_dir)
    devices = {json.loads(p.read_text())["cuda_visible_devices"] for p in (tmp_path / "node" / "cells").glob("*")}
    assert devices <= {"0", "1"} and len(devices) >= 1


@pytest.mark.slow
def test_the_slurm_launcher_through_the_submitit_local_executor_gives_the_local_records(local_suite, tmp_path):
    pytest.importorskip("submitit")
    from bench_ir.suite.slurm import SlurmLauncher, read_jobs

    _, suite_dir, _ = local_suite
    entries = [{"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "label": "TinyUNet"}]  # the tiny-unet cells only
    launcher = SlurmLauncher(cluster="local", gpus=0, time=20, poll_seconds=0.5)
    outcome = run_suite(_write_suite(tmp_path, entries=entries), suite_dir=tmp_path / "slurm", launcher=launcher)
    assert not outcome.failed and len(outcome.results) == 2
    local = _records(suite_dir)
    assert _records(tmp_path / "slurm") == {name: local[name] for name in _records(tmp_path / "slurm")}
    jobs = read_jobs(tmp_path / "slurm")
    assert sorted(j["cell"] for j in jobs) == sorted(r.name for r in outcome.results)
    assert all(j["job_id"] and j["cluster"] == "local" for j in jobs)


def test_the_slurm_launcher_refuses_a_machine_without_slurm_instead_of_running_the_jobs_here(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from bench_ir.suite.slurm import SlurmLauncher

    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "local"))
    with pytest.raises(RuntimeError, match="--launcher slurm: no Slurm on this machine .* use --launcher local"):
        SlurmLauncher()


@pytest.mark.slow
def test_a_cell_interrupted_with_sigint_resumes(tmp_path, wide_tiny_unet):
    entries = [{**wide_tiny_unet, "name": "slow", "protocols": ["5deg"]}]
    path = _write_suite(tmp_path, entries=entries, options={"sample": True, "device": "cpu", "limit": 2})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bench_ir", "suite", "run", str(path), "--out", str(out)]
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    records = out / "runs" / "slow__5deg" / "records.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (records.is_file() and records.read_text().count("\n") >= 1):
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 130, output
    first = records.read_text().splitlines()
    assert 1 <= len(first) < 14
    plan = SuitePlan.load(out)
    assert cell_status(plan, plan.cell("slow__5deg")) == "interrupted"
    assert load_run(out / "runs" / "slow__5deg").manifest["status"] == "interrupted"

    outcome = run_suite(path, suite_dir=out)
    assert [(r.name, r.status, r.images) for r in outcome.results] == [("slow__5deg", "complete", 14 - len(first))]
    lines = records.read_text().splitlines()
    assert lines[:len(first)] == first and len(lines) == 14
    assert len({(json.loads(line)["task"], json.loads(line)["image"]) for line in lines}) == 14


def test_the_overview_counts_states_and_estimates_the_time_left_from_the_images_scored(tmp_path):
    from bench_ir.suite import CellResult, SuiteProgress, check_cells

    plan = plan_suite(_write_suite(tmp_path), tmp_path / "out")
    check_cells(plan, plan.cells)
    names = [c.name for c in plan.cells]
    progress = SuiteProgress(plan, names)
    assert progress.counts() == {"pending": 4} and progress.eta_seconds() is None
    assert progress.images_left() == 2 * (5 + 7)  # 1 image per task: 3deg has 5 tasks, 5deg 7
    progress.cell_started("input__3deg")
    for _ in range(2):
        progress.cell_record("input__3deg", {})
    progress.cell_finished(CellResult("input__5deg", "failed", error="boom", images=3))  # ran elsewhere
    assert progress.counts() == {"running": 1, "failed": 1, "pending": 2}
    assert progress.images_left() == 24 - 2 - 7  # a failed cell has nothing left to do in this call
    assert 0 < progress.eta_seconds() < float("inf") and progress.errors == {"input__5deg": "boom"}


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_latex_tables_compile_to_pdf_where_pdflatex_exists(local_suite, tmp_path):
    from bench_ir.suite.report import latex_pdf, render_table

    _, suite_dir, _ = local_suite
    plan = SuitePlan.load(suite_dir)
    runs = [load_run(plan.run_dir(c)) for c in plan.cells if c.kind == "run" and c.protocol == "5deg"]
    assert len(runs) == 2
    tex = render_table("5deg", runs, "latex", tmp_path / "5deg.tex", standalone=True)
    assert latex_pdf(tex, tmp_path / "5deg.pdf") is None
    assert (tmp_path / "5deg.pdf").read_bytes().startswith(b"%PDF")


def test_a_resume_mismatch_is_a_failed_cell_with_its_message(tmp_path):
    import torch
    from safetensors.torch import save_file

    from bench_ir.checkpoints import create_model

    toy = _toy_data(tmp_path / "data")
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_file({k: v.contiguous() for k, v in create_model(TINY_CARD).state_dict().items()}, str(other))
    suite = {"entries": [{"model": TINY_CARD, "checkpoint": TINY_WEIGHTS, "name": "tiny", "protocols": [str(toy)]}],
             "options": {"device": "cpu"}}
    run_suite(_write_suite(tmp_path, **suite), suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    suite["entries"][0]["checkpoint"] = str(other)  # same cell, other weights: the run refuses to resume
    outcome = run_suite(_write_suite(tmp_path, **suite), suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    (result,) = outcome.results
    assert result.status == "failed" and "ResumeError" in result.error and "cannot resume" in result.error
    assert result.error.endswith("Run the suite with another --out for the new setup (its cells are new run "
                                 "directories)") and "--run-dir" not in result.error
    # what is true now: its complete run was made with other weights (the failure is what resuming that meets)
    assert outcome.statuses["tiny__toy"] == "outdated"


def test_list_runs_shows_a_suite_directory_with_its_complete_and_failed_cells(local_suite):
    """Its runs are under its own runs/, which the runs table does not show: without this table `list runs` said
    'no runs' after a suite run."""
    _, suite_dir, _ = local_suite
    listed = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["list", "runs", "--runs-root", str(suite_dir.parent)])
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(f"│ {suite_dir.name} ")]
    assert [cell.strip() for cell in row.split("│")[2:4]] == ["6/6", "0"]
    assert "suite tiny-sample" in listed.stdout
