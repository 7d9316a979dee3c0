"""`bench-ir suite status` says what is true now: a profile made with other settings is outdated (and profiled
again), a reason left by an earlier attempt gives way to the cell's state now, a suite file edited since the plan is
named, and the data-check advice of a suite refusal names a protocol file as a command line can find it."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import write_one_pair_protocol, write_sample_suite
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.suite import SuiteCheckError, SuitePlan, cell_status_reason, execute_cell, plan_suite, run_suite

ROOT = Path(__file__).resolve().parents[1]
TINY_CARD = ROOT / "examples" / "tiny-unet.yaml"
TINY_WEIGHTS = ROOT / "examples" / "tiny-unet.safetensors"
FAST_MODE_ON_CPU = "fast mode on cpu (compile None, channels-last False)"
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny inputs: a thread pool only costs time on a shared CPU


def _write_suite(folder: Path, **fields) -> Path:
    """A suite file ``folder/suite.yaml``: one ``input`` entry on the 3deg sample data, 1 image per task, no
    profile, each field of ``fields`` replacing the default's."""
    return write_sample_suite(folder, **{"name": "truth", "protocols": ["3deg"], **fields})


def _toy_suite(folder: Path, entries: list[dict] | None = None, profile: dict | None = None, **options) -> Path:
    """A suite of the ``input`` model (or ``entries``) on a one-image protocol file 'toy' whose data is under
    ``folder/data``; ``options`` join the suite's options, ``profile`` replaces its profile settings."""
    toy = folder / "data" / "toy.yaml"
    if not toy.is_file():
        write_one_pair_protocol(folder / "data", "toy")
    entries = entries or [{"model": "input"}]
    return _write_suite(folder, entries=[{**e, "protocols": [str(toy)]} for e in entries],
                        options={"device": "cpu", **options}, profile=profile or {"enabled": False})


def _status_row(suite_dir: Path, cell: str) -> tuple[list[str], str]:
    """The cells of ``cell``'s row of `suite status` (state, images, reason) and the whole output."""
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["suite", "status", str(suite_dir)])
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if f" {cell} " in line]
    return [part.strip() for part in row.split("│")[2:5]], result.stdout


# ----------------------------------------------------------------------------------------- profiles go out of date
PROFILE = {"enabled": True, "size": 32, "repeats": 1, "warmup": 0}


def _profiled_entries(card: Path) -> list[dict]:
    return [{"model": "input"}, {"model": str(card), "checkpoint": str(TINY_WEIGHTS)}]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, one_thread):
    """A suite directory whose two profile cells (``input`` and a copy of the tiny-unet card) are profiled at 32 px;
    returns (its folder, the card copy)."""
    folder = tmp_path_factory.mktemp("profiled")
    card = folder / "tiny-unet.yaml"
    shutil.copy(TINY_CARD, card)
    shutil.copy(ROOT / "examples" / "tiny_unet.py", folder / "tiny_unet.py")
    path = _write_suite(folder, entries=_profiled_entries(card), profile=PROFILE)
    plan_suite(path, folder / "out").save()
    for name in ("profile__input", "profile__tiny-unet"):
        assert execute_cell(folder / "out", name).status == "complete"
    return folder, card


def _replan(profiled, tmp_path, **fields) -> SuitePlan:
    """The plan of the profiled suite with ``fields`` changed, over its suite directory (not saved)."""
    folder, card = profiled
    fields = {"entries": _profiled_entries(card), "profile": PROFILE, **fields}
    return plan_suite(_write_suite(tmp_path, **fields), folder / "out")


def test_a_profile_made_as_the_suite_asks_stays_complete(profiled, tmp_path):
    plan = _replan(profiled, tmp_path)
    for name in ("profile__input", "profile__tiny-unet"):
        assert cell_status_reason(plan, plan.cell(name)) == ("complete", None)


@pytest.mark.parametrize("fields, reason", [
    ({"profile": {**PROFILE, "size": 48}}, "profile size: 32 px → 48 px"),
    ({"options": {"sample": True, "limit": 1, "device": "cpu", "dtype": "bf16"}}, "dtype: fp32 → bf16"),
    ({"options": {"sample": True, "limit": 1, "device": "cpu", "exact": True}},
     f"execution: {FAST_MODE_ON_CPU} → exact mode on cpu"),
    ({"options": {"sample": True, "limit": 1, "device": "cuda"}}, f"execution: {FAST_MODE_ON_CPU} → fast mode on cuda"),
], ids=["size", "dtype", "exact", "device"])
def test_a_profile_made_with_another_setting_is_outdated_and_says_which(profiled, tmp_path, fields, reason):
    plan = _replan(profiled, tmp_path, **fields)
    status, why = cell_status_reason(plan, plan.cell("profile__input"))
    assert status == "outdated" and why.startswith(reason), why


def test_a_profile_whose_card_args_changed_is_outdated(profiled, tmp_path):
    _, card = profiled
    text = card.read_text()
    try:
        card.write_text(text.replace("width: 16", "width: 8"))
        plan = _replan(profiled, tmp_path)
        status, why = cell_status_reason(plan, plan.cell("profile__tiny-unet"))
    finally:
        card.write_text(text)
    assert status == "outdated" and why.startswith("model: card 'tiny-unet' (factory tiny_unet:TinyUNet, args "
                                                   "{'width': 16}"), why
    assert "→ card 'tiny-unet' (factory tiny_unet:TinyUNet, args {'width': 8}" in why


def test_suite_run_profiles_an_outdated_profile_again(tmp_path):
    data = tmp_path / "data"
    run_suite(_toy_suite(tmp_path, profile=PROFILE), suite_dir=tmp_path / "out", data_root=data)
    outcome = run_suite(_toy_suite(tmp_path, profile={**PROFILE, "size": 48}), suite_dir=tmp_path / "out",
                        data_root=data)
    assert [(r.name, r.status) for r in outcome.results] == [("profile__input", "complete")]
    assert json.loads((tmp_path / "out" / "profiles" / "input" / "profile.json").read_text())["size"] == 48
    plan = SuitePlan.load(tmp_path / "out")
    assert cell_status_reason(plan, plan.cell("profile__input")) == ("complete", None)


# ------------------------------------------------------------------------ the state now before the last attempt
def test_a_cell_failed_for_a_cause_gone_since_shows_what_differs_now(tmp_path):
    """The protocol's crop changed and the cell failed to resume; with the crop restored and the convention changed
    instead, the old ResumeError says nothing true: the convention is what differs now."""
    path = _toy_suite(tmp_path)
    data = tmp_path / "data"
    run_suite(path, suite_dir=tmp_path / "out", data_root=data)
    toy = data / "toy.yaml"
    text = toy.read_text()
    toy.write_text(text.replace("base: 16", "base: 8"))
    (result,) = run_suite(path, suite_dir=tmp_path / "out", data_root=data).results
    assert result.status == "failed" and "crop changed" in result.error
    toy.write_text(text)
    plan_suite(_toy_suite(tmp_path, convention="M2"), tmp_path / "out", data_root=data).save()
    plan = SuitePlan.load(tmp_path / "out")
    assert cell_status_reason(plan, plan.cell("input__toy")) == (
        "outdated", "convention: M1 (skimage-uniform) → M2 (skimage-gaussian)")
    row, output = _status_row(tmp_path / "out", "input__toy")
    assert [row[0], row[2]] == ["outdated", "convention: M1 (skimage-uniform) → M2 (skimage-gaussian)"]
    assert "ResumeError" not in output


def test_a_cell_skipped_as_missing_is_no_longer_missing_once_its_checkpoint_is_there(tmp_path):
    entries = [{"model": str(TINY_CARD), "checkpoint": "tiny.safetensors", "name": "tiny"}]
    path = _toy_suite(tmp_path, entries=entries)
    (tmp_path / "ckpt").mkdir()
    run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt",
              skip_missing=True)
    plan = SuitePlan.load(tmp_path / "out")
    state, reason = cell_status_reason(plan, plan.cell("tiny__toy"))
    assert state == "missing"
    assert reason.startswith(f"checkpoint file not found: {tmp_path / 'ckpt' / 'tiny.safetensors'}.")
    shutil.copy(TINY_WEIGHTS, tmp_path / "ckpt" / "tiny.safetensors")
    assert cell_status_reason(plan, plan.cell("tiny__toy")) == ("pending", None)
    row, _ = _status_row(tmp_path / "out", "tiny__toy")
    assert row[0] == "pending" and row[2] == ""


def test_a_failed_cell_whose_checkpoint_is_gone_now_is_missing(tmp_path):
    (tmp_path / "ckpt").mkdir()
    broken = tmp_path / "ckpt" / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    path = _toy_suite(tmp_path, entries=[{"model": str(TINY_CARD), "checkpoint": str(broken), "name": "tiny"}])
    (result,) = run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data").results
    assert result.status == "failed"
    broken.unlink()
    plan = SuitePlan.load(tmp_path / "out")
    state, reason = cell_status_reason(plan, plan.cell("tiny__toy"))
    assert state == "missing" and reason.startswith(f"checkpoint file not found: {broken}.")


def _failed_unfinished_run(tmp_path: Path) -> tuple[Path, str]:
    """A suite directory whose cell input__toy failed in the middle of its run (its manifest says failed) with the
    error ``RuntimeError: boom``."""
    from bench_ir.results import write_json_atomic

    run_suite(_toy_suite(tmp_path), suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    manifest = tmp_path / "out" / "runs" / "input__toy" / "manifest.json"
    write_json_atomic(manifest, {**json.loads(manifest.read_text()), "status": "failed", "error": "boom"})
    state = tmp_path / "out" / "cells" / "input__toy.json"
    write_json_atomic(state, {**json.loads(state.read_text()), "status": "failed", "error": "RuntimeError: boom"})
    return tmp_path / "out", "input__toy"


def test_a_failed_cell_whose_unfinished_run_matches_the_plan_shows_the_last_error(tmp_path):
    suite_dir, name = _failed_unfinished_run(tmp_path)
    plan = SuitePlan.load(suite_dir)
    assert cell_status_reason(plan, plan.cell(name)) == ("failed", "RuntimeError: boom")


def test_a_failed_cell_whose_unfinished_run_has_another_setup_now_is_outdated(tmp_path):
    """Resuming it would fail on the new setup, not on the old error."""
    suite_dir, name = _failed_unfinished_run(tmp_path)
    plan = plan_suite(_toy_suite(tmp_path, convention="M2"), suite_dir, data_root=tmp_path / "data")
    assert cell_status_reason(plan, plan.cell(name)) == (
        "outdated", "convention: M1 (skimage-uniform) → M2 (skimage-gaussian)")


# ------------------------------------------------------------------------------- a suite file edited since its plan
def test_suite_status_says_when_the_suite_file_changed_after_the_plan_with_the_command_that_plans_it_again(tmp_path):
    path = _write_suite(tmp_path, protocols=["5deg"])
    plan_suite(path, tmp_path / "out").save()
    _, output = _status_row(tmp_path / "out", "input__5deg")
    assert "changed after this plan was made" not in output
    _write_suite(tmp_path, protocols=["5deg"], options={"sample": True, "limit": 2, "device": "cpu"})
    _, output = _status_row(tmp_path / "out", "input__5deg")
    command = shlex.join(["bench-ir", "suite", "run", str(path), "--out", str(tmp_path / "out")])
    assert (f"note: the suite file {path} changed after this plan was made (the states above are those of the old "
            f"plan): `{command}` plans it again") in output


def test_a_plan_from_before_the_suite_file_sha256_was_recorded_says_nothing_of_the_file(tmp_path):
    path = _write_suite(tmp_path, protocols=["5deg"])
    plan_suite(path, tmp_path / "out").save()
    plan_json = tmp_path / "out" / "plan.json"
    plan_json.write_text(json.dumps({k: v for k, v in json.loads(plan_json.read_text()).items()
                                     if k != "source_sha256"}))
    _write_suite(tmp_path, protocols=["3deg"])
    _, output = _status_row(tmp_path / "out", "input__5deg")
    assert "changed after this plan was made" not in output


# ---------------------------------------------------------------------------------- the data check of a refusal
def test_the_data_check_advice_names_a_users_protocol_by_its_file_and_that_command_finds_it(tmp_path):
    path = _toy_suite(tmp_path)
    shutil.rmtree(tmp_path / "data" / "toy" / "target")
    with pytest.raises(SuiteCheckError) as err:
        run_suite(path, suite_dir=tmp_path / "out", data_root=tmp_path / "data")
    toy = tmp_path / "data" / "toy.yaml"
    command = f"bench-ir data check --protocol {shlex.quote(str(toy))} --data-root {tmp_path / 'data'}"
    assert str(err.value).endswith(command)
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert "unknown protocol" not in result.output and "toy/target" in result.output


def test_a_sample_suites_refusal_suggests_no_data_root(tmp_path):
    toy = write_one_pair_protocol(tmp_path / "data", "toy")  # its task defines no sample degradations
    path = _write_suite(tmp_path, protocols=[str(toy)])
    with pytest.raises(SuiteCheckError) as err:
        run_suite(path, suite_dir=tmp_path / "out")
    message = str(err.value)
    assert "protocol 'toy': task 't' of protocol 'toy' defines no sample degradations" in message
    assert "--data-root" not in message and "DATA_ROOT" not in message
