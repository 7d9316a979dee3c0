"""Modulated deformable convolution: mmcv's conventions (offset layout, mask layout, zero outside the image),
spelled out on tiny tensors for both backends, and agreement of torchvision's kernel with the pure-PyTorch
reference on random inputs whose sampling points fall outside the image."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench_ir.models.deform_conv import (
    modulated_deform_conv2d,
    modulated_deform_conv2d_reference,
    resolve_backend,
    split_offset_mask,
    torchvision_available,
)

needs_torchvision = pytest.mark.skipif(not torchvision_available(), reason="torchvision not installed")
BACKENDS = ["reference", pytest.param("torchvision", marks=needs_torchvision)]
AGREEMENT_ATOL = 1e-5


def one_by_one_shift(image: torch.Tensor, dy: float, dx: float, backend: str) -> torch.Tensor:
    """A 1x1 identity kernel per channel (groups = channels) whose only tap is displaced by (dy, dx)."""
    batch, channels, height, width = image.shape
    weight = torch.ones(channels, 1, 1, 1)
    offset = torch.tensor([dy, dx]).view(1, 2, 1, 1).expand(batch, 2, height, width).repeat(1, channels, 1, 1)
    mask = torch.ones(batch, channels, height, width)
    return modulated_deform_conv2d(image, offset, mask, weight, backend=backend)


@pytest.fixture
def ramp() -> torch.Tensor:
    """1x1x4x5 image whose value is 10 * row + column."""
    rows = torch.arange(4.0).view(4, 1)
    cols = torch.arange(5.0).view(1, 5)
    return (10 * rows + cols).view(1, 1, 4, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_offset_channel_2k_is_vertical_and_2k_plus_1_horizontal(ramp: torch.Tensor, backend: str) -> None:
    down = one_by_one_shift(ramp, 1.0, 0.0, backend)
    right = one_by_one_shift(ramp, 0.0, 1.0, backend)
    assert torch.equal(down[0, 0, :3], ramp[0, 0, 1:])
    assert torch.equal(right[0, 0, :, :4], ramp[0, 0, :, 1:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_samples_beyond_the_last_row_or_column_are_zero(ramp: torch.Tensor, backend: str) -> None:
    assert torch.equal(one_by_one_shift(ramp, 1.0, 0.0, backend)[0, 0, 3], torch.zeros(5))
    assert torch.equal(one_by_one_shift(ramp, 0.0, 1.0, backend)[0, 0, :, 4], torch.zeros(4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fractional_offsets_interpolate_bilinearly(ramp: torch.Tensor, backend: str) -> None:
    out = one_by_one_shift(ramp, 0.25, 0.5, backend)
    expected = ramp[0, 0, :3, :4] + 0.25 * 10 + 0.5  # the ramp is linear in both directions
    assert torch.allclose(out[0, 0, :3, :4], expected, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_points_at_or_above_row_minus_one_are_zero_and_those_inside_blend_with_zero(backend: str) -> None:
    image = torch.full((1, 1, 3, 3), 8.0)
    at_minus_one = one_by_one_shift(image, -1.0, 0.0, backend)[0, 0, 0]
    half_outside = one_by_one_shift(image, -0.5, 0.0, backend)[0, 0, 0]
    far_outside = one_by_one_shift(image, -7.3, 0.0, backend)[0, 0]
    assert torch.equal(at_minus_one, torch.zeros(3))
    assert torch.allclose(half_outside, torch.full((3,), 4.0))
    assert torch.equal(far_outside, torch.zeros(3, 3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_offsets_and_unit_mask_give_the_plain_convolution(backend: str) -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(2, 4, 9, 7, generator=generator)
    weight = torch.randn(6, 4, 3, 3, generator=generator)
    bias = torch.randn(6, generator=generator)
    offset = torch.zeros(2, 18, 9, 7)
    mask = torch.ones(2, 9, 9, 7)
    out = modulated_deform_conv2d(image, offset, mask, weight, bias, padding=1, backend=backend)
    assert torch.allclose(out, F.conv2d(image, weight, bias, padding=1), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_channel_k_weights_kernel_position_k_in_row_major_order(backend: str) -> None:
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, 2, 6, 6, generator=generator)
    weight = torch.randn(3, 2, 3, 3, generator=generator)
    mask = torch.zeros(1, 9, 6, 6)
    mask[:, 5] = 0.3  # kernel row 1, column 2
    only_tap = torch.zeros_like(weight)
    only_tap[:, :, 1, 2] = weight[:, :, 1, 2]
    out = modulated_deform_conv2d(image, torch.zeros(1, 18, 6, 6), mask, weight, padding=1, backend=backend)
    assert torch.allclose(out, 0.3 * F.conv2d(image, only_tap, padding=1), atol=1e-6)


CONFIGS = {
    "3x3 pad 1": dict(channels=4, out=6, kernel=(3, 3), stride=1, padding=1, dilation=1, groups=1, offset_groups=1),
    "stride 2 dilation 2": dict(channels=8, out=6, kernel=(3, 3), stride=2, padding=2, dilation=2, groups=2,
                                offset_groups=2),
    "3x2 kernel": dict(channels=6, out=4, kernel=(3, 2), stride=(1, 2), padding=(1, 0), dilation=1, groups=1,
                       offset_groups=3),
}


@needs_torchvision
@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_torchvision_kernel_agrees_with_the_reference_including_out_of_bounds_offsets(config: dict) -> None:
    generator = torch.Generator().manual_seed(2)
    kh, kw = config["kernel"]
    image = torch.randn(2, config["channels"], 9, 11, generator=generator)
    weight = torch.randn(config["out"], config["channels"] // config["groups"], kh, kw, generator=generator)
    bias = torch.randn(config["out"], generator=generator)
    height, width = F.conv2d(image, weight, stride=config["stride"], padding=config["padding"],
                             dilation=config["dilation"], groups=config["groups"]).shape[-2:]
    taps = config["offset_groups"] * kh * kw
    offset = torch.randn(2, 2 * taps, height, width, generator=generator) * 4  # many points fall outside
    offset[:, 0, 0, :] = -1.0  # exactly on the lower border of the sampling range
    offset[:, 1, :, -1] = float(width)
    mask = torch.rand(2, taps, height, width, generator=generator)
    arguments = (image, offset, mask, weight, bias, config["stride"], config["padding"], config["dilation"])
    fast = modulated_deform_conv2d(*arguments, backend="torchvision")
    reference = modulated_deform_conv2d_reference(*arguments)
    assert fast.shape == (2, config["out"], height, width)
    assert (fast - reference).abs().max().item() <= AGREEMENT_ATOL


@needs_torchvision
def test_torchvision_and_reference_gradients_agree_for_input_weight_and_mask() -> None:
    generator = torch.Generator().manual_seed(3)
    tensors = [torch.randn(1, 3, 7, 8, generator=generator), torch.randn(1, 18, 7, 8, generator=generator) * 2,
               torch.rand(1, 9, 7, 8, generator=generator), torch.randn(4, 3, 3, 3, generator=generator)]
    upstream = torch.randn(1, 4, 7, 8, generator=generator)
    gradients = {}
    for backend in ("torchvision", "reference"):
        leaves = [t.clone().requires_grad_() for t in tensors]
        image, offset, mask, weight = leaves
        (modulated_deform_conv2d(image, offset, mask, weight, padding=1, backend=backend) * upstream).sum().backward()
        gradients[backend] = [leaf.grad for leaf in leaves]
    for name, index in (("input", 0), ("mask", 2), ("weight", 3)):
        difference = (gradients["torchvision"][index] - gradients["reference"][index]).abs().max().item()
        assert difference <= AGREEMENT_ATOL, name


def test_split_offset_mask_keeps_the_first_two_thirds_and_applies_sigmoid_to_the_rest() -> None:
    raw = torch.randn(2, 27, 4, 4, generator=torch.Generator().manual_seed(4))
    offset, mask = split_offset_mask(raw)
    assert torch.equal(offset, raw[:, :18])
    assert torch.equal(mask, torch.sigmoid(raw[:, 18:]))


def test_split_offset_mask_rejects_a_channel_count_not_divisible_by_three() -> None:
    with pytest.raises(ValueError, match="multiple of 3"):
        split_offset_mask(torch.zeros(1, 26, 2, 2))


def test_reference_rejects_an_offset_that_does_not_fit_the_kernel() -> None:
    with pytest.raises(ValueError, match="offset must be"):
        modulated_deform_conv2d_reference(torch.zeros(1, 2, 5, 5), torch.zeros(1, 17, 5, 5), torch.ones(1, 9, 5, 5),
                                          torch.zeros(2, 2, 3, 3), padding=1)


def test_auto_backend_is_torchvision_exactly_when_it_is_installed() -> None:
    assert resolve_backend("auto") == ("torchvision" if torchvision_available() else "reference")
    assert resolve_backend("reference") == "reference"


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        resolve_backend("mmcv")  # type: ignore[arg-type]
