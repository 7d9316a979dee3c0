"""Timed forwards run under the cuDNN switches of the path they time: bench-ir's paths under ``precision_settings``
of their own plan, as `bench-ir run` scores; the official model under the process defaults, as its scripts run.

On the CPU the fast plan does not autotune, so the tests give it the CUDA fast path's ``cudnn_benchmark=True``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from test_bench_scripts import _load
from torch import nn

from bench_ir.acceleration import ExecutionPlan, plan_execution
from bench_ir.profiling import profile_model

CPU = torch.device("cpu")
FAST = dataclasses.replace(plan_execution(CPU), cudnn_benchmark=True)
EXACT = plan_execution(CPU, exact=True)


def _switches() -> tuple[bool, bool]:
    """(cudnn.benchmark, cudnn.deterministic) in force now."""
    return torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic


class SwitchRecorder(nn.Module):
    """An identity network that tells ``record`` (label, autocast on, *switches in force) at every forward; a deep
    copy reports to the same ``record``."""

    def __init__(self, label: str, record: Callable[[tuple], None]) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.label = label
        self.record = record

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.record((self.label, torch.is_autocast_enabled("cpu"), *_switches()))
        return x * self.scale


def _speed_script(monkeypatch: pytest.MonkeyPatch, seen: list[tuple]):
    """speed_mirage with recorders for both models and the CUDA fast plan's switches on the CPU."""
    speed = _load("speed_mirage")
    monkeypatch.setattr(speed, "plan_execution", lambda device, exact=False: EXACT if exact else FAST)
    monkeypatch.setattr(speed, "paired_models", lambda official, variant, device, checkpoint: (
        SwitchRecorder("bench-ir", seen.append), SwitchRecorder("official", seen.append)))
    return speed


def test_speed_inference_times_every_bench_ir_path_under_its_own_plans_switches(monkeypatch):
    seen: list[tuple] = []
    defaults = _switches()
    _speed_script(monkeypatch, seen).bench_inference(None, "tiny", CPU, batch=1, size=32, repeats=1, warmup=1,
                                                     checkpoint=None)
    assert set(seen) == {("official", False, *defaults), ("official", True, *defaults),  # fp32, bf16
                         ("bench-ir", False, False, True),  # exact
                         ("bench-ir", False, True, False), ("bench-ir", True, True, False)}  # fast fp32, bf16


def test_speed_latency_times_every_bench_ir_path_under_its_own_plans_switches(monkeypatch):
    seen: list[tuple] = []
    defaults = _switches()
    _speed_script(monkeypatch, seen).bench_latency(None, "tiny", CPU, size=32, repeats=1, warmup=1)
    assert set(seen) == {("official", False, *defaults), ("bench-ir", False, False, True),
                         ("bench-ir", False, True, False)}


@pytest.mark.parametrize("plan", [FAST, EXACT], ids=["fast", "exact"])
def test_profile_runs_its_warm_up_and_timed_forwards_under_the_plans_switches(plan: ExecutionPlan):
    stage, seen = ["before"], []
    model = SwitchRecorder("model", lambda entry: seen.append((stage[0], entry[2:])))
    profile_model(model, size=8, device="cpu", repeats=2, warmup=1, flops=False, execution=plan,
                  progress=lambda name, done, total: stage.__setitem__(0, name))
    expected = (plan.cudnn_benchmark, plan.deterministic)
    assert {entry for entry in seen if entry[0] != "before"} == {("warm-up", expected), ("timed", expected)}
