"""Execution modes: the exact reference path, the fast (compiled) path and how the engine and runner use them."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from bench_ir.acceleration import (
    AcceleratedForward,
    ExecutionPlan,
    compile_for_training,
    plan_execution,
    precision_settings,
)
from bench_ir.engine import EvalOptions, restore
from bench_ir.geometry import fit_policy
from bench_ir.runner import FAST_CUDA_BATCH, ResumeError, RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 3, padding=1)).eval()


def test_fast_path_on_cuda_compiles_with_cuda_graphs_in_channels_last():
    plan = plan_execution(CUDA)
    assert (plan.mode, plan.compile_mode, plan.channels_last, plan.cudnn_benchmark, plan.fused_optimizer) == (
        "fast", "reduce-overhead", True, True, True)


def test_training_on_cuda_compiles_without_cuda_graphs():
    assert plan_execution(CUDA, training=True).compile_mode == "default"


def test_exact_mode_is_eager_nchw_and_deterministic():
    plan = plan_execution(CUDA, exact=True)
    assert (plan.mode, plan.compiles, plan.channels_last, plan.deterministic, plan.cudnn_benchmark,
            plan.fused_optimizer) == ("exact", False, False, True, False, False)


def test_fast_path_places_inputs_channels_last_on_cuda_only():
    x = torch.rand(2, 3, 8, 8)
    assert plan_execution(CUDA).place_input(x).is_contiguous(memory_format=torch.channels_last)
    assert plan_execution(CPU).place_input(x) is x


def test_cpu_stays_eager_unless_compile_is_asked_for():
    assert not plan_execution(CPU).compiles
    assert plan_execution(CPU, compile="on").compile_mode == "default"
    assert not plan_execution(CUDA, compile="off").compiles


def test_exact_mode_refuses_compile_on():
    with pytest.raises(ValueError, match="--exact"):
        plan_execution(CPU, exact=True, compile="on")


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_exact_mode_refuses_a_lower_precision(dtype):
    """The same rule for run, train, profile and restore: the reference computation is float32."""
    with pytest.raises(ValueError, match=f"--exact is the float32 reference computation; it cannot run with --dtype "
                                         f"{dtype}"):
        plan_execution(CPU, exact=True, dtype=dtype)


def test_exact_mode_sets_the_tf32_switches_the_official_scripts_run_under_and_restores_the_callers():
    """The official scripts set no switch, so they run under PyTorch's defaults: TF32 in cuDNN convolutions, none in
    matmuls. --exact sets exactly those, whatever the caller had, and gives the caller's back afterwards."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = False, True, False, True
        with precision_settings(plan_execution(CUDA, exact=True)):
            assert (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == (
                True, False, True, False)
        assert (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) == (False, True, False, True)
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def test_eager_forward_returns_the_model_output_unchanged():
    net = _tiny_net()
    x = torch.rand(2, 3, 16, 16)
    forward = AcceleratedForward(net, plan_execution(CPU, exact=True))
    with torch.inference_mode():
        assert torch.equal(forward(x), net(x))
    assert forward.describe()["compiled_shapes"] == 0


def test_compiled_forward_matches_eager_and_keeps_one_graph_per_shape():
    net = _tiny_net()
    forward = AcceleratedForward(net, plan_execution(CPU, compile="on"))
    with torch.inference_mode():
        for shape in [(2, 3, 16, 16), (1, 3, 24, 16), (2, 3, 16, 16)]:
            x = torch.rand(shape)
            torch.testing.assert_close(forward(x), net(x), rtol=0, atol=1e-5)
    assert len(forward.keys) == 2
    assert forward.warmup_seconds > 0


def test_shapes_beyond_the_compiled_limit_run_eagerly():
    net = _tiny_net()
    plan = plan_execution(CPU, compile="on")
    forward = AcceleratedForward(net, type(plan)(**{**plan.describe(), "max_compiled_shapes": 1}))
    with torch.inference_mode():
        forward(torch.rand(1, 3, 16, 16))
        x = torch.rand(1, 3, 8, 8)
        assert torch.equal(forward(x), net(x))
    assert len(forward.keys) == 1



@pytest.mark.parametrize(("compile_mode", "warmup_calls"), [("reduce-overhead", 2), ("default", 1)])
def test_warmup_seconds_cover_the_calls_that_compile_or_record_a_cuda_graph(monkeypatch, compile_mode, warmup_calls):
    """Under reduce-overhead Inductor's CUDA graph trees warm a shape up on its first call and record its graph on
    the second; only later calls are model time. The compiled model is a stub that takes 20 ms per call."""
    def compiled(x):
        time.sleep(0.02)
        return x

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: compiled)
    plan = ExecutionPlan(mode="fast", compile_mode=compile_mode, channels_last=False, deterministic=False,
                         cudnn_benchmark=False)
    forward = AcceleratedForward(_tiny_net(), plan)
    counted = []
    for _ in range(3):
        before = forward.warmup_seconds
        forward(torch.rand(1, 3, 8, 8))
        counted.append(forward.warmup_seconds > before)
    assert counted == [True] * warmup_calls + [False] * (3 - warmup_calls)

def _failing_compile(monkeypatch, error: Exception) -> list[int]:
    """torch.compile replaced by one whose compiled model raises ``error`` on every call (as Inductor without a C++
    compiler does on the first); returns the list of calls made to it."""
    calls: list[int] = []

    def compile_that_fails(model, **kwargs):
        def compiled(x):
            calls.append(1)
            raise error
        return compiled

    monkeypatch.setattr(torch, "compile", compile_that_fails)
    return calls


def test_a_failing_compile_falls_back_to_the_eager_model_and_says_why(monkeypatch):
    calls = _failing_compile(monkeypatch, RuntimeError("InvalidCxxCompiler: No working C++ compiler found in\n..."))
    net = _tiny_net()
    forward = AcceleratedForward(net, plan_execution(CPU, compile="on"))
    with torch.inference_mode():
        for shape in [(2, 3, 16, 16), (1, 3, 24, 16)]:
            x = torch.rand(shape)
            assert torch.equal(forward(x), net(x))
    assert len(calls) == 1  # not tried again for the next shape
    assert forward.describe()["compile_failed"] == "RuntimeError: InvalidCxxCompiler: No working C++ compiler found in"
    assert "the model ran eagerly instead" in forward.compile_notice()


def test_an_error_of_the_model_itself_is_raised_not_taken_for_a_compile_failure(monkeypatch):
    _failing_compile(monkeypatch, RuntimeError("compiled"))

    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("the model's own bug")

    forward = AcceleratedForward(Broken(), plan_execution(CPU, compile="on"))
    with pytest.raises(ValueError, match="the model's own bug"):
        forward(torch.rand(1, 3, 8, 8))


def test_out_of_memory_in_compiled_code_is_raised_for_the_batch_split(monkeypatch):
    _failing_compile(monkeypatch, RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    forward = AcceleratedForward(_tiny_net(), plan_execution(CPU, compile="on"))
    with pytest.raises(RuntimeError, match="out of memory"):
        forward(torch.rand(1, 3, 8, 8))
    assert forward.compile_error is None


def test_a_run_whose_compile_fails_completes_eagerly_and_records_the_failure(tmp_path, monkeypatch):
    _failing_compile(monkeypatch, RuntimeError("BackendCompilerFailed: backend='inductor' raised [x]"))
    # the input card's pass-through is compiled like any network (seconds of MIRAGE-T forwards would add nothing)
    outcome = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1,
                                     compile="on"))
    assert outcome.manifest["status"] == "complete"
    assert outcome.manifest["execution"]["compile_failed"].startswith("RuntimeError: BackendCompilerFailed")
    assert any("torch.compile failed" in notice for notice in outcome.notices)


def test_training_module_shares_parameters_with_the_model():
    net = _tiny_net().train()
    trained = compile_for_training(net, plan_execution(CPU, exact=True))
    assert trained is net


class _BatchLimitedNet(nn.Module):
    """Raises a CUDA-style out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batches.append(x.shape[0])
        return x * 0.5


def test_out_of_memory_splits_the_batch_before_any_tiling():
    net = _BatchLimitedNet(limit=2)
    x = torch.rand(5, 3, 16, 16)
    out, tile = restore(net, x, fit_policy(1, "none", "none", 1, "none", None), EvalOptions(device=CPU))
    assert tile is None and sorted(net.batches) == [1, 2, 2]
    assert torch.equal(out, x * 0.5)


def test_run_records_the_execution_plan_and_uses_batch_one_on_cpu(tmp_path):
    outcome = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1))
    assert outcome.manifest["execution"]["mode"] == "fast"
    assert outcome.manifest["execution"]["compile_mode"] is None
    assert outcome.manifest["batch_size"] == 1 < FAST_CUDA_BATCH


def test_exact_run_refuses_reduced_precision(tmp_path):
    with pytest.raises(ValueError, match="--exact"):
        run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", exact=True,
                               dtype="bf16"))


def test_resume_refuses_to_mix_exact_and_fast_records(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1,
                           exact=True))
    with pytest.raises(ResumeError, match="execution: exact mode on cpu .* → fast mode on cpu"):
        run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", resume=True))


def test_tiles_asked_for_are_not_reported_as_automatic_tiling():
    net = _BatchLimitedNet(limit=8)
    x = torch.rand(1, 3, 48, 48)
    out, tile = restore(net, x, fit_policy(1, "none", "none", 1, "none", None),
                        EvalOptions(device=CPU, tile=32, tile_overlap=8))
    assert tile is None
    assert torch.allclose(out, x * 0.5)
