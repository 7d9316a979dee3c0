"""Fitting an image to what a model accepts: padding to a multiple and overlapping tiled inference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from bench_ir.cards import ModelCard
    from bench_ir.protocol import Protocol, TaskSpec

__all__ = ["FitPolicy", "GeometryError", "PAD_MODES", "check_pad_mode", "fit_policy", "task_fit_policy", "run_padded",
           "run_tiled"]

PAD_MODES = ("reflect", "replicate", "constant")
"""Padding modes to a model's multiple (torch.nn.functional.pad; ``constant`` pads with 0)."""


class GeometryError(ValueError):
    """An image size the model cannot take under the protocol's and the card's rules."""


@dataclass(frozen=True)
class FitPolicy:
    """multiple: H and W given to the model must be multiples of it. pad_mode: ``none`` (sizes must already
    fit) or a torch padding mode used at the bottom/right, the output being cropped back."""

    multiple: int
    pad_mode: str = "none"

    def check(self, height: int, width: int, image: str) -> None:
        if self.pad_mode == "none" and (height % self.multiple or width % self.multiple):
            raise GeometryError(
                f"{image}: {height}x{width} is not a multiple of {self.multiple}, which the model needs; "
                "the protocol neither crops nor pads this task. Use a protocol with a crop rule, a card with "
                "pad_mode: reflect, or --pad reflect."
            )


def check_pad_mode(mode: str | None, allow_none: bool = True) -> None:
    """A ValueError naming ``--pad`` when ``mode`` is not one of :data:`PAD_MODES` (or ``none``, where allowed:
    sizes must then already fit). None (no override) passes."""
    allowed = (*PAD_MODES, "none") if allow_none else PAD_MODES
    if mode is not None and mode not in allowed:
        raise ValueError(f"--pad {mode}: choose one of {', '.join(allowed)}")


def fit_policy(card_multiple: int, card_pad_mode: str, protocol_rule: str, protocol_base: int,
               protocol_pad_mode: str, override_pad_mode: str | None = None) -> FitPolicy:
    """Combine the card's size rule with the protocol's test-time geometry.

    A ``pad_multiple`` protocol pads to lcm(base, card multiple) with its own mode; otherwise the card's
    pad mode applies (``--pad`` overrides it)."""
    import math

    if protocol_rule == "pad_multiple":
        return FitPolicy(math.lcm(protocol_base, card_multiple), override_pad_mode or protocol_pad_mode)
    return FitPolicy(card_multiple, override_pad_mode or card_pad_mode)


def task_fit_policy(card: ModelCard, protocol: Protocol, task: TaskSpec, pad: str | None = None) -> FitPolicy:
    """How the images of ``task`` are fitted to the model: :func:`fit_policy` of the card's size rule with the
    protocol's crop rule for the task (``pad``: a run's --pad override)."""
    crop = protocol.crop_for(task)
    return fit_policy(card.input_multiple, card.pad_mode, crop.rule, crop.base, crop.pad_mode, pad)


def _pad_bottom_right(x: torch.Tensor, multiple: int, mode: str) -> torch.Tensor:
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not (pad_h or pad_w):
        return x
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "replicate"  # reflect padding needs the pad to be smaller than the side
    if mode == "constant":
        return F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=0.0)
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def run_padded(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, policy: FitPolicy) -> torch.Tensor:
    """Pad ``x`` (B,C,H,W) bottom/right to the policy's multiple, run, crop the output back to H x W."""
    height, width = x.shape[-2:]
    if policy.pad_mode == "none":
        return forward(x)
    out = forward(_pad_bottom_right(x, policy.multiple, policy.pad_mode))
    return out[..., :height, :width]


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def tile_size(tile: int, overlap: int, multiple: int) -> int:
    """The tile size tiled inference uses: ``tile`` pixels rounded down to ``multiple`` (at least one multiple).
    Raises GeometryError when ``overlap`` is negative or not smaller than that size; the latter names the options
    to change (``tile_overlap``/``--tile-overlap``, ``tile``/``--tile``), as run and restore report it (its
    ``problem`` attribute is the message without that advice)."""
    if overlap < 0:
        raise GeometryError(f"tile overlap must be 0 or more pixels, got {overlap}")
    size = max(multiple, tile - tile % multiple)
    if overlap >= size:
        rounded = f" ({tile} pixels fitted to a multiple of {multiple})" if size != tile else ""
        problem = f"tile overlap {overlap} must be smaller than the tile size {size}{rounded}"
        error = GeometryError(f"{problem}: give a smaller tile_overlap (--tile-overlap, 32 by default) or a larger "
                              "tile (--tile)")
        error.problem = problem  # without the command-line advice, for a suite file's own words
        raise error
    return size


def run_tiled(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, policy: FitPolicy,
              tile: int, overlap: int = 32) -> torch.Tensor:
    """Overlapping tiled inference: tiles of ``tile`` x ``tile`` pixels with ``overlap`` pixels shared by
    neighbours, outputs averaged where tiles overlap (uniform weights, as the PromptIR/Restormer demos).

    ``tile`` is rounded down to the policy's multiple; edge tiles are shifted inwards so every tile has the full
    size (images smaller than a tile are run whole through ``run_padded``)."""
    tile = tile_size(tile, overlap, policy.multiple)
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return run_padded(forward, x, policy)
    stride = tile - overlap
    out = weight = None
    for top in _tile_starts(height, tile, stride):
        for left in _tile_starts(width, tile, stride):
            patch = x[..., top:top + tile, left:left + tile]
            restored = run_padded(forward, patch, policy)
            if out is None:
                out = x.new_zeros((x.shape[0], restored.shape[1], height, width), dtype=restored.dtype)
                weight = x.new_zeros((1, 1, height, width), dtype=restored.dtype)
            out[..., top:top + patch.shape[-2], left:left + patch.shape[-1]] += restored
            weight[..., top:top + patch.shape[-2], left:left + patch.shape[-1]] += 1
    return out / weight
