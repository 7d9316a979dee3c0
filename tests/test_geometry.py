"""Size fitting: padding to a multiple and overlapping tiles give the model what it needs and crop back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench_ir.engine import same_size_batches
from bench_ir.geometry import FitPolicy, GeometryError, fit_policy, run_padded, run_tiled


def _needs_multiple_of_8(x: torch.Tensor) -> torch.Tensor:
    assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
    return x * 2


def test_reflect_padding_feeds_a_multiple_and_crops_the_output_back():
    x = torch.rand(1, 3, 21, 30)
    out = run_padded(_needs_multiple_of_8, x, FitPolicy(8, "reflect"))
    assert out.shape == x.shape
    torch.testing.assert_close(out, x * 2)


def test_policy_without_padding_rejects_a_size_that_is_not_a_multiple():
    with pytest.raises(GeometryError, match="task/img.png: 21x30 is not a multiple of 8"):
        FitPolicy(8, "none").check(21, 30, "task/img.png")


def test_pad_multiple_protocol_combines_its_base_with_the_card_multiple():
    policy = fit_policy(card_multiple=16, card_pad_mode="none", protocol_rule="pad_multiple", protocol_base=8,
                        protocol_pad_mode="reflect")
    assert policy == FitPolicy(16, "reflect")


def test_tiled_inference_of_a_pointwise_model_equals_whole_image_inference():
    model = nn.Conv2d(3, 3, 1)
    x = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        torch.testing.assert_close(run_tiled(model, x, FitPolicy(1), tile=32, overlap=8), model(x))


def test_tiled_inference_of_a_conv_model_matches_away_from_tile_seams():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        tiled, whole = run_tiled(model, x, FitPolicy(8), tile=40, overlap=16), model(x)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled[..., :24, :24], whole[..., :24, :24])  # covered by the first tile only
    assert (tiled - whole).abs().max() < 0.5


def test_tile_overlap_must_be_smaller_than_the_tile():
    with pytest.raises(GeometryError, match="overlap"):
        run_tiled(lambda t: t, torch.rand(1, 3, 64, 64), FitPolicy(8), tile=16, overlap=16)


def test_same_size_batches_only_group_images_of_equal_size_in_dataset_order():
    sizes = [(8, 8), (8, 16), (8, 8), (8, 8), (8, 16)]
    assert same_size_batches(sizes, batch_size=2) == [[0, 2], [3], [1, 4]]


def test_same_size_batches_respect_a_subset_order():
    sizes = [(8, 8)] * 4
    assert same_size_batches(sizes, batch_size=8, order=[3, 1]) == [[3, 1]]
