"""Test-time geometry: the reference centre crop to a multiple of ``base`` and bottom/right padding.

``center_crop_to_multiple`` is the reference ``crop_img``: for each side of length n with r = n mod base it
keeps rows/columns [r//2, n - r + r//2), so an odd remainder loses its extra pixel at the bottom/right.
``pad_to_multiple`` pads the bottom/right only (Histoformer/Restormer test style) and ``crop_to`` undoes it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench_ir.protocol import CropSpec

__all__ = ["center_crop_to_multiple", "cropped_size", "pad_to_multiple", "crop_to", "padded_size"]


def _crop_window(n: int, base: int) -> tuple[int, int]:
    r = n % base
    return r // 2, n - r + r // 2


def center_crop_to_multiple(img: np.ndarray, base: int = 16) -> np.ndarray:
    """Centre crop an (H, W[, C]) array to the largest multiple of ``base`` on each side (reference crop_img).

    Returns a view. A side shorter than ``base`` would vanish; that is a ValueError naming the size.
    """
    if base < 1:
        raise ValueError(f"crop base must be >= 1, got {base}")
    height, width = img.shape[:2]
    if height < base or width < base:
        raise ValueError(f"image of {height}x{width} (HxW) is smaller than the crop multiple {base}")
    top, bottom = _crop_window(height, base)
    left, right = _crop_window(width, base)
    return img[top:bottom, left:right]


def cropped_size(height: int, width: int, crop: CropSpec) -> tuple[int, int]:
    """(H, W) of an image of ``height`` x ``width`` after ``crop`` as seen by the metric (the target size):
    ``center_multiple`` floors each side to a multiple of ``crop.base``; ``none`` and ``pad_multiple`` keep
    the size (padding is undone after the model)."""
    if crop.rule == "center_multiple":
        if height < crop.base or width < crop.base:
            raise ValueError(f"image of {height}x{width} (HxW) is smaller than the crop multiple {crop.base}")
        return height - height % crop.base, width - width % crop.base
    if crop.rule in ("none", "pad_multiple"):
        return height, width
    raise ValueError(f"unknown crop rule '{crop.rule}'")


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to the next multiple of ``multiple``."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def _reflect_pad_last_dims(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad bottom/right by any amount: a pad larger than size-1 is done in repeated reflections of
    the already padded tensor (the result of numpy.pad(mode='reflect')); a side of length 1 is replicated."""
    for dim, remaining in ((-2, pad_h), (-1, pad_w)):
        while remaining > 0:
            size = x.shape[dim]
            if size == 1:
                pad = (0, 0, 0, remaining) if dim == -2 else (0, remaining, 0, 0)
                x = F.pad(x, pad, mode="replicate")
                break
            step = min(remaining, size - 1)
            pad = (0, 0, 0, step) if dim == -2 else (0, step, 0, 0)
            x = F.pad(x, pad, mode="reflect")
            remaining -= step
    return x


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad a (B, C, H, W) or (C, H, W) tensor at the bottom and right so H and W are multiples of ``multiple``.

    mode: ``reflect`` (mirror without repeating the edge; pads of size >= the side are repeated reflections,
    as numpy.pad; a side of 1 pixel is replicated), ``replicate`` (repeat the edge) or ``constant`` (zeros).
    Returns (padded, (H, W)) with the original size for :func:`crop_to`. An already aligned tensor is
    returned unchanged.
    """
    if multiple < 1:
        raise ValueError(f"pad multiple must be >= 1, got {multiple}")
    if x.ndim not in (3, 4):
        raise ValueError(f"expected a (B, C, H, W) or (C, H, W) tensor, got shape {tuple(x.shape)}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    target_h, target_w = padded_size(height, width, multiple)
    pad_h, pad_w = target_h - height, target_w - width
    if pad_h == 0 and pad_w == 0:
        return x, (height, width)
    if mode == "reflect":
        return _reflect_pad_last_dims(x, pad_h, pad_w), (height, width)
    if mode == "replicate":
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"), (height, width)
    if mode == "constant":
        return F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=0.0), (height, width)
    raise ValueError(f"unknown pad mode '{mode}'; choose reflect, replicate or constant")


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Keep the top-left ``size`` = (H, W) of a (..., H', W') tensor (undoes :func:`pad_to_multiple`)."""
    height, width = size
    if x.shape[-2] < height or x.shape[-1] < width:
        raise ValueError(f"cannot crop a tensor of spatial size {tuple(x.shape[-2:])} to {(height, width)}")
    return x[..., :height, :width]
