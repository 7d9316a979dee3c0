"""Building blocks of MoCE-IR (CVPR 2025): cross channel attention, FFT patch attention, complexity experts,
their router and the encoder/decoder blocks (self-attention and feed-forward are Restormer's MDTA and GDFN).

Reimplemented from the description of the official ``src/net/moce_ir.py`` (eduardzamfir/MoCE-IR, Apache-2.0).
Attribute names follow the official classes so that released checkpoints load with ``strict=True``.
All tensors are NCHW; the images themselves are handled by :mod:`bench_ir.models.moce_ir`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench_ir.models.layers import ChannelLayerNorm, LayerNormType
from bench_ir.models.restormer import GDFN, MDTA, ChannelCrossAttention

__all__ = [
    "RoutingNoise",
    "ChannelCrossAttention",
    "FFTPatchAttention",
    "ComplexityExpert",
    "ExpertRouter",
    "ComplexityExpertLayer",
    "LaplacianHighPass",
    "FrequencyEmbedding",
    "EncoderBlock",
    "DecoderBlock",
    "EncoderGroup",
    "DecoderGroup",
]


@dataclass(frozen=True)
class RoutingNoise:
    """Where the Gaussian noise added to the routing logits comes from, for one forward pass.

    enabled: add ``N(0, noise_std^2)`` noise (``noise_std = 1 / num_experts``) to every router's logits.
    generator: draw it from this generator; ``None`` draws from the global torch RNG of the logits' device
    (``torch.randn_like``, as the official code does).
    """

    enabled: bool = True
    generator: torch.Generator | None = None


class FFTPatchAttention(nn.Module):
    """Self-attention in the Fourier domain over non-overlapping ``patch_size`` patches (official
    ``FFTAttention``).

    q (1x1, 3x3 depthwise with bias) and k, v (1x1 to 2C, 7x7 depthwise with bias) are computed on the
    whole map. q and k are zero-padded at the bottom/right to a multiple of ``patch_size``, cut into
    patches, and each patch pair is multiplied in the 2-D real FFT domain (a circular correlation-like
    product, computed in float32). The result is cropped back to H x W, layer-normalised over channels,
    multiplied by v and projected by a 1x1 conv (with bias). Any H, W works.
    """

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.q = nn.Conv2d(dim, dim, kernel_size=1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, kernel_size=7, padding=3, groups=dim * 2)
        self.norm = ChannelLayerNorm(dim, "WithBias")
        self.proj_out = nn.Conv2d(dim, dim, kernel_size=1)

    def to_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H'/p, W'/p, p, p) after zero padding to H', W' multiples of p."""
        p = self.patch_size
        x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        batch, channels, height, width = x.shape
        return x.reshape(batch, channels, height // p, p, width // p, p).permute(0, 1, 2, 4, 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, dim=1)
        q_fft = torch.fft.rfft2(self.to_patches(q).float())
        k_fft = torch.fft.rfft2(self.to_patches(k).float())
        out = torch.fft.irfft2(q_fft * k_fft, s=(self.patch_size, self.patch_size))
        rows, cols = out.shape[2], out.shape[3]
        out = out.permute(0, 1, 2, 4, 3, 5).reshape(batch, channels, rows * self.patch_size, cols * self.patch_size)
        out = self.norm(out[:, :, :height, :width])
        return self.proj_out(out * v)


class ComplexityExpert(nn.Module):
    """One low-rank "complexity expert" (official ``ModExpert``):
    ``x + proj[2](body(proj[0](x)) * SiLU(proj[1](shared)))`` with 1x1 projections C -> rank -> C and an
    :class:`FFTPatchAttention` body at width ``rank``.

    The official constructor also takes ``depth`` (``stage_depth``/``depth_type``), but its loop restarts
    from the input at every iteration, so the output is one application whatever the depth; it and the
    unused ``kernel_size`` are not reproduced.
    """

    def __init__(self, dim: int, rank: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList([
            nn.Conv2d(dim, rank, kernel_size=1, bias=False),
            nn.Conv2d(dim, rank, kernel_size=1, bias=False),
            nn.Conv2d(rank, dim, kernel_size=1, bias=False),
        ])
        self.body = FFTPatchAttention(rank, patch_size)

    def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        gated = self.body(self.proj[0](x)) * F.silu(self.proj[1](shared))
        return self.proj[2](gated) + x


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))


class ExpertRouter(nn.Module):
    """Top-k router of one expert layer (official ``RoutingFunction``).

    logits = Linear(GAP(x)) + Linear(frequency embedding) (both without bias); noisy logits = logits +
    noise with std ``1 / num_experts`` (see :class:`RoutingNoise`); gates = softmax(noisy logits), of which
    the top-k values are kept and the rest set to 0. The buffer ``complexity`` holds each expert's parameter
    count divided by the largest (``complexity_scale="max"``) or smallest (``"min"``) one; it enters the
    importance loss only when ``use_complexity_bias`` is set (the released models were tested without it).
    """

    def __init__(self, dim: int, freq_dim: int, num_experts: int, k: int, expert_sizes: list[int],
                 use_complexity_bias: bool = False, complexity_scale: str = "max") -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(dim, num_experts, bias=False))
        self.freq_gate = nn.Linear(freq_dim, num_experts, bias=False)
        if complexity_scale not in ("max", "min"):
            raise ValueError(f"complexity_scale must be 'max' or 'min', got {complexity_scale!r}")
        scale = max(expert_sizes) if complexity_scale == "max" else min(expert_sizes)
        # Python division: a tensor division on the meta device (cards are built there) is slow.
        complexity = torch.tensor([size / scale for size in expert_sizes], dtype=torch.float32)
        self.register_buffer("complexity", complexity)
        self.k = k
        self.num_experts = num_experts
        self.noise_std = 1.0 / num_experts
        self.use_complexity_bias = use_complexity_bias

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor,
                noise: RoutingNoise) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(gates (B, num_experts) with k non-zero entries per row, balance loss or None outside training)."""
        logits = self.gate(x) + self.freq_gate(freq_emb)
        if noise.enabled:
            if noise.generator is None:
                draw = torch.randn_like(logits)
            else:
                draw = torch.randn(logits.shape, generator=noise.generator, device=logits.device, dtype=logits.dtype)
            noisy_logits = logits + draw * self.noise_std
        else:
            noisy_logits = logits
        top_values, top_indices = torch.topk(noisy_logits.softmax(dim=-1), self.k, dim=-1)
        gates = torch.zeros_like(logits).scatter_(1, top_indices, top_values)
        if not self.training:
            return gates, None
        loss = 0.5 * self.importance_loss(logits.softmax(dim=-1)) + 0.5 * self.load_loss(logits, noisy_logits)
        return gates, loss

    def importance_loss(self, scores: torch.Tensor) -> torch.Tensor:
        """Squared coefficient of variation (unbiased std / mean) of the per-expert score sums."""
        importance = scores.sum(dim=0)
        if self.use_complexity_bias:
            importance = importance * self.complexity
        return (importance.std() / (importance.mean() + 1e-8)) ** 2

    def load_loss(self, logits: torch.Tensor, noisy_logits: torch.Tensor) -> torch.Tensor:
        """Squared coefficient of variation of each expert's mean probability of reaching the k-th noisy
        logit of its sample under the routing noise (Shazeer et al.'s smooth load estimate)."""
        kth = torch.topk(noisy_logits, self.k, dim=-1).indices[:, -1:]
        threshold = noisy_logits.gather(1, kth)
        p_win = 1.0 - _normal_cdf((threshold - logits) / self.noise_std)
        load = p_win.mean(dim=0)
        return (load.std() / (load.mean() + 1e-8)) ** 2


class ComplexityExpertLayer(nn.Module):
    """Mixture of complexity experts (official ``AdapterLayer``), ``rank_type="spread"``.

    Expert i (of ``num_experts``) has rank ``dim // 2**(num_experts-1-i)`` and FFT patch size ``2**(i+2)``
    (4, 8, 16, 32 for four experts). Each sample goes through its top-k experts only; their outputs are
    weighted by the gates, summed and projected by a 1x1 conv. Every sample is routed on its own, so any
    batch size is correct (the official eval path is not: it applies the experts chosen for sample 0's
    index list to the whole batch).
    """

    def __init__(self, dim: int, freq_dim: int, num_experts: int = 4, top_k: int = 1,
                 with_complexity: bool = False, complexity_scale: str = "max") -> None:
        super().__init__()
        ranks = [dim // 2 ** (num_experts - 1 - i) for i in range(num_experts)]
        patch_sizes = [2 ** (i + 2) for i in range(num_experts)]
        # One-element Sequential per expert: the official keys are ``experts.<i>.0.<...>``.
        self.experts = nn.ModuleList(
            nn.Sequential(ComplexityExpert(dim, rank, patch)) for rank, patch in zip(ranks, patch_sizes, strict=True)
        )
        self.proj_out = nn.Conv2d(dim, dim, kernel_size=1, bias=False)
        expert_sizes = [sum(p.numel() for p in expert.parameters()) for expert in self.experts]
        self.routing = ExpertRouter(dim, freq_dim, num_experts, top_k, expert_sizes,
                                    use_complexity_bias=with_complexity, complexity_scale=complexity_scale)

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor, shared: torch.Tensor,
                noise: RoutingNoise) -> tuple[torch.Tensor, torch.Tensor | None]:
        gates, loss = self.routing(x, freq_emb, noise)
        mixed = torch.zeros_like(x, dtype=torch.float32)
        for index, expert in enumerate(self.experts):
            rows = torch.nonzero(gates[:, index] > 0).flatten()
            if rows.numel() == 0:
                continue
            out = expert[0](x[rows], shared[rows]) * gates[rows, index].reshape(-1, 1, 1, 1)
            mixed = mixed.index_add(0, rows, out.float())
        return self.proj_out(mixed), loss


class LaplacianHighPass(nn.Module):
    """Depthwise 3x3 conv initialised to the 8-neighbour Laplacian [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]].

    The official ``HighPassConv2d(freeze=True)`` sets ``requires_grad_ = False`` (an attribute assignment,
    not the method call), so the kernel was never frozen: it is an ordinary trained parameter, stored in
    the checkpoint, and it is trainable here too.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=False)
        laplacian = torch.full((3, 3), -1.0)
        laplacian[1, 1] = 8.0
        with torch.no_grad():
            self.conv.weight.copy_(laplacian.expand(channels, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FrequencyEmbedding(nn.Module):
    """Degradation embedding of the bottleneck (official ``FrequencyEmbedding``): GELU(high-pass(x)),
    spatial mean, then MLP C -> 2C -> C (GELU). Output (B, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.high_conv = nn.Sequential(LaplacianHighPass(dim), nn.GELU())
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.high_conv(x).mean(dim=(-2, -1)))


class EncoderBlock(nn.Module):
    """Restormer transformer block with MoCE-IR key names (``norms.0``, ``mixer``, ``norms.1``, ``ffn``):
    ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, expansion: float, bias: bool, norm: LayerNormType) -> None:
        super().__init__()
        self.norms = nn.ModuleList([ChannelLayerNorm(dim, norm), ChannelLayerNorm(dim, norm)])
        self.mixer = MDTA(dim, num_heads, bias)
        self.ffn = GDFN(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norms[0](x))
        return x + self.ffn(self.norms[1](x))


class DecoderBlock(nn.Module):
    """MoCE-IR decoder block. After LN, two 1x1 convs (with bias) give a shared branch, processed by
    channel self-attention, and an adapter branch, processed by the :class:`ComplexityExpertLayer` (whose
    experts are gated by the shared branch); cross-attention (queries: adapter branch, keys/values: shared
    branch) plus the block input, then ``x + ffn(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, expansion: float, bias: bool, norm: LayerNormType,
                 freq_dim: int, num_experts: int, top_k: int, with_complexity: bool, complexity_scale: str) -> None:
        super().__init__()
        self.norms = nn.ModuleList([ChannelLayerNorm(dim, norm), ChannelLayerNorm(dim, norm)])
        self.proj = nn.ModuleList([nn.Conv2d(dim, dim, kernel_size=1), nn.Conv2d(dim, dim, kernel_size=1)])
        self.shared = MDTA(dim, num_heads, bias)
        self.mixer = ChannelCrossAttention(dim, num_heads, bias, kv_kernel_size=7)
        self.ffn = GDFN(dim, expansion, bias)
        self.adapter = ComplexityExpertLayer(dim, freq_dim, num_experts, top_k, with_complexity, complexity_scale)

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor,
                noise: RoutingNoise) -> tuple[torch.Tensor, torch.Tensor | None]:
        normed = self.norms[0](x)
        shared = self.shared(self.proj[0](normed))
        adapted, loss = self.adapter(self.proj[1](normed), freq_emb, shared, noise)
        x = self.mixer(adapted, shared) + x
        return x + self.ffn(self.norms[1](x)), loss


class EncoderGroup(nn.Module):
    """A stack of :class:`EncoderBlock` (official ``EncoderResidualGroup``; keys ``layers.<i>.``)."""

    def __init__(self, dim: int, num_heads: int, num_blocks: int, expansion: float, bias: bool,
                 norm: LayerNormType) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderBlock(dim, num_heads, expansion, bias, norm) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class DecoderGroup(nn.Module):
    """A stack of :class:`DecoderBlock` (official ``DecoderResidualGroup``); returns the features and the
    sum of the blocks' balance losses (None outside training)."""

    def __init__(self, dim: int, num_heads: int, num_blocks: int, expansion: float, bias: bool,
                 norm: LayerNormType, **expert_args: object) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderBlock(dim, num_heads, expansion, bias, norm, **expert_args)  # type: ignore[arg-type]
            for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor,
                noise: RoutingNoise) -> tuple[torch.Tensor, torch.Tensor | None]:
        total: torch.Tensor | None = None
        for layer in self.layers:
            x, loss = layer(x, freq_emb, noise)
            if loss is not None:
                total = loss if total is None else total + loss
        return x, total
