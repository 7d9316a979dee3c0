"""Training losses against independent formulas (numpy FFT, numpy.cov, a hand-written log-softmax)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from bench_ir.losses import (
    FFT_WEIGHT,
    SPD_WEIGHT_CODE,
    SPD_WEIGHT_PAPER,
    MirageObjective,
    SpdProjections,
    fourier_loss,
    info_nce,
    l1_loss,
    spd_contrastive_loss,
    spd_covariance,
)


def photo_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 48x40 crop of skimage's astronaut in [0, 1] (target) and a noisy, clipped copy (output), float64."""
    clean = data.astronaut()[100:148, 180:220].astype(np.float64) / 255.0
    noise = np.random.default_rng(0).normal(0.0, 25 / 255, clean.shape)
    noisy = np.clip(clean + noise, 0.0, 1.0)
    return _as_batch(noisy), _as_batch(clean)


def _as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def test_l1_of_identical_images_is_zero() -> None:
    _, clean = photo_pair()
    assert l1_loss(clean, clean.clone()).item() == 0.0


def test_l1_is_the_mean_absolute_difference() -> None:
    out = torch.tensor([[0.0, 0.5], [1.0, 0.25]])
    target = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    assert l1_loss(out, target).item() == pytest.approx((0.5 + 0.0 + 1.0 + 0.75) / 4)


def test_fourier_loss_matches_numpy_rfft2_on_a_photo() -> None:
    noisy, clean = photo_pair()
    spectrum_difference = np.fft.rfft2(noisy.numpy()) - np.fft.rfft2(clean.numpy())
    expected = np.mean(np.concatenate([np.abs(spectrum_difference.real), np.abs(spectrum_difference.imag)]))
    assert fourier_loss(noisy, clean).item() == pytest.approx(expected, rel=1e-12)


def test_fourier_loss_is_unnormalised_so_it_scales_with_image_size() -> None:
    target = torch.zeros(1, 1, 8, 8)
    constant = torch.full((1, 1, 8, 8), 0.5)
    # Only the DC bin is non-zero: 0.5 * 64 in its real part; mean over 8 x 5 bins x 2 parts.
    assert fourier_loss(constant, target).item() == pytest.approx(0.5 * 64 / (8 * 5 * 2))


def test_fourier_loss_upcasts_half_precision_inputs() -> None:
    noisy, clean = photo_pair()
    loss = fourier_loss(noisy.half(), clean.half())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(fourier_loss(noisy.half().float(), clean.half().float()).item())


def test_spd_covariance_matches_numpy_cov_plus_diagonal_loading() -> None:
    features = torch.randn(3, 5, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    covariance = spd_covariance(features)
    for sample, matrix in zip(features.numpy(), covariance.numpy(), strict=True):
        expected = np.cov(sample.reshape(5, -1)) + 1e-5 * np.eye(5)
        np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=1e-15)


def test_spd_covariance_is_positive_definite_even_for_rank_deficient_features() -> None:
    features = torch.zeros(1, 4, 4, 4, dtype=torch.float64)
    features[0, 0] = torch.arange(16.0).reshape(4, 4)  # one varying channel, three constant ones
    eigenvalues = torch.linalg.eigvalsh(spd_covariance(features)[0])
    assert eigenvalues.min().item() == pytest.approx(1e-5)


def test_spd_covariance_needs_two_spatial_positions() -> None:
    with pytest.raises(ValueError, match="at least 2 spatial positions, got 1x1"):
        spd_covariance(torch.randn(2, 3, 1, 1))


def test_info_nce_matches_a_manual_log_softmax() -> None:
    z_a = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, -2.0]])
    z_b = np.array([[3.0, 4.0], [0.0, 1.0], [-1.0, -1.0]])
    unit_a = z_a / np.linalg.norm(z_a, axis=1, keepdims=True)
    unit_b = z_b / np.linalg.norm(z_b, axis=1, keepdims=True)
    logits = unit_a @ unit_b.T / 0.1
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean(np.diag(log_softmax))
    loss = info_nce(torch.from_numpy(z_a), torch.from_numpy(z_b), temperature=0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_info_nce_is_one_directional() -> None:
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(4, 8, generator=generator), torch.randn(4, 8, generator=generator)
    assert info_nce(z_a, z_b).item() != pytest.approx(info_nce(z_b, z_a).item())


def test_info_nce_of_a_batch_of_one_is_exactly_zero() -> None:
    assert info_nce(torch.randn(1, 64), torch.randn(1, 64)).item() == 0.0


def test_spd_contrastive_loss_anchors_on_the_shallow_embedding() -> None:
    generator = torch.Generator().manual_seed(1)
    spd = SpdProjections(torch.randn(4, 64, generator=generator), torch.randn(4, 64, generator=generator))
    assert spd_contrastive_loss(spd).item() == info_nce(spd.z_shallow, spd.z_latent, 0.1).item()


def test_objective_defaults_are_the_official_code_weights() -> None:
    objective = MirageObjective()
    assert (objective.fft_weight, objective.spd_weight, objective.temperature) == (0.1, 0.01, 0.1)
    assert (FFT_WEIGHT, SPD_WEIGHT_CODE, SPD_WEIGHT_PAPER) == (0.1, 0.01, 0.05)


@pytest.mark.parametrize("spd_weight", [SPD_WEIGHT_CODE, SPD_WEIGHT_PAPER])
def test_objective_total_is_the_weighted_sum_of_its_logged_terms(spd_weight: float) -> None:
    noisy, clean = photo_pair()
    generator = torch.Generator().manual_seed(2)
    spd = SpdProjections(torch.randn(3, 8, generator=generator), torch.randn(3, 8, generator=generator))
    terms = MirageObjective(spd_weight=spd_weight)(noisy, clean, spd)
    assert set(terms) == {"l1", "fourier", "spd", "total"}
    assert terms["l1"].item() == pytest.approx(l1_loss(noisy, clean).item())
    assert terms["fourier"].item() == pytest.approx(fourier_loss(noisy, clean).item())
    assert terms["spd"].item() == pytest.approx(info_nce(spd.z_shallow, spd.z_latent).item())
    expected = terms["l1"] + 0.1 * terms["fourier"] + spd_weight * terms["spd"]
    assert terms["total"].item() == pytest.approx(expected.item())


def test_objective_refuses_a_missing_spd_term_when_it_is_weighted() -> None:
    noisy, clean = photo_pair()
    with pytest.raises(ValueError, match="spd_weight=0.01"):
        MirageObjective()(noisy, clean)


def test_objective_without_spd_head_logs_zero_spd() -> None:
    noisy, clean = photo_pair()
    terms = MirageObjective(spd_weight=0.0)(noisy, clean)
    assert terms["spd"].item() == 0.0
    assert terms["total"].item() == pytest.approx(terms["l1"].item() + 0.1 * terms["fourier"].item())


def test_objective_total_backpropagates_into_the_output() -> None:
    noisy, clean = photo_pair()
    output = noisy.clone().requires_grad_(True)
    MirageObjective(spd_weight=0.0)(output, clean)["total"].backward()
    assert output.grad is not None and output.grad.abs().sum().item() > 0
