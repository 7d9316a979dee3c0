"""The convention table (M1..M7) and what each convention does to a pair of images.

M3..M7 are checked against independent NumPy / OpenCV / SciPy re-statements of the reference
scripts (PROTOCOLS.md section 1.4): OneRestore (M3), Histoformer (M4), BasicSR/WeatherDiffusion
(M5), DiffUIR (M6) and DCPT (M7).
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import correlate, gaussian_filter
from skimage import data, transform
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.util import img_as_ubyte

from bench_ir.metrics.conventions import (
    HIGHER_IS_BETTER,
    MetricConvention,
    get_convention,
    list_conventions,
)
from bench_ir.metrics.functional import quantize_uint8, rgb_to_y, ssim_basicsr, ssim_gaussian_3d
from bench_ir.metrics.scoring import score_pair_batch

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

PSNR_TOL = 1e-3
SSIM_TOL = 1e-5


@cache
def photo_pair(photo: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(restored-like output, ground truth) float32 HWC; the output leaves [0, 1] in places."""
    gt = transform.resize(getattr(data, photo)()[..., :3], size, anti_aliasing=True).astype(np.float32)
    blurred = gaussian_filter(gt, sigma=(1.0, 1.0, 0))
    noise = np.random.default_rng(1).normal(0.0, 0.03, gt.shape)
    return (blurred + noise).astype(np.float32), gt


PAIRS = [("coffee", (97, 131)), ("astronaut", (64, 80)), ("rocket", (131, 97))]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def bt601_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB float image in [0, 1], on the [0, 1] scale (16-235 range)."""
    return (16.0 + rgb @ np.array([65.481, 128.553, 24.966])) / 255.0


def basicsr_ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR ``_ssim`` on 0-255 float64 planes: cv2 11x11 Gaussian, valid region."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu1, mu2 = filt(a), filt(b)
    s1, s2, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


# --- the table -------------------------------------------------------------------------------------


def test_the_table_lists_m1_to_m7_in_order_with_unique_names() -> None:
    assert list_conventions() == [f"M{i}" for i in range(1, 8)]
    conventions = [get_convention(name) for name in list_conventions()]
    assert all(isinstance(c, MetricConvention) for c in conventions)
    assert [c.id for c in conventions] == list_conventions()
    assert len({c.name for c in conventions}) == 7


def test_conventions_are_found_by_id_or_name_case_insensitively() -> None:
    assert get_convention("m1") is get_convention("M1") is get_convention("skimage-uniform")
    assert get_convention("Histoformer-AllWeather").id == "M4"
    assert get_convention(get_convention("M6")).id == "M6"


def test_an_unknown_convention_gets_a_did_you_mean_hint() -> None:
    with pytest.raises(KeyError, match=r"Did you mean M1 \(skimage-uniform\)"):
        get_convention("skimage-unifrom")
    with pytest.raises(KeyError, match="Known: M1"):
        get_convention("zzz")


def test_conventions_are_frozen() -> None:
    with pytest.raises(AttributeError):
        get_convention("M1").clamp = False  # type: ignore[misc]


def test_m1_description_states_every_knob() -> None:
    text = get_convention("M1").describe()
    assert text.startswith("RGB, [0,1] float, clamped, not quantized; ")
    assert "SSIM 7x7 uniform window, sample covariance, per-channel mean, 3-px border trimmed" in text
    assert "LPIPS if scored: AlexNet (inputs mapped x*2-1)" in text
    assert text.endswith("per-image mean")


def test_every_convention_has_its_own_description_and_references() -> None:
    conventions = [get_convention(name) for name in list_conventions()]
    descriptions = [c.describe() for c in conventions]
    assert len(set(descriptions)) == len(descriptions)
    assert all(c.references for c in conventions)
    assert "round half to even" in get_convention("M4").describe()
    assert "red and blue weights swapped" in get_convention("M4").describe()
    assert "11x11x11 Gaussian" in get_convention("M6").describe()


def test_psnr_and_ssim_are_higher_is_better_and_lpips_lower() -> None:
    assert dict(HIGHER_IS_BETTER) == {"psnr": True, "ssim": True, "lpips": False}
    assert get_convention("M3").higher_is_better["lpips"] is False


# --- building blocks -------------------------------------------------------------------------------


def test_half_even_quantization_equals_skimage_img_as_ubyte() -> None:
    image = np.random.default_rng(0).random((40, 50, 3), dtype=np.float32)
    image[0, :4, 0] = np.array([0.5, 1.5, 2.5, 254.5], dtype=np.float32) / 255  # ties
    expected = img_as_ubyte(image).astype(np.float32) / 255
    got = quantize_uint8(to_tensor(image), "half_even")[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.round(got * 255), np.round(expected * 255))


def test_rounding_rules_differ_only_where_they_should() -> None:
    levels = torch.tensor([0.5, 1.5, 2.4, 2.6, 254.5, 300.0, -4.0], dtype=torch.float64) / 255
    as_levels = {r: (quantize_uint8(levels, r) * 255).round().tolist() for r in ("half_even", "half_up", "floor")}
    assert as_levels["half_even"] == [0, 2, 2, 3, 254, 255, 0]
    assert as_levels["half_up"] == [1, 2, 2, 3, 255, 255, 0]
    assert as_levels["floor"] == [0, 1, 2, 2, 254, 255, 0]


def test_luma_is_bt601_on_the_16_235_scale_for_either_channel_order() -> None:
    image = np.random.default_rng(2).random((9, 11, 3))
    expected = bt601_y(image)
    rgb = rgb_to_y(to_tensor(image))[0, 0].numpy()
    bgr = rgb_to_y(to_tensor(image[..., ::-1]), order="bgr")[0, 0].numpy()
    np.testing.assert_allclose(rgb, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bgr, expected, rtol=0, atol=1e-12)
    assert rgb_to_y(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16 / 255)
    assert rgb_to_y(torch.ones(1, 3, 1, 1)).item() == pytest.approx(235 / 255)


def test_swapped_luma_is_histoformers_rgb_weights_on_a_bgr_array() -> None:
    image = np.random.default_rng(3).random((9, 11, 3))
    bgr = image[..., ::-1]
    histoformer = (np.dot(bgr * 255, np.array([65.481, 128.553, 24.966]) / 255) + 16) / 255
    got = rgb_to_y(to_tensor(image), swapped=True)[0, 0].numpy()
    np.testing.assert_allclose(got, histoformer, rtol=0, atol=1e-12)
    assert not np.allclose(got, bt601_y(image))


# --- M3..M7 against independent restatements of the reference scripts ------------------------------


@pytest.mark.parametrize(("photo", "size"), PAIRS)
def test_m3_matches_skimage_on_half_up_uint8_images(photo: str, size: tuple[int, int]) -> None:
    out, gt = photo_pair(photo, size)
    out8 = np.floor(np.clip(out, 0, 1) * np.float32(255) + np.float32(0.5)) / 255.0  # torchvision save_image
    gt8 = np.floor(gt * np.float32(255) + np.float32(0.5)) / 255.0
    scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M3")
    assert abs(scores["psnr"].item() - peak_signal_noise_ratio(gt8, out8, data_range=1.0)) <= PSNR_TOL
    ref_ssim = structural_similarity(gt8, out8, win_size=7, channel_axis=-1, data_range=1.0)
    assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL


@pytest.mark.parametrize(("photo", "size"), PAIRS)
def test_m4_matches_histoformers_swapped_luma_and_11px_uniform_ssim(photo: str, size: tuple[int, int]) -> None:
    out, gt = photo_pair(photo, size)
    out_bgr = img_as_ubyte(np.clip(out, 0, 1))[..., ::-1].astype(np.float32) / 255.0
    gt_bgr = img_as_ubyte(gt)[..., ::-1].astype(np.float32) / 255.0

    def histoformer_y(bgr: np.ndarray) -> np.ndarray:
        return ((np.dot(bgr.astype(np.float64) * 255, np.array([65.481, 128.553, 24.966]) / 255) + 16) / 255).astype(
            np.float32
        )

    y_out, y_gt = histoformer_y(out_bgr), histoformer_y(gt_bgr)
    scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M4")
    assert abs(scores["psnr"].item() - peak_signal_noise_ratio(y_out, y_gt, data_range=1)) <= PSNR_TOL
    ref_ssim = structural_similarity(y_out, y_gt, win_size=11, data_range=1)
    assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL


@pytest.mark.parametrize(("photo", "size"), PAIRS)
def test_m5_matches_basicsr_y_channel_on_saved_pngs(photo: str, size: tuple[int, int]) -> None:
    out, gt = photo_pair(photo, size)
    out255 = np.floor(np.clip(out, 0, 1) * 255 + 0.5)
    gt255 = np.floor(gt * 255 + 0.5)
    y_out, y_gt = bt601_y(out255 / 255) * 255, bt601_y(gt255 / 255) * 255
    ref_psnr = 20 * np.log10(255.0 / np.sqrt(np.mean((y_out - y_gt) ** 2)))
    scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M5")
    assert abs(scores["psnr"].item() - ref_psnr) <= PSNR_TOL
    assert abs(scores["ssim"].item() - basicsr_ssim_plane(y_out, y_gt)) <= SSIM_TOL


def diffuir_reference(out: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """DiffUIR test_udc: tensor2img rounding, 255-scale PSNR, 11x11x11 Gaussian SSIM, replicate border."""
    sr = np.round(np.clip(out, 0, 1) * np.float32(255)).astype(np.float64)
    hr = np.round(np.clip(gt, 0, 1) * np.float32(255)).astype(np.float64)
    peak = 1.0 if sr.max() <= 1 else 255.0
    ref_psnr = 20 * np.log10(peak / np.sqrt(np.mean((sr - hr) ** 2)))
    k = cv2.getGaussianKernel(11, 1.5)[:, 0]
    kernel = k[:, None, None] * k[None, :, None] * k[None, None, :]

    def filt(x: np.ndarray) -> np.ndarray:
        return correlate(x, kernel, mode="nearest")

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu1, mu2 = filt(sr), filt(hr)
    s1, s2, s12 = filt(sr * sr) - mu1**2, filt(hr * hr) - mu2**2, filt(sr * hr) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(ref_psnr), float(ssim_map.mean())


@pytest.mark.parametrize(("photo", "size"), PAIRS)
def test_m6_matches_diffuirs_3d_gaussian_ssim(photo: str, size: tuple[int, int]) -> None:
    out, gt = photo_pair(photo, size)
    ref_psnr, ref_ssim = diffuir_reference(out, gt)
    scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M6")
    assert abs(scores["psnr"].item() - ref_psnr) <= PSNR_TOL
    assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL


def test_m6_drops_the_peak_to_one_for_an_almost_black_prediction() -> None:
    _, gt = photo_pair("coffee", (64, 80))
    dark = np.random.default_rng(4).choice([0.0, 1.0 / 255], size=gt.shape).astype(np.float32)
    ref_psnr, ref_ssim = diffuir_reference(dark, gt)
    scores = score_pair_batch(to_tensor(dark), to_tensor(gt), "M6")
    assert ref_psnr < 0  # peak 1 on the 0-255 scale: the quirk is visible in the number
    assert abs(scores["psnr"].item() - ref_psnr) <= PSNR_TOL
    assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL


@pytest.mark.parametrize(("photo", "size"), PAIRS)
def test_m7_matches_dcpts_per_channel_matlab_ssim_on_rounded_uint8(photo: str, size: tuple[int, int]) -> None:
    out, gt = photo_pair(photo, size)
    out255 = np.round(np.clip(out, 0, 1) * np.float32(255)).astype(np.float64)
    gt255 = np.round(gt * np.float32(255)).astype(np.float64)
    ref_psnr = 10 * np.log10(255.0**2 / np.mean((out255 - gt255) ** 2))
    ref_ssim = np.mean([basicsr_ssim_plane(out255[..., c], gt255[..., c]) for c in range(3)])
    scores = score_pair_batch(to_tensor(out), to_tensor(gt), "M7")
    assert abs(scores["psnr"].item() - ref_psnr) <= PSNR_TOL
    assert abs(scores["ssim"].item() - ref_ssim) <= SSIM_TOL


def test_basicsr_and_3d_ssim_give_one_for_identical_images() -> None:
    image = to_tensor(photo_pair("chelsea", (64, 80))[1])
    assert ssim_basicsr(image, image).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim_gaussian_3d(image, image).item() == pytest.approx(1.0, abs=1e-12)


# --- score_pair_batch mechanics --------------------------------------------------------------------


def test_quantizing_conventions_score_a_sub_level_perturbation_as_no_change() -> None:
    _, gt = photo_pair("astronaut", (64, 80))
    gt8 = np.round(gt * 255) / 255
    nudged = gt8 + np.float32(0.2 / 255)
    for name in ("M4", "M6", "M7"):
        scores = score_pair_batch(to_tensor(nudged.astype(np.float32)), to_tensor(gt8.astype(np.float32)), name)
        assert scores["psnr"].item() == float("inf"), name
    assert score_pair_batch(to_tensor(nudged.astype(np.float32)), to_tensor(gt8.astype(np.float32)), "M1")[
        "psnr"
    ].item() == pytest.approx(20 * np.log10(255 / 0.2), abs=1e-3)


def test_lpips_callable_receives_clamped_unquantized_rgb() -> None:
    received: list[torch.Tensor] = []

    def mean_abs_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        received.append(pred)
        return (pred - target).abs().mean(dim=(1, 2, 3))

    pred = torch.full((2, 3, 16, 16), 0.5001)
    pred[0, 0, 0, 0] = 1.7
    scores = score_pair_batch(pred, torch.full_like(pred, 0.5), "M7", lpips=mean_abs_difference)
    assert scores["lpips"].shape == (2,) and scores["lpips"].dtype == torch.float64
    assert received[0].max().item() == 1.0
    assert abs(received[0][1, 0, 0, 0].item() - 0.5001) < 1e-7


def test_scores_are_float64_per_image_for_every_convention() -> None:
    pred, target = torch.rand(2, 3, 24, 20), torch.rand(2, 3, 24, 20)
    for name in list_conventions():
        scores = score_pair_batch(pred, target, name)
        assert set(scores) == {"psnr", "ssim"}
        assert all(v.shape == (2,) and v.dtype == torch.float64 for v in scores.values()), name


def test_luma_conventions_reject_single_channel_input() -> None:
    with pytest.raises(ValueError, match="needs RGB"):
        score_pair_batch(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), "M5")


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="one shape"):
        score_pair_batch(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 18), "M1")
