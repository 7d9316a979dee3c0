"""MIRAGE (ICLR 2026): all-in-one image restoration by channel-wise functional decomposition and
SPD-manifold regularisation. Reimplemented from the description of the official code (Amazingren/MIRAGE,
MIT), whose ``net/mirage_tiny.py`` / ``net/mirage_small.py`` checkpoints load into this module with
``strict=True`` once the Lightning ``net.`` prefix is stripped (same keys, shapes and BatchNorm buffers).

Variants: ``tiny`` (MIRAGE-T, dim 24, 2 refinement blocks, 6,207,412 params) and ``small`` (MIRAGE-S,
dim 30, 3 refinement blocks, 9,678,983 params). Images are (B, 3, H, W) with H and W multiples of 8;
the network predicts a residual that is added to the input.

Differences from the official forward, by design: in ``eval()`` mode only the restored image is returned
and the SPD head is skipped; in ``train()`` mode ``(restored, SpdProjections)`` is returned and the
contrastive loss (unweighted) is computed by :func:`bench_ir.losses.spd_contrastive_loss`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench_ir.losses import SpdProjections, spd_covariance
from bench_ir.models.layers import (
    ChannelLayerNorm,
    Downsample,
    DropPath,
    LayerNormType,
    OverlapPatchEmbed,
    Upsample,
)

__all__ = ["MIRAGE", "MirageConfig", "MixedDegradationBlock", "SpdProjections", "VARIANTS", "INPUT_MULTIPLE"]

INPUT_MULTIPLE = 8
"""H and W must be multiples of this (three 2x PixelUnshuffle steps)."""
SPD_SHALLOW_CHANNELS = 12
SPD_LATENT_CHANNELS = 24
SPD_EMBED_DIM = 64


@dataclass(frozen=True)
class MirageConfig:
    """Constructor arguments; names and defaults are those of the official ``MIRAGE()`` (tiny file).

    drop_path_rate: the DropPath rate inside every gated-CNN branch (fixed 0.1 in the official code).
    """

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 24
    num_blocks: tuple[int, int, int, int] = (3, 5, 5, 7)
    num_refinement_blocks: int = 2
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.0
    bias: bool = False
    LayerNorm_type: LayerNormType = "WithBias"  # official keyword name, kept for compatibility
    drop_path_rate: float = 0.1


VARIANTS: dict[str, MirageConfig] = {
    "tiny": MirageConfig(dim=24, num_refinement_blocks=2),
    "small": MirageConfig(dim=30, num_refinement_blocks=3),
}


class DynamicGatedConv(nn.Module):
    """Gated CNN branch with a per-sample dynamic 7x7 depthwise conv (official ``GatedCNNBlock``).

    BatchNorm -> 1x1 ``gic1`` (c -> 2h, h = int(8/3 * c)) -> split into gate g (h), pass-through i (h - c)
    and conv part (c). A kernel generator (global average pool, 1x1, GELU, 1x1 to c*49) makes one 7x7
    depthwise kernel per sample and channel for the conv part. Then ``gic2(GELU(g / temperature) *
    [i, conv])`` (h -> c), DropPath, residual add, and the 1x1 ``proj_out`` *after* the residual.
    """

    def __init__(self, channels: int, expansion: float = 8 / 3, kernel_size: int = 7,
                 drop_path: float = 0.1) -> None:
        super().__init__()
        hidden = int(expansion * channels)
        self.kernel_size = kernel_size
        self.split_sizes = (hidden, hidden - channels, channels)
        self.norm = nn.BatchNorm2d(channels)
        self.gic1 = nn.Conv2d(channels, 2 * hidden, kernel_size=1, bias=False)
        self.kernel_generator = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels, kernel_size=1, bias=False),
            nn.GELU(),
            nn.Conv2d(channels, channels * kernel_size * kernel_size, kernel_size=1, bias=False),
        )
        self.gic2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)
        self.drop_path = DropPath(drop_path)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.temperature = nn.Parameter(torch.ones(1))

    def dynamic_depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve each sample with its own generated depthwise kernels (zero padding, same size).

        The batch is folded into the channels, (B, c, H, W) -> (1, B*c, H, W), so one grouped conv with
        B*c groups applies kernel [b, ch] to channel ch of sample b only.
        """
        batch, channels, height, width = x.shape
        k = self.kernel_size
        kernels = self.kernel_generator(x).reshape(batch * channels, 1, k, k)
        folded = x.reshape(1, batch * channels, height, width)
        out = F.conv2d(folded, kernels, padding=k // 2, groups=batch * channels)
        return out.reshape(batch, channels, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, passthrough, conv_part = torch.split(self.gic1(self.norm(x)), self.split_sizes, dim=1)
        conv_part = self.dynamic_depthwise(conv_part)
        mixed = self.gic2(F.gelu(gate / self.temperature) * torch.cat((passthrough, conv_part), dim=1))
        return self.proj_out(x + self.drop_path(mixed))


class ChannelSplitMixer(nn.Module):
    """Token mixer of a MIRAGE block (official class ``Attention``).

    The channels are split into thirds [d//3, d//3, rest] for three branches:
    transposed (channel) self-attention, as Restormer's MDTA but without its own output projection;
    :class:`DynamicGatedConv`; and a per-pixel MLP (Conv1d c -> 2c, GELU, Conv1d 2c -> c).
    Fusion: each output o_k becomes ``o_k + alpha_k * sigmoid(sum of the other two)``; the three are
    concatenated and projected by a 1x1 conv.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool, drop_path: float = 0.1) -> None:
        super().__init__()
        attn_channels = dim // 3
        self.split_sizes = (attn_channels, dim // 3, dim - 2 * (dim // 3))
        if attn_channels % num_heads:
            raise ValueError(f"attention channels dim//3 = {attn_channels} not divisible by {num_heads} "
                             "heads")
        mlp_channels = self.split_sizes[2]
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(attn_channels, attn_channels * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(attn_channels * 3, attn_channels * 3, kernel_size=3, padding=1,
                                    groups=attn_channels * 3, bias=bias)
        self.gatedcnn = DynamicGatedConv(self.split_sizes[1], drop_path=drop_path)
        self.mlp = nn.Sequential(
            nn.Conv1d(mlp_channels, mlp_channels * 2, kernel_size=1, bias=bias),
            nn.GELU(),
            nn.Conv1d(mlp_channels * 2, mlp_channels, kernel_size=1, bias=bias),
        )
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        self.alpha_att = nn.Parameter(torch.ones(1))
        self.alpha_gated = nn.Parameter(torch.ones(1))
        self.alpha_mlp = nn.Parameter(torch.ones(1))

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head attention across channels: per head a (c x c) map from L2-normalised q, k over the
        H*W positions, scaled by a learnable per-head temperature, softmax over the key channels."""
        batch, _, height, width = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(batch, self.num_heads, -1, height * width) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return (attn @ v).reshape(batch, -1, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        x_attn, x_gated, x_mlp = torch.split(x, self.split_sizes, dim=1)
        out_attn = self.channel_attention(x_attn)
        out_gated = self.gatedcnn(x_gated)
        out_mlp = self.mlp(x_mlp.reshape(batch, -1, height * width)).reshape(batch, -1, height, width)
        fused = torch.cat((
            out_attn + self.alpha_att * torch.sigmoid(out_gated + out_mlp),
            out_gated + self.alpha_gated * torch.sigmoid(out_attn + out_mlp),
            out_mlp + self.alpha_mlp * torch.sigmoid(out_attn + out_gated),
        ), dim=1)
        return self.project_out(fused)


class GeluGatedFeedForward(nn.Module):
    """FFN of a MIRAGE block (official ``FeedForward``): 1x1 c -> 2h, GELU, 3x3 depthwise, split in two
    halves, ``GELU(x1) * x2``, 1x1 h -> c, with h = int(c * expansion). Unlike Restormer's GDFN there is a
    GELU right after the input projection."""

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2,
                                bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(F.gelu(self.project_in(x))).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class MixedDegradationBlock(nn.Module):
    """Mixed Degradation Adaptation Block (MDAB; official ``TransformerBlock``):
    ``x + mixer(LN(x))`` then ``x + ffn(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, config: MirageConfig) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, config.LayerNorm_type)
        self.attn = ChannelSplitMixer(dim, num_heads, config.bias, config.drop_path_rate)
        self.norm2 = ChannelLayerNorm(dim, config.LayerNorm_type)
        self.ffn = GeluGatedFeedForward(dim, config.ffn_expansion_factor, config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _stage(dim: int, num_heads: int, depth: int, config: MirageConfig) -> nn.Sequential:
    return nn.Sequential(*(MixedDegradationBlock(dim, num_heads, config) for _ in range(depth)))


class MIRAGE(nn.Module):
    """MIRAGE-T (``variant="tiny"``) or MIRAGE-S (``"small"``); keyword ``overrides`` replace fields of
    :class:`MirageConfig` (the official constructor keywords, plus ``drop_path_rate``).

    Four-level U-Net of :class:`MixedDegradationBlock` at d, 2d, 4d, 8d channels (d = ``dim``); the
    bottleneck is reduced to 4d (``reduce_dim_level3``) before decoding; decoder level 1 and the
    refinement stage run at 2d; a 3x3 conv predicts the residual added to the input.

    ``forward(x)`` in eval mode returns the restored image (B, out_channels, H, W). In train mode it returns
    ``(restored, SpdProjections)``: the SPD head reduces the shallow feature (encoder level 1 output) and
    the latent (after ``reduce_dim_level3``) with 1x1 convs to 12 and 24 channels, takes their spatial
    covariance (:func:`bench_ir.losses.spd_covariance`), flattens the C x C matrix, projects it to 64 with a
    Linear layer and L2-normalises. Weights use PyTorch's default initialisation in the official module
    order, so ``torch.manual_seed(s)`` followed by construction is deterministic.
    """

    def __init__(self, variant: str = "tiny", **overrides: Any) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MIRAGE variant {variant!r}; choose one of {sorted(VARIANTS)}")
        known = {f.name for f in fields(MirageConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"MIRAGE got unknown arguments {unknown}; known: {sorted(known)}")
        for key in ("num_blocks", "heads"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        config = replace(VARIANTS[variant], **overrides)
        self.variant = variant
        self.config = config
        d, blocks, heads = config.dim, config.num_blocks, config.heads

        self.patch_embed = OverlapPatchEmbed(config.inp_channels, d)
        self.encoder_level1 = _stage(d, heads[0], blocks[0], config)
        self.down1_2 = Downsample(d)
        self.encoder_level2 = _stage(2 * d, heads[1], blocks[1], config)
        self.down2_3 = Downsample(2 * d)
        self.encoder_level3 = _stage(4 * d, heads[2], blocks[2], config)
        self.down3_4 = Downsample(4 * d)
        self.latent = _stage(8 * d, heads[3], blocks[3], config)

        self.up4_3 = Upsample(4 * d)
        self.reduce_chan_level3 = nn.Conv2d(2 * d + 4 * d, 4 * d, kernel_size=1, bias=config.bias)
        self.reduce_dim_level3 = nn.Conv2d(8 * d, 4 * d, kernel_size=1, bias=config.bias)
        self.decoder_level3 = _stage(4 * d, heads[2], blocks[2], config)
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, kernel_size=1, bias=config.bias)
        self.decoder_level2 = _stage(2 * d, heads[1], blocks[1], config)
        self.up2_1 = Upsample(2 * d)
        self.decoder_level1 = _stage(2 * d, heads[0], blocks[0], config)
        self.refinement = _stage(2 * d, heads[0], config.num_refinement_blocks, config)
        self.output = nn.Conv2d(2 * d, config.out_channels, kernel_size=3, padding=1, bias=config.bias)

        # SPD head (training only). The official files hard-code the input widths for their own dim.
        self.reduce_shallow = nn.Conv2d(d, SPD_SHALLOW_CHANNELS, kernel_size=1)
        self.reduce_latent = nn.Conv2d(4 * d, SPD_LATENT_CHANNELS, kernel_size=1)
        self.spd_proj_shallow = nn.Linear(SPD_SHALLOW_CHANNELS**2, SPD_EMBED_DIM)
        self.spd_proj_latent = nn.Linear(SPD_LATENT_CHANNELS**2, SPD_EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, SpdProjections]:
        _check_input(x)
        shallow = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(shallow))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.reduce_dim_level3(self.latent(self.down3_4(enc3)))

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat((self.up4_3(latent), enc3), dim=1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat((self.up3_2(dec3), enc2), dim=1)))
        dec1 = self.decoder_level1(torch.cat((self.up2_1(dec2), shallow), dim=1))
        restored = self.output(self.refinement(dec1)) + x
        if not self.training:
            return restored
        return restored, self.spd_projections(shallow, latent)

    def training_only_modules(self) -> list[str]:
        """Names of the SPD head modules, used only by the training objective (not at inference)."""
        return ["reduce_shallow", "reduce_latent", "spd_proj_shallow", "spd_proj_latent"]

    def spd_projections(self, shallow: torch.Tensor, latent: torch.Tensor) -> SpdProjections:
        """L2-normalised 64-d embeddings of the shallow (B, d, H, W) and latent (B, 4d, H/8, W/8)
        feature covariances."""
        z_shallow = self.spd_proj_shallow(spd_covariance(self.reduce_shallow(shallow)).flatten(1))
        z_latent = self.spd_proj_latent(spd_covariance(self.reduce_latent(latent)).flatten(1))
        return SpdProjections(F.normalize(z_shallow, dim=1), F.normalize(z_latent, dim=1))

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, " + ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"MIRAGE expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ValueError(
            f"MIRAGE needs H and W divisible by {INPUT_MULTIPLE}, got {height}x{width}; crop or pad the "
            "input (protocol crop rule / card pad_mode)"
        )
