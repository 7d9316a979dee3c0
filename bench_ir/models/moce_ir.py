"""MoCE-IR (CVPR 2025): all-in-one restoration with a mixture of "complexity experts". Reimplemented from
the description of the official code (eduardzamfir/MoCE-IR, Apache-2.0, ``src/net/moce_ir.py``); its
Lightning checkpoints load into this module with ``strict=True`` once the ``net.`` prefix is stripped
(same keys, shapes and the ten ``complexity`` buffers).

Variants, as built by the official ``src/test.py`` from ``src/options.py``: ``base`` (MoCE-IR, dim 48,
25,353,796 params) and ``small`` (MoCE-IR-S, dim 32, 11,477,752 params). Images are RGB [0, 1]
(B, 3, H, W) with H and W multiples of 8; the network predicts a residual added to the input.

Inference in the official code is stochastic: every router adds Gaussian noise (std 1/num_experts =
0.25) to its logits in eval mode too, drawn with ``torch.randn_like`` from the global RNG, which the
official test seeds once (``torch.manual_seed(0)``, ``torch.cuda.manual_seed(0)``) before all images.
The noise changes the gate values (and sometimes the chosen expert), so the output of an image depends on
the images evaluated before it. ``routing_noise`` selects the eval behaviour:

- ``"seeded"`` (default): each forward pass (each image) draws its noise from a fresh generator on the
  input's device seeded with ``routing_seed`` (0), one (1, num_experts) draw per router in the official
  order. Deterministic, independent of image order, batching, resumption and tiling, and distributed like
  the official noise. It reproduces the official stream exactly for the first image of an official run
  (same device type); later images get a different, equally distributed draw.
- ``"off"``: no noise; routing by the clean logits. Deterministic, but a systematic deviation (the gate
  values differ from the noisy ones even when the same expert wins).
- ``"official"``: the global torch RNG, as released; reproduces the official test bit for bit when the
  caller seeds torch the same way and evaluates the same images in the same order at batch size 1.

In training the noise always comes from the global RNG (it drives the load-balancing loss).

Batches in eval: the official eval path is wrong for batch sizes > 1 (it applies the experts indexed by
``top_k_indices.squeeze(0)`` to the whole batch). Here every sample is routed on its own, and in eval a
batch is run one image at a time, so each image gets exactly its batch-size-1 output (and, with
``"seeded"``, its own noise). In training the batch is routed per sample as in the official dispatcher, and
the load-balancing loss (official ``total_loss``, training weight 0.01) is stored in ``balance_loss``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import nn

from bench_ir.models.layers import Downsample, LayerNormType, OverlapPatchEmbed, Upsample
from bench_ir.models.moce_ir_layers import DecoderGroup, EncoderGroup, FrequencyEmbedding, RoutingNoise
from bench_ir.models.restormer import check_input_size

__all__ = ["MoCEIR", "MoCEIRConfig", "VARIANTS", "ROUTING_NOISE_MODES", "RoutingNoiseMode", "INPUT_MULTIPLE"]

INPUT_MULTIPLE = 8
"""H and W must be multiples of this (three 2x PixelUnshuffle steps; the FFT experts pad internally)."""
RoutingNoiseMode = Literal["seeded", "off", "official"]
ROUTING_NOISE_MODES: tuple[str, ...] = ("seeded", "off", "official")


@dataclass(frozen=True)
class MoCEIRConfig:
    """Constructor arguments of the released models (official names where they exist).

    num_blocks: encoder blocks per level, the last entry being the latent; its length is the number of levels.
    num_dec_blocks: decoder blocks per level from the finest (dim) to the coarsest (4*dim): the official
    list order, reversed inside the network. num_experts/topk: experts per decoder block and how many a
    sample uses. with_complexity/complexity_scale: the complexity bias of the importance loss (training only).
    Official arguments without effect on the network (``rank``, ``stage_depth``, ``depth_type``) are absent;
    ``rank_type`` is fixed to the released ``"spread"``.
    """

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_dec_blocks: tuple[int, ...] = (2, 4, 4)
    heads: tuple[int, ...] = (1, 2, 4, 8)
    num_refinement_blocks: int = 4
    ffn_expansion_factor: float = 2.0
    bias: bool = False
    LayerNorm_type: LayerNormType = "WithBias"  # official keyword name, kept for compatibility
    num_experts: int = 4
    topk: int = 1
    with_complexity: bool = False
    complexity_scale: Literal["max", "min"] = "max"


VARIANTS: dict[str, MoCEIRConfig] = {
    "base": MoCEIRConfig(dim=48),
    "small": MoCEIRConfig(dim=32),
}


class MoCEIR(nn.Module):
    """MoCE-IR (``variant="base"``) or MoCE-IR-S (``"small"``); keyword ``overrides`` replace fields of
    :class:`MoCEIRConfig`. ``routing_noise`` and ``routing_seed``: see the module docstring.

    U-Net with Restormer encoder blocks (biased convs) at d, 2d, 4d and 8d channels (d = ``dim``). A
    frequency embedding of the bottleneck (learned high-pass, mean, MLP) conditions every router. Each
    decoder level upsamples, concatenates the skip, fuses with a 1x1 conv back to the level width
    (4d, 2d, d) and runs decoder blocks with a mixture of complexity experts; a refinement stage at d and a
    3x3 conv predict the residual. ``forward(x)`` returns the restored image (B, out_channels, H, W).
    """

    def __init__(self, variant: str = "base", routing_noise: RoutingNoiseMode = "seeded", routing_seed: int = 0,
                 **overrides: Any) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MoCE-IR variant {variant!r}; choose one of {sorted(VARIANTS)}")
        known = {f.name for f in fields(MoCEIRConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"MoCEIR got unknown arguments {unknown}; known: {sorted(known)}")
        for key in ("num_blocks", "num_dec_blocks", "heads"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        config = replace(VARIANTS[variant], **overrides)
        levels = len(config.num_blocks)
        if len(config.heads) != levels or len(config.num_dec_blocks) != levels - 1:
            raise ValueError(f"heads needs {levels} entries and num_dec_blocks {levels - 1} "
                             f"(one per level of num_blocks), got {config.heads} and {config.num_dec_blocks}")
        self.variant = variant
        self.config = config
        self.routing_noise = routing_noise  # validated by the property setter
        self.routing_seed = routing_seed
        self.input_multiple = 2 ** (levels - 1)
        self.balance_loss: torch.Tensor | None = None

        c = config
        widths = [c.dim * 2**i for i in range(levels)]
        self.patch_embed = OverlapPatchEmbed(c.inp_channels, c.dim)
        self.freq_embed = FrequencyEmbedding(widths[-1])
        self.enc = nn.ModuleList(
            nn.ModuleList([
                EncoderGroup(widths[i], c.heads[i], c.num_blocks[i], c.ffn_expansion_factor, True, c.LayerNorm_type),
                Downsample(widths[i]),
            ])
            for i in range(levels - 1)
        )
        self.latent = EncoderGroup(widths[-1], c.heads[-1], c.num_blocks[-1], c.ffn_expansion_factor, True,
                                   c.LayerNorm_type)
        expert_args = dict(freq_dim=widths[-1], num_experts=c.num_experts, top_k=c.topk,
                           with_complexity=c.with_complexity, complexity_scale=c.complexity_scale)
        self.dec = nn.ModuleList()
        for level in reversed(range(levels - 1)):  # coarse to fine: 4d, 2d, d
            self.dec.append(nn.ModuleList([
                Upsample(widths[level + 1]),
                nn.Conv2d(widths[level + 1], widths[level], kernel_size=1, bias=c.bias),
                DecoderGroup(widths[level], c.heads[level], c.num_dec_blocks[level], c.ffn_expansion_factor, c.bias,
                             c.LayerNorm_type, **expert_args),
            ]))
        self.refinement = EncoderGroup(c.dim, c.heads[0], c.num_refinement_blocks, c.ffn_expansion_factor, True,
                                       c.LayerNorm_type)
        self.output = nn.Conv2d(c.dim, c.out_channels, kernel_size=3, padding=1, bias=c.bias)

    @property
    def routing_noise(self) -> RoutingNoiseMode:
        return self._routing_noise

    @routing_noise.setter
    def routing_noise(self, mode: RoutingNoiseMode) -> None:
        if not isinstance(mode, str) or mode not in ROUTING_NOISE_MODES:
            hint = ' (YAML reads an unquoted off as false: write "off")' if mode is False else ""
            raise ValueError(f"routing_noise must be one of {ROUTING_NOISE_MODES}, got {mode!r}{hint}")
        self._routing_noise = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, "MoCE-IR", self.input_multiple)
        if self.training:
            return self._restore(x, RoutingNoise(enabled=True))
        self.balance_loss = None
        return torch.cat([self._restore(image, self._eval_noise(image.device)) for image in x.split(1)])

    def _eval_noise(self, device: torch.device) -> RoutingNoise:
        if self.routing_noise == "off":
            return RoutingNoise(enabled=False)
        if self.routing_noise == "official":
            return RoutingNoise(enabled=True)
        return RoutingNoise(enabled=True, generator=torch.Generator(device=device).manual_seed(self.routing_seed))

    def _restore(self, x: torch.Tensor, noise: RoutingNoise) -> torch.Tensor:
        feats = self.patch_embed(x)
        skips = []
        for group, downsample in self.enc:
            feats = group(feats)
            skips.append(feats)
            feats = downsample(feats)
        feats = self.latent(feats)
        freq_emb = self.freq_embed(feats)
        losses: list[torch.Tensor] = []
        for upsample, fuse, group in self.dec:
            feats = fuse(torch.cat([upsample(feats), skips.pop()], dim=1))
            feats, loss = group(feats, freq_emb, noise)
            losses.append(loss)
        if self.training:
            # Summed level by level from 0 and divided by the block count, in the official order.
            self.balance_loss = sum(losses) / sum(self.config.num_dec_blocks)  # type: ignore[assignment]
        return self.output(self.refinement(feats)) + x

    def extra_repr(self) -> str:
        settings = {"routing_noise": self.routing_noise, "routing_seed": self.routing_seed, **asdict(self.config)}
        return f"variant={self.variant!r}, " + ", ".join(f"{k}={v}" for k, v in settings.items())
