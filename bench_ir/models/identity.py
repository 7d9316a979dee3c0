"""The "input" row of every table: no restoration, the degraded image is scored as it is."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputPassthrough"]


class InputPassthrough(nn.Module):
    """A model without parameters whose ``forward(x)`` returns ``x`` itself (same tensor, any shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
