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

__all__ = ["schedule_factor", "schedule_position", "set_learning_rate", "remember_initial_lr", "schedule_end_notices",
           "zero_lr_units", "short_run_notices"]


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


def _planned_units(unit: str, epochs: int | None, steps: int | None, steps_per_epoch: int | None) -> int | None:
    """Epochs or optimizer steps (``unit``) of a training of ``epochs`` epochs or ``steps`` steps; None when the
    other count would need ``steps_per_epoch`` and it is not known."""
    if unit == "epoch":
        if epochs is not None:
            return epochs
        return -(-steps // steps_per_epoch) if steps is not None and steps_per_epoch else None
    if steps is not None:
        return steps
    return epochs * steps_per_epoch if epochs is not None and steps_per_epoch else None


def _count(number: int, unit: str) -> str:
    return f"{number:,} {unit}{'' if number == 1 else 's'}"


def schedule_end_notices(spec: ScheduleSpec, epochs: int | None, steps: int | None,
                         steps_per_epoch: int | None = None) -> list[str]:
    """The sentences warning that a ``warmup_cosine`` schedule does not fit a training of ``epochs`` epochs (or
    ``steps`` steps): the epochs or steps trained at a position at or past ``max`` (they train at ``end_factor``, lr
    0 for a cosine to 0), or a training whose last position is still inside the warmup (the decay never starts).
    Empty for other schedules and for a fitting one, and when the training is counted in the other unit than the
    schedule and ``steps_per_epoch`` is not known."""
    units = _planned_units(spec.unit, epochs, steps, steps_per_epoch)
    if spec.name != "warmup_cosine" or units is None:
        return []
    lag = f", delay {spec.delay}" if spec.delay else ""
    past = units - spec.max - spec.delay  # unit i trains at position max(i - delay, 0)
    if past > 0:
        end = "lr 0" if spec.end_factor == 0 else f"{spec.end_factor:g} x the initial lr"
        return [f"schedule: the planned {_count(units, spec.unit)} run past the end of the learning-rate schedule "
                f"(warmup_cosine to {spec.unit} {spec.max}{lag}): the last {_count(past, spec.unit)} train at its end "
                f"factor ({end}); set schedule.max to {units - spec.delay} or more to keep every {spec.unit} on the "
                f"cosine, or plan fewer {spec.unit}s"]
    last = schedule_position(spec, units - 1, units - 1)
    if last < spec.warmup:
        return [f"schedule: the planned {_count(units, spec.unit)} end inside the learning-rate warmup (warmup "
                f"{spec.warmup}{lag}): the last trains at {_warmup_cosine(spec, last):.3g} x the initial lr and the "
                f"cosine decay never starts; set schedule.warmup to at most {max(units - 1 - spec.delay, 0)}, or plan "
                f"more {spec.unit}s"]
    return []


def _unit_factor(spec: ScheduleSpec, index: int) -> float:
    """The factor while training epoch or step ``index`` (counted in ``spec.unit``)."""
    return schedule_factor(spec, schedule_position(spec, index, index))


def _as_steps(spec: ScheduleSpec, units: int, steps_per_epoch: int) -> int:
    """Optimizer steps of ``units`` epochs or steps (``spec.unit``)."""
    return units * steps_per_epoch if spec.unit == "epoch" else units


def zero_lr_units(spec: ScheduleSpec) -> int:
    """How many epochs or steps (``spec.unit``) a training starts with at lr 0: those whose factor is 0 from the
    first one on. A warmup from ``start_factor`` 0 gives 1 + ``delay`` (the official MIRAGE recipes: epochs 0 and
    1); 0 for a schedule that starts above 0."""
    units = 0
    while units <= spec.warmup + spec.delay and _unit_factor(spec, units) == 0:
        units += 1
    return units


def short_run_notices(spec: ScheduleSpec, steps: int, steps_per_epoch: int) -> list[str]:
    """What a training cut to its first ``steps`` optimizer steps (``--max-steps``) is told about its learning rate:
    that every step trains at lr 0 (:func:`zero_lr_units`), so the model's parameters keep their initial values.
    Steps are counted from 1 in the sentence, as the training log counts them. Empty otherwise (a run cut inside a
    warmup above 0 still trains)."""
    zero_units = zero_lr_units(spec)
    zero_steps = _as_steps(spec, zero_units, steps_per_epoch)
    if steps > zero_steps:
        return []
    lag = f", delay {spec.delay}" if spec.delay else ""
    span = _count(zero_units, spec.unit) + (f" = {_count(zero_steps, 'step')}" if spec.unit == "epoch" else "")
    start = f"start_factor {spec.start_factor:g}" if spec.name == "warmup_cosine" else spec.name
    return [f"every step of this run trains at lr 0: the recipe's learning-rate schedule is at 0 for its first "
            f"{span} ({start}{lag}), so the model's parameters keep their initial values; train at least "
            f"{zero_steps + 1:,} steps to change them, or use a recipe whose schedule starts above 0 "
            "(schedule.start_factor, as in `sample`)"]
