"""PromptIR (NeurIPS 2023): all-in-one blind restoration with learned prompts on a Restormer U-Net.

Reimplemented from the description of the official code (va1shn9v/PromptIR, ``net/model.py``, Academic
Public License). This is the released configuration, ``PromptIR(decoder=True)`` (35,592,263 params); its
Lightning checkpoint ``model.ckpt`` loads with ``strict=True`` once the ``net.`` prefix is stripped.
The official ``decoder=False`` variant is not offered: its forward fails (the decoder's channel numbers
assume the prompts), and no checkpoint uses it.

Images are (B, 3, H, W), RGB in [0, 1], H and W multiples of 8; the network predicts a residual added to
the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench_ir.models.layers import Downsample, LayerNormType, OverlapPatchEmbed, Upsample
from bench_ir.models.restormer import TransformerBlock, check_input_size, four_levels, transformer_stage

__all__ = ["PromptIR", "PromptGenBlock", "PROMPT_CHANNELS", "UNUSED_MODULES"]

PROMPT_CHANNELS = (64, 128, 320)
"""Channels of ``prompt1`` (decoder level 1 input), ``prompt2`` (level 2), ``prompt3`` (latent); fixed in
the official code whatever ``dim``."""
PROMPT_SIZES = (64, 32, 16)
PROMPT_LENGTH = 5
UNUSED_MODULES = ("chnl_reduce1", "chnl_reduce2", "chnl_reduce3", "reduce_noise_channel_1",
                  "reduce_noise_channel_2", "reduce_noise_channel_3")
"""Modules built by the official constructor but never called (215,296 params at dim 48), kept so the
official state_dict loads strictly and the parameter count is the published one."""


class PromptGenBlock(nn.Module):
    """Prompt generation: ``prompt_len`` learned prompt components (1, L, C, S, S), initialised U[0, 1).

    Per sample, softmax weights over the L components come from a Linear layer on the global average of
    the input features (B, lin_dim, H, W); the weighted sum (B, C, S, S) is resized bilinearly to (H, W)
    (``align_corners=False``, no antialiasing) and passed through a 3x3 conv (no bias).
    Keys: ``prompt_param``, ``linear_layer``, ``conv3x3``.
    """

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)
        prompt = (weights[:, :, None, None, None] * self.prompt_param).sum(dim=1)
        prompt = F.interpolate(prompt, (height, width), mode="bilinear")
        return self.conv3x3(prompt)


class PromptIR(nn.Module):
    """PromptIR with prompts in the decoder; keyword arguments and defaults are the official ones.

    Restormer encoder (d, 2d, 4d, 8d channels, d = ``dim``). At the latent and after decoder levels 3 and 2
    a prompt (:class:`PromptGenBlock`, 320/128/64 channels) is concatenated to the features, mixed by one
    :class:`~bench_ir.models.restormer.TransformerBlock` (``noise_level3/2/1``, ``heads[2]`` heads) and
    reduced by a 1x1 conv (``reduce_noise_level3/2/1``: to 4d, 4d and 2d). The latent is thus reduced to
    4d before ``up4_3``, and decoder level 2 feeds 4d channels to ``up3_2``.

    The official channel numbers are written for dim 48 (e.g. ``noise_level3`` has ``4d + 512`` channels);
    here they are expressed so that other ``dim`` values give a consistent network, identical to the
    official one at dim 48. The unused official layers (:data:`UNUSED_MODULES`) are kept.

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
    ) -> None:
        super().__init__()
        blocks, heads = four_levels(num_blocks, "num_blocks"), four_levels(heads, "heads")
        if inp_channels != out_channels:
            raise ValueError(f"the input residual needs inp_channels == out_channels, got {inp_channels} and "
                             f"{out_channels}")
        p1, p2, p3 = PROMPT_CHANNELS

        def stage(width: int, level: int, depth: int) -> nn.Sequential:
            return transformer_stage(width, heads[level], depth, ffn_expansion_factor, bias, LayerNorm_type)

        def prompt_mixer(width: int) -> TransformerBlock:
            return TransformerBlock(width, heads[2], ffn_expansion_factor, bias, LayerNorm_type)

        def conv1x1(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=1, bias=bias)

        d = dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, d)
        self.prompt1 = PromptGenBlock(p1, PROMPT_LENGTH, PROMPT_SIZES[0], lin_dim=2 * d)
        self.prompt2 = PromptGenBlock(p2, PROMPT_LENGTH, PROMPT_SIZES[1], lin_dim=4 * d)
        self.prompt3 = PromptGenBlock(p3, PROMPT_LENGTH, PROMPT_SIZES[2], lin_dim=8 * d)

        self.chnl_reduce1 = conv1x1(64, 64)
        self.chnl_reduce2 = conv1x1(128, 128)
        self.chnl_reduce3 = conv1x1(320, 256)
        self.reduce_noise_channel_1 = conv1x1(d + 64, d)
        self.encoder_level1 = stage(d, 0, blocks[0])
        self.down1_2 = Downsample(d)
        self.reduce_noise_channel_2 = conv1x1(2 * d + 128, 2 * d)
        self.encoder_level2 = stage(2 * d, 1, blocks[1])
        self.down2_3 = Downsample(2 * d)
        self.reduce_noise_channel_3 = conv1x1(4 * d + 256, 4 * d)
        self.encoder_level3 = stage(4 * d, 2, blocks[2])
        self.down3_4 = Downsample(4 * d)
        self.latent = stage(8 * d, 3, blocks[3])

        self.up4_3 = Upsample(4 * d)
        self.reduce_chan_level3 = conv1x1(2 * d + 4 * d, 4 * d)
        self.noise_level3 = prompt_mixer(8 * d + p3)
        self.reduce_noise_level3 = conv1x1(8 * d + p3, 4 * d)
        self.decoder_level3 = stage(4 * d, 2, blocks[2])

        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = conv1x1(4 * d, 2 * d)
        self.noise_level2 = prompt_mixer(4 * d + p2)
        self.reduce_noise_level2 = conv1x1(4 * d + p2, 4 * d)
        self.decoder_level2 = stage(2 * d, 1, blocks[1])

        self.up2_1 = Upsample(2 * d)
        self.noise_level1 = prompt_mixer(2 * d + p1)
        self.reduce_noise_level1 = conv1x1(2 * d + p1, 2 * d)
        self.decoder_level1 = stage(2 * d, 0, blocks[0])
        self.refinement = stage(2 * d, 0, num_refinement_blocks)
        self.output = nn.Conv2d(2 * d, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, "PromptIR")
        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        latent = self.reduce_noise_level3(self.noise_level3(torch.cat((latent, self.prompt3(latent)), dim=1)))

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat((self.up4_3(latent), enc3), dim=1)))
        dec3 = self.reduce_noise_level2(self.noise_level2(torch.cat((dec3, self.prompt2(dec3)), dim=1)))

        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat((self.up3_2(dec3), enc2), dim=1)))
        dec2 = self.reduce_noise_level1(self.noise_level1(torch.cat((dec2, self.prompt1(dec2)), dim=1)))

        dec1 = self.refinement(self.decoder_level1(torch.cat((self.up2_1(dec2), enc1), dim=1)))
        return self.output(dec1) + x
