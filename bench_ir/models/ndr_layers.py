"""Building blocks of NDR-Restore (Yao et al., TIP 2024): degradation query, degradation injection with
CP low-rank fusion, and the NDR-Degrad synthesis network.

Reimplemented from the description of the official code (mdyao/NDR-Restore, MIT, ``models/modules/NDR.py``
and ``common.py``). Attribute names follow the official modules so that ``model_L.pth`` loads with
``strict=True``. All tensors are NCHW feature maps; the degradation dictionary (NDR) is a (1, atoms, width)
tensor shared by every query.
"""

from __future__ import annotations

import torch
from torch import nn

from bench_ir.models.layers import Downsample, Upsample

__all__ = [
    "LowRankTransform",
    "DegradationQuery",
    "DegradationInjection",
    "DegradationRepresentationLearning",
    "ResidualDoubleConv",
    "ResidualGroup",
    "DegradationNet",
    "REPRESENTATION_CHANNELS",
    "DICTIONARY_WIDTH",
    "CP_RANK",
]

REPRESENTATION_CHANNELS = 64
"""Channels of the per-level degradation maps ``x_rep`` passed from NDR-Restore to NDR-Degrad."""
DICTIONARY_WIDTH = 128
"""Width of one NDR atom (the query dimension of the degradation query)."""
CP_RANK = 16
"""Rank R of the CP decomposition in :class:`LowRankTransform`."""


def _pool_then_sigmoid_conv(pool: nn.Module, channels: int, out_channels: int) -> nn.Sequential:
    # indices 0 (pool), 1 (conv), 2 (sigmoid): the official key is ``conv_X.1.weight``
    return nn.Sequential(pool, nn.Conv2d(channels, out_channels, kernel_size=1), nn.Sigmoid())


class LowRankTransform(nn.Module):
    """CP low-rank attention (official ``Low_rank_transform``): ``x * A`` with A (N, C, H, W) the mean of
    ``CP_RANK`` rank-1 tensors ``c_r ⊗ h_r ⊗ w_r``.

    The factors are sigmoids of 1x1 convs of pooled features: c_r from the global average (C -> R*C, the
    r-th block of C outputs), h_r from the mean over W (C -> R) and w_r from the mean over H (C -> R).
    Keys: ``conv_C.1``, ``conv_H.1``, ``conv_W.1``.
    """

    def __init__(self, channels: int = REPRESENTATION_CHANNELS, rank: int = CP_RANK) -> None:
        super().__init__()
        self.rank = rank
        self.conv_C = _pool_then_sigmoid_conv(nn.AdaptiveAvgPool2d(1), channels, rank * channels)
        self.conv_H = _pool_then_sigmoid_conv(nn.AdaptiveAvgPool2d((None, 1)), channels, rank)
        self.conv_W = _pool_then_sigmoid_conv(nn.AdaptiveAvgPool2d((1, None)), channels, rank)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, C, H, W) attention tensor A for features ``x``."""
        n, c, h, w = x.shape
        channel = self.conv_C(x).reshape(n, self.rank, c)
        height = self.conv_H(x).reshape(n, self.rank, h)
        width = self.conv_W(x).reshape(n, self.rank, w)
        return torch.einsum("nrc,nrh,nrw->nchw", channel, height, width) / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class _DictionaryAttention(nn.Module):
    """Per-pixel soft look-up in the NDR (official ``Degradation_Attention``): a 1x1 conv makes a query of
    width ``DICTIONARY_WIDTH`` per pixel; logits = query · atomᵀ times a learnable scalar ``temperature``
    (initialised to 1; no 1/sqrt(d) scaling, no normalisation); softmax over the atoms; the weighted sum of
    atoms goes through a 1x1 conv back to ``channels``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1))
        self.qkv = nn.Conv2d(channels, DICTIONARY_WIDTH, kernel_size=1)
        self.project_out = nn.Conv2d(DICTIONARY_WIDTH, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, dictionary: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        query = self.qkv(x).reshape(n, DICTIONARY_WIDTH, h * w).transpose(1, 2)  # (N, HW, width)
        weights = (query @ dictionary.transpose(1, 2) * self.temperature).softmax(dim=-1)  # (N, HW, atoms)
        looked_up = (weights @ dictionary).transpose(1, 2).reshape(n, DICTIONARY_WIDTH, h, w)
        return self.project_out(looked_up)


class _Projection(nn.Module):
    """A 1x1 conv with bias (official ``FeedForward_DR``; key ``project_out``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(x)


class DegradationQuery(nn.Module):
    """DQ (official ``Degradation_recognition``): dictionary attention then a 1x1 conv; maps
    (N, channels, H, W) features to a degradation map of the same shape. Keys: ``attn.*``, ``ffn.*``."""

    def __init__(self, channels: int = REPRESENTATION_CHANNELS) -> None:
        super().__init__()
        self.attn = _DictionaryAttention(channels)
        self.ffn = _Projection(channels)

    def forward(self, x: torch.Tensor, dictionary: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.attn(x, dictionary))


class DegradationInjection(nn.Module):
    """DI (official ``Degradation_inject``): SFT-style modulation ``f * LRT(x) + g`` of a skip feature x
    (``out_channels``) by a degradation map (``channels``): the map goes through a 1x1 conv and one shared
    low-rank transform, then two 1x1 convs give f and g."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1)
        self.f = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.g = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.low_rank_transform1 = LowRankTransform(channels)
        self.low_rank_transform3 = LowRankTransform(out_channels)

    def forward(self, x: torch.Tensor, representation: torch.Tensor) -> torch.Tensor:
        modulation = self.low_rank_transform1(self.conv1(representation))
        return self.f(modulation) * self.low_rank_transform3(x) + self.g(modulation)


class DegradationRepresentationLearning(nn.Module):
    """DRL on one skip connection of NDR-Restore (official ``Degradation_representation_learning``).

    3x3 conv (no bias) ``channels`` -> 64, degradation query against the NDR, then injection into the skip.
    Returns ``(modulated skip (N, channels, H, W), degradation map x_rep (N, 64, H, W))``.
    """

    def __init__(self, channels: int, representation_channels: int = REPRESENTATION_CHANNELS) -> None:
        super().__init__()
        self.mapping = nn.Conv2d(channels, representation_channels, kernel_size=3, padding=1, bias=False)
        self.degradation_recog = DegradationQuery(representation_channels)
        self.inject_degradation = DegradationInjection(representation_channels, channels)

    def forward(self, x: torch.Tensor, dictionary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        representation = self.degradation_recog(self.mapping(x), dictionary)
        return self.inject_degradation(x, representation), representation


class ResidualDoubleConv(nn.Module):
    """``x + ReLU(conv3x3(ReLU(conv3x3(x))))`` with biases (official ``DoubleConv``; keys ``conv.0``,
    ``conv.2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class _ChannelAttention(nn.Module):
    """RCAN channel attention: global average, 1x1 C -> C/r, ReLU, 1x1 C/r -> C, sigmoid, scale x."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, kernel_size=1), nn.ReLU(),
            nn.Conv2d(channels // reduction, channels, kernel_size=1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class _ResidualChannelAttentionBlock(nn.Module):
    """RCAB: ``x + CA(conv3x3(ReLU(conv3x3(x))))`` (keys ``body.0``, ``body.2``, ``body.3.conv_du.*``)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), _ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """RCAN residual group: ``n_blocks`` RCABs, a 3x3 conv, and a long skip (official ``common.ResidualGroup``)."""

    def __init__(self, channels: int, reduction: int = 16, n_blocks: int = 1) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_ResidualChannelAttentionBlock(channels, reduction) for _ in range(n_blocks)]
        self.body = nn.Sequential(*blocks, nn.Conv2d(channels, channels, kernel_size=3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DegradationNet(nn.Module):
    """NDR-Degrad (official ``DegradationNet``, 9,632,169 parameters at dim 48): clean image + the degradation
    maps of NDR-Restore -> synthetic degraded image.

    U-Net with residual double convs at dim, 2·dim, 4·dim and 8·dim (bottom); the three skips are modulated
    by this network's own DI modules with ``x_rep1..3``; decoder levels: up, concat(skip, up), 1x1 (no bias),
    double conv; level 1 stays at 2·dim. Then one RCAN residual group, a 3x3 conv to 3 channels, and the
    input is added. Images in the colour order the restoration network was trained with (BGR for the
    official weights); H and W multiples of 8.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, dim: int = 48) -> None:
        super().__init__()
        rep = REPRESENTATION_CHANNELS
        self.extractor = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1)
        self.block1 = ResidualDoubleConv(dim)
        self.pool1 = Downsample(dim)
        self.block2 = ResidualDoubleConv(dim * 2)
        self.pool2 = Downsample(dim * 2)
        self.block3 = ResidualDoubleConv(dim * 4)
        self.pool3 = Downsample(dim * 4)
        self.bottom = ResidualDoubleConv(dim * 8)
        self.inject_degradation1 = DegradationInjection(rep, dim)
        self.inject_degradation2 = DegradationInjection(rep, dim * 2)
        self.inject_degradation3 = DegradationInjection(rep, dim * 4)
        self.up3 = Upsample(dim * 8)
        self.block_up3 = nn.Sequential(nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=False),
                                       ResidualDoubleConv(dim * 4))
        self.up2 = Upsample(dim * 4)
        self.block_up2 = nn.Sequential(nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=False),
                                       ResidualDoubleConv(dim * 2))
        self.up1 = Upsample(dim * 2)
        self.block_up1 = nn.Sequential(nn.Conv2d(dim * 2, dim * 2, kernel_size=1, bias=False),
                                       ResidualDoubleConv(dim * 2))
        self.refinement = ResidualGroup(dim * 2, reduction=16, n_blocks=1)
        self.reconstruction = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1)

    def forward(self, clean: torch.Tensor, representations: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
                ) -> torch.Tensor:
        rep1, rep2, rep3 = representations
        level1 = self.block1(self.extractor(clean))
        level2 = self.block2(self.pool1(level1))
        level3 = self.block3(self.pool2(level2))
        bottom = self.bottom(self.pool3(level3))

        skip1 = self.inject_degradation1(level1, rep1)
        skip2 = self.inject_degradation2(level2, rep2)
        skip3 = self.inject_degradation3(level3, rep3)

        dec3 = self.block_up3(torch.cat((skip3, self.up3(bottom)), dim=1))
        dec2 = self.block_up2(torch.cat((skip2, self.up2(dec3)), dim=1))
        dec1 = self.block_up1(torch.cat((skip1, self.up1(dec2)), dim=1))
        return self.reconstruction(self.refinement(dec1)) + clean
