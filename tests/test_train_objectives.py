"""The generic training objective adds a model's load-balancing loss (MoCE-IR) with the card's weight."""

from __future__ import annotations

import torch
from torch import nn

from bench_ir.cards import get_card
from bench_ir.train.objectives import RestorationObjective
from bench_ir.train.recipes import load_recipe, resolve_plan


class _BalancedIdentity(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.balance_loss = None

    def forward(self, x):
        self.balance_loss = self.scale * 2.0
        return x * self.scale


def test_balance_loss_is_added_with_its_weight_and_logged():
    lq = torch.rand(2, 3, 16, 16)
    terms = RestorationObjective(fft_weight=0.1, spd_weight=0.01, balance_weight=0.01)(_BalancedIdentity(), lq, lq, 0)
    assert torch.isclose(terms["balance"], torch.tensor(2.0))
    assert torch.isclose(terms["total"], terms["l1"] + 0.1 * terms["fourier"] + 0.01 * 2.0)


def test_without_a_balance_weight_the_objective_is_l1_plus_fourier():
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    terms = RestorationObjective(fft_weight=0.1, spd_weight=0.01)(_BalancedIdentity(), lq, gt, 0)
    assert "balance" not in terms
    assert torch.isclose(terms["total"], terms["l1"] + 0.1 * terms["fourier"])


def test_moce_ir_plan_takes_the_official_balance_weight_from_its_card():
    plan = resolve_plan(load_recipe("3deg"), get_card("moce-ir"), "code", "code")
    assert plan.balance_weight == 0.01
    assert resolve_plan(load_recipe("3deg"), get_card("mirage-t"), "code", "code").balance_weight == 0.0
