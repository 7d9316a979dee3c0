"""Layers shared by the Restormer-family architectures (MIRAGE, Restormer, PromptIR, ...).

All tensors are NCHW. Module attribute names (``body``, ``proj``) follow the official repositories so
that their checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = [
    "BiasFreeLayerNorm",
    "WithBiasLayerNorm",
    "ChannelLayerNorm",
    "DropPath",
    "Downsample",
    "Upsample",
    "OverlapPatchEmbed",
]

LAYER_NORM_EPS = 1e-5
LayerNormType = Literal["WithBias", "BiasFree"]


class BiasFreeLayerNorm(nn.Module):
    """LayerNorm over the channel dim (dim 1) of an NCHW tensor, scale only: ``x / sqrt(var + eps) * w``.

    The variance is the population variance (divided by C) around the channel mean, but the mean is
    not subtracted from ``x`` (Restormer's "BiasFree" variant). eps = 1e-5.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        return x / torch.sqrt(variance + LAYER_NORM_EPS) * self.weight[:, None, None]


class WithBiasLayerNorm(nn.Module):
    """LayerNorm over the channel dim (dim 1) of an NCHW tensor with scale and shift; population variance,
    eps = 1e-5."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        normalised = (x - mean) / torch.sqrt(variance + LAYER_NORM_EPS)
        return normalised * self.weight[:, None, None] + self.bias[:, None, None]


class ChannelLayerNorm(nn.Module):
    """Restormer-style ``LayerNorm(dim, LayerNorm_type)``: the affine norm lives in ``body``, so the
    state_dict keys are ``<name>.body.weight`` (and ``<name>.body.bias`` for "WithBias")."""

    def __init__(self, channels: int, kind: LayerNormType = "WithBias") -> None:
        super().__init__()
        if kind == "BiasFree":
            self.body: nn.Module = BiasFreeLayerNorm(channels)
        elif kind == "WithBias":
            self.body = WithBiasLayerNorm(channels)
        else:
            raise ValueError(f"LayerNorm kind must be 'WithBias' or 'BiasFree', got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero the whole sample with probability ``drop_prob`` and scale the
    survivors by ``1 / (1 - drop_prob)``; identity in eval mode or when ``drop_prob`` is 0.

    One Bernoulli draw per sample from the default torch generator (``x.new_empty(B,1,..).bernoulli_``),
    the same draw sequence as timm's ``DropPath``, so seeded runs are comparable with timm-based code.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep_mask = x.new_empty(mask_shape).bernoulli_(keep_prob)
        return x * keep_mask.div_(keep_prob)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Downsample(nn.Module):
    """Halve H and W, double the channels: 3x3 conv n -> n/2 (no bias), then PixelUnshuffle(2).
    Keys: ``body.0.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False),
            nn.PixelUnshuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double H and W, halve the channels: 3x3 conv n -> 2n (no bias), then PixelShuffle(2).
    Keys: ``body.0.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class OverlapPatchEmbed(nn.Module):
    """Image to feature map with one 3x3 conv (stride 1, padding 1).
    Keys: ``proj.weight`` (+ ``proj.bias``)."""

    def __init__(self, in_channels: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
