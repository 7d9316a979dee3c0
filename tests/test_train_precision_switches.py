"""Training runs under its execution plan's cuDNN switches, and its losses in float32 whatever the autocast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

import bench_ir.train.session as session_module
from bench_ir.losses import MirageObjective, SpdProjections
from bench_ir.train.objectives import RestorationObjective
from bench_ir.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_UNET = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
ONE_STEP = {"max_steps": 1, "device": "cpu", "batch_size": 2, "patch_size": 16, "num_workers": 0,
            "validate": False, "tensorboard": False}


class SwitchRecorder:
    """An objective that records the cuDNN switches in force while the step computes its loss."""

    def __init__(self) -> None:
        self.seen: list[dict[str, bool]] = []

    def __call__(self, model: nn.Module, lq: torch.Tensor, gt: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        cudnn = torch.backends.cudnn
        self.seen.append({"deterministic": cudnn.deterministic, "benchmark": cudnn.benchmark})
        return RestorationObjective()(model, lq, gt, step)


@pytest.fixture
def caller_switches():
    """The caller's switches (neither set) during the test, and as they were after it."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark)
    cudnn.deterministic, cudnn.benchmark = False, False
    yield cudnn
    cudnn.deterministic, cudnn.benchmark = saved


def test_an_exact_training_step_runs_with_deterministic_cudnn(tmp_path, caller_switches):
    recorder = SwitchRecorder()
    train("sample", TINY_UNET, None, tmp_path / "run", exact=True, objective=recorder, **ONE_STEP)
    assert recorder.seen == [{"deterministic": True, "benchmark": False}]


def test_a_training_step_autotunes_cudnn_when_the_plan_says_so(tmp_path, caller_switches, monkeypatch):
    plan_execution = session_module.plan_execution

    def autotuning_plan(*args, **kwargs):
        return dataclasses.replace(plan_execution(*args, **kwargs), cudnn_benchmark=True)

    monkeypatch.setattr(session_module, "plan_execution", autotuning_plan)
    recorder = SwitchRecorder()
    train("sample", TINY_UNET, None, tmp_path / "run", objective=recorder, **ONE_STEP)
    assert recorder.seen == [{"deterministic": False, "benchmark": True}]


def test_training_gives_the_caller_its_cudnn_switches_back(tmp_path, caller_switches):
    train("sample", TINY_UNET, None, tmp_path / "run", exact=True, objective=SwitchRecorder(), **ONE_STEP)
    assert (caller_switches.deterministic, caller_switches.benchmark) == (False, False)


def _outputs() -> tuple[torch.Tensor, torch.Tensor, SpdProjections]:
    generator = torch.Generator().manual_seed(0)
    restored, gt = torch.rand(8, 3, 16, 16, generator=generator), torch.rand(8, 3, 16, 16, generator=generator)
    return restored, gt, SpdProjections(torch.randn(32, 64, generator=generator),
                                        torch.randn(32, 64, generator=generator))


def _terms_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == torch.float32 and torch.equal(a[k], b[k]) for k in a)


def test_the_mirage_objective_under_bf16_autocast_equals_its_float32_value():
    restored, gt, spd = _outputs()
    reference = MirageObjective()(restored, gt, spd)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = MirageObjective()(restored, gt, spd)
    assert _terms_equal(autocast, reference)


class FixedOutput(nn.Module):
    """A model whose train-mode output is given: (restored, SPD projections), as MIRAGE's."""

    def __init__(self, restored: torch.Tensor, spd: SpdProjections) -> None:
        super().__init__()
        self.restored, self.spd = restored, spd

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, SpdProjections]:
        return self.restored, self.spd


def test_the_restoration_objective_computes_its_losses_in_float32_under_bf16_autocast():
    restored, gt, spd = _outputs()
    model = FixedOutput(restored, spd)
    reference = RestorationObjective()(model, gt, gt, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = RestorationObjective()(model, gt, gt, 0)
    assert _terms_equal(autocast, reference)


def test_the_mirage_objective_upcasts_bf16_outputs_to_float32():
    restored, gt, spd = _outputs()
    low = SpdProjections(spd.z_shallow.bfloat16(), spd.z_latent.bfloat16())
    terms = MirageObjective()(restored.bfloat16(), gt, low)
    upcast = MirageObjective()(restored.bfloat16().float(), gt, SpdProjections(*(z.float() for z in low)))
    assert _terms_equal(terms, upcast)


def test_validation_during_an_exact_training_runs_on_the_reference_computation(tmp_path):
    """`train --exact` validates on the reference computation, not on the fast path of a plain run."""
    from bench_ir.results import load_run
    from bench_ir.train.recipes import ValidationSpec, load_recipe

    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(
        protocol="5deg", sample=True, limit=1, tasks=["derain"], every_steps=1, every_epochs=None))
    run_dir = tmp_path / "run"
    train(recipe, TINY_UNET, None, run_dir, exact=True, objective=SwitchRecorder(), **{**ONE_STEP, "validate": True})
    assert load_run(run_dir / "val" / "step-0000001").manifest["execution"]["mode"] == "exact"
