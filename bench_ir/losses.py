"""Training losses: pixel L1, Fourier-domain L1, and MIRAGE's SPD-manifold contrastive term.

Conventions: images are float tensors (B, C, H, W) in the model's range (bench-ir uses [0, 1] RGB);
every loss is a scalar mean over all elements (or over the batch for InfoNCE). The MIRAGE objective follows
the official training script: ``L1 + 0.1 * Fourier + 0.01 * SPD`` (the paper's App. C.4 says 0.05 for SPD), and
computes every term in float32 (float64 inputs stay float64) with autocast off, whatever autocast the caller runs
under (``--dtype bf16`` autocasts the model's forward, not its losses).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "SpdProjections",
    "l1_loss",
    "fourier_loss",
    "spd_covariance",
    "info_nce",
    "spd_contrastive_loss",
    "MirageObjective",
    "FFT_WEIGHT",
    "SPD_WEIGHT_CODE",
    "SPD_WEIGHT_PAPER",
    "SPD_TEMPERATURE",
]

FFT_WEIGHT = 0.1
"""Fourier loss weight of the official scripts (``--fft_loss_weight``) and of the paper."""
SPD_WEIGHT_CODE = 0.01
"""SPD contrastive weight hard-coded in the official ``MIRAGE.forward`` (what produced the checkpoints)."""
SPD_WEIGHT_PAPER = 0.05
"""SPD contrastive weight stated in the paper (App. C.4)."""
SPD_TEMPERATURE = 0.1
"""InfoNCE temperature of the official code."""
SPD_EPS = 1e-5
"""Diagonal loading added to every covariance so that it is strictly positive definite."""


class SpdProjections(NamedTuple):
    """Training-time output of the MIRAGE SPD head: two L2-normalised embeddings of shape (B, 64).

    z_shallow: from the covariance of the shallow (encoder level 1) features.
    z_latent: from the covariance of the bottleneck features (after ``reduce_dim_level3``).
    """

    z_shallow: torch.Tensor
    z_latent: torch.Tensor


def l1_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (``nn.L1Loss()``)."""
    return F.l1_loss(out, target)


def fourier_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the real and imaginary parts of ``torch.fft.rfft2`` of the two images.

    The FFT runs over the last two dims with norm "backward" (unscaled forward transform); half-precision
    inputs are upcast to float32; the mean is over B x C x H x (W//2+1) x 2 real numbers. This is the
    official ``FFTLoss`` with ``loss_weight=1``.
    """
    out_spectrum = torch.view_as_real(torch.fft.rfft2(_at_least_float32(out)))
    target_spectrum = torch.view_as_real(torch.fft.rfft2(_at_least_float32(target)))
    return F.l1_loss(out_spectrum, target_spectrum)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A block where autocast is off for ``device_type`` (nothing to do where it is not on)."""
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def spd_covariance(features: torch.Tensor, eps: float = SPD_EPS) -> torch.Tensor:
    """Channel covariance over spatial positions: (B, C, H, W) -> (B, C, C).

    Each channel is centred on its spatial mean; the sum of products is divided by N - 1 (N = H*W,
    unbiased, as ``numpy.cov``), then ``eps * I`` is added so the matrix is symmetric positive definite.
    """
    batch, channels, height, width = features.shape
    positions = height * width
    if positions < 2:
        raise ValueError(f"spd_covariance needs at least 2 spatial positions, got {height}x{width}")
    flat = features.reshape(batch, channels, positions)
    centred = flat - flat.mean(dim=2, keepdim=True)
    covariance = centred @ centred.transpose(1, 2) / (positions - 1)
    identity = torch.eye(channels, dtype=covariance.dtype, device=covariance.device)
    return covariance + eps * identity


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = SPD_TEMPERATURE) -> torch.Tensor:
    """One-directional InfoNCE: cross-entropy of ``z_a @ z_b.T / temperature`` against ``arange(B)``.

    Both (B, D) inputs are L2-normalised along D first. Row i's positive is z_b[i]; the other rows of
    z_b are its negatives. Mean over the B rows; exactly 0 when B == 1.
    """
    z_a = F.normalize(z_a, dim=1)
    z_b = F.normalize(z_b, dim=1)
    logits = z_a @ z_b.T / temperature
    labels = torch.arange(z_a.shape[0], device=z_a.device)
    return F.cross_entropy(logits, labels)


def spd_contrastive_loss(spd: SpdProjections, temperature: float = SPD_TEMPERATURE) -> torch.Tensor:
    """MIRAGE's SPD term, unweighted: ``info_nce(z_shallow, z_latent)`` (shallow rows vs latent columns).

    The official forward returns this value already multiplied by 0.01; here the weight lives in
    :class:`MirageObjective`.
    """
    return info_nce(spd.z_shallow, spd.z_latent, temperature)


@dataclass(frozen=True)
class MirageObjective:
    """``total = l1 + fft_weight * fourier + spd_weight * spd`` (official recipe: 0.1 and 0.01).

    Calling it returns a dict of scalar tensors: ``l1``, ``fourier`` and ``spd`` unweighted, and
    ``total`` weighted (the one to back-propagate). Use ``spd_weight=SPD_WEIGHT_PAPER`` for the paper's
    0.05, and ``spd_weight=0`` for models without an SPD head (then ``spd`` may be None and is logged as 0).
    Every term is computed from float32 copies of half-precision inputs with autocast off, so the loss under
    autocast equals the float32 loss of the same (upcast) inputs.
    """

    fft_weight: float = FFT_WEIGHT
    spd_weight: float = SPD_WEIGHT_CODE
    temperature: float = SPD_TEMPERATURE

    def __call__(
        self, restored: torch.Tensor, target: torch.Tensor, spd: SpdProjections | None = None
    ) -> dict[str, torch.Tensor]:
        restored, target = _at_least_float32(restored), _at_least_float32(target)
        if spd is not None:
            spd = SpdProjections(_at_least_float32(spd.z_shallow), _at_least_float32(spd.z_latent))
        with _autocast_off(restored.device.type):
            return self._terms(restored, target, spd)

    def _terms(self, restored: torch.Tensor, target: torch.Tensor,
               spd: SpdProjections | None) -> dict[str, torch.Tensor]:
        l1 = l1_loss(restored, target)
        fourier = fourier_loss(restored, target)
        if spd is not None:
            spd_term = spd_contrastive_loss(spd, self.temperature)
        elif self.spd_weight:
            raise ValueError(
                f"MirageObjective has spd_weight={self.spd_weight} but got no SPD projections; run the "
                "model in train() mode (it then returns (restored, spd)) or set spd_weight=0"
            )
        else:
            spd_term = l1.new_zeros(())
        total = l1 + self.fft_weight * fourier + self.spd_weight * spd_term
        return {"l1": l1, "fourier": fourier, "spd": spd_term, "total": total}
