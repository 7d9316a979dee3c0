"""NDR-Restore's bidirectional training objective, for ``bench-ir train``.

Released recipe (``models/NDR_model.py : optimize_parameters`` and ``options/train.yml`` of mdyao/NDR-Restore):
every iteration runs the restoration (LQ -> restored, which yields the degradation maps of the LQ) and then
NDR-Degrad (GT + those maps -> synthetic LQ), and takes **one joint step** on

    total = lambda_degrade * L1(synthetic LQ, LQ) + lambda_restore * L1(restored, GT),   both lambdas 1,

with Adam (lr 1e-4, betas (0.9, 0.999), weight decay 1e-8) and gradient-norm clipping at 10 over all
parameters. The maps are not detached: the synthesis loss reaches NDR-Degrad and, through the maps, the DQ
modules, the restoration encoder and the NDR.

The abstract says the two processes are "optimised alternately"; the release has no such schedule. The
``alternating`` option provides one: steps are grouped in phases of ``alternate_every`` steps; phases
0, 2, 4, ... (starting at step 0) are *restoration* phases, whose ``total`` is ``lambda_restore * L1(restored,
GT)`` only (gradients reach the restoration network and the NDR, never NDR-Degrad); odd phases are
*degradation* phases, whose ``total`` is ``lambda_degrade * L1(synthetic LQ, LQ)`` only (gradients reach
NDR-Degrad, the NDR, the DQ modules and the restoration encoder, never the restoration decoder). Parameters
outside the active term get no gradient (``None`` after ``zero_grad()``), so Adam leaves them untouched in
that step. Both terms are computed every step and returned for logging (the inactive one detached). Under
DistributedDataParallel the alternating schedule needs ``find_unused_parameters=True``.

``bench-ir train --recipe ndr --model ndr-restore`` trains with all of the above (recipes ``ndr`` and
``ndr-alternating`` in registry/recipes/; the card names :class:`NDRObjective`, :func:`ndr_optimizer` and the
clip so that other recipes use them too).

Conventions: ``lq`` and ``gt`` are RGB [0, 1] (B, 3, H, W), H and W multiples of 8; the model's forward flips
them to the BGR order the official weights use. L1 is a mean over all elements, so every loss value equals
the one computed in BGR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NDRObjective",
    "ndr_optimizer",
    "LEARNING_RATE",
    "BETAS",
    "WEIGHT_DECAY",
    "GRAD_CLIP_NORM",
    "LR_MILESTONES",
    "LR_GAMMA",
    "BATCH_SIZE",
    "PATCH_SIZE",
]

LEARNING_RATE = 1e-4
BETAS = (0.9, 0.999)
WEIGHT_DECAY = 1e-8
GRAD_CLIP_NORM = 10.0
"""Max total gradient norm (``clip_grad_norm_`` over all parameters), ``gradient_clipping: 10`` in train.yml."""
LR_MILESTONES = (200_000, 400_000, 600_000, 800_000)
"""MultiStep learning-rate schedule of train.yml (iterations), with factor :data:`LR_GAMMA`."""
LR_GAMMA = 0.5
BATCH_SIZE = 4
PATCH_SIZE = 128

Schedule = Literal["joint", "alternating"]
Phase = Literal["joint", "restoration", "degradation"]


@dataclass(frozen=True)
class NDRObjective:
    """Call ``objective(model, lq, gt, step)`` with an :class:`~bench_ir.models.ndr.NDRRestore` in train mode
    (or a DDP/DataParallel wrapper of one). Returns scalar tensors: ``restoration`` = L1(restored, GT) and
    ``degradation`` = L1(synthetic LQ, LQ), both unweighted, and ``total`` (weighted; back-propagate this).
    See the module docstring for what ``schedule="alternating"`` alternates."""

    lambda_restore: float = 1.0
    lambda_degrade: float = 1.0
    schedule: Schedule = "joint"
    alternate_every: int = 1

    def __post_init__(self) -> None:
        if self.schedule not in ("joint", "alternating"):
            raise ValueError(f"schedule must be 'joint' or 'alternating', got {self.schedule!r}")
        if self.alternate_every < 1:
            raise ValueError(f"alternate_every must be >= 1, got {self.alternate_every}")

    def phase(self, step: int) -> Phase:
        """Which term ``total`` holds at ``step`` (0-based): ``joint``, ``restoration`` or ``degradation``."""
        if self.schedule == "joint":
            return "joint"
        return "restoration" if (step // self.alternate_every) % 2 == 0 else "degradation"

    def __call__(self, model: nn.Module, lq: torch.Tensor, gt: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        expected = ("NDRObjective trains a model called as model(lq, clean) -> (restored, synthetic LQ), such as "
                    f"ndr-restore; {type(getattr(model, 'module', model)).__name__} is not one")
        try:
            output = model(lq, gt)
        except TypeError as err:
            raise ValueError(f"{expected} ({err})") from err
        if not (isinstance(output, tuple) and len(output) == 2):
            raise ValueError(f"{expected} (it returned {type(output).__name__})")
        restored, degraded = output
        restoration = F.l1_loss(restored, gt)
        degradation = F.l1_loss(degraded, lq)
        phase = self.phase(step)
        if phase == "restoration":
            return {"restoration": restoration, "degradation": degradation.detach(),
                    "total": self.lambda_restore * restoration}
        if phase == "degradation":
            return {"restoration": restoration.detach(), "degradation": degradation,
                    "total": self.lambda_degrade * degradation}
        total = self.lambda_degrade * degradation + self.lambda_restore * restoration
        return {"restoration": restoration, "degradation": degradation, "total": total}


def ndr_optimizer(model: nn.Module | Iterable[nn.Parameter]) -> torch.optim.Adam:
    """Adam of the release: lr 1e-4, betas (0.9, 0.999), weight decay 1e-8, over the trainable parameters
    (the NDR, registered twice in the module, appears once). Clip with :data:`GRAD_CLIP_NORM` before stepping."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=LEARNING_RATE, betas=BETAS,
                            weight_decay=WEIGHT_DECAY)
