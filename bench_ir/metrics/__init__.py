"""Image quality metrics: reference-exact PSNR/SSIM in torch, named conventions, LPIPS via pyiqa.

* :mod:`~bench_ir.metrics.functional` -- pure per-image functions (PSNR, SSIM variants, luma, uint8
  quantization) on ``(B, C, H, W)`` tensors;
* :mod:`~bench_ir.metrics.conventions` -- the M1..M7 conventions (data; no torch);
* :mod:`~bench_ir.metrics.scoring` -- :func:`score_pair_batch`, the one call the engine makes;
* :mod:`~bench_ir.metrics.lpips` -- :class:`LPIPSScorer` (pyiqa imported only when one is built;
  weights from local files only).

The names below are imported on first use, so that reading or listing conventions imports no torch.
"""

from __future__ import annotations

from bench_ir.lazy_exports import lazy_exports

_EXPORTS = {
    "HIGHER_IS_BETTER": "bench_ir.metrics.conventions",
    "MetricConvention": "bench_ir.metrics.conventions",
    "SsimSettings": "bench_ir.metrics.conventions",
    "get_convention": "bench_ir.metrics.conventions",
    "list_conventions": "bench_ir.metrics.conventions",
    "score_pair_batch": "bench_ir.metrics.scoring",
    "psnr": "bench_ir.metrics.functional",
    "quantize_uint8": "bench_ir.metrics.functional",
    "rgb_to_y": "bench_ir.metrics.functional",
    "ssim": "bench_ir.metrics.functional",
    "ssim_basicsr": "bench_ir.metrics.functional",
    "ssim_gaussian_3d": "bench_ir.metrics.functional",
    "LPIPSScorer": "bench_ir.metrics.lpips",
    "LPIPSWeightsNotFound": "bench_ir.metrics.lpips",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
