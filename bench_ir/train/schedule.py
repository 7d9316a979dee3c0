"""Learning-rate schedules as pure functions of the epoch (or step) index: nothing to save but the index.

The official MIRAGE schedule is ``LinearWarmupCosineAnnealingLR(warmup_epochs=15, max_epochs=150)`` with
warmup start lr 0 and eta_min 0, stepped by Lightning at the end of every epoch with
``scheduler.step(current_epoch)`` (the index of the epoch just finished). The closed form it then uses is

    f(t) = start + t·(1 - start)/(warmup - 1)                       for t < warmup
    f(t) = end + (1 - end)·(1 + cos(pi·(t - warmup)/(max - warmup)))/2  otherwise

times the base lr. Epoch 0 trains at the scheduler's initial lr (f(0) = 0) and epoch e >= 1 at f(e - 1), which
is ``delay: 1`` here: epochs 0 and 1 both train at lr 0, epoch 15 reaches the full lr, and with 150 epochs the
last one trains at f(148). Past ``max`` the factor stays at ``end`` (the official formula would rise again;
no recipe goes there).
"""

from __future__ import annotations

import math

import torch

from bench_ir.train.recipes import ScheduleSpec

__all__ = ["schedule_factor", "schedule_position", "set_learning_rate", "remember_initial_lr"]


def _warmup_cosine(spec: ScheduleSpec, t: int) -> float:
    if t < spec.warmup:
        if spec.warmup <= 1:
            return spec.start_factor
        return spec.start_factor + t * (1.0 - spec.start_factor) / (spec.warmup - 1)
    t = min(t, spec.max)
    progress = (t - spec.warmup) / (spec.max - spec.warmup)
    return spec.end_factor + (1.0 - spec.end_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_factor(spec: ScheduleSpec, position: int) -> float:
    """Multiplier of the initial lr at scheduler ``position`` (see :func:`schedule_position`)."""
    if position < 0:
        raise ValueError(f"schedule position must be >= 0, got {position}")
    if spec.name == "constant":
        return 1.0
    if spec.name == "multistep":
        return spec.gamma ** sum(position >= m for m in spec.milestones)
    return _warmup_cosine(spec, position)


def schedule_position(spec: ScheduleSpec, epoch: int, step: int) -> int:
    """The scheduler position while training optimizer step ``step`` (0-based, global) of epoch ``epoch``:
    the epoch or the step index, minus ``delay``, never below 0."""
    index = epoch if spec.unit == "epoch" else step
    return max(index - spec.delay, 0)


def remember_initial_lr(optimizer: torch.optim.Optimizer) -> None:
    """Store each parameter group's lr as ``initial_lr`` (as torch schedulers do) unless already stored."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, spec: ScheduleSpec, epoch: int, step: int) -> float:
    """Set every group's lr to initial_lr x factor; returns the factor."""
    factor = schedule_factor(spec, schedule_position(spec, epoch, step))
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return factor
