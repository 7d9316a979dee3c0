"""Training objectives and optimizers: the generic restoration objective and the hooks for custom ones.

An objective is called as ``objective(model, lq, gt, step) -> dict`` of scalar tensors with a ``total`` entry
(the one back-propagated); every other entry is logged. ``model`` is the module being trained (wrapped in
DistributedDataParallel under torchrun, so a custom objective must go through ``model(...)`` for gradients to
be synchronised). A custom objective is named ``module:Class`` (recipe ``loss.objective`` or the model card
option ``objective``) and built with its keyword arguments; an optimizer factory ``module:function`` (recipe
``optimizer.factory`` or the card option ``optimizer``) builds ``function(model) -> Optimizer`` instead of the
recipe's AdamW/Adam. :func:`check_hooks` is what ``bench-ir validate`` runs on these names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench_ir.losses import MirageObjective, SpdProjections
from bench_ir.train.recipes import OptimizerSpec, TrainPlan
from bench_ir.yamlio import SpecError

__all__ = ["Objective", "RestorationObjective", "import_object", "check_hooks", "build_objective", "build_optimizer"]

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class RestorationObjective:
    """``L1 + fft_weight·Fourier (+ spd_weight·SPD)`` on the model's output (``bench_ir.losses``).

    The model's train-mode output may be the restored image or a tuple whose first element is the image; when
    the second element is :class:`SpdProjections` (MIRAGE) the SPD contrastive term is added, otherwise it is
    logged as 0. A model that stores an auxiliary load-balancing loss in ``balance_loss`` after a train forward
    (MoCE-IR; card option ``balance_loss_weight``, 0.01 officially) gets ``balance_weight·balance`` added.
    Losses are computed in float32 with autocast off (:class:`MirageObjective`), whatever the autocast dtype
    the model's forward runs under.
    """

    fft_weight: float = 0.1
    spd_weight: float = 0.01
    balance_weight: float = 0.0

    def __call__(self, model: nn.Module, lq: torch.Tensor, gt: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        output = model(lq)
        spd = None
        if isinstance(output, (tuple, list)):
            restored = output[0]
            if len(output) > 1 and isinstance(output[1], SpdProjections):
                spd = output[1]
        else:
            restored = output
        weight = self.spd_weight if spd is not None else 0.0
        terms = MirageObjective(fft_weight=self.fft_weight, spd_weight=weight)(restored, gt, spd)
        balance = getattr(getattr(model, "module", model), "balance_loss", None)
        if self.balance_weight and isinstance(balance, torch.Tensor):
            terms["balance"] = balance.float()
            terms["total"] = terms["total"] + self.balance_weight * terms["balance"]
        return terms


def import_object(path: str, what: str) -> Any:
    """``module:attr`` -> the attribute; failures name ``what`` and the path."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: expected 'module:name', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{what}: cannot import module '{module_name}' ({err})") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"{what}: module '{module_name}' has no attribute '{attr}'") from err


def check_hooks(hooks: dict[str, str | None], where: str) -> None:
    """Every named hook (``{"loss.objective": "module:Class", "optimizer.factory": ...}``; None = not set) must
    import to a callable; otherwise a SpecError naming ``where``, the field and the reason."""
    for field_name, path in hooks.items():
        if path is None:
            continue
        try:
            target = import_object(str(path), field_name)
        except ValueError as err:
            raise SpecError(f"{where}: {err}") from None
        if not callable(target):
            raise SpecError(f"{where}: {field_name}: {path} is not callable")


def build_objective(plan: TrainPlan) -> Objective:
    """The plan's custom objective (a class is instantiated with ``objective_args``), else
    :class:`RestorationObjective` with the plan's loss weights."""
    if plan.objective is None:
        return RestorationObjective(fft_weight=plan.fft_weight, spd_weight=plan.spd_weight,
                                    balance_weight=plan.balance_weight)
    target = import_object(plan.objective, "objective")
    objective = target(**plan.objective_args) if isinstance(target, type) else target
    if not callable(objective):
        raise ValueError(f"objective {plan.objective} is not callable as objective(model, lq, gt, step)")
    return objective


def build_optimizer(plan: TrainPlan, spec: OptimizerSpec, model: nn.Module,
                    fused: bool = False) -> torch.optim.Optimizer:
    """The plan's optimizer factory (recipe ``optimizer.factory`` or card option ``optimizer``) when one is named,
    else the recipe's AdamW/Adam over all trainable parameters (torch defaults for everything the recipe does not
    state; ``fused`` selects the fused CUDA kernel, the same update up to float rounding)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters; nothing to train")
    if plan.optimizer_factory:
        optimizer = import_object(plan.optimizer_factory, "optimizer")(model)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer factory {plan.optimizer_factory} returned {type(optimizer).__name__}")
        return optimizer
    kind = torch.optim.AdamW if spec.name == "adamw" else torch.optim.Adam
    return kind(parameters, lr=spec.lr, betas=(spec.betas[0], spec.betas[1]), eps=spec.eps,
                weight_decay=spec.weight_decay, **({"fused": True} if fused else {}))
