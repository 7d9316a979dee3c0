"""The torch metrics reproduce scikit-image on real photos (the project's reference-exactness rule).

Reference calls are the ones MIRAGE makes: ``np.clip`` to [0, 1], float32 HWC arrays,
``peak_signal_noise_ratio(gt, out, data_range=1)`` and
``structural_similarity(gt, out, data_range=1, channel_axis=2)``; M2 adds ``gaussian_weights=True``.
Tolerances: |dPSNR| <= 1e-3 dB and |dSSIM| <= 1e-5 per image.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data, transform
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench_ir.metrics.functional import psnr, ssim
from bench_ir.metrics.scoring import score_pair_batch

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

PSNR_TOL = 1e-3
SSIM_TOL = 1e-5
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field"]
SIZES = [(321, 481), (131, 97), (48, 80)]  # (H, W): BSD68-like, odd portrait, small
DISTORTIONS = ["gaussian_noise", "blur", "jpeg", "constant_shift"]


@cache
def ground_truth(photo: str, size: tuple[int, int]) -> np.ndarray:
    """A real colour photo resized to ``size``, float32 HWC in [0, 1]."""
    image = getattr(data, photo)()[..., :3]
    return transform.resize(image, size, anti_aliasing=True).astype(np.float32)


def distort(gt: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """A restoration-like output; noise and shift leave [0, 1] so the clamp matters."""
    if kind == "gaussian_noise":
        return gt + np.random.default_rng(seed).normal(0.0, 0.06, gt.shape).astype(np.float32)
    if kind == "blur":
        return gaussian_filter(gt, sigma=(1.2, 1.2, 0)).astype(np.float32)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(np.round(gt * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=20)
        return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
    if kind == "constant_shift":
        return gt + np.float32(0.04)
    raise ValueError(kind)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def skimage_scores(out: np.ndarray, gt: np.ndarray, gaussian: bool = False) -> tuple[float, float]:
    out = np.clip(out, 0, 1).astype(np.float32)
    gt = np.clip(gt, 0, 1).astype(np.float32)
    value_psnr = peak_signal_noise_ratio(gt, out, data_range=1)
    if gaussian:
        value_ssim = structural_similarity(
            gt, out, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=True
        )
    else:
        value_ssim = structural_similarity(gt, out, data_range=1, channel_axis=2)
    return float(value_psnr), float(value_ssim)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("photo", PHOTOS)
def test_m1_matches_skimage_uniform_ssim_on_every_photo(photo: str, size: tuple[int, int]) -> None:
    gt = ground_truth(photo, size)
    for kind in DISTORTIONS:
        out = distort(gt, kind)
        ref_psnr, ref_ssim = skimage_scores(out, gt)
        scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M1")
        assert abs(scores["psnr"].item() - ref_psnr) <= PSNR_TOL, kind
        assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL, kind


@pytest.mark.parametrize("size", SIZES[1:], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("photo", PHOTOS)
def test_m2_matches_skimage_gaussian_ssim_on_every_photo(photo: str, size: tuple[int, int]) -> None:
    gt = ground_truth(photo, size)
    for kind in DISTORTIONS:
        out = distort(gt, kind)
        ref_psnr, ref_ssim = skimage_scores(out, gt, gaussian=True)
        scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M2")
        assert abs(scores["psnr"].item() - ref_psnr) <= PSNR_TOL, kind
        assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL, kind


def test_worst_case_deviation_is_orders_below_tolerance() -> None:
    """Float64 torch vs float32 skimage differ only by skimage's own float32 rounding."""
    worst_psnr = worst_ssim = 0.0
    for photo in PHOTOS:
        gt = ground_truth(photo, SIZES[1])
        for kind in DISTORTIONS:
            out = distort(gt, kind)
            ref_psnr, ref_ssim = skimage_scores(out, gt)
            scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M1")
            worst_psnr = max(worst_psnr, abs(scores["psnr"].item() - ref_psnr))
            worst_ssim = max(worst_ssim, abs(scores["ssim"].item() - ref_ssim))
    assert worst_psnr < 1e-5
    assert worst_ssim < 2e-6


def test_single_plane_ssim_and_psnr_match_skimage_on_2d_arrays() -> None:
    gt = ground_truth("coffee", (131, 97))[..., 1]
    out = np.clip(distort(gt[..., None], "gaussian_noise")[..., 0], 0, 1)
    pred_t, gt_t = torch.from_numpy(out)[None, None], torch.from_numpy(gt)[None, None]
    assert abs(ssim(pred_t, gt_t).item() - structural_similarity(gt, out, data_range=1)) <= SSIM_TOL
    assert abs(psnr(pred_t, gt_t).item() - peak_signal_noise_ratio(gt, out, data_range=1)) <= PSNR_TOL


def test_ssim_without_border_trim_matches_skimage_full_map_with_reflect_padding() -> None:
    gt = ground_truth("chelsea", (48, 80))
    out = np.clip(distort(gt, "blur"), 0, 1)
    _, full_map = structural_similarity(gt, out, data_range=1, channel_axis=2, full=True)
    value = ssim(to_tensor(out), to_tensor(gt), crop_border=0).item()
    assert abs(value - float(full_map.astype(np.float64).mean())) <= SSIM_TOL


def test_batched_call_equals_per_image_calls() -> None:
    gt = ground_truth("rocket", (48, 80))
    outs = [distort(gt, kind) for kind in DISTORTIONS]
    batch_pred = torch.cat([to_tensor(o) for o in outs])
    batch_gt = torch.cat([to_tensor(gt)] * len(outs))
    for name in ("M1", "M2"):
        batched = score_pair_batch(batch_pred, batch_gt, name)
        assert batched["psnr"].shape == batched["ssim"].shape == (len(outs),)
        for i, out in enumerate(outs):
            single = score_pair_batch(to_tensor(out), to_tensor(gt), name)
            assert torch.allclose(batched["psnr"][i], single["psnr"][0], rtol=0, atol=1e-12)
            assert torch.allclose(batched["ssim"][i], single["ssim"][0], rtol=0, atol=1e-12)


def test_identical_images_give_ssim_one_and_infinite_psnr_like_skimage() -> None:
    gt = ground_truth("astronaut", (48, 80))
    with np.errstate(divide="ignore"):
        ref_psnr, ref_ssim = skimage_scores(gt, gt)
    scores = score_pair_batch(to_tensor(gt), to_tensor(gt), "M1")
    assert ref_psnr == float("inf") and scores["psnr"].item() == float("inf")
    assert ref_ssim == 1.0 and scores["ssim"].item() == 1.0


def test_functional_metrics_return_float64_per_image_on_the_input_device() -> None:
    pred = torch.rand(3, 3, 20, 24)
    target = torch.rand(3, 3, 20, 24)
    for values in (psnr(pred, target), ssim(pred, target), ssim(pred, target, window="gaussian")):
        assert values.shape == (3,)
        assert values.dtype == torch.float64
        assert values.device == pred.device


def test_ssim_rejects_a_window_larger_than_the_image() -> None:
    with pytest.raises(ValueError, match="exceeds the image"):
        ssim(torch.rand(1, 3, 6, 40), torch.rand(1, 3, 6, 40))
