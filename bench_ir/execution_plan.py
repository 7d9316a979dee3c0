"""The execution plan of a model (``exact`` or ``fast``, compile mode, memory format), decided without torch: the
suite's status compares a run's recorded plan with the one a cell would get now, and `list runs` must stay light.
:mod:`bench_ir.acceleration` carries it out (and re-exports these names)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bench_ir.choices import CompileMode

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["CompileChoice", "COMPILE_CHOICES", "MAX_COMPILED_SHAPES", "ExecutionPlan", "plan_execution"]


class _Device(Protocol):
    type: str


CompileChoice = Literal["auto", "on", "off"]


COMPILE_CHOICES: tuple[str, ...] = tuple(mode.value for mode in CompileMode)
MAX_COMPILED_SHAPES = 32


@dataclass(frozen=True)
class ExecutionPlan:
    """How forwards run. ``compile_mode`` is a ``torch.compile`` mode (None: eager); ``dynamic`` its shape
    handling (None: automatic, see :mod:`bench_ir.acceleration`); ``max_compiled_shapes`` bounds the distinct input
    shapes run through the compiled model (further shapes run eagerly); ``fused_optimizer``: training uses the
    fused CUDA Adam/AdamW kernel."""

    mode: Literal["exact", "fast"]
    compile_mode: str | None
    channels_last: bool
    deterministic: bool
    cudnn_benchmark: bool
    fused_optimizer: bool = False
    dynamic: bool | None = None
    max_compiled_shapes: int = MAX_COMPILED_SHAPES

    @property
    def compiles(self) -> bool:
        return self.compile_mode is not None

    def place_module(self, module: nn.Module) -> nn.Module:
        """``module`` with its weights in the plan's memory format (in place; channels-last on the fast CUDA
        path). Call it before wrapping the module in DDP."""
        if self.channels_last:
            import torch

            module.to(memory_format=torch.channels_last)
        return module

    def place_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the plan's memory format (a channels-last copy on the fast CUDA path, else ``x``)."""
        if not self.channels_last:
            return x
        import torch

        return x.contiguous(memory_format=torch.channels_last)

    def describe(self) -> dict[str, Any]:
        """The plan as plain data, for manifests."""
        return asdict(self)


def plan_execution(device: torch.device | _Device, exact: bool = False, compile: CompileChoice = "auto",
                   training: bool = False, dtype: str = "fp32") -> ExecutionPlan:
    """The plan for ``device``: exact when asked, else the fast path (compiled on CUDA, or anywhere with
    ``compile="on"``). Training compiles without CUDA graphs (``default`` mode): optimizer steps between
    forwards would invalidate the graph's static buffers. ``dtype`` (the autocast precision asked for) is checked
    against ``exact``: the reference computation is float32."""
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {compile!r}")
    if exact and dtype != "fp32":
        raise ValueError(f"--exact is the float32 reference computation; it cannot run with --dtype {dtype}")
    if exact:
        if compile == "on":
            raise ValueError("--exact runs the reference eager computation; it cannot be combined with --compile on")
        return ExecutionPlan(mode="exact", compile_mode=None, channels_last=False, deterministic=True,
                             cudnn_benchmark=False)
    cuda = device.type == "cuda"
    compiles = compile == "on" or (compile == "auto" and cuda)
    mode = None
    if compiles:
        mode = "reduce-overhead" if cuda and not training else "default"
    return ExecutionPlan(mode="fast", compile_mode=mode, channels_last=cuda, deterministic=False,
                         cudnn_benchmark=cuda, fused_optimizer=cuda)
