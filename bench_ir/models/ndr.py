"""NDR-Restore (Yao et al., "Neural Degradation Representation Learning for All-In-One Image Restoration",
TIP 2024). Reimplemented from the description of the official code (mdyao/NDR-Restore, MIT,
``models/modules/NDR.py : NDRN``); the released ``model_L.pth`` loads into :class:`NDRRestore` with
``strict=True`` (after the loader strips ``module.``).

- The module is the whole official ``NDRN`` (36,962,484 parameters): the neural degradation representation
  (NDR, a (1, 32, 128) dictionary of degradation atoms), the restoration network NDR-Restore
  (27,330,315 parameters including the NDR) and the degradation-synthesis network NDR-Degrad (9,632,169,
  used only in training). The NDR is registered twice, as ``degradation_representations`` and
  ``restoration_net.dr``: both keys are in the state_dict, ``parameters()`` counts it once.
- Colour: the official weights were trained on ``cv2.imread`` images, i.e. **BGR** in [0, 1].
  :meth:`NDRRestore.forward` takes and returns **RGB** [0, 1] (B, 3, H, W) and flips the channel order on
  the way in and out; :meth:`NDRRestore.restoration_process` and :meth:`NDRRestore.degradation_process`
  work in the official BGR convention.
- Size: H and W must be multiples of 8 (:data:`INPUT_MULTIPLE`); other sizes raise ``ValueError``. The
  official test reflect-pads the LQ at the bottom/right to a multiple of 8 and crops the output to the GT
  size; bench-ir's engine does exactly that from the model card (``input_multiple: 8``, ``pad_mode: reflect``).
- No global residual: the restoration network predicts the image itself.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from bench_ir.models.layers import Downsample, LayerNormType, Upsample
from bench_ir.models.ndr_layers import DegradationNet, DegradationRepresentationLearning
from bench_ir.models.restormer import check_input_size, transformer_stage

__all__ = [
    "NDRRestore",
    "RestorationNet",
    "DegradationNet",
    "NDRTrainingOutput",
    "Representations",
    "INPUT_MULTIPLE",
    "DICTIONARY_ATOMS",
    "DICTIONARY_WIDTH",
    "rgb_to_bgr",
    "bgr_to_rgb",
]

INPUT_MULTIPLE = 8
"""H and W must be multiples of this (three 2x PixelUnshuffle steps)."""
DICTIONARY_ATOMS = 32
"""Number of degradation atoms in the NDR."""
DICTIONARY_WIDTH = 128
"""Width of one NDR atom."""

Representations = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""The degradation maps ``x_rep1..3`` (B, 64, H/2^k, W/2^k), k = 0, 1, 2, from the three DQ modules."""


def rgb_to_bgr(x: torch.Tensor) -> torch.Tensor:
    """Reverse the channel order of (B, 3, H, W) images (RGB <-> BGR; the same flip both ways)."""
    return x.flip(1)


bgr_to_rgb = rgb_to_bgr


class NDRTrainingOutput(NamedTuple):
    """What ``NDRRestore(lq, clean)`` returns, RGB [0, 1]: the restored LQ and the LQ that NDR-Degrad
    synthesises from ``clean`` with the degradation maps of ``lq``."""

    restored: torch.Tensor
    degraded: torch.Tensor


class RestorationNet(nn.Module):
    """NDR-Restore (official ``RestorationNet``): Restormer-like U-Net whose skips carry degradation
    queries against the NDR.

    3x3 conv 3 -> dim (bias), Restormer blocks [4, 6, 6, 8] at dim·[1, 2, 4, 8] with heads [1, 2, 4, 6];
    each encoder skip goes through a DRL module (DQ + DI) that also returns its degradation map; decoder
    levels: up, concat(skip, up), 1x1 (no bias), blocks; level 1 stays at 2·dim; 3 refinement blocks at
    2·dim (heads[0]); 3x3 conv 2·dim -> 3 (bias). No global residual.

    ``dictionary`` is the shared NDR Parameter, registered here as ``dr``. ``forward(x)`` returns
    ``(image, (x_rep1, x_rep2, x_rep3))``.
    """

    def __init__(self, dictionary: nn.Parameter, in_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8), num_refinement_blocks: int = 3,
                 heads: tuple[int, int, int, int] = (1, 2, 4, 6), ffn_expansion_factor: float = 2.66,
                 bias: bool = False, layer_norm_type: LayerNormType = "WithBias") -> None:
        super().__init__()
        self.dr = dictionary

        def stage(width: int, level: int, depth: int) -> nn.Sequential:
            return transformer_stage(width, heads[level], depth, ffn_expansion_factor, bias, layer_norm_type)

        def decoder_level(in_width: int, width: int, level: int) -> nn.Sequential:
            # 1x1 reduction at index 0, then the blocks: official keys block_upN.0, block_upN.1..
            reduce = nn.Conv2d(in_width, width, kernel_size=1, bias=bias)
            return nn.Sequential(reduce, *stage(width, level, num_blocks[level]))

        d = dim
        self.extractor = nn.Conv2d(in_channels, d, kernel_size=3, padding=1)
        self.block1 = stage(d, 0, num_blocks[0])
        self.pool1 = Downsample(d)
        self.block2 = stage(2 * d, 1, num_blocks[1])
        self.pool2 = Downsample(2 * d)
        self.block3 = stage(4 * d, 2, num_blocks[2])
        self.pool3 = Downsample(4 * d)
        self.bottom = stage(8 * d, 3, num_blocks[3])
        self.res_connect1 = DegradationRepresentationLearning(d)
        self.res_connect2 = DegradationRepresentationLearning(2 * d)
        self.res_connect3 = DegradationRepresentationLearning(4 * d)
        self.up3 = Upsample(8 * d)
        self.block_up3 = decoder_level(8 * d, 4 * d, 2)
        self.up2 = Upsample(4 * d)
        self.block_up2 = decoder_level(4 * d, 2 * d, 1)
        self.up1 = Upsample(2 * d)
        self.block_up1 = decoder_level(2 * d, 2 * d, 0)
        self.refinement = stage(2 * d, 0, num_refinement_blocks)
        self.reconstruction = nn.Conv2d(2 * d, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Representations]:
        level1 = self.block1(self.extractor(x))
        level2 = self.block2(self.pool1(level1))
        level3 = self.block3(self.pool2(level2))
        bottom = self.bottom(self.pool3(level3))

        skip1, rep1 = self.res_connect1(level1, self.dr)
        skip2, rep2 = self.res_connect2(level2, self.dr)
        skip3, rep3 = self.res_connect3(level3, self.dr)

        dec3 = self.block_up3(torch.cat((skip3, self.up3(bottom)), dim=1))
        dec2 = self.block_up2(torch.cat((skip2, self.up2(dec3)), dim=1))
        dec1 = self.block_up1(torch.cat((skip1, self.up1(dec2)), dim=1))
        return self.reconstruction(self.refinement(dec1)), (rep1, rep2, rep3)


class NDRRestore(nn.Module):
    """The official ``NDRN``: NDR dictionary + NDR-Restore (``restoration_net``) + NDR-Degrad
    (``degradation_net``). Images are RGB [0, 1] in :meth:`forward`, BGR [0, 1] in the ``*_process`` methods.

    ``forward(lq)`` returns the restored image (only the restoration network runs, in any mode).
    ``forward(lq, clean)`` also runs NDR-Degrad on ``clean`` with the degradation maps of ``lq`` and returns
    :class:`NDRTrainingOutput`; the maps are not detached, so the synthesis loss trains the DQ modules, the
    encoder and the NDR (the official bidirectional objective, see :mod:`bench_ir.ndr_objective`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.degradation_representations = nn.Parameter(torch.randn(1, DICTIONARY_ATOMS, DICTIONARY_WIDTH))
        self.degradation_net = DegradationNet()
        self.restoration_net = RestorationNet(self.degradation_representations)

    def restoration_process(self, lq_bgr: torch.Tensor) -> tuple[torch.Tensor, Representations]:
        """NDR-Restore on a BGR [0, 1] LQ batch (H, W multiples of 8): ``(restored BGR, degradation maps)``.
        Unlike the official method, the maps are returned instead of being stored on the module."""
        check_input_size(lq_bgr, "NDR-Restore", INPUT_MULTIPLE)
        return self.restoration_net(lq_bgr)

    def degradation_process(self, clean_bgr: torch.Tensor, representations: Representations) -> torch.Tensor:
        """NDR-Degrad: the BGR [0, 1] degraded image synthesised from ``clean_bgr`` with ``representations``
        (the maps :meth:`restoration_process` returned for an LQ image of the same size)."""
        check_input_size(clean_bgr, "NDR-Degrad", INPUT_MULTIPLE)
        return self.degradation_net(clean_bgr, representations)

    def forward(self, lq: torch.Tensor, clean: torch.Tensor | None = None) -> torch.Tensor | NDRTrainingOutput:
        restored, representations = self.restoration_process(rgb_to_bgr(lq))
        if clean is None:
            return bgr_to_rgb(restored)
        if clean.shape != lq.shape:
            raise ValueError(f"clean image shape {tuple(clean.shape)} differs from the LQ shape {tuple(lq.shape)}")
        degraded = self.degradation_process(rgb_to_bgr(clean), representations)
        return NDRTrainingOutput(bgr_to_rgb(restored), bgr_to_rgb(degraded))

    def training_only_modules(self) -> list[str]:
        """NDR-Degrad synthesises degraded images for the training objective; inference never runs it."""
        return ["degradation_net"]
