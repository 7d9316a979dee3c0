"""Reference centre crop (crop_img) and bottom/right padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench_ir.data.crops import center_crop_to_multiple, crop_to, cropped_size, pad_to_multiple
from bench_ir.protocol import CropSpec


def _indexed(height: int, width: int) -> np.ndarray:
    """(H, W, 3) array whose pixel (y, x) holds y and x, so a crop shows exactly which rows/columns it kept."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows, cols, rows * 0], axis=-1)


def test_bsd68_481x321_keeps_the_first_row_and_column():
    img = _indexed(321, 481)
    out = center_crop_to_multiple(img, 16)
    assert out.shape == (320, 480, 3)
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 0
    assert out[-1, -1, 0] == 319 and out[-1, -1, 1] == 479


def test_lolv1_600x400_loses_4_pixels_left_and_right():
    img = _indexed(400, 600)
    out = center_crop_to_multiple(img, 16)
    assert out.shape == (400, 592, 3)
    assert out[0, 0, 1] == 4 and out[0, -1, 1] == 595
    assert out[0, 0, 0] == 0 and out[-1, 0, 0] == 399


def test_odd_remainder_drops_the_extra_pixel_at_the_bottom():
    out = center_crop_to_multiple(_indexed(19, 16), 16)  # r = 3: one row off the top, two off the bottom
    assert out[:, 0, 0].tolist() == list(range(1, 17))


def test_aligned_image_is_unchanged():
    img = _indexed(720, 1280)
    np.testing.assert_array_equal(center_crop_to_multiple(img, 16), img)


def test_image_smaller_than_the_base_is_an_error():
    with pytest.raises(ValueError, match="smaller than the crop multiple 16"):
        center_crop_to_multiple(_indexed(12, 40), 16)


@pytest.mark.parametrize("height,width", [(321, 481), (400, 600), (171, 256), (16, 17), (63, 95)])
def test_cropped_size_matches_the_crop(height, width):
    out = center_crop_to_multiple(_indexed(height, width), 16)
    assert cropped_size(height, width, CropSpec(rule="center_multiple", base=16)) == out.shape[:2]
    assert cropped_size(height, width, CropSpec(rule="none")) == (height, width)
    assert cropped_size(height, width, CropSpec(rule="pad_multiple", base=8)) == (height, width)


def _numpy_pad(x: torch.Tensor, height: int, width: int, mode: str) -> np.ndarray:
    array = x.numpy()
    pads = ((0, 0), (0, 0), (0, height - array.shape[-2]), (0, width - array.shape[-1]))
    return np.pad(array, pads, mode=mode)


@pytest.mark.parametrize("size", [(5, 7), (3, 2), (9, 8), (2, 2)])
def test_reflect_pad_equals_numpy_reflect_including_pads_larger_than_the_image(size):
    x = torch.arange(2 * size[0] * size[1], dtype=torch.float32).reshape(1, 2, *size)
    padded, original = pad_to_multiple(x, 8)
    assert original == size and padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    np.testing.assert_array_equal(padded.numpy(), _numpy_pad(x, *padded.shape[-2:], "reflect"))


def test_reflect_pad_replicates_a_one_pixel_side():
    x = torch.arange(4, dtype=torch.float32).reshape(1, 1, 1, 4)
    padded, _ = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert (padded == padded[:, :, :1]).all()
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1]


def test_replicate_and_constant_modes_pad_bottom_right_only():
    x = torch.rand(1, 3, 5, 6)
    replicate, _ = pad_to_multiple(x, 4, mode="replicate")
    constant, _ = pad_to_multiple(x, 4, mode="constant")
    assert replicate.shape == constant.shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(replicate.numpy(), _numpy_pad(x, 8, 8, "edge"))
    assert (constant[..., 5:, :] == 0).all() and (constant[..., :, 6:] == 0).all()
    torch.testing.assert_close(constant[..., :5, :6], x, rtol=0, atol=0)


def test_crop_to_undoes_the_padding_and_aligned_input_is_returned_as_is():
    x = torch.rand(2, 3, 13, 21)
    padded, size = pad_to_multiple(x, 8)
    assert torch.equal(crop_to(padded, size), x)
    aligned = torch.rand(1, 3, 16, 8)
    assert pad_to_multiple(aligned, 8)[0] is aligned
    three_d, _ = pad_to_multiple(torch.rand(3, 5, 5), 8)
    assert three_d.shape == (3, 8, 8)


def test_unknown_pad_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown pad mode"):
        pad_to_multiple(torch.rand(1, 3, 5, 5), 8, mode="wrap")
