"""AirNet (CVPR 2022, "All-In-One Image Restoration for Unknown Corruption"), reimplemented from the
description of the official code (XLearning-SCU/2022-CVPR-AirNet @bedea82, ``net/*.py``; no licence file).

Two parts, with the official attribute names so that the released plain state_dicts (``ckpt/All.pth``)
load with ``strict=True``:

- ``R``: the degradation-guided restoration network (DGRN): 5 groups x 5 blocks of two degradation-guided
  modules (deformable conv + spatial feature transform, both driven by the degradation map), 64 channels,
  full resolution throughout; 6,290,441 parameters.
- ``E``: the contrastive degradation encoder (CBDE), a MoCo wrapper ``E.E`` holding the query encoder
  ``encoder_q``, the momentum key encoder ``encoder_k`` (1,319,936 parameters each, BatchNorm), the
  queue buffer (256, 256 x train_batch_size) and ``queue_ptr``.

Eval: ``forward(x)`` restores (B, 3, H, W) images in [0, 1] of any size; only the query encoder's
full-resolution stem ``E_pre`` (the 64-channel degradation map) is run, which is all the official eval
forward's output depends on (it also runs the rest of the query encoder and discards the result).
Train: ``forward(x_query, x_key)`` follows the official MoCo step (momentum update of ``encoder_k``,
contrastive logits against the queue, enqueue of the keys) and returns
``AirNetTrainingOutput(restored, logits, labels)``; the official loss is L1 + 0.1 x cross-entropy.

The deformable convolution is mmcv's DCNv2 (see :mod:`bench_ir.models.deform_conv` for the conventions);
here it runs on torchvision's kernel, or on the pure-PyTorch reference without torchvision.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench_ir.models.deform_conv import DeformBackend, modulated_deform_conv2d, resolve_backend, split_offset_mask

__all__ = [
    "AirNet",
    "AirNetTrainingOutput",
    "ContrastOutput",
    "DegradationGuidedDeformConv",
    "DegradationGuidedRestorer",
    "MomentumContrast",
    "ResidualEncoder",
]

NEGATIVE_SLOPE = 0.1
"""Every LeakyReLU of AirNet has slope 0.1."""
FEATURES = 64
ENCODER_DIM = 256


def _leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, NEGATIVE_SLOPE)


# ------------------------------------------------------------------------------------------ restorer
class DegradationGuidedDeformConv(nn.Module):
    """Official ``DCN_layer``: a DCNv2 whose offsets and mask come from a conv over concat(x, degradation map).

    ``conv_offset_mask`` (2C -> 3·K channels, same kernel, zero-initialised) gives offsets (first 2K
    channels, (dy, dx) per kernel position) and the mask (sigmoid of the last K); ``weight`` is
    uniform(±1/sqrt(C·K)) at init; no bias in AirNet. ``backend`` is resolved when the layer is built.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False,
                 backend: DeformBackend = "auto") -> None:
        super().__init__()
        self.padding = (kernel_size - 1) // 2
        self.backend = resolve_backend(backend)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.conv_offset_mask = nn.Conv2d(2 * in_channels, 3 * kernel_size * kernel_size, kernel_size,
                                          padding=self.padding, bias=True)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.conv_offset_mask.weight.zero_()
            self.conv_offset_mask.bias.zero_()

    def forward(self, x: Tensor, degradation: Tensor) -> Tensor:
        offset, mask = split_offset_mask(self.conv_offset_mask(torch.cat([x, degradation], dim=1)))
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, stride=1, padding=self.padding,
                                       backend=self.backend)


class FeatureTransform(nn.Module):
    """Official ``SFT_layer``: ``x * gamma(d) + beta(d)``; gamma and beta are 1x1 conv, LeakyReLU, 1x1 conv
    (no biases) of the degradation map d."""

    def __init__(self, channels: int) -> None:
        super().__init__()

        def branch() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.LeakyReLU(NEGATIVE_SLOPE),
                                 nn.Conv2d(channels, channels, 1, bias=False))

        self.conv_gamma = branch()
        self.conv_beta = branch()

    def forward(self, x: Tensor, degradation: Tensor) -> Tensor:
        return x * self.conv_gamma(degradation) + self.conv_beta(degradation)


class GuidedModule(nn.Module):
    """Official ``DGM``: ``x + (dcn(x, d) + sft(x, d))``."""

    def __init__(self, channels: int, kernel_size: int, backend: DeformBackend) -> None:
        super().__init__()
        self.dcn = DegradationGuidedDeformConv(channels, channels, kernel_size, bias=False, backend=backend)
        self.sft = FeatureTransform(channels)

    def forward(self, x: Tensor, degradation: Tensor) -> Tensor:
        return x + (self.dcn(x, degradation) + self.sft(x, degradation))


def _conv3x3(channels_in: int, channels_out: int) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=True)


class GuidedBlock(nn.Module):
    """Official ``DGB``: dgm1, LReLU, conv1, LReLU, dgm2, LReLU, conv2, plus the block input."""

    def __init__(self, channels: int, kernel_size: int, backend: DeformBackend) -> None:
        super().__init__()
        self.dgm1 = GuidedModule(channels, kernel_size, backend)
        self.dgm2 = GuidedModule(channels, kernel_size, backend)
        self.conv1 = _conv3x3(channels, channels)
        self.conv2 = _conv3x3(channels, channels)

    def forward(self, x: Tensor, degradation: Tensor) -> Tensor:
        out = _leaky_relu(self.dgm1(x, degradation))
        out = _leaky_relu(self.conv1(out))
        out = _leaky_relu(self.dgm2(out, degradation))
        return self.conv2(out) + x


class GuidedGroup(nn.Module):
    """Official ``DGG``: ``body`` = n blocks then a 3x3 conv; the group input is added at the end."""

    def __init__(self, channels: int, kernel_size: int, blocks: int, backend: DeformBackend) -> None:
        super().__init__()
        self.body = nn.Sequential(*[GuidedBlock(channels, kernel_size, backend) for _ in range(blocks)],
                                  _conv3x3(channels, channels))

    def forward(self, x: Tensor, degradation: Tensor) -> Tensor:
        res = x
        for block in self.body[:-1]:
            res = block(res, degradation)
        return self.body[-1](res) + x


class DegradationGuidedRestorer(nn.Module):
    """Official ``DGRN``: head 3x3 conv (3 -> 64), ``body`` = 5 groups then a 3x3 conv with a long skip,
    tail 3x3 conv (64 -> 3). No residual connection to the input image."""

    def __init__(self, groups: int = 5, blocks: int = 5, channels: int = FEATURES, kernel_size: int = 3,
                 backend: DeformBackend = "auto") -> None:
        super().__init__()
        self.head = nn.Sequential(_conv3x3(3, channels))
        self.body = nn.Sequential(*[GuidedGroup(channels, kernel_size, blocks, backend) for _ in range(groups)],
                                  _conv3x3(channels, channels))
        self.tail = nn.Sequential(_conv3x3(channels, 3))

    def forward(self, x: Tensor, degradation: Tensor) -> Tensor:
        x = self.head(x)
        res = x
        for group in self.body[:-1]:
            res = group(res, degradation)
        return self.tail(self.body[-1](res) + x)


# ------------------------------------------------------------------------------------------- encoder
class ResBlock(nn.Module):
    """Official encoder ``ResBlock``: LReLU(backbone(x) + shortcut(x)); ``backbone`` = conv3x3 (stride s,
    no bias), BN, LReLU, conv3x3, BN; ``shortcut`` = conv1x1 (stride s, no bias), BN."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(channels_out))

    def forward(self, x: Tensor) -> Tensor:
        return _leaky_relu(self.backbone(x) + self.shortcut(x))


class ResidualEncoder(nn.Module):
    """Official ``ResEncoder``: ``E_pre`` (3 -> 64, full resolution: the degradation map), ``E`` (two
    stride-2 ResBlocks to 256 channels, global average pool) and the projection ``mlp`` (256 -> 256)."""

    def __init__(self, dim: int = ENCODER_DIM) -> None:
        super().__init__()
        self.E_pre = ResBlock(3, FEATURES, stride=1)
        self.E = nn.Sequential(ResBlock(FEATURES, 128, stride=2), ResBlock(128, dim, stride=2),
                               nn.AdaptiveAvgPool2d(1))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(NEGATIVE_SLOPE), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(pooled feature (B, 256), projection (B, 256), degradation map (B, 64, H, W))."""
        degradation = self.E_pre(x)
        feature = self.E(degradation).flatten(1)
        return feature, self.mlp(feature), degradation


class ContrastOutput(NamedTuple):
    """Output of the degradation encoder (official order): pooled query feature (B, 256), logits
    (B, 1 + queue length; column 0 is the positive key) and labels (zeros), both None in eval mode,
    and the degradation map (B, 64, H, W)."""

    embedding: Tensor
    logits: Tensor | None
    labels: Tensor | None
    inter: Tensor


class MomentumContrast(nn.Module):
    """Official ``MoCo`` (single process): query and key encoders, a queue of L2-normalised keys.

    momentum: key-encoder update ``k = m·k + (1 - m)·q`` before each training step's keys; temperature:
    logits are cosine similarities / T. ``queue`` is (dim, queue_size), ``queue_ptr`` the next column.
    """

    def __init__(self, dim: int = ENCODER_DIM, queue_size: int = 5 * ENCODER_DIM, momentum: float = 0.999,
                 temperature: float = 0.07) -> None:
        super().__init__()
        self.queue_size, self.momentum, self.temperature = queue_size, momentum, temperature
        self.encoder_q = ResidualEncoder(dim)
        self.encoder_k = ResidualEncoder(dim)
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            param_k.data.copy_(param_q.data)
            param_k.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self) -> None:
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            param_k.data = param_k.data * self.momentum + param_q.data * (1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Overwrite the queue columns at ``queue_ptr`` with ``keys`` (B, dim); B must divide the queue length."""
        batch = keys.shape[0]
        if self.queue_size % batch:
            raise ValueError(f"the MoCo queue length {self.queue_size} must be a multiple of the training "
                             f"batch ({batch})")
        ptr = int(self.queue_ptr)
        self.queue[:, ptr:ptr + batch] = keys.transpose(0, 1)
        self.queue_ptr[0] = (ptr + batch) % self.queue_size

    def degradation_map(self, x: Tensor) -> Tensor:
        """The query encoder's 64-channel full-resolution map: what the restorer is conditioned on."""
        return self.encoder_q.E_pre(x)

    def forward(self, im_q: Tensor, im_k: Tensor) -> ContrastOutput:
        """Training: one step's contrastive outputs; updates ``encoder_k`` and the queue (official order).
        Eval: the query encoder's outputs only (``im_k`` unused, nothing updated), as officially."""
        embedding, query, degradation = self.encoder_q(im_q)
        if not self.training:
            return ContrastOutput(embedding, None, None, degradation)
        query = F.normalize(query, dim=1)
        with torch.no_grad():
            self.momentum_update()
            key = F.normalize(self.encoder_k(im_k)[1], dim=1)
        positive = torch.einsum("nc,nc->n", query, key).unsqueeze(-1)
        negative = torch.einsum("nc,ck->nk", query, self.queue.clone().detach())
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        self.enqueue(key)
        return ContrastOutput(embedding, logits, labels, degradation)


class DegradationEncoder(nn.Module):
    """Official ``CBDE``: holds the MoCo module as ``E`` (state_dict keys ``E.E.*`` inside AirNet)."""

    def __init__(self, queue_size: int, dim: int = ENCODER_DIM) -> None:
        super().__init__()
        self.E = MomentumContrast(dim=dim, queue_size=queue_size)

    def forward(self, x_query: Tensor, x_key: Tensor) -> ContrastOutput:
        return self.E(x_query, x_key)


# ------------------------------------------------------------------------------------------ AirNet
class AirNetTrainingOutput(NamedTuple):
    """Training output (official order): restored image, contrastive logits, labels."""

    restored: Tensor
    logits: Tensor
    labels: Tensor


class AirNet(nn.Module):
    """AirNet with 8,930,313 parameters (restorer + query encoder + momentum key encoder).

    train_batch_size: the official ``opt.batch_size``; the MoCo queue holds 256 x train_batch_size keys, so it
    must match the checkpoint: 5 for ``All.pth`` (3 degradations, 5 training tasks), 3 for
    ``Denoise.pth``, 1 for ``Derain.pth`` and ``Dehaze.pth``.
    deform_backend: ``auto`` (torchvision when installed), ``torchvision`` or ``reference``; the resolved
    choice is ``deform_backend`` on the built model.
    """

    def __init__(self, train_batch_size: int = 5, deform_backend: DeformBackend = "auto") -> None:
        super().__init__()
        if train_batch_size < 1:
            raise ValueError(f"train_batch_size must be >= 1, got {train_batch_size}")
        self.deform_backend = resolve_backend(deform_backend)
        self.R = DegradationGuidedRestorer(backend=self.deform_backend)
        self.E = DegradationEncoder(queue_size=train_batch_size * ENCODER_DIM)

    def forward(self, x_query: Tensor, x_key: Tensor | None = None) -> Tensor | AirNetTrainingOutput:
        """Eval: the restored image (B, 3, H, W). Train: ``AirNetTrainingOutput``; ``x_key`` (another crop
        of the same degraded image) defaults to ``x_query``."""
        if not self.training:
            return self.R(x_query, self.E.E.degradation_map(x_query))
        contrast = self.E(x_query, x_query if x_key is None else x_key)
        assert contrast.logits is not None and contrast.labels is not None  # train mode
        return AirNetTrainingOutput(self.R(x_query, contrast.inter), contrast.logits, contrast.labels)

    def training_only_modules(self) -> list[str]:
        """Modules the restored image does not depend on: the key encoder and the query encoder's
        pooled branch and projection (used only by the contrastive loss)."""
        return ["E.E.encoder_k", "E.E.encoder_q.E", "E.E.encoder_q.mlp"]
