"""Model cost: parameters, FLOPs (fvcore), peak GPU memory, latency and throughput, one training step.

Conventions (also in :data:`CONVENTIONS`, copied into every result):

- FLOPs: fvcore ``FlopCountAnalysis`` on one 1x3xSxS image in eval mode, with fvcore's default operator
  handles. fvcore counts one multiply-add as one FLOP, so the figure is a MAC count. The counted operators
  are convolutions (grouped and per-sample dynamic ones included), matmul/bmm/linear/einsum (attention
  products included), batch/group/layer/instance norm, up-sampling and adaptive average pooling.
  Element-wise operators (activations, softmax, vector norms, residual adds) are left out, as fvcore
  does; no handler is added for them because published figures (MIRAGE's 16G/27G, PromptIR, ...) were
  measured this way. Each result lists the operators that were and were not counted.
- Training-only heads: a model names them with ``training_only_modules()`` (module names). Inference
  parameters are the model's parameters outside them, counted on the model profiled (a card's ``inference_params``
  is checked against this count by ``validate --import``, not used in its place). When a model has such heads,
  ``flops_with_training_heads`` also counts the forward with them active (train mode, with normalisation
  and dropout layers in inference behaviour): official code that runs auxiliary heads at test time (the
  MIRAGE SPD head) published this figure.
- Precision: as ``bench-ir run --dtype``: fp32 is float32 throughout; bf16 and fp16 keep float32 weights and
  inputs and run the timed, memory and training forwards under ``torch.autocast`` to that dtype
  (:func:`bench_ir.engine.autocast_context`). FLOPs are counted in float32 whatever the dtype (a MAC count does not
  depend on it).
- Peak memory: CUDA only; ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` around
  one forward under ``torch.inference_mode`` at the profiled batch; it includes the weights.
- Latency: warm-up forwards, then ``repeats`` forwards each timed with ``time.perf_counter`` between
  device synchronisations; median and 90th percentile (linear interpolation) in milliseconds;
  throughput = batch / median, in images per second. Defaults (:func:`default_timing`): 5 warm-up and 20
  timed forwards on CUDA, 1 and 5 on the CPU (a 224² MIRAGE forward takes seconds there).
- Training step: AdamW (lr 2e-4) on the L1 loss of the restored image (first output) at
  ``train_batch`` x 3 x ``train_size``^2; one warm-up step, then the median of ``train_steps``; peak memory
  includes weights, gradients and optimizer state. Weights and modes are restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

from bench_ir.acceleration import AcceleratedForward, ExecutionPlan, precision_settings
from bench_ir.cards import ModelCard, count_parameters, inference_parameter_total, training_only_module_names
from bench_ir.counts import check_counts
from bench_ir.engine import TORCH_DTYPES, autocast_context, check_model_precision, restored_image
from bench_ir.manifest import cpu_name

__all__ = [
    "CONVENTIONS",
    "FlopCount",
    "ProfileError",
    "check_size",
    "ProfileResult",
    "TrainStepProfile",
    "count_flops",
    "inference_parameter_count",
    "latency_summary",
    "profile_model",
    "profile_to_markdown",
    "time_calls",
    "training_only_module_names",
]

CONVENTIONS = {
    "precision": "as bench-ir run --dtype: fp32 float32 throughout; bf16/fp16 float32 weights and inputs, timed, "
                 "memory and training forwards under torch.autocast to that dtype; FLOPs counted in float32",
    "flops": "fvcore FlopCountAnalysis, 1x3xSxS, eval mode, default handles; 1 multiply-add = 1 FLOP (MACs); "
             "element-wise ops not counted",
    "peak_memory": "torch.cuda.max_memory_allocated after reset_peak_memory_stats, one inference_mode forward "
                   "at the profiled batch; includes weights",
    "latency": "median and p90 of synchronised per-forward wall times after warm-up, ms; throughput = "
               "batch / median, images/s",
    "train_step": "AdamW(lr=2e-4) step on L1 of the restored image; median of timed steps after one warm-up; "
                  "peak memory includes weights, gradients and optimizer state",
}
TRAIN_LR = 2e-4


class ProfileError(RuntimeError):
    """The model cannot be profiled as asked (size, device, or a failing forward)."""


@dataclass(frozen=True)
class FlopCount:
    """fvcore totals: ``total`` (MACs), per counted operator, and uncounted operator -> number of calls."""

    total: int
    by_operator: dict[str, int]
    uncounted: dict[str, int]


@dataclass
class TrainStepProfile:
    batch: int
    size: int
    steps: int
    step_ms_median: float
    peak_memory_bytes: int | None


@dataclass
class ProfileResult:
    """Cost of one model at one setting; sizes in pixels, times in ms, memory in bytes, FLOPs as MACs."""

    model: str
    display_name: str
    device: str
    device_name: str
    dtype: str
    size: int
    batch: int
    params_total: int
    params_inference: int
    params_inference_source: str
    flops: int | None
    flops_with_training_heads: int | None
    flops_counted_ops: dict[str, int]
    flops_uncounted_ops: dict[str, int]
    peak_memory_bytes: int | None
    latency_ms_median: float
    latency_ms_p90: float
    throughput_images_per_s: float
    repeats: int
    warmup: int
    train: TrainStepProfile | None = None
    notes: list[str] = field(default_factory=list)
    execution: dict[str, Any] | None = None  # the ExecutionPlan of the timed forwards (None: the eager model)
    torch_version: str = torch.__version__
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))

    @property
    def flops_g(self) -> float | None:
        return None if self.flops is None else self.flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flops_g"] = self.flops_g
        return data


# ------------------------------------------------------------------------------------------ parameters
def inference_parameter_count(model: nn.Module, card: ModelCard | None = None) -> tuple[int, str]:
    """(parameters used at inference, where the figure comes from), counted on ``model``: all its parameters but those
    of its declared training-only modules. ``card`` is not consulted: its ``inference_params`` counts the model of the
    card's own args (``validate --import`` checks it), which a model built with other args is not."""
    names = training_only_module_names(model)
    if not names:
        return count_parameters(model), "all parameters (no training-only modules declared)"
    return inference_parameter_total(model), f"all parameters except {', '.join(names)}"


# ------------------------------------------------------------------------------------------------ FLOPs
@contextlib.contextmanager
def _training_heads_active(model: nn.Module) -> Iterator[None]:
    """Train mode (so training-only heads run) with normalisation, dropout and DropPath as in eval. A train
    forward may update state (AirNet's momentum encoder and queue): the state_dict is restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    saved = {key: value.detach().clone() for key, value in model.state_dict().items()}
    model.train()
    for module in model.modules():
        if isinstance(module, (_NormBase, _DropoutNd)) or type(module).__name__ == "DropPath":
            module.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
        model.load_state_dict(saved)


def count_flops(model: nn.Module, size: int | tuple[int, int], with_training_heads: bool = False) -> FlopCount:
    """fvcore count of one forward at 1x3xHxW (``size`` = S or (H, W)) on the model's device and dtype;
    eval mode unless ``with_training_heads``. One multiply-add = one FLOP."""
    with warnings.catch_warnings():
        # fvcore's import uses the deprecated torch.jit.script (a FutureWarning in torch 2.14, a DeprecationWarning
        # in 2.11)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

    height, width = (size, size) if isinstance(size, int) else size
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    modes = {module: module.training for module in model.modules()}
    mode = _training_heads_active(model) if with_training_heads else contextlib.nullcontext()
    if not with_training_heads:
        model.eval()
    fvcore_logger = logging.getLogger("fvcore")
    level = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)
    try:
        with mode, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, (image,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = int(analysis.total())
            by_operator = {op: int(n) for op, n in analysis.by_operator().items() if n}
            uncounted = dict(sorted(analysis.unsupported_ops().items()))
    finally:
        fvcore_logger.setLevel(level)
        for module, training in modes.items():
            module.training = training
    return FlopCount(total, by_operator, uncounted)


# ------------------------------------------------------------------------------------- timing, memory
def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 0,
               on_call: Callable[[int], None] | None = None) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, each call bracketed by
    device synchronisation (so queued CUDA work is counted in the call that queued it). ``on_call(i)`` is told
    after the i-th timed call (1-based)."""
    for _ in range(warmup):
        fn()
    times = []
    for i in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
        if on_call is not None:
            on_call(i + 1)
    return times


CUDA_TIMING = (5, 20)
CPU_TIMING = (1, 5)


def default_timing(device: str | torch.device) -> tuple[int, int]:
    """(warm-up, timed) forwards used when none are given: CUDA_TIMING on a GPU, the cheaper CPU_TIMING else."""
    return CUDA_TIMING if torch.device(device).type == "cuda" else CPU_TIMING


def latency_summary(times: Sequence[float], batch: int) -> dict[str, float]:
    """Median and 90th-percentile milliseconds of timed calls (seconds) and the images per second of the median
    call at ``batch`` images per call."""
    median = statistics.median(times)
    return {"ms_median": median * 1e3, "ms_p90": float(np.percentile(np.asarray(times) * 1e3, 90)),
            "images_per_s": batch / median}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def check_size(size: int, card: ModelCard | None, what: str = "size") -> None:
    """Raise ProfileError unless ``size`` (pixels, the side of a square input) is positive and a multiple of the
    card's input_multiple; ``what`` names the option in the message."""
    if size < 1:
        raise ProfileError(f"{what} must be a positive number of pixels, got {size}")
    multiple = card.input_multiple if card is not None else 1
    if size % multiple:
        below, above = size - size % multiple, size - size % multiple + multiple
        suggestion = f"{below} or {above}" if below else f"{above}"
        raise ProfileError(
            f"{card.display_name} needs H and W divisible by {multiple} (card input_multiple); {what} {size} is "
            f"not. Use {suggestion}."
        )


def _forward_or_explain(model: nn.Module, batch: torch.Tensor, name: str) -> Any:
    try:
        return model(batch)
    except (RuntimeError, ValueError, TypeError, AssertionError) as err:
        shape = "x".join(str(n) for n in batch.shape)
        raise ProfileError(f"{name} cannot run on a {shape} {batch.dtype} input on {batch.device}: "
                           f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


def _random_images(batch: int, size: int, device: torch.device, seed: int) -> torch.Tensor:
    """Float32 images in [0, 1], as ``run`` feeds a model whatever its ``--dtype``."""
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return images.to(device=device)


def _dtype_name(dtype: str | torch.dtype) -> str:
    """The ``run --dtype`` name (fp32, bf16, fp16) of ``dtype``, given by that name or as a torch dtype."""
    names = {torch_dtype: name for name, torch_dtype in TORCH_DTYPES.items()}
    name = dtype if isinstance(dtype, str) else names.get(dtype, str(dtype))
    if name not in TORCH_DTYPES:
        raise ProfileError(f"dtype {name} cannot be profiled; give one of {', '.join(TORCH_DTYPES)}, as for "
                           "`bench-ir run --dtype`")
    return name


def _profile_training(model: nn.Module, name: str, batch: int, size: int, steps: int,
                      device: torch.device, dtype: str) -> TrainStepProfile:
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    modes = {module: module.training for module in model.modules()}
    inputs = _random_images(batch, size, device, seed=1)
    targets = _random_images(batch, size, device, seed=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=TRAIN_LR)
    model.train()
    times = []
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        for step in range(steps + 1):  # step 0 warms up and allocates the optimizer state
            _synchronize(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, dtype):
                output = _forward_or_explain(model, inputs, name)
            restored = restored_image(output).float()
            F.l1_loss(restored, targets).backward()
            optimizer.step()
            _synchronize(device)
            if step:
                times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    except torch.cuda.OutOfMemoryError as err:
        raise ProfileError(f"{name}: one training step at batch {batch} x {size}x{size} does not fit in "
                           f"memory on {device}; use a smaller --train-batch") from err
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(saved)
        for module, mode in modes.items():
            module.training = mode
    return TrainStepProfile(batch, size, steps, statistics.median(times) * 1e3, peak)


# ------------------------------------------------------------------------------------------ profiling
def profile_model(
    model: nn.Module,
    card: ModelCard | None = None,
    size: int = 224,
    batch: int = 1,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "fp32",
    repeats: int | None = None,
    warmup: int | None = None,
    train: bool = False,
    train_batch: int = 32,
    train_size: int = 128,
    train_steps: int = 3,
    flops: bool = True,
    execution: ExecutionPlan | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ProfileResult:
    """Profile ``model`` (moved to ``device`` in place, its weights' dtype kept; left in eval mode) on SxS RGB
    inputs in the precision ``bench-ir run --dtype`` uses: ``dtype`` (fp32, bf16, fp16, or the torch dtype) other than
    fp32 runs the forwards under autocast (see the module docstring).

    FLOPs are per image (1x3xSxS) regardless of ``batch``; memory and latency use ``batch``. ``train``
    adds one training step at ``train_batch`` x ``train_size``^2. ``execution`` times the forwards under that plan
    (e.g. the compiled fast path on CUDA; compilation happens in the warm-up) instead of the eager model: warm-up,
    memory and timed forwards run under its cuDNN/TF32 switches (``precision_settings``), as `bench-ir run` scores.
    See the module docstring for conventions. ``repeats``/``warmup`` default to :func:`default_timing` of the device.
    ``progress(stage, done, total)`` is told of each step (``flops``, ``warm-up``, ``timed``, ``train``).
    Raises :class:`ProfileError` for sizes the model cannot take, an unavailable device or a failing forward.
    """
    device = torch.device(device)
    default_warmup, default_repeats = default_timing(device)
    warmup = default_warmup if warmup is None else warmup
    repeats = default_repeats if repeats is None else repeats
    report = progress or (lambda stage, done, total: None)
    name = card.name if card is not None else type(model).__name__
    display = card.display_name if card is not None else name
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProfileError(f"device {device} requested but CUDA is not available")
    try:
        check_counts([("--repeats", repeats, 1), ("--warmup", warmup, 0), ("--batch", batch, 1),
                      ("--train-batch", train_batch, 1), ("train_steps", train_steps, 1)])
    except ValueError as err:
        raise ProfileError(str(err)) from None
    check_size(size, card, "size")
    if train:
        check_size(train_size, card, "--train-size")
    dtype = _dtype_name(dtype)
    model.to(device=device).eval()
    try:
        check_model_precision(model, dtype, display)
    except ValueError as err:
        raise ProfileError(str(err)) from None

    params_total = count_parameters(model)
    params_inference, params_source = inference_parameter_count(model, card)
    notes: list[str] = []
    images = _random_images(batch, size, device, seed=0)
    with torch.inference_mode(), autocast_context(device, dtype):
        _forward_or_explain(model, images[:1], display)  # fails fast, before any tracing

    if flops:
        report("flops", 0, 1)
    flop_count = count_flops(model, size) if flops else None
    heads = training_only_module_names(model)
    flops_heads = None
    if flops and heads:
        try:
            flops_heads = count_flops(model, size, with_training_heads=True).total
            notes.append("flops_with_training_heads: forward with training-only heads active "
                         f"({', '.join(heads)}), as official code that runs them at test time measured it")
        except Exception as err:  # the inference count stands on its own
            notes.append(f"flops_with_training_heads not measured: {type(err).__name__}: {err}")
    model.eval()

    forward = model if execution is None else AcceleratedForward(model, execution)
    switches = contextlib.nullcontext() if execution is None else precision_settings(execution)
    with switches, torch.inference_mode(), autocast_context(device, dtype):
        n_warmup = max(warmup, 1 if execution is not None and execution.compiles else 0)
        for i in range(n_warmup):
            report("warm-up", i, n_warmup)
            _forward_or_explain(forward, images, display)
        peak = None
        if device.type == "cuda":
            _synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            _forward_or_explain(forward, images, display)
            _synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
        report("timed", 0, repeats)
        times = time_calls(lambda: forward(images), device, repeats, on_call=lambda i: report("timed", i, repeats))
    latency = latency_summary(times, batch)
    if isinstance(forward, AcceleratedForward) and (notice := forward.compile_notice()):
        notes.append(notice)
    train_profile = None
    if train:
        report("train", 0, 1)
        train_profile = _profile_training(model, display, train_batch, train_size, train_steps, device, dtype)
    return ProfileResult(
        model=name, display_name=display, device=str(device), device_name=_device_name(device),
        dtype=str(TORCH_DTYPES[dtype]).removeprefix("torch."), size=size, batch=batch,
        params_total=params_total, params_inference=params_inference, params_inference_source=params_source,
        flops=flop_count.total if flop_count else None, flops_with_training_heads=flops_heads,
        flops_counted_ops=flop_count.by_operator if flop_count else {},
        flops_uncounted_ops=flop_count.uncounted if flop_count else {},
        peak_memory_bytes=peak, latency_ms_median=latency["ms_median"], latency_ms_p90=latency["ms_p90"],
        throughput_images_per_s=latency["images_per_s"], repeats=repeats, warmup=warmup,
        train=train_profile, notes=notes,
        execution=forward.describe() if isinstance(forward, AcceleratedForward) else None,
    )


# ------------------------------------------------------------------------------------------- markdown
def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _fixed(value: float | None, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, or with more where those would show fewer than two significant digits
    (then three, never in exponent notation: 0.000251 M, not 0.00); "—" for None."""
    if value is None:
        return "—"
    if value and abs(value) < 10.0 ** (1 - decimals):
        decimals = 2 - math.floor(math.log10(abs(float(f"{value:.3g}"))))
    return f"{value:.{decimals}f}"


def _throughput(images_per_s: float) -> str:
    """Three significant digits, so that a slow CPU forward reads 0.0412 img/s, not 0.0."""
    return f"{images_per_s:.1f}" if images_per_s >= 100 else f"{images_per_s:.3g}"


def profile_to_markdown(results: ProfileResult | Sequence[ProfileResult]) -> str:
    """A Markdown table of one or more results, followed by the measurement conventions."""
    rows = [results] if isinstance(results, ProfileResult) else list(results)
    with_heads = any(r.flops_with_training_heads is not None for r in rows)
    with_train = any(r.train is not None for r in rows)
    header = ["Model", "Params (M)", "Inference params (M)", "FLOPs (G)"]
    header += ["FLOPs with training heads (G)"] if with_heads else []
    header += ["Input", "Device", "dtype", "Peak memory (MiB)", "Latency median / p90 (ms) over n timed",
               "Throughput (img/s)"]
    header += ["Train step (ms)", "Train peak memory (MiB)"] if with_train else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        mib = None if r.peak_memory_bytes is None else r.peak_memory_bytes / 2**20
        cells = [r.display_name, _fixed(r.params_total / 1e6, 2), _fixed(r.params_inference / 1e6, 2),
                 _fixed(r.flops_g, 3)]
        if with_heads:
            heads = r.flops_with_training_heads
            cells.append(_fixed(None if heads is None else heads / 1e9, 3))
        cells += [f"{r.batch}x3x{r.size}x{r.size}", r.device_name or r.device, r.dtype, _fmt(mib, ".0f"),
                  f"{r.latency_ms_median:.2f} / {r.latency_ms_p90:.2f} (n={r.repeats})",
                  _throughput(r.throughput_images_per_s)]
        if with_train:
            t = r.train
            train_mib = None if t is None or t.peak_memory_bytes is None else t.peak_memory_bytes / 2**20
            step = "—" if t is None else f"{t.step_ms_median:.1f} (batch {t.batch}x{t.size}²)"
            cells += [step, _fmt(train_mib, ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {what}: {text}" for what, text in CONVENTIONS.items()]
    return "\n".join(lines) + "\n"
