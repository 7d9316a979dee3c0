"""Image quality metrics: reference-exact PSNR/SSIM in torch, named conventions, LPIPS via pyiqa.

* :mod:`~bench_ir.metrics.functional` -- pure per-image functions (PSNR, SSIM variants, luma, uint8
  quantization) on ``(B, C, H, W)`` tensors;
* :mod:`~bench_ir.metrics.conventions` -- the M1..M7 conventions and :func:`score_pair_batch`, the
  one call the engine makes;
* :mod:`~bench_ir.metrics.lpips` -- :class:`LPIPSScorer` (pyiqa imported only when one is built;
  weights from local files only).
"""

from __future__ import annotations

from bench_ir.metrics.conventions import (
    HIGHER_IS_BETTER,
    MetricConvention,
    SsimSettings,
    get_convention,
    list_conventions,
    score_pair_batch,
)
from bench_ir.metrics.functional import (
    psnr,
    quantize_uint8,
    rgb_to_y,
    ssim,
    ssim_basicsr,
    ssim_gaussian_3d,
)
from bench_ir.metrics.lpips import LPIPSScorer, LPIPSWeightsNotFound

__all__ = [
    "HIGHER_IS_BETTER",
    "LPIPSScorer",
    "LPIPSWeightsNotFound",
    "MetricConvention",
    "SsimSettings",
    "get_convention",
    "list_conventions",
    "psnr",
    "quantize_uint8",
    "rgb_to_y",
    "score_pair_batch",
    "ssim",
    "ssim_basicsr",
    "ssim_gaussian_3d",
]
