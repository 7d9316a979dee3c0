"""Named metric conventions (M1..M7, as the reference repositories compute their metrics; `bench-ir list
conventions` describes each): data, no torch.

A convention fixes every knob that changes a PSNR/SSIM number: colour space, clamping, uint8
quantization (and its rounding), the PSNR peak, the SSIM estimator and its window, and any image
border cropped before scoring. :func:`bench_ir.metrics.scoring.score_pair_batch` applies one to a
batch of image pairs; reading, listing and describing conventions needs no torch.

PSNR is in dB; SSIM is unitless; both are higher-is-better, LPIPS is lower-is-better
(:data:`HIGHER_IS_BETTER`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bench_ir.metrics.functional import Rounding

__all__ = [
    "HIGHER_IS_BETTER",
    "MetricConvention",
    "SsimSettings",
    "get_convention",
    "list_conventions",
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

    @property
    def ssim_window(self) -> int | None:
        """The side in pixels of the SSIM window, which must fit inside the scored image; None for the 3-D Gaussian
        SSIM, which pads the image and scores any size."""
        return None if self.ssim.flavour == "gaussian_3d" else self.ssim.win_size

    @property
    def min_image_side(self) -> int:
        """The shortest image side (pixels, after the protocol's crop rule) this convention can score: the SSIM
        window plus the image border cropped on each side before SSIM, and at least one pixel left by the PSNR
        border crop."""
        return max((self.ssim_window or 1) + 2 * self.ssim_crop_border, 2 * self.psnr_crop_border + 1)


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
