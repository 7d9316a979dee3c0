"""The bench/ scripts' bookkeeping: where figures go (rehearsals are never results) and the CUDA-default rule."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_rehearsal_is_labelled_and_written_only_to_its_output_folder(tmp_path):
    output = _load("_output")
    results_md = tmp_path / "RESULTS.md"
    path = output.write_results("speed", torch.device("cpu"), "cmd", {"x": 1}, "| a |", results_md,
                                out_dir=tmp_path / "out", rehearsal=True)
    assert path.parent == tmp_path / "out" and path.name.startswith("rehearsal-speed-")
    assert json.loads(path.read_text())["rehearsal"] is True
    assert path.with_suffix(".md").read_text().startswith("## REHEARSAL (not a measurement)")
    assert not results_md.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([path.name, path.with_suffix(".md").name])


def test_a_rehearsal_without_an_output_folder_is_refused(tmp_path):
    output = _load("_output")
    with pytest.raises(ValueError, match="rehearsal is not a measurement"):
        output.write_results("speed", torch.device("cpu"), "cmd", {}, "", tmp_path / "RESULTS.md", rehearsal=True)
    assert not (tmp_path / "RESULTS.md").exists()


def _path(seconds: float, warmup: float, compiled: bool = True) -> dict:
    return {"seconds": seconds, "execution": {"warmup_seconds": warmup,
                                              "compile_mode": "reduce-overhead" if compiled else None}}


@pytest.mark.parametrize(("cold", "eager", "default"), [
    (_path(60.0, 50.0), _path(20.0, 0.0, compiled=False), "eager"),    # whole protocol: 50 + 10 / 0.5 = 70 s vs 40 s
    (_path(30.0, 25.0), _path(20.0, 0.0, compiled=False), "compile"),  # 25 + 5 / 0.5 = 35 s vs 40 s
])
def test_the_cuda_default_follows_the_projected_first_full_run(cold, eager, default):
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": cold, "bench-ir fast, eager": eager}, scale=0.5)
    assert decision["decided"] and decision["default"] == default


def test_no_default_is_decided_when_nothing_compiled():
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": _path(10.0, 0.0, compiled=False),
         "bench-ir fast, eager": _path(10.0, 0.0, compiled=False)}, scale=0.1)
    assert not decision["decided"] and decision["default"] is None


def test_params_and_flops_are_checked_against_the_committed_cpu_figures():
    from types import SimpleNamespace

    profile = _load("profile_models")
    reference = json.loads((BENCH / "results" / "cpu-params-flops.json").read_text())
    cpu = reference["models"]["mirage-t"]["224"]
    same = SimpleNamespace(model="mirage-t", size=224, **cpu)
    off = SimpleNamespace(model="mirage-t", size=224, **{**cpu, "flops": cpu["flops"] + 1})
    elsewhere = SimpleNamespace(model="mirage-t", size=96, **cpu)
    checks = profile.compare_with_reference([same], reference)
    assert checks["mirage-t"]["status"] == "equal"
    assert profile.compare_with_reference([off], reference)["mirage-t"]["differing"] == {
        "flops": {"reference": cpu["flops"], "measured": cpu["flops"] + 1}}
    assert profile.compare_with_reference([elsewhere], reference)["mirage-t"]["status"] == "no reference"


def test_the_committed_cpu_figures_cover_every_registered_model():
    from bench_ir.cards import list_models

    reference = json.loads((BENCH / "results" / "cpu-params-flops.json").read_text())
    assert set(reference["models"]) == set(list_models()) - {"input"}
    assert reference["models"]["mirage-t"]["224"]["params_total"] == 6_207_412
