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
from bench_ir.models.ndr_layers import DegradationNet, DegradationRepresentationLearning, TransformerBlock

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


def _blocks(count: int, dim: int, heads: int, ffn_expansion_factor: float, bias: bool,
            norm: LayerNormType) -> list[nn.Module]:
    return [TransformerBlock(dim, heads, ffn_expansion_factor, bias, norm) for _ in range(count)]


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
        block_args = (ffn_expansion_factor, bias, layer_norm_type)
        self.extractor = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1)
        self.block1 = nn.Sequential(*_blocks(num_blocks[0], dim, heads[0], *block_args))
        self.pool1 = Downsample(dim)
        self.block2 = nn.Sequential(*_blocks(num_blocks[1], dim * 2, heads[1], *block_args))
        self.pool2 = Downsample(dim * 2)
        self.block3 = nn.Sequential(*_blocks(num_blocks[2], dim * 4, heads[2], *block_args))
        self.pool3 = Downsample(dim * 4)
        self.bottom = nn.Sequential(*_blocks(num_blocks[3], dim * 8, heads[3], *block_args))
        self.res_connect1 = DegradationRepresentationLearning(dim)
        self.res_connect2 = DegradationRepresentationLearning(dim * 2)
        self.res_connect3 = DegradationRepresentationLearning(dim * 4)
        self.up3 = Upsample(dim * 8)
        self.block_up3 = nn.Sequential(nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias),
                                       *_blocks(num_blocks[2], dim * 4, heads[2], *block_args))
        self.up2 = Upsample(dim * 4)
        self.block_up2 = nn.Sequential(nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias),
                                       *_blocks(num_blocks[1], dim * 2, heads[1], *block_args))
        self.up1 = Upsample(dim * 2)
        self.block_up1 = nn.Sequential(nn.Conv2d(dim * 2, dim * 2, kernel_size=1, bias=bias),
                                       *_blocks(num_blocks[0], dim * 2, heads[0], *block_args))
        self.refinement = nn.Sequential(*_blocks(num_refinement_blocks, dim * 2, heads[0], *block_args))
        self.reconstruction = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1)

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


def _check_size(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"NDR-Restore expects {what} of shape (B, 3, H, W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ValueError(f"NDR-Restore needs H and W divisible by {INPUT_MULTIPLE}, got {height}x{width} for "
                         f"{what}; pad first (the official test reflect-pads bottom/right and crops the output)")


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
        _check_size(lq_bgr, "the LQ image")
        return self.restoration_net(lq_bgr)

    def degradation_process(self, clean_bgr: torch.Tensor, representations: Representations) -> torch.Tensor:
        """NDR-Degrad: the BGR [0, 1] degraded image synthesised from ``clean_bgr`` with ``representations``
        (the maps :meth:`restoration_process` returned for an LQ image of the same size)."""
        _check_size(clean_bgr, "the clean image")
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
