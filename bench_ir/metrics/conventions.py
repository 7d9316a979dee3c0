"""Named metric conventions (M1..M7 of PROTOCOLS.md section 1.4) and the scorer the engine calls.

A convention fixes every knob that changes a PSNR/SSIM number: colour space, clamping, uint8
quantization (and its rounding), the PSNR peak, the SSIM estimator and its window, and any image
border cropped before scoring. :func:`score_pair_batch` applies one convention to a batch of
same-size (prediction, ground truth) pairs on their device and returns one value per image; the
dataset figure is the plain mean of those values (every reference script averages per image).

PSNR is in dB; SSIM is unitless; both are higher-is-better, LPIPS is lower-is-better
(:data:`HIGHER_IS_BETTER`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch

from bench_ir.metrics.functional import (
    Rounding,
    psnr,
    quantize_uint8,
    rgb_to_y,
    ssim,
    ssim_basicsr,
    ssim_gaussian_3d,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "MetricConvention",
    "SsimSettings",
    "get_convention",
    "list_conventions",
    "score_pair_batch",
]

ColourSpace = Literal["rgb", "y", "y_bgr_swapped"]
SsimFlavour = Literal["skimage", "basicsr", "gaussian_3d"]
LpipsInput = Literal["signed", "unit"]

HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType({"psnr": True, "ssim": True, "lpips": False})

_ROUNDING_WORDS = {"half_even": "round half to even", "half_up": "round half up", "floor": "truncated"}
_COLOUR_WORDS = {
    "rgb": "RGB",
    "y": "Y (BT.601, 16-235 scale, float)",
    "y_bgr_swapped": "Y with red and blue weights swapped (Histoformer's BGR quirk)",
}


@dataclass(frozen=True)
class SsimSettings:
    """Which SSIM estimator a convention uses, with its arguments.

    ``skimage``: :func:`~bench_ir.metrics.functional.ssim` (``window`` uniform or gaussian,
    ``win_size``, ``sample_covariance``; map border ``(win_size - 1) // 2`` trimmed).
    ``basicsr``: :func:`~bench_ir.metrics.functional.ssim_basicsr` (Gaussian, valid region,
    population statistics). ``gaussian_3d``: :func:`~bench_ir.metrics.functional.ssim_gaussian_3d`.
    """

    flavour: SsimFlavour = "skimage"
    window: Literal["uniform", "gaussian"] = "uniform"
    win_size: int = 7
    sigma: float = 1.5
    sample_covariance: bool = True

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor) -> torch.Tensor:
        """SSIM per image ``(B,)`` for images on the scale ``data_range``."""
        if self.flavour == "skimage":
            return ssim(
                pred,
                target,
                data_range=data_range,
                window=self.window,
                win_size=self.win_size,
                sigma=self.sigma,
                sample_covariance=self.sample_covariance,
            )
        if self.flavour == "basicsr":
            return ssim_basicsr(pred, target, data_range=data_range, sigma=self.sigma, win_size=self.win_size)
        if self.flavour == "gaussian_3d":
            return ssim_gaussian_3d(pred, target, data_range=data_range, sigma=self.sigma, win_size=self.win_size)
        raise ValueError(f"unknown SSIM flavour {self.flavour!r}")

    def describe(self, single_plane: bool = False) -> str:
        """One phrase, e.g. 'SSIM 7x7 uniform window, sample covariance, per-channel mean, 3-px border trimmed'."""
        size = f"{self.win_size}x{self.win_size}"
        border = (self.win_size - 1) // 2
        pooling = "single plane" if single_plane else "per-channel mean"
        if self.flavour == "gaussian_3d":
            return (
                f"SSIM {size}x{self.win_size} Gaussian window (sigma {self.sigma}) over H, W and colour, "
                "replicate padding, population covariance, mean of the full map"
            )
        if self.flavour == "basicsr":
            return (
                f"SSIM {size} Gaussian window (sigma {self.sigma}) over the valid region "
                f"({border}-px border), population covariance, {pooling} (BasicSR/MATLAB)"
            )
        window = "uniform window" if self.window == "uniform" else f"Gaussian window (sigma {self.sigma})"
        covariance = "sample covariance" if self.sample_covariance else "population covariance"
        return f"SSIM {size} {window}, {covariance}, {pooling}, {border}-px border trimmed (skimage)"


@dataclass(frozen=True)
class MetricConvention:
    """One way of turning (prediction, ground truth) into PSNR/SSIM numbers.

    Images enter as [0, 1] floats. ``clamp`` clamps both to [0, 1]; ``quantize`` (a rounding rule
    or None) then maps both to uint8 levels (255 x, rounded, / 255) as when scripts score saved
    8-bit PNGs; ``colour`` picks RGB (SSIM per channel) or a luma plane. ``psnr_peak`` is the PSNR
    peak on the [0, 1] scale (1.0 == 255 on 8-bit values); ``psnr_dark_peak`` reproduces DiffUIR's
    rule of dropping the peak (and the SSIM constants) to 1 on the 0-255 scale when the prediction's
    maximum is <= 1 there. ``psnr_crop_border`` / ``ssim_crop_border`` crop the images themselves
    before scoring (BasicSR's ``crop_border``), independent of the SSIM map trimming that belongs to
    the estimator. ``lpips_net`` / ``lpips_input`` give the LPIPS variant that goes with the
    convention (``signed``: inputs mapped x*2-1 as the ``lpips`` package expects; ``unit``: raw
    [0, 1] values fed to it, DiffUIR's call).
    """

    id: str
    name: str
    title: str
    colour: ColourSpace
    clamp: bool
    quantize: Rounding | None
    ssim: SsimSettings
    references: tuple[str, ...]
    psnr_peak: float = 1.0
    psnr_dark_peak: bool = False
    psnr_crop_border: int = 0
    ssim_crop_border: int = 0
    lpips_net: Literal["alex", "vgg"] = "alex"
    lpips_input: LpipsInput = "signed"
    notes: str = ""

    def describe(self) -> str:
        """Human-readable statement of the convention (goes into manifests and reports)."""
        quantized = f"quantized to uint8 ({_ROUNDING_WORDS[self.quantize]})" if self.quantize else "not quantized"
        parts = [
            f"{_COLOUR_WORDS[self.colour]}, [0,1] float, {'clamped' if self.clamp else 'not clamped'}, {quantized}"
        ]
        peak = "peak 1 (=255 on 8-bit)" if self.psnr_peak == 1.0 else f"peak {self.psnr_peak:g}"
        if self.psnr_dark_peak:
            peak += ", peak and SSIM range 1/255 when the prediction's max is <= 1/255 (DiffUIR)"
        psnr_part = f"PSNR over all pixels{'' if self.colour != 'rgb' else ' and channels'}, {peak}"
        if self.psnr_crop_border:
            psnr_part += f", {self.psnr_crop_border}-px image border cropped"
        ssim_part = self.ssim.describe(single_plane=self.colour != "rgb")
        if self.ssim_crop_border:
            ssim_part += f", {self.ssim_crop_border}-px image border cropped first"
        lpips_mapping = "inputs mapped x*2-1" if self.lpips_input == "signed" else "raw [0,1] inputs"
        lpips_part = f"LPIPS if scored: {'AlexNet' if self.lpips_net == 'alex' else 'VGG16'} ({lpips_mapping})"
        return "; ".join([*parts, psnr_part, ssim_part, lpips_part, "per-image mean"])

    @property
    def higher_is_better(self) -> Mapping[str, bool]:
        return HIGHER_IS_BETTER


_UNIFORM_7 = SsimSettings()
_CONVENTIONS: tuple[MetricConvention, ...] = (
    MetricConvention(
        id="M1",
        name="skimage-uniform",
        title="scikit-image PSNR/SSIM, RGB float (MIRAGE, PromptIR, AdaIR, AirNet)",
        colour="rgb",
        clamp=True,
        quantize=None,
        ssim=_UNIFORM_7,
        references=("MIRAGE", "PromptIR", "AdaIR", "AirNet"),
        notes="structural_similarity(gt, out, data_range=1, channel_axis=2) on np.clip'ed float32 images.",
    ),
    MetricConvention(
        id="M2",
        name="skimage-gaussian",
        title="scikit-image PSNR, Gaussian-window SSIM, RGB float (MoCE-IR)",
        colour="rgb",
        clamp=True,
        quantize=None,
        ssim=SsimSettings(window="gaussian", win_size=11),
        references=("MoCE-IR",),
        lpips_net="vgg",
        notes="gaussian_weights=True keeps sample covariance; MoCE-IR clamps only the output "
        "(its ground truth is already in [0,1]); LPIPS-VGG via torchmetrics normalize=True.",
    ),
    MetricConvention(
        id="M3",
        name="onerestore-cdd11",
        title="scikit-image PSNR/SSIM on saved 8-bit PNGs (OneRestore CDD-11 sheet)",
        colour="rgb",
        clamp=True,
        quantize="half_up",
        ssim=_UNIFORM_7,
        references=("OneRestore",),
        notes="win_size=min(7, H, W) in the reference (images smaller than 7 px are rejected here); "
        "half-up rounding inferred from OneRestore's torchvision save_image, other methods' PNG writers unknown.",
    ),
    MetricConvention(
        id="M4",
        name="histoformer-allweather",
        title="Histoformer AllWeather script: channel-swapped Y, 11x11 uniform SSIM on saved PNGs",
        colour="y_bgr_swapped",
        clamp=True,
        quantize="half_even",
        ssim=SsimSettings(win_size=11),
        references=("Histoformer",),
        notes="img_as_ubyte saving; luma weights applied to cv2 BGR arrays; pairs matched by natsorted position.",
    ),
    MetricConvention(
        id="M5",
        name="basicsr-y",
        title="BasicSR/SwinIR Y-channel PSNR/SSIM on saved PNGs (WeatherDiffusion script)",
        colour="y",
        clamp=True,
        quantize="half_up",
        ssim=SsimSettings(flavour="basicsr", window="gaussian", win_size=11, sample_covariance=False),
        references=("WeatherDiffusion", "SwinIR", "BasicSR"),
        notes="Outputs saved with torchvision save_image (half-up); PSNR 20 log10(255/RMSE) on 0-255 Y.",
    ),
    MetricConvention(
        id="M6",
        name="diffuir-udc",
        title="DiffUIR UDC script: uint8-rounded RGB, 3-D Gaussian SSIM",
        colour="rgb",
        clamp=True,
        quantize="half_even",
        ssim=SsimSettings(flavour="gaussian_3d", window="gaussian", win_size=11, sample_covariance=False),
        references=("DiffUIR",),
        psnr_dark_peak=True,
        lpips_net="vgg",
        lpips_input="unit",
        notes="tensor2img rounding; DiffUIR computes SSIM in float32 on the GPU (float64 here); "
        "LPIPS-VGG called on [0,1] tensors without the x*2-1 mapping.",
    ),
    MetricConvention(
        id="M7",
        name="dcpt-basicsr",
        title="DCPT basicsr fork: uint8-rounded RGB, MATLAB-style Gaussian SSIM per channel",
        colour="rgb",
        clamp=True,
        quantize="half_even",
        ssim=SsimSettings(flavour="basicsr", window="gaussian", win_size=11, sample_covariance=False),
        references=("DCPT",),
        notes="image_range 255, crop_border 0, test_y_channel false in DCPT's all-in-one test configs.",
    ),
)
_BY_KEY = {key.lower(): c for c in _CONVENTIONS for key in (c.id, c.name)}


def list_conventions() -> list[str]:
    """Ids of the built-in conventions, 'M1' first (resolve one with :func:`get_convention`)."""
    return [c.id for c in _CONVENTIONS]


def get_convention(name: str | MetricConvention) -> MetricConvention:
    """Convention by id ('M1') or name ('skimage-uniform'), case-insensitive; instances pass through."""
    if isinstance(name, MetricConvention):
        return name
    found = _BY_KEY.get(str(name).strip().lower())
    if found is not None:
        return found
    close = difflib.get_close_matches(str(name).lower(), list(_BY_KEY), n=3, cutoff=0.5)
    suggestions = dict.fromkeys(f"{_BY_KEY[k].id} ({_BY_KEY[k].name})" for k in close)
    hint = f" Did you mean {' or '.join(suggestions)}?" if suggestions else ""
    known = ", ".join(f"{c.id} ({c.name})" for c in _CONVENTIONS)
    raise KeyError(f"unknown metric convention {name!r}.{hint} Known: {known}")


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
        "ssim": conv.ssim(_crop(pred, conv.ssim_crop_border), _crop(target, conv.ssim_crop_border), data_range),
    }
    if lpips is not None:
        scores["lpips"] = lpips(rgb_pred, rgb_target).to(device=scores["psnr"].device, dtype=torch.float64)
    return scores
