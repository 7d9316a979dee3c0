"""Modulated deformable convolution (DCNv2) with the conventions of mmcv's ``modulated_deform_conv2d``.

AirNet's official code calls mmcv-full 1.3.11 (compiled CUDA op). Two implementations with the same
conventions live here: :func:`modulated_deform_conv2d` runs ``torchvision.ops.deform_conv2d`` when
torchvision is installed (CPU and CUDA kernels), and :func:`modulated_deform_conv2d_reference` is a pure
PyTorch bilinear gather that spells the conventions out (any device, differentiable, memory-hungry).

Conventions (mmcv ``modulated_deformable_im2col`` kernel, unchanged from v1.3.11 to 2026; torchvision's
``deformable_im2col`` kernel is identical on every point below):

- Shapes: ``input`` (B, C, H, W); ``weight`` (O, C / groups, kh, kw); ``offset`` (B, 2·G·K, Ho, Wo) and
  ``mask`` (B, G·K, Ho, Wo), with K = kh·kw and G offset ("deformable") groups, each serving C / G
  consecutive input channels. Ho, Wo follow ``nn.Conv2d`` for the same stride, padding and dilation.
- Offset layout: for group g and kernel position k = i·kw + j (row-major), channel ``g·2K + 2k`` is the
  **vertical** displacement dy and channel ``g·2K + 2k + 1`` the **horizontal** displacement dx, in input
  pixels. The mask of that position is channel ``g·K + k``; it multiplies the sampled value.
- Sampling point of output pixel (ho, wo): ``y = ho·stride - pad + i·dilation + dy``,
  ``x = wo·stride - pad + j·dilation + dx`` (pixel centres at integer coordinates).
- Bilinear interpolation of the four neighbours; neighbours outside the image count as zero, and a
  point with ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` gives zero.
- ``output[o] = bias[o] + sum over c in o's group, k of weight[o, c, k] · mask_k · sample_c,k``.

mmcv's ``DCNv2``/``ModulatedDeformConv2dPack`` (and AirNet's ``DCN_layer``) produce offset and mask from one
convolution with 3·G·K output channels: :func:`split_offset_mask`. Backward passes agree with mmcv
except for offset gradients at points exactly on the border of the sampling range (pytorch/vision#6885).
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import torch
from torch import Tensor
from torch.nn.modules.utils import _pair

__all__ = [
    "DeformBackend",
    "modulated_deform_conv2d",
    "modulated_deform_conv2d_reference",
    "resolve_backend",
    "split_offset_mask",
    "torchvision_available",
]

DeformBackend = Literal["auto", "torchvision", "reference"]
IntPair = int | tuple[int, int]


@cache
def torchvision_available() -> bool:
    """True when ``torchvision.ops.deform_conv2d`` can be imported."""
    try:
        from torchvision.ops import deform_conv2d  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: DeformBackend) -> Literal["torchvision", "reference"]:
    """The backend ``backend`` stands for: ``auto`` is ``torchvision`` when installed, else ``reference``.

    Importing torchvision for the first time inside a ``torch.jit`` trace (fvcore FLOP counts) fails, so
    modules resolve their backend when they are built, not in ``forward``.
    """
    if backend not in ("auto", "torchvision", "reference"):
        raise ValueError(f"backend must be 'auto', 'torchvision' or 'reference', got {backend!r}")
    if backend == "auto":
        return "torchvision" if torchvision_available() else "reference"
    if backend == "torchvision" and not torchvision_available():
        raise ImportError("backend='torchvision' needs torchvision (pip install torchvision); "
                          "backend='reference' runs without it")
    return backend


def split_offset_mask(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Offset and mask from the 3·G·K-channel output of an offset/mask convolution, as mmcv's DCNv2 does.

    The first two thirds of the channels are the offsets, unchanged (mmcv chunks them into two halves and
    concatenates them again, which restores the original order; the op then reads them as interleaved
    (dy, dx) pairs); the mask is the sigmoid of the last third.
    """
    if raw.shape[1] % 3:
        raise ValueError(f"offset/mask tensor needs a multiple of 3 channels, got {raw.shape[1]}")
    offset_channels = raw.shape[1] // 3 * 2
    return raw[:, :offset_channels], torch.sigmoid(raw[:, offset_channels:])


def modulated_deform_conv2d(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None = None,
                            stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                            backend: DeformBackend = "auto") -> Tensor:
    """DCNv2 with mmcv's conventions (module docstring). ``backend``: ``torchvision`` (its kernel),
    ``reference`` (pure PyTorch) or ``auto`` (torchvision when installed, otherwise the reference)."""
    if resolve_backend(backend) == "reference":
        return modulated_deform_conv2d_reference(input, offset, mask, weight, bias, stride, padding, dilation)
    from torchvision.ops import deform_conv2d

    return deform_conv2d(input.contiguous(), offset, weight, bias, stride=_pair(stride), padding=_pair(padding),
                         dilation=_pair(dilation), mask=mask)


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _bilinear_zero_padded(image: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Sample ``image`` (B, G, Cg, H, W) at points ``y``, ``x`` (B, G, N) -> (B, G, Cg, N); neighbours outside
    the image are zero, and so is every point outside the open range (-1, H) x (-1, W)."""
    batch, groups, channels, height, width = image.shape
    flat = image.reshape(batch, groups, channels, height * width)
    y_low, x_low = torch.floor(y), torch.floor(x)
    frac_y, frac_x = y - y_low, x - x_low
    inside = (y > -1) & (y < height) & (x > -1) & (x < width)
    result = image.new_zeros(batch, groups, channels, y.shape[-1])
    for row, weight_y in ((y_low, 1 - frac_y), (y_low + 1, frac_y)):
        for col, weight_x in ((x_low, 1 - frac_x), (x_low + 1, frac_x)):
            valid = inside & (row >= 0) & (row <= height - 1) & (col >= 0) & (col <= width - 1)
            index = (row.clamp(0, height - 1) * width + col.clamp(0, width - 1)).long()
            values = torch.gather(flat, 3, index.unsqueeze(2).expand(-1, -1, channels, -1))
            result = result + values * (weight_y * weight_x * valid).unsqueeze(2)
    return result


def modulated_deform_conv2d_reference(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                                      bias: Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0,
                                      dilation: IntPair = 1) -> Tensor:
    """Pure-PyTorch DCNv2 (bilinear gather + grouped matrix product) with mmcv's conventions (module
    docstring). Memory grows with C·K·Ho·Wo per image: meant for checks, not for large images."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    batch, channels, height, width = input.shape
    out_channels, channels_per_group, kh, kw = weight.shape
    taps = kh * kw
    out_h, out_w = _output_size(height, kh, sh, ph, dh), _output_size(width, kw, sw, pw, dw)
    if channels % channels_per_group or out_channels % (channels // channels_per_group):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {channels} input channels")
    groups = channels // channels_per_group
    offset_groups = offset.shape[1] // (2 * taps)
    expected_offset = (batch, 2 * offset_groups * taps, out_h, out_w)
    if offset_groups < 1 or channels % offset_groups or tuple(offset.shape) != expected_offset:
        raise ValueError(f"offset must be {expected_offset} with {channels} divisible by the offset groups, "
                         f"got {tuple(offset.shape)}")
    if tuple(mask.shape) != (batch, offset_groups * taps, out_h, out_w):
        raise ValueError(f"mask must be {(batch, offset_groups * taps, out_h, out_w)}, got {tuple(mask.shape)}")

    def grid(size: int, step: int, pad: int, dil: int, kernel_index: Tensor) -> Tensor:
        base = torch.arange(size, device=input.device, dtype=input.dtype) * step - pad
        return base[None, :] + (kernel_index * dil).to(input.dtype)[:, None]  # (K, size)

    tap = torch.arange(taps, device=input.device)
    rows = grid(out_h, sh, ph, dh, tap // kw)[:, :, None]  # (K, Ho, 1)
    cols = grid(out_w, sw, pw, dw, tap % kw)[:, None, :]  # (K, 1, Wo)
    displacement = offset.reshape(batch, offset_groups, taps, 2, out_h, out_w)
    y = (rows + displacement[:, :, :, 0]).reshape(batch, offset_groups, -1)
    x = (cols + displacement[:, :, :, 1]).reshape(batch, offset_groups, -1)
    image = input.reshape(batch, offset_groups, channels // offset_groups, height, width)
    samples = _bilinear_zero_padded(image, y, x).reshape(batch, offset_groups, -1, taps, out_h * out_w)
    samples = samples * mask.reshape(batch, offset_groups, 1, taps, out_h * out_w)
    columns = samples.reshape(batch, groups, channels_per_group * taps, out_h * out_w)
    kernels = weight.reshape(groups, out_channels // groups, channels_per_group * taps)
    out = torch.einsum("goi,bgil->bgol", kernels, columns).reshape(batch, out_channels, out_h, out_w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)

