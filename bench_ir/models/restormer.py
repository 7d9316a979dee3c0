"""Restormer (CVPR 2022) and the Restormer building blocks shared by PromptIR and AdaIR.

Reimplemented from the description of the official code (swz30/Restormer,
``basicsr/models/archs/restormer_arch.py``, Academic Public License). Module attribute names follow the
official ones, so BasicSR checkpoints (``torch.load(path)['params']``) load with ``strict=True``.

Shared blocks (imported by :mod:`bench_ir.models.promptir` and :mod:`bench_ir.models.adair`):
:class:`MDTA` (multi-Dconv head transposed attention, official ``Attention``), :class:`GDFN` (gated-Dconv
feed-forward network, official ``FeedForward``), :class:`TransformerBlock` and :func:`transformer_stage`.

Images are (B, C, H, W) tensors (RGB in [0, 1] for the restoration checkpoints) with H and W multiples of 8
(three 2x PixelUnshuffle steps); the network predicts a residual that is added to the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench_ir.models.layers import ChannelLayerNorm, Downsample, LayerNormType, OverlapPatchEmbed, Upsample

__all__ = [
    "MDTA",
    "transposed_attention",
    "ChannelCrossAttention",
    "GDFN",
    "TransformerBlock",
    "transformer_stage",
    "Restormer",
    "check_input_size",
    "four_levels",
    "INPUT_MULTIPLE",
]

INPUT_MULTIPLE = 8
"""H and W must be multiples of this (three 2x PixelUnshuffle steps)."""


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention (official ``Attention``): attention across channels.

    1x1 conv to q, k, v (3c), 3x3 depthwise conv, split into heads of c/heads channels; per head a
    (c/heads x c/heads) map from q and k L2-normalised over the H*W positions, times a learnable per-head
    ``temperature``, softmax over the key channels; then a 1x1 ``project_out``.
    Keys: ``temperature`` (heads, 1, 1), ``qkv``, ``qkv_dwconv``, ``project_out``.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MDTA: {dim} channels are not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        return self.project_out(transposed_attention(q, k, v, self.num_heads, self.temperature))


def transposed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int,
                         temperature: torch.Tensor) -> torch.Tensor:
    """Channel ("transposed") attention of (B, C, H, W) q, k, v split into ``num_heads`` heads:
    ``softmax(normalize(q) @ normalize(k)^T * temperature) @ v`` per head, norms over H*W; returns
    (B, C, H, W)."""
    batch, channels, height, width = q.shape
    q, k, v = (t.reshape(batch, num_heads, channels // num_heads, height * width) for t in (q, k, v))
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1) * temperature).softmax(dim=-1)
    return (attn @ v).reshape(batch, channels, height, width)


class ChannelCrossAttention(nn.Module):
    """Transposed (channel) cross-attention: queries from ``x`` (1x1 then 3x3 depthwise), keys and values from
    ``y`` of the same shape (1x1 to 2C then a ``kv_kernel_size`` depthwise conv), :func:`transposed_attention`
    with a per-head temperature, 1x1 ``project_out``. AdaIR's ``Chanel_Cross_Attention`` uses kv kernel 3,
    MoCE-IR's ``CrossAttention`` 7. Keys: ``temperature``, ``q``, ``q_dwconv``, ``kv``, ``kv_dwconv``,
    ``project_out``."""

    def __init__(self, dim: int, num_heads: int, bias: bool, kv_kernel_size: int = 3) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ChannelCrossAttention: {dim} channels are not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, kernel_size=kv_kernel_size, padding=kv_kernel_size // 2,
                                   groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"cross-attention inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(y)).chunk(2, dim=1)
        return self.project_out(transposed_attention(q, k, v, self.num_heads, self.temperature))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network (official ``FeedForward``): 1x1 c -> 2h, 3x3 depthwise, split in
    halves, ``GELU(x1) * x2``, 1x1 h -> c, with h = int(c * expansion) (exact erf GELU).
    Keys: ``project_in``, ``dwconv``, ``project_out``."""

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """Restormer block: ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``; LN over channels
    (:class:`~bench_ir.models.layers.ChannelLayerNorm`, "WithBias" or "BiasFree").
    Keys: ``norm1.body``, ``attn``, ``norm2.body``, ``ffn``."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                 layer_norm: LayerNormType = "WithBias") -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, layer_norm)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = ChannelLayerNorm(dim, layer_norm)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stage(dim: int, num_heads: int, depth: int, ffn_expansion_factor: float, bias: bool,
                      layer_norm: LayerNormType) -> nn.Sequential:
    """``depth`` :class:`TransformerBlock` in a row (keys ``<stage>.<i>.*``)."""
    return nn.Sequential(*(TransformerBlock(dim, num_heads, ffn_expansion_factor, bias, layer_norm)
                           for _ in range(depth)))


def check_input_size(x: torch.Tensor, model: str, multiple: int = INPUT_MULTIPLE) -> None:
    """Raise a ValueError naming ``model`` unless ``x`` is (B, C, H, W) with H, W divisible by ``multiple``."""
    if x.ndim != 4:
        raise ValueError(f"{model} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"{model} needs H and W divisible by {multiple}, got {height}x{width}; crop or pad the input "
            "(protocol crop rule / card pad_mode)"
        )


def four_levels(values: Sequence[int], name: str) -> tuple[int, int, int, int]:
    """``values`` (one per U-Net level, e.g. ``num_blocks`` or ``heads``) as a 4-tuple of ints."""
    if len(values) != 4:
        raise ValueError(f"{name} must have 4 entries (one per level), got {list(values)}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


class Restormer(nn.Module):
    """Restormer; keyword arguments and defaults are those of the official constructor.

    Four-level U-Net of :class:`TransformerBlock` at d, 2d, 4d, 8d channels (d = ``dim``); skip connections
    are concatenated and reduced by 1x1 convs at levels 3 and 2 (not at level 1: decoder level 1 and the
    ``num_refinement_blocks`` refinement blocks run at 2d); a 3x3 conv predicts the residual added to the
    input. ``LayerNorm_type``: "WithBias" (deblurring, deraining, defocus: 26,126,644 params) or "BiasFree"
    (the denoising checkpoints: 26,111,668). ``dual_pixel_task`` (with ``inp_channels=6``): the dual-pixel
    defocus model, which adds a 1x1 ``skip_conv`` of the patch embedding before the output conv and has no
    input residual.

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
        dual_pixel_task: bool = False,
    ) -> None:
        super().__init__()
        blocks, heads = four_levels(num_blocks, "num_blocks"), four_levels(heads, "heads")
        if not dual_pixel_task and inp_channels != out_channels:
            raise ValueError(f"the input residual needs inp_channels == out_channels, got {inp_channels} and "
                             f"{out_channels} (only the dual-pixel model differs)")

        def stage(width: int, level: int, depth: int) -> nn.Sequential:
            return transformer_stage(width, heads[level], depth, ffn_expansion_factor, bias, LayerNorm_type)

        d = dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, d)
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

        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(d, 2 * d, kernel_size=1, bias=bias)
        self.output = nn.Conv2d(2 * d, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, "Restormer")
        embedded = self.patch_embed(x)
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat((self.up4_3(latent), enc3), dim=1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat((self.up3_2(dec3), enc2), dim=1)))
        dec1 = self.refinement(self.decoder_level1(torch.cat((self.up2_1(dec2), enc1), dim=1)))
        if self.dual_pixel_task:
            return self.output(dec1 + self.skip_conv(embedded))
        return self.output(dec1) + x
