"""NAFNet (ECCV 2022, "Simple Baselines for Image Restoration"), reimplemented from the description of the
official code (megvii-research/NAFNet @2b4af71, ``basicsr/models/archs/NAFNet_arch.py``, MIT licence).

A U-Net of nonlinear-activation-free blocks (LayerNorm, 1x1 and depthwise 3x3 convs, SimpleGate
``x1 * x2``, simplified channel attention). Attribute names follow the official class, so BasicSR
checkpoints (``torch.load(path)['params']``) load with ``strict=True``.

The default configuration is the one MIRAGE's Table 2 counts as "17M" (width 32, encoder blocks
[1, 1, 1, 28], 1 middle block, decoder blocks [1, 1, 1, 1]: 17,111,907 parameters; the official
GoPro-width32 layout). Images are (B, 3, H, W) in [0, 1] of any size: ``forward`` zero-pads bottom/right to
a multiple of 2^(number of encoder levels) and crops the output back; the network predicts a residual that
is added to the (padded) input. ``NAFNetLocal`` (test-time local statistics, "TLC") is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerNorm2d", "NAFBlock", "NAFNet", "SimpleGate"]

LAYER_NORM_EPS = 1e-6


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dim of an NCHW tensor: ``(x - mean) / sqrt(var + eps) * weight + bias``,
    population variance, eps = 1e-6. The official class computes the same forward in a custom autograd
    Function whose hand-written backward is the analytic gradient autograd derives here."""

    def __init__(self, channels: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        normalised = (x - mean) / (variance + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * normalised + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: (B, 2C, H, W) -> (B, C, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        first, second = x.chunk(2, dim=1)
        return first * second


class NAFBlock(nn.Module):
    """Official ``NAFBlock(c)`` with DW_Expand = FFN_Expand = 2 and no dropout.

    Spatial part: norm1, 1x1 conv (c -> 2c), depthwise 3x3, SimpleGate (-> c), channel attention
    ``x * sca(x)`` (global average pool, 1x1 conv), 1x1 conv ``conv3``; ``y = x + out * beta``.
    Channel part: norm2, 1x1 ``conv4`` (c -> 2c), SimpleGate, 1x1 ``conv5``; ``y + out * gamma``.
    ``beta`` and ``gamma`` (1, c, 1, 1) start at zero, so a fresh block is the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = 2 * channels
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.conv3 = nn.Conv2d(hidden // 2, channels, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(channels, hidden, 1)
        self.conv5 = nn.Conv2d(hidden // 2, channels, 1)
        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)

    def forward(self, inp: Tensor) -> Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """Official ``NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)``.

    Each encoder level (blocks, then a 2x2 stride-2 conv doubling the channels) halves the resolution; each
    decoder level (1x1 conv without bias to 2x channels + PixelShuffle(2), skip added, blocks) restores it.
    """

    def __init__(self, img_channel: int = 3, width: int = 32, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (1, 1, 1, 28), dec_blk_nums: Sequence[int] = (1, 1, 1, 1)) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f"enc_blk_nums {list(enc_blk_nums)} and dec_blk_nums {list(dec_blk_nums)} must have "
                             "the same length (one decoder level per encoder level)")
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        # registered in the official order, so that state_dict keys come in the official order too
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = width
        for blocks in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(blocks)]))
            self.downs.append(nn.Conv2d(channels, 2 * channels, 2, stride=2))
            channels *= 2
        for _ in range(middle_blk_num):
            self.middle_blks.append(NAFBlock(channels))
        for blocks in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(blocks)]))
        self.padder_size = 2 ** len(self.encoders)

    def pad_to_multiple(self, x: Tensor) -> Tensor:
        """Zero-pad bottom and right to a multiple of ``padder_size`` (official ``check_image_size``)."""
        height, width = x.shape[-2:]
        pad_h = -height % self.padder_size
        pad_w = -width % self.padder_size
        return F.pad(x, (0, pad_w, 0, pad_h))

    def forward(self, inp: Tensor) -> Tensor:
        height, width = inp.shape[-2:]
        inp = self.pad_to_multiple(inp)
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[:, :, :height, :width]
