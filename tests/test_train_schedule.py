"""Learning-rate schedule: the official MIRAGE per-epoch warmup-cosine as Lightning steps it."""

from __future__ import annotations

import pytest
import torch

from bench_ir.train.recipes import ScheduleSpec, load_recipe
from bench_ir.train.schedule import remember_initial_lr, schedule_factor, schedule_position, set_learning_rate

# lr while training each epoch, recorded from the official utils/schedulers.py LinearWarmupCosineAnnealingLR
# (AdamW lr 2e-4, warmup 15, max 150) stepped with scheduler.step(epoch) after every epoch, as Lightning does.
OFFICIAL_LR = {0: 0.0, 1: 0.0, 2: 1.4285714285714287e-05, 15: 0.0002, 16: 0.0002, 17: 0.00019997292411794618,
               83: 0.00010116352658013973, 129: 1.2821558630323772e-05, 149: 1.0828886614754341e-07}


@pytest.mark.parametrize("epoch", sorted(OFFICIAL_LR))
def test_mirage_recipe_reproduces_the_official_lr_of_every_epoch(epoch):
    spec = load_recipe("5deg").schedule
    lr = 2e-4 * schedule_factor(spec, schedule_position(spec, epoch, step=10_000))
    assert lr == pytest.approx(OFFICIAL_LR[epoch], rel=1e-12, abs=1e-20)


def test_step_unit_schedules_follow_the_optimizer_step_not_the_epoch():
    spec = ScheduleSpec(unit="step", warmup=3, max=10, delay=0)
    factors = [schedule_factor(spec, schedule_position(spec, epoch=0, step=s)) for s in range(12)]
    assert factors[:4] == [0.0, 0.5, 1.0, 1.0]
    assert factors[10] == factors[11] == pytest.approx(0.0, abs=1e-15)  # held at the end past max
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))


def test_multistep_multiplies_by_gamma_at_each_milestone():
    spec = ScheduleSpec(name="multistep", unit="step", milestones=[2, 4], gamma=0.5)
    assert [schedule_factor(spec, s) for s in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_set_learning_rate_scales_each_groups_initial_lr():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [a], "lr": 2e-4}, {"params": [b], "lr": 1e-3}])
    remember_initial_lr(optimizer)
    spec = load_recipe("3deg").schedule
    factor = set_learning_rate(optimizer, spec, epoch=2, step=0)
    assert factor == pytest.approx(1 / 14)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2e-4 / 14, 1e-3 / 14])
