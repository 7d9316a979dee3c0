"""Reference-exact PSNR / SSIM on torch tensors, one value per image.

Conventions shared by every function here:

* images are ``(B, C, H, W)`` tensors on any device, C = 3 (RGB unless stated) or 1 (a luma plane);
* values are on the scale given by ``data_range`` (1.0 for [0, 1] images; a ``(B,)`` tensor gives
  one range per image); nothing is clamped or quantized here -- that is the job of :mod:`bench_ir.metrics.conventions`;
* results are float64 tensors of shape ``(B,)`` on the input's device, one value per image;
* the arithmetic is float64 on every device (CUDA included: the filters are plain tensor adds, so
  float64 costs memory bandwidth, not special hardware). MPS has no float64, so MPS tensors are
  scored on the CPU and the result is returned on the CPU;
* float32 inputs are widened to float64 one colour plane at a time (PSNR's difference and SSIM's window
  statistics are per plane), so scoring holds one float64 image-sized buffer rather than a dozen; the
  values are the same as widening the whole images first.

The SSIM variants differ only in the filter and the statistics:

* :func:`ssim` reproduces ``skimage.metrics.structural_similarity`` (uniform 7x7 window or the
  ``gaussian_weights=True`` 11-tap Gaussian, sample covariance N/(N-1), C1/C2 from ``data_range``,
  per-channel maps averaged after trimming the ``(win_size - 1) // 2`` border);
* :func:`ssim_basicsr` is the BasicSR / MATLAB estimator (11x11 Gaussian sigma 1.5 over the valid
  region, population statistics);
* :func:`ssim_gaussian_3d` is DiffUIR's estimator (an 11x11x11 Gaussian over H, W and the colour axis,
  replicate padding, mean over the full map).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "BT601_Y_WEIGHTS",
    "gaussian_taps",
    "psnr",
    "quantize_uint8",
    "rgb_to_y",
    "ssim",
    "ssim_basicsr",
    "ssim_gaussian_3d",
]

Rounding = Literal["half_even", "half_up", "floor"]

SSIM_STRIP_PIXELS = 1 << 18
"""Pixels (rows x width x images) of one strip of SSIM window statistics (each strip holds about 15 float64
planes of this size, ~30 MB); any value gives the same SSIM."""

# ITU-R BT.601 luma for R, G, B in [0, 1] giving Y on the 16-235 scale (MATLAB rgb2ycbcr, BasicSR).
BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
BT601_Y_OFFSET = 16.0


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 4 or target.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got shapes {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def _as_float64(x: torch.Tensor) -> torch.Tensor:
    """float64 copy of ``x`` on a device that supports it (MPS -> CPU)."""
    if x.device.type == "mps":
        x = x.cpu()
    return x.to(torch.float64)


def _ssim_constants(
    data_range: float | torch.Tensor, K1: float, K2: float, ndim: int
) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """C1 = (K1 L)^2, C2 = (K2 L)^2; a per-image ``(B,)`` range is shaped to broadcast over a map."""
    if isinstance(data_range, torch.Tensor):
        data_range = data_range.to(torch.float64).reshape(-1, *([1] * (ndim - 1)))
    return (K1 * data_range) ** 2, (K2 * data_range) ** 2


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor = 1.0) -> torch.Tensor:
    """PSNR in dB per image: ``10 log10(data_range^2 / MSE)``, MSE over all pixels and channels.

    Matches ``skimage.metrics.peak_signal_noise_ratio(target, pred, data_range=data_range)`` for each
    image. Identical images give ``+inf`` (scikit-image returns inf too, with a divide warning).
    ``data_range`` may be a ``(B,)`` tensor (one peak per image).
    """
    _check_pair(pred, target)
    diff = torch.empty(pred.shape, dtype=torch.float64, device="cpu" if pred.device.type == "mps" else pred.device)
    for c in range(pred.shape[1]):  # plane by plane: no float64 copy of the whole images
        torch.sub(_as_float64(pred[:, c]), _as_float64(target[:, c]), out=diff[:, c])
    mse = diff.square_().mean(dim=(1, 2, 3))
    if isinstance(data_range, torch.Tensor):
        data_range = data_range.to(device=mse.device, dtype=torch.float64)
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_taps(sigma: float = 1.5, truncate: float = 3.5) -> list[float]:
    """Normalised 1-D Gaussian weights with radius ``int(truncate * sigma + 0.5)``.

    The same taps as ``scipy.ndimage.gaussian_filter`` and ``cv2.getGaussianKernel(2r + 1, sigma)``;
    sigma 1.5 and truncate 3.5 give the 11-tap window of Wang et al. 2004.
    """
    return _gaussian_taps_with_radius(sigma, int(truncate * sigma + 0.5))


def _gaussian_taps_with_radius(sigma: float, radius: int) -> list[float]:
    weights = [math.exp(-0.5 * (i * i) / (sigma * sigma)) for i in range(-radius, radius + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def _odd_radius(win_size: int) -> int:
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and positive, got {win_size}")
    return win_size // 2


def _correlate_valid(x: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    """1-D correlation of ``x`` along ``dim`` over the valid region (no padding)."""
    n_out = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, n_out) * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        out.add_(x.narrow(dim, offset, n_out), alpha=weight)
    return out


def _pad_symmetric(x: torch.Tensor, pad: int, dims: tuple[int, ...]) -> torch.Tensor:
    """Mirror padding that repeats the edge sample (``d c b a | a b c d``, scipy's 'reflect')."""
    for dim in dims:
        n = x.shape[dim]
        head = x.narrow(dim, 0, pad).flip(dim)
        tail = x.narrow(dim, n - pad, pad).flip(dim)
        x = torch.cat([head, x, tail], dim=dim)
    return x


def _fit_border(x: torch.Tensor, radius: int, map_border: int) -> torch.Tensor:
    """``x`` cropped (or mirror-padded) so that its valid window positions are exactly the kept SSIM map."""
    shift = map_border - radius
    if shift > 0:
        return x[..., shift:-shift, shift:-shift]
    if shift < 0:
        return _pad_symmetric(x, -shift, (2, 3))
    return x


def _ssim_map_valid(
    x: torch.Tensor,
    y: torch.Tensor,
    taps: list[float],
    c1: float | torch.Tensor,
    c2: float | torch.Tensor,
    cov_norm: float,
) -> torch.Tensor:
    """SSIM map over the valid window positions of ``x``/``y`` (float64): ``(B, C, H - 2 r, W - 2 r)``."""
    channels = x.shape[1]
    stats = torch.empty((x.shape[0], 5 * channels, *x.shape[2:]), dtype=x.dtype, device=x.device)
    for index, (a, b) in enumerate(((x, None), (y, None), (x, x), (y, y), (x, y))):  # torch.cat of x, y, x², y², xy
        part = stats[:, index * channels:(index + 1) * channels]
        if b is None:
            part.copy_(a)
        else:
            torch.mul(a, b, out=part)
    stats = _correlate_valid(stats, taps, 2)  # each pass frees the previous statistics
    stats = _correlate_valid(stats, taps, 3)
    ux, uy, uxx, uyy, uxy = stats.chunk(5, dim=1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return numerator / denominator


def _ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    taps: list[float],
    c1: float | torch.Tensor,
    c2: float | torch.Tensor,
    cov_norm: float,
    map_border: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """SSIM map ``(B, C, H - 2 b, W - 2 b)`` with separable window ``taps`` (inputs widened to float64 strip by
    strip), written to ``out`` when given.

    The map is the one scikit-image computes with ``mode='reflect'`` filtering, with ``map_border``
    pixels dropped on each side. Pixels whose window stays inside the image need no padding at all;
    only a border smaller than the window radius uses (scipy-style) mirrored samples. The map is computed in
    strips of rows (each with its window's halo) of about :data:`SSIM_STRIP_PIXELS` pixels, which bounds the
    memory of the window statistics without changing any value.
    """
    radius = len(taps) // 2
    x, y = _fit_border(x, radius, map_border), _fit_border(y, radius, map_border)
    rows, cols = x.shape[2] - 2 * radius, x.shape[3] - 2 * radius
    if out is None:
        out = torch.empty((x.shape[0], x.shape[1], rows, cols), dtype=torch.float64, device=x.device)
    step = max(1, SSIM_STRIP_PIXELS // max(1, x.shape[0] * x.shape[1] * x.shape[3]))
    for top in range(0, rows, step):
        bottom = min(rows, top + step)
        window = slice(top, bottom + 2 * radius)
        out[:, :, top:bottom] = _ssim_map_valid(_as_float64(x[:, :, window]), _as_float64(y[:, :, window]), taps,
                                                c1, c2, cov_norm)
    return out


def _ssim_per_image(
    pred: torch.Tensor,
    target: torch.Tensor,
    taps: list[float],
    data_range: float | torch.Tensor,
    sample_covariance: bool,
    K1: float,
    K2: float,
    map_border: int,
) -> torch.Tensor:
    """Mean of the per-channel SSIM maps (window ``taps`` x ``taps``), one value per image."""
    _check_pair(pred, target)
    size = len(taps)
    height, width = pred.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"SSIM window of {size} px exceeds the image ({height}x{width})")
    if map_border < 0 or 2 * map_border >= min(height, width):
        raise ValueError(f"crop_border={map_border} leaves no SSIM map for a {height}x{width} image")
    n_window = size * size
    cov_norm = n_window / (n_window - 1) if sample_covariance else 1.0
    c1, c2 = _ssim_constants(data_range, K1, K2, ndim=4)
    device = "cpu" if pred.device.type == "mps" else pred.device
    shape = (pred.shape[0], pred.shape[1], height - 2 * map_border, width - 2 * map_border)
    ssim_map = torch.empty(shape, dtype=torch.float64, device=device)
    for c in range(pred.shape[1]):  # one channel's statistics at a time bound the memory (the map is per channel)
        _ssim_map(pred[:, c:c + 1], target[:, c:c + 1], taps, c1, c2, cov_norm, map_border, out=ssim_map[:, c:c + 1])
    return ssim_map.mean(dim=(1, 2, 3))


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float | torch.Tensor = 1.0,
    window: Literal["uniform", "gaussian"] = "uniform",
    win_size: int | None = None,
    sigma: float = 1.5,
    truncate: float = 3.5,
    sample_covariance: bool = True,
    K1: float = 0.01,
    K2: float = 0.03,
    crop_border: int | None = None,
) -> torch.Tensor:
    """SSIM per image as ``skimage.metrics.structural_similarity(target, pred, channel_axis=...)``.

    ``window="uniform"``: ``win_size`` x ``win_size`` box (default 7, skimage's default).
    ``window="gaussian"``: skimage's ``gaussian_weights=True``: taps of :func:`gaussian_taps`
    (sigma 1.5, truncate 3.5 -> 11 taps); ``win_size`` is derived (``2 r + 1``) and may be omitted.
    ``sample_covariance`` multiplies the (co)variances by N / (N - 1), N = win_size^2, as skimage
    does by default (for the Gaussian window too). C1 = (K1 data_range)^2, C2 = (K2 data_range)^2.
    Every channel gets its own SSIM map; ``crop_border`` pixels are trimmed from each side of the
    map (None: ``(win_size - 1) // 2``, skimage's rule; a smaller value keeps border pixels whose
    windows are mirror-padded as skimage's ``mode='reflect'``) and the mean over channels and
    pixels is returned. A C = 1 input is a single-plane (e.g. Y) SSIM.
    """
    if window == "uniform":
        size = 7 if win_size is None else win_size
        _odd_radius(size)
        taps = [1.0 / size] * size
    elif window == "gaussian":
        taps = gaussian_taps(sigma, truncate)
        if win_size is not None and win_size != len(taps):
            raise ValueError(
                f"win_size={win_size} disagrees with the Gaussian window of sigma={sigma}, "
                f"truncate={truncate} ({len(taps)} taps); leave win_size unset"
            )
    else:
        raise ValueError(f"window must be 'uniform' or 'gaussian', got {window!r}")
    border = (len(taps) - 1) // 2 if crop_border is None else crop_border
    return _ssim_per_image(pred, target, taps, data_range, sample_covariance, K1, K2, border)


def ssim_basicsr(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float | torch.Tensor = 1.0,
    sigma: float = 1.5,
    win_size: int = 11,
    K1: float = 0.01,
    K2: float = 0.03,
) -> torch.Tensor:
    """BasicSR / SwinIR / MATLAB-style SSIM per image (mean of the per-channel values).

    Gaussian ``win_size`` x ``win_size`` window (``cv2.getGaussianKernel(11, 1.5)``), statistics over
    the valid region only (``filter2D(...)[5:-5, 5:-5]``), population (co)variances,
    C1 = (K1 data_range)^2, C2 = (K2 data_range)^2. BasicSR works on 0-255 values with
    C1 = (0.01 * 255)^2; the same numbers come from [0, 1] values with ``data_range=1`` (SSIM is
    invariant to a common scale of images and constants). It equals :func:`ssim` with the Gaussian
    window and ``sample_covariance=False``.
    """
    radius = _odd_radius(win_size)
    taps = _gaussian_taps_with_radius(sigma, radius)
    return _ssim_per_image(pred, target, taps, data_range, False, K1, K2, radius)


def ssim_gaussian_3d(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float | torch.Tensor = 1.0,
    sigma: float = 1.5,
    win_size: int = 11,
    K1: float = 0.01,
    K2: float = 0.03,
) -> torch.Tensor:
    """DiffUIR's "3-D" SSIM per image: one SSIM map over (C, H, W) jointly.

    The window is the 11x11x11 separable Gaussian (sigma 1.5) over the colour axis and both spatial
    axes; every axis (the 3-long colour axis included) is replicate-padded by 5, so the map has the
    input's full size, and its plain mean is returned. Population (co)variances,
    C1 = (K1 data_range)^2, C2 = (K2 data_range)^2. DiffUIR evaluates it in float32 on the GPU; this
    is float64. The colour order (RGB or BGR) does not change the value (the window is symmetric).
    """
    _check_pair(pred, target)
    radius = _odd_radius(win_size)
    taps = _gaussian_taps_with_radius(sigma, radius)
    pad = (radius,) * 6
    x = F.pad(_as_float64(pred).unsqueeze(1), pad, mode="replicate")
    y = F.pad(_as_float64(target).unsqueeze(1), pad, mode="replicate")
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    for dim in (2, 3, 4):
        stats = _correlate_valid(stats, taps, dim)
    ux, uy, uxx, uyy, uxy = stats.chunk(5, dim=1)
    c1, c2 = _ssim_constants(data_range, K1, K2, ndim=5)
    numerator = (2 * ux * uy + c1) * (2 * (uxy - ux * uy) + c2)
    denominator = (ux * ux + uy * uy + c1) * ((uxx - ux * ux) + (uyy - uy * uy) + c2)
    return (numerator / denominator).mean(dim=(1, 2, 3, 4))


def rgb_to_y(
    x: torch.Tensor,
    order: Literal["rgb", "bgr"] = "rgb",
    swapped: bool = False,
) -> torch.Tensor:
    """BT.601 luma ``(B, 1, H, W)`` on the [0, 1] scale, as BasicSR's ``rgb2ycbcr(y_only=True)``.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1]: Y spans 16/255 to
    235/255, float, not rounded. ``order`` names the channel order of ``x``. ``swapped=True`` is
    Histoformer's channel-swapped luma (its script applies the RGB weights to a cv2 BGR array):
    ``Y = (16 + 65.481 B + 128.553 G + 24.966 R) / 255``. Computed in ``x``'s dtype.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    weights = BT601_Y_WEIGHTS if order == "rgb" else BT601_Y_WEIGHTS[::-1]
    if swapped:
        weights = weights[::-1]
    y = x[:, 0:1] * weights[0] + x[:, 1:2] * weights[1] + x[:, 2:3] * weights[2]
    return (y + BT601_Y_OFFSET) / 255.0


def quantize_uint8(x: torch.Tensor, rounding: Rounding = "half_even") -> torch.Tensor:
    """Clamp to [0, 1], scale by 255, round to an integer, divide by 255 (same dtype as ``x``).

    ``half_even``: ``numpy.round`` / ``numpy.rint`` (skimage ``img_as_ubyte``, BasicSR ``tensor2img``);
    ``half_up``: ``floor(255 x + 0.5)`` (torchvision ``save_image``); ``floor``: truncation
    (``astype(uint8)`` of a float, e.g. PromptIR's noisy-input synthesis). Done in ``x``'s dtype, so
    float32 input gives the same integers as the float32 NumPy reference code.
    """
    scaled = x.clamp(0.0, 1.0) * 255.0
    if rounding == "half_even":
        levels = torch.round(scaled)
    elif rounding == "half_up":
        levels = torch.floor(scaled + 0.5)
    elif rounding == "floor":
        levels = torch.floor(scaled)
    else:
        raise ValueError(f"rounding must be 'half_even', 'half_up' or 'floor', got {rounding!r}")
    return levels / 255.0
