"""Which profile a protocol run joins: of the profiles of its model, one of the run's own dtype before a newer one of
another dtype (memory and speed depend on it); and a run whose manifest has no copy of its card joins the profile
`report --profile` made for it, so that it is not profiled again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import write_scored_run

from bench_ir.cards import get_card, model_record
from bench_ir.report import measure_runs
from bench_ir.report.profiles import ensure_profiles
from bench_ir.results import RunStore, write_json_atomic

TASK = [{"name": "derain", "label": "Rain100L"}]
RECORDS = [("derain", "r1", 30.0, 0.9)]
INPUT_CARD = model_record(get_card("input"), 0, None)
NO_CARD_COPY = {"name": "input", "display_name": "Input (no restoration)", "params": 0}  # an older manifest's entry


def _run(tmp_path: Path, model: dict = INPUT_CARD, dtype: str = "fp32") -> Path:
    """A stored protocol run of ``model`` (a manifest's ``model`` entry) at ``dtype``, without a profile."""
    return write_scored_run(tmp_path / "run", TASK, RECORDS, model=model, dtype=dtype)


def _profile(root: Path, name: str, dtype: str, created: str, size: int = 32) -> Path:
    """A stored profile run of the `input` card at ``dtype`` and ``size`` px, made at ``created``."""
    folder = root / name
    RunStore(folder).write_manifest({
        "run_id": name, "kind": "profile", "created": created, "dtype": dtype, "model": INPUT_CARD,
        "checkpoint": None, "protocol": {"name": "efficiency", "tasks": [], "average": []}})
    write_json_atomic(folder / "profile.json", {"params": 0, "flops": 0, "size": size,
                                                "input_shape": [1, 3, size, size], "dtype": dtype})
    return folder


def _joined(run_dir: Path, profiles: Path, **options) -> Path | None:
    """The folder of the profile run that `measure_runs` joins to ``run_dir`` (profiles under ``profiles``)."""
    (measured,) = measure_runs([run_dir], profiles, **options)
    return measured.profile_run.run_dir if measured.profile_run is not None else None


def test_a_run_joins_a_profile_of_its_own_dtype_before_a_newer_one_of_another(tmp_path):
    profiles = tmp_path / "profiles"
    fp32 = _profile(profiles, "fp32", "fp32", "2026-01-01T00:00:00+00:00")
    _profile(profiles, "bf16", "bf16", "2026-02-01T00:00:00+00:00")
    assert _joined(_run(tmp_path, dtype="fp32"), profiles) == fp32


def test_a_run_joins_the_newest_profile_when_none_has_its_dtype(tmp_path):
    profiles = tmp_path / "profiles"
    _profile(profiles, "fp32", "fp32", "2026-01-01T00:00:00+00:00")
    fp16 = _profile(profiles, "fp16", "fp16", "2026-02-01T00:00:00+00:00")
    assert _joined(_run(tmp_path, dtype="bf16"), profiles) == fp16


def test_report_profile_at_a_size_takes_a_stored_profile_of_the_runs_dtype_before_a_newer_one(tmp_path):
    profiles = tmp_path / "profiles"
    fp32 = _profile(profiles, "fp32-32", "fp32", "2026-01-02T00:00:00+00:00")
    _profile(profiles, "bf16-32", "bf16", "2026-02-01T00:00:00+00:00")
    _profile(profiles, "fp32-64", "fp32", "2026-03-01T00:00:00+00:00", size=64)  # joined first: another size
    assert _joined(_run(tmp_path, dtype="fp32"), profiles, profile=True, profile_size=32) == fp32


def test_a_run_without_a_card_copy_joins_the_profile_report_profile_made_for_it(tmp_path):
    run_dir, profiles = _run(tmp_path, model=NO_CARD_COPY), tmp_path / "profiles"
    made = _joined(run_dir, profiles, profile=True, profile_size=32)
    assert made is not None and _joined(run_dir, profiles) == made


def test_report_profile_does_not_profile_a_run_without_a_card_copy_again(tmp_path):
    run_dir, profiles = _run(tmp_path, model=NO_CARD_COPY), tmp_path / "profiles"
    _joined(run_dir, profiles, profile=True, profile_size=32)
    assert ensure_profiles(measure_runs([run_dir], profiles), profiles, size=32) == []


def test_a_run_of_another_card_of_the_same_name_does_not_join_that_profile(tmp_path):
    profiles = tmp_path / "profiles"
    _joined(_run(tmp_path / "old", model=NO_CARD_COPY), profiles, profile=True, profile_size=32)
    other = model_record(replace(get_card("input"), display_name="My input"), 0, None)
    assert _joined(_run(tmp_path / "other", model=other), profiles) is None
