"""Execution modes of a model: ``exact`` (the reference computation) and ``fast`` (the default on CUDA).

``exact``: eager PyTorch, float32, contiguous NCHW tensors, deterministic cuDNN algorithms and PyTorch's default TF32
switches (on for cuDNN convolutions, off for matmuls), set explicitly — the computation of the official test scripts,
which run under those defaults, repeatable run to run. ``fast``: channels-last tensors, cuDNN
autotuning and ``torch.compile`` (CUDA graphs on CUDA, recorded per input shape, so a forward is one replay);
outputs are meant to stay within 1e-4 of the exact ones in float32 (measured on the CPU for a small MIRAGE:
at most 5.4e-7; bench/speed_mirage.py measures the CUDA path). Shapes are ``dynamic=None`` by default: the first
shape is compiled for its sizes, the second recompiles with symbolic sizes, and later shapes reuse that graph
unless they cross a size guard (measured on the CPU with a small MIRAGE: the symbolic graph carried a guard
6·H·W <= 20480 from the convolution's fake kernel, so a larger image compiled once more); ``dynamic=False``
specialises every shape instead. Reduced precision (``--dtype bf16``) is a separate choice in either mode's engine.

On the CPU ``fast`` compiles only when asked (``compile="on"``): Inductor's C++ compile takes minutes there
and gains little over eager.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from bench_ir.execution_plan import (  # noqa: F401 - re-exported: the plan is decided there, carried out here
    COMPILE_CHOICES,
    MAX_COMPILED_SHAPES,
    CompileChoice,
    ExecutionPlan,
    plan_execution,
)

__all__ = [
    "CompileChoice",
    "ExecutionPlan",
    "plan_execution",
    "precision_settings",
    "AcceleratedForward",
    "compile_for_training",
    "one_line_error",
    "is_out_of_memory",
    "compile_error_in",
]

@contextlib.contextmanager
def precision_settings(plan: ExecutionPlan) -> Iterator[None]:
    """Set cuDNN/TF32 switches for the plan and restore the previous ones afterwards.

    exact: deterministic cuDNN algorithms, no autotuning, and PyTorch's default TF32 switches whatever the caller set:
    TF32 in cuDNN convolutions (on Ampere and newer GPUs), none in matmuls. The official test and training scripts
    set neither switch, so they run under these defaults; turning TF32 off would move per-image PSNR away from
    theirs on such GPUs. fast: cuDNN autotuning; the TF32 switches stay as the caller has them.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.benchmark = plan.cudnn_benchmark
        if plan.deterministic:
            cudnn.deterministic = True
            cudnn.allow_tf32 = True
            matmul.allow_tf32 = False
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def _raise_recompile_limit(shapes: int) -> None:
    """Dynamo keeps at most ``recompile_limit`` graphs per function (8 by default); one per shape is needed."""
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), shapes))
            return


class AcceleratedForward:
    """``model`` under an :class:`ExecutionPlan`: call it like the model on a (B,3,H,W) batch.

    Distinct (shape, dtype, autocast) keys run through the compiled model (each with its own CUDA graph under
    ``reduce-overhead``) until ``max_compiled_shapes`` keys are held; later keys run the eager model. Outputs are
    returned as contiguous NCHW tensors that the next call does not overwrite. ``warmup_seconds`` sums the time of
    the warm-up calls per key (compilation and graph capture: the first call, the first two under
    ``reduce-overhead``), which timing figures should leave out.

    When compiling fails (no working C++ compiler for Inductor, an operator Dynamo or Triton cannot handle) and the
    eager model runs the same batch, every later call runs eagerly: ``compile_error`` names the failure, and
    :meth:`describe` records it as ``compile_failed`` (callers state it as a notice). Out of GPU memory is not a
    compile failure and is raised as it is; so is an error the eager model raises too.
    """

    def __init__(self, model: nn.Module, plan: ExecutionPlan) -> None:
        self.model = model
        self.plan = plan
        self.keys: set[tuple[Any, ...]] = set()
        self.warmup_seconds = 0.0
        self._calls: dict[tuple[Any, ...], int] = {}
        self._compiled: Callable[..., Any] | None = None
        self.compile_error: str | None = None
        plan.place_module(model)
        if plan.compiles:
            _raise_recompile_limit(plan.max_compiled_shapes)
            self._compiled = torch.compile(model, mode=plan.compile_mode, dynamic=plan.dynamic)

    def _key(self, x: torch.Tensor) -> tuple[Any, ...]:
        autocast = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
        return (tuple(x.shape), x.dtype, x.device.type, autocast, torch.is_grad_enabled())

    def __call__(self, x: torch.Tensor) -> Any:
        x = self.plan.place_input(x)
        if self._compiled is None:
            return _as_nchw(self.model(x))
        key = self._key(x)
        first = key not in self.keys
        if first and len(self.keys) >= self.plan.max_compiled_shapes:
            return _as_nchw(self.model(x))
        start = time.perf_counter()
        try:
            if self.plan.compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            out = _as_nchw(self._compiled(x), copy=self.plan.compile_mode == "reduce-overhead")
        except Exception as err:
            if not first or is_out_of_memory(err):
                raise
            out = _as_nchw(self.model(x))  # raises the model's own error when the eager model fails as well
            self._compiled = None
            self.compile_error = one_line_error(err)
            return out
        calls = self._calls[key] = self._calls.get(key, 0) + 1
        self.keys.add(key)
        if calls <= self._warmup_calls():
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            self.warmup_seconds += time.perf_counter() - start
        return out

    def _warmup_calls(self) -> int:
        """The calls of a key that compile or capture rather than run: the first (Dynamo and Inductor compile), and
        under ``reduce-overhead`` the second too: Inductor's CUDA graph trees run a function's first call eagerly
        as a warm-up and record its graph on the next call (torch/_inductor/cudagraph_trees.py,
        CUDAGraphTreeManager)."""
        return 2 if self.plan.compile_mode == "reduce-overhead" else 1

    def describe(self) -> dict[str, Any]:
        failed = {"compile_failed": self.compile_error} if self.compile_error else {}
        return {**self.plan.describe(), "compiled_shapes": len(self.keys),
                "warmup_seconds": round(self.warmup_seconds, 3), **failed}

    def compile_notice(self) -> str | None:
        """The sentence that states a compile failure and the eager fallback, or None when compiling did not fail."""
        if self.compile_error is None:
            return None
        return (f"torch.compile failed ({self.compile_error}); the model ran eagerly instead (same outputs within "
                "1e-4, without the compiled speed). --compile off skips the attempt")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a GPU out-of-memory error (the CUDA exception, or an error whose message says so, as
    compiled code and some backends raise it)."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def compile_error_in(err: BaseException) -> BaseException | None:
    """``err``, or the error it was raised from, that comes from torch.compile's machinery (Dynamo, Inductor);
    None when none does."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return current
        current = current.__cause__ or current.__context__
    return None


def one_line_error(err: BaseException, limit: int = 300) -> str:
    """'Type: first line of the message', at most ``limit`` characters: a compile error's message can run to pages
    (Inductor quotes the generated code and the compiler's output)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0].strip()}" if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _as_nchw(out: Any, copy: bool = False) -> Any:
    """Model outputs as contiguous NCHW tensors (a fresh copy when ``copy``: CUDA-graph outputs live in memory
    the next replay overwrites). Tuples/lists are converted element-wise; other values pass through."""
    if isinstance(out, torch.Tensor):
        out = out.contiguous()
        return out.clone() if copy else out
    if isinstance(out, (tuple, list)):
        return type(out)(_as_nchw(o, copy) for o in out)
    return out


def compile_for_training(model: nn.Module, plan: ExecutionPlan) -> nn.Module:
    """The module a training step calls: ``model`` compiled under a compiling plan, else ``model`` itself.
    Parameters are shared, so optimizers and checkpoints keep using the uncompiled module. The weights' memory
    format is the caller's to set (:meth:`ExecutionPlan.place_module`) before any DDP wrapping."""
    if not plan.compiles:
        return model
    return torch.compile(model, mode=plan.compile_mode)  # type: ignore[return-value]
