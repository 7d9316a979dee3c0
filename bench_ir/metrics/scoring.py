"""The scorer the engine calls: one metric convention applied to a batch of image pairs, in torch.

:func:`score_pair_batch` applies a convention (:mod:`bench_ir.metrics.conventions`) to a batch of same-size
(prediction, ground truth) pairs on their device and returns one value per image; the dataset figure is the plain
mean of those values (every reference script averages per image). PSNR in dB, SSIM unitless, LPIPS when a scorer
is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench_ir.metrics.conventions import MetricConvention, SsimSettings, get_convention
from bench_ir.metrics.functional import psnr, quantize_uint8, rgb_to_y, ssim, ssim_basicsr, ssim_gaussian_3d

__all__ = ["score_pair_batch", "ssim_per_image"]


def ssim_per_image(settings: SsimSettings, pred: torch.Tensor, target: torch.Tensor,
                   data_range: float | torch.Tensor) -> torch.Tensor:
    """SSIM per image ``(B,)`` with the estimator ``settings`` names, for images on the scale ``data_range``."""
    if settings.flavour == "skimage":
        return ssim(
            pred,
            target,
            data_range=data_range,
            window=settings.window,
            win_size=settings.win_size,
            sigma=settings.sigma,
            sample_covariance=settings.sample_covariance,
        )
    if settings.flavour == "basicsr":
        return ssim_basicsr(pred, target, data_range=data_range, sigma=settings.sigma, win_size=settings.win_size)
    if settings.flavour == "gaussian_3d":
        return ssim_gaussian_3d(pred, target, data_range=data_range, sigma=settings.sigma, win_size=settings.win_size)
    raise ValueError(f"unknown SSIM flavour {settings.flavour!r}")


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision model outputs are widened so that 255 x is exact before rounding."""
    if not x.is_floating_point():
        raise TypeError(f"expected floating-point images in [0, 1], got {x.dtype}")
    return x.float() if x.element_size() < 4 else x


def _clamp01(x: torch.Tensor) -> torch.Tensor:
    """``x.clamp(0, 1)``, or ``x`` itself when it is already inside [0, 1] (same values, no image-sized copy)."""
    inside = bool(((x.amin() >= 0.0) & (x.amax() <= 1.0)).item()) if x.numel() else True
    return x if inside else x.clamp(0.0, 1.0)


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


@torch.no_grad()
def score_pair_batch(
    pred: torch.Tensor,
    target: torch.Tensor,
    convention: str | MetricConvention,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """PSNR (dB) and SSIM per image ``(B,)`` float64 for ``(B, 3, H, W)`` [0, 1] images.

    Applies the convention's clamp, quantization, colour conversion and crops, on the tensors'
    device (float64; MPS falls back to the CPU). With ``lpips`` (e.g. an
    :class:`~bench_ir.metrics.lpips.LPIPSScorer`) an ``"lpips"`` entry is added, computed on the
    clamped, unquantized RGB images (as MIRAGE and DiffUIR do).
    """
    conv = get_convention(convention)
    if pred.shape != target.shape or pred.ndim != 4:
        shapes = f"{tuple(pred.shape)} and {tuple(target.shape)}"
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {shapes}")
    if conv.colour != "rgb" and pred.shape[1] != 3:
        raise ValueError(f"convention {conv.id} needs RGB input for its luma, got {pred.shape[1]} channels")
    if pred.device.type == "mps":
        pred, target = pred.cpu(), target.cpu()
    pred, target = _at_least_float32(pred), _at_least_float32(target)
    if conv.clamp:
        pred, target = _clamp01(pred), _clamp01(target)
    rgb_pred, rgb_target = (pred, target) if lpips is not None else (None, None)
    if conv.quantize is not None:
        pred, target = quantize_uint8(pred, conv.quantize), quantize_uint8(target, conv.quantize)
    if conv.colour != "rgb":
        swapped = conv.colour == "y_bgr_swapped"
        pred, target = pred.to(torch.float64), target.to(torch.float64)
        pred, target = rgb_to_y(pred, swapped=swapped), rgb_to_y(target, swapped=swapped)
    # RGB stays in its float dtype here: psnr/ssim widen it to float64 one plane at a time (same values)

    data_range: float | torch.Tensor = conv.psnr_peak
    if conv.psnr_dark_peak:
        dark = torch.round(pred.amax(dim=(1, 2, 3)).to(torch.float64) * 255.0) <= 1.0
        peaks = torch.tensor([conv.psnr_peak / 255.0, conv.psnr_peak], dtype=torch.float64, device=dark.device)
        data_range = torch.where(dark, peaks[0], peaks[1])
    scores = {
        "psnr": psnr(_crop(pred, conv.psnr_crop_border), _crop(target, conv.psnr_crop_border), data_range),
        "ssim": ssim_per_image(conv.ssim, _crop(pred, conv.ssim_crop_border), _crop(target, conv.ssim_crop_border),
                               data_range),
    }
    if lpips is not None:
        scores["lpips"] = lpips(rgb_pred, rgb_target).to(device=scores["psnr"].device, dtype=torch.float64)
    return scores
