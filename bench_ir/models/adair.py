"""AdaIR (ICLR 2025): all-in-one restoration by frequency mining and modulation on a Restormer U-Net.

Reimplemented from the description of the official code (c-yn/AdaIR, ``net/model.py``, MIT). The released
configuration is ``AdaIR(decoder=True)`` (28,784,824 params); its Lightning checkpoints (``adair5d.ckpt``,
and the three-degradation one) load with ``strict=True`` once the ``net.`` prefix is stripped.

Images are (B, 3, H, W), RGB in [0, 1], H and W multiples of 8; the network predicts a residual added to
the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench_ir.models.layers import Downsample, LayerNormType, OverlapPatchEmbed, Upsample
from bench_ir.models.restormer import (
    ChannelCrossAttention,
    check_input_size,
    four_levels,
    transformer_stage,
)

__all__ = [
    "AdaIR",
    "FrequencyLearningBlock",
    "ChannelCrossAttention",
    "FrequencyRefine",
    "frequency_mask",
    "MASK_BASE",
    "UNUSED_MODULES",
]

MASK_BASE = 128
"""The low-frequency box has half-sides ``(h // 128) * rate`` and ``(w // 128) * rate`` (truncated)."""
UNUSED_MODULES = ("conv", "score_gen")
"""Modules of every :class:`FrequencyLearningBlock` that the official constructor builds but never calls
(18,738 params over ``fre1/2/3``), kept so the official state_dict loads strictly."""


class SpatialGate(nn.Module):
    """Spatial weights ``sigmoid(conv7x7([max over C, mean over C]))`` (B, 1, H, W). Keys: ``spatial``."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(2, 1, kernel_size=7, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)
        return torch.sigmoid(self.spatial(pooled))


class ChannelGate(nn.Module):
    """Channel weights ``sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))`` (B, C, 1, 1); the MLP is
    1x1 C -> C//16, ReLU, 1x1 C//16 -> C, no biases. Keys: ``mlp.0``, ``mlp.2``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, dim // 16, kernel_size=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(dim // 16, dim, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        average = self.mlp(F.adaptive_avg_pool2d(x, 1))
        maximum = self.mlp(F.adaptive_max_pool2d(x, 1))
        return torch.sigmoid(average + maximum)


class FrequencyRefine(nn.Module):
    """Frequency modulation (official ``FreRefine``, the paper's FMoM): the low-frequency features are
    weighted by a spatial gate computed from the high-frequency ones, the high-frequency features by a
    channel gate computed from the low-frequency ones; their sum goes through a 1x1 conv (with bias).
    Keys: ``SpatialGate``, ``ChannelGate``, ``proj`` (official names)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.SpatialGate = SpatialGate()
        self.ChannelGate = ChannelGate(dim)
        self.proj = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        spatial_weight = self.SpatialGate(high)
        channel_weight = self.ChannelGate(low)
        return self.proj(low * spatial_weight + high * channel_weight)


def frequency_mask(rates: torch.Tensor, height: int, width: int, base: int = MASK_BASE) -> torch.Tensor:
    """Low-frequency box of each sample on the centred (fft-shifted) spectrum, as a float (B, 1, H, W) mask.

    rates: (B, 2) in (0, 1), float32. Half-sides ``hh = int(float32(height // base) * rates[:, 0])`` and
    ``hw = int(float32(width // base) * rates[:, 1])`` (truncated, as the official per-sample loop does);
    the box covers rows ``[height//2 - hh, height//2 + hh)`` and columns ``[width//2 - hw, width//2 + hw)``,
    so it is empty whenever a half-side is 0: always when a side is under ``base`` pixels, and for sides
    under ``2 * base`` unless the rate is exactly 1.0 (a saturated float32 sigmoid).
    """
    half_h = (height // base * rates[:, 0]).int()[:, None]
    half_w = (width // base * rates[:, 1]).int()[:, None]
    rows = torch.arange(height, device=rates.device)[None, :]
    cols = torch.arange(width, device=rates.device)[None, :]
    in_rows = (rows >= height // 2 - half_h) & (rows < height // 2 + half_h)
    in_cols = (cols >= width // 2 - half_w) & (cols < width // 2 + half_w)
    return (in_rows[:, :, None] & in_cols[:, None, :]).to(torch.float32)[:, None]


class FrequencyLearningBlock(nn.Module):
    """Adaptive frequency learning block (official ``FreModule``, the paper's AFLB) at one decoder level.

    ``forward(image, y)``: the input image is resized bilinearly (``align_corners=False``) to the size of
    the features ``y`` (B, dim, H, W) and embedded by a 3x3 conv (``conv1``). A learned rate
    (``rate_conv`` on the global average, sigmoid) sets a low-frequency box (:func:`frequency_mask`) on the
    fft-shifted ``fft2(norm="forward")`` spectrum; ``|ifft2|`` of the box and of its complement give the
    low- and high-frequency features. The high part attends to ``y`` (``channel_cross_l``), the low part
    too (``channel_cross_h``; the official names are swapped), :class:`FrequencyRefine` mixes them, ``y``
    attends to the mix (``channel_cross_agg``) and the block returns ``out * para1 + y * para2``
    (para1 starts at 0, para2 at 1, per channel).
    """

    def __init__(self, dim: int, num_heads: int, bias: bool, in_dim: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, dim, kernel_size=3, padding=1, bias=False)  # unused (official)
        self.conv1 = nn.Conv2d(in_dim, dim, kernel_size=3, padding=1, bias=False)
        self.score_gen = nn.Conv2d(2, 2, kernel_size=7, padding=3)  # unused (official)
        self.para1 = nn.Parameter(torch.zeros(dim, 1, 1))
        self.para2 = nn.Parameter(torch.ones(dim, 1, 1))
        self.channel_cross_l = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_h = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_agg = ChannelCrossAttention(dim, num_heads, bias)
        self.frequency_refine = FrequencyRefine(dim)
        self.rate_conv = nn.Sequential(
            nn.Conv2d(dim, dim // 8, kernel_size=1, bias=False),
            nn.GELU(),
            nn.Conv2d(dim // 8, 2, kernel_size=1, bias=False),
        )

    def forward(self, image: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        resized = F.interpolate(image, y.shape[-2:], mode="bilinear")
        high, low = self.split_frequencies(resized)
        high = self.channel_cross_l(high, y)
        low = self.channel_cross_h(low, y)
        out = self.channel_cross_agg(y, self.frequency_refine(low, high))
        return out * self.para1 + y * self.para2

    def rates(self, embedded: torch.Tensor) -> torch.Tensor:
        """(B, 2) box rates in (0, 1) from the embedded image (B, dim, H, W)."""
        return self.rate_conv(F.adaptive_avg_pool2d(embedded, 1)).sigmoid()[:, :, 0, 0]

    def split_frequencies(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(high, low): magnitudes of the inverse FFT outside / inside the learned low-frequency box."""
        embedded = self.conv1(image)
        height, width = embedded.shape[-2:]
        mask = frequency_mask(self.rates(embedded), height, width)
        centre = (height // 2, width // 2)
        spectrum = torch.roll(torch.fft.fft2(embedded, norm="forward"), shifts=centre, dims=(2, 3))

        def magnitude(part: torch.Tensor) -> torch.Tensor:
            unshifted = torch.roll(part, shifts=(-centre[0], -centre[1]), dims=(2, 3))
            return torch.fft.ifft2(unshifted, norm="forward").abs()

        return magnitude(spectrum * (1 - mask)), magnitude(spectrum * mask)


class AdaIR(nn.Module):
    """AdaIR; keyword arguments and defaults are those of the official constructor.

    A Restormer U-Net (d, 2d, 4d, 8d channels, d = ``dim``; same layout and keys as
    :class:`~bench_ir.models.restormer.Restormer`) with a :class:`FrequencyLearningBlock` (``heads[2]``
    heads) applied to the latent (``fre1``, 8d), to decoder level 3 (``fre2``, 4d) and to decoder level 2
    (``fre3``, 2d), each fed the input image. ``decoder=False`` leaves them out (then the network is
    exactly a Restormer).

    ``forward(x)``: (B, inp_channels, H, W) -> (B, out_channels, H, W), H and W multiples of 8.
    """

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: LayerNormType = "WithBias",  # official keyword name
        decoder: bool = True,
    ) -> None:
        super().__init__()
        blocks, heads = four_levels(num_blocks, "num_blocks"), four_levels(heads, "heads")
        if inp_channels != out_channels:
            raise ValueError(f"the input residual needs inp_channels == out_channels, got {inp_channels} and "
                             f"{out_channels}")

        def stage(width: int, level: int, depth: int) -> nn.Sequential:
            return transformer_stage(width, heads[level], depth, ffn_expansion_factor, bias, LayerNorm_type)

        d = dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, d)
        self.decoder = decoder
        if decoder:
            self.fre1 = FrequencyLearningBlock(8 * d, heads[2], bias, in_dim=inp_channels)
            self.fre2 = FrequencyLearningBlock(4 * d, heads[2], bias, in_dim=inp_channels)
            self.fre3 = FrequencyLearningBlock(2 * d, heads[2], bias, in_dim=inp_channels)
        self.encoder_level1 = stage(d, 0, blocks[0])
        self.down1_2 = Downsample(d)
        self.encoder_level2 = stage(2 * d, 1, blocks[1])
        self.down2_3 = Downsample(2 * d)
        self.encoder_level3 = stage(4 * d, 2, blocks[2])
        self.down3_4 = Downsample(4 * d)
        self.latent = stage(8 * d, 3, blocks[3])

        self.up4_3 = Upsample(8 * d)
        self.reduce_chan_level3 = nn.Conv2d(8 * d, 4 * d, kernel_size=1, bias=bias)
        self.decoder_level3 = stage(4 * d, 2, blocks[2])
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, kernel_size=1, bias=bias)
        self.decoder_level2 = stage(2 * d, 1, blocks[1])
        self.up2_1 = Upsample(2 * d)
        self.decoder_level1 = stage(2 * d, 0, blocks[0])
        self.refinement = stage(2 * d, 0, num_refinement_blocks)
        self.output = nn.Conv2d(2 * d, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, "AdaIR")
        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        if self.decoder:
            latent = self.fre1(x, latent)

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat((self.up4_3(latent), enc3), dim=1)))
        if self.decoder:
            dec3 = self.fre2(x, dec3)
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat((self.up3_2(dec3), enc2), dim=1)))
        if self.decoder:
            dec2 = self.fre3(x, dec2)
        dec1 = self.refinement(self.decoder_level1(torch.cat((self.up2_1(dec2), enc1), dim=1)))
        return self.output(dec1) + x
