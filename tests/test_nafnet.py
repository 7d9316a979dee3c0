"""NAFNet (17.11M configuration): official parameter count and state_dict layout, the internal zero padding
to a multiple of 16, block and LayerNorm2d semantics, and loading of an official BasicSR ``params`` file.

Parity with the official class (megvii-research/NAFNet @2b4af71) was measured outside the repository: see
the ``parity`` field of registry/nafnet.yaml.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import create_model, read_checkpoint
from bench_ir.models.nafnet import LayerNorm2d, NAFBlock, NAFNet

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

OFFICIAL_PARAMS = 17_111_907
OFFICIAL_SIDD_WIDTH32_PARAMS = 29_159_715
OFFICIAL_KEYS = 664


def photo(height: int, width: int) -> torch.Tensor:
    """Area-downscaled crop of scikit-image's coffee photo, RGB in [0, 1], shape (1, 3, height, width)."""
    image = torch.from_numpy(np.ascontiguousarray(data.coffee())).permute(2, 0, 1).float() / 255
    return F.interpolate(image[None, :, :, 100:500], size=(height, width), mode="area")


@pytest.fixture(scope="module")
def model() -> NAFNet:
    """Seeded NAFNet whose weights are moved off their initialisation (beta and gamma non-zero, so that every
    block contributes)."""
    torch.manual_seed(0)
    net = NAFNet()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            scale = 0.2 if name.endswith(("beta", "gamma")) else 0.02
            tensor.add_(torch.randn(tensor.shape, generator=generator) * scale)
    return net.eval()


@pytest.fixture(scope="module")
def shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {key: tuple(value.shape) for key, value in NAFNet().state_dict().items()}


# --- size and layout ----------------------------------------------------------------------------------

def test_parameter_count_equals_official_and_card() -> None:
    with torch.device("meta"):
        built = create_model("nafnet")
    assert count_parameters(built) == OFFICIAL_PARAMS == get_card("nafnet").expected_params


def test_sidd_width32_layout_has_its_official_parameter_count() -> None:
    with torch.device("meta"):
        built = NAFNet(width=32, middle_blk_num=12, enc_blk_nums=(2, 2, 4, 8), dec_blk_nums=(2, 2, 2, 2))
    assert count_parameters(built) == OFFICIAL_SIDD_WIDTH32_PARAMS


def test_state_dict_keys_come_in_the_official_order(shapes: dict[str, tuple[int, ...]]) -> None:
    keys = list(shapes)
    assert len(keys) == OFFICIAL_KEYS
    assert keys[:5] == ["intro.weight", "intro.bias", "ending.weight", "ending.bias", "encoders.0.0.beta"]
    first = {prefix: next(i for i, k in enumerate(keys) if k.startswith(prefix))
             for prefix in ("encoders.", "decoders.", "middle_blks.", "ups.", "downs.")}
    assert sorted(first, key=first.get) == ["encoders.", "decoders.", "middle_blks.", "ups.", "downs."]


@pytest.mark.parametrize(("key", "shape"), [
    ("intro.weight", (32, 3, 3, 3)),
    ("ending.weight", (3, 32, 3, 3)),
    ("encoders.0.0.norm1.weight", (32,)),
    ("encoders.0.0.beta", (1, 32, 1, 1)),
    ("encoders.0.0.conv2.weight", (64, 1, 3, 3)),
    ("encoders.0.0.sca.1.weight", (32, 32, 1, 1)),
    ("encoders.3.27.conv1.weight", (512, 256, 1, 1)),
    ("encoders.3.27.conv5.weight", (256, 256, 1, 1)),
    ("downs.0.weight", (64, 32, 2, 2)),
    ("downs.3.bias", (512,)),
    ("middle_blks.0.gamma", (1, 512, 1, 1)),
    ("ups.0.0.weight", (1024, 512, 1, 1)),
    ("decoders.3.0.norm2.bias", (32,)),
])
def test_official_key_has_official_shape(shapes: dict[str, tuple[int, ...]], key: str, shape: tuple[int, ...]) -> None:
    assert shapes[key] == shape


def test_upsampling_convs_have_no_bias(shapes: dict[str, tuple[int, ...]]) -> None:
    assert not [key for key in shapes if key.startswith("ups.") and key.endswith("bias")]


def test_encoder_and_decoder_depths_must_match() -> None:
    with pytest.raises(ValueError, match="same length"):
        NAFNet(enc_blk_nums=(1, 1), dec_blk_nums=(1,))


# --- size rule: zero padding to a multiple of 16 inside the model -------------------------------------

@pytest.mark.parametrize("size", [(16, 32), (21, 27), (5, 3)])
def test_output_has_the_input_size(model: NAFNet, size: tuple[int, int]) -> None:
    with torch.no_grad():
        assert model(photo(*size)).shape == (1, 3, *size)


def test_any_size_is_restored_as_its_zero_padded_multiple_of_16_then_cropped(model: NAFNet) -> None:
    image = photo(21, 27)
    padded = F.pad(image, (0, 5, 0, 11))
    with torch.no_grad():
        assert torch.equal(model(image), model(padded)[:, :, :21, :27])
    assert model.padder_size == 16


def test_batched_output_equals_one_image_at_a_time(model: NAFNet) -> None:
    images = torch.cat([photo(16, 16), photo(16, 16).flip(-1)])
    with torch.no_grad():
        alone = torch.cat([model(images[:1]), model(images[1:])])
        assert (model(images) - alone).abs().max().item() <= 1e-5


# --- blocks and normalisation -------------------------------------------------------------------------

def test_fresh_block_is_the_identity() -> None:
    x = torch.randn(2, 8, 5, 6)
    assert torch.equal(NAFBlock(8)(x), x)


def test_layer_norm_2d_normalises_each_pixel_over_channels_with_eps_1e_6() -> None:
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(2, 6, 4, 5) * 1e-3  # small variance: eps matters
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(norm(x), expected, atol=1e-5)


def test_layer_norm_2d_gradient_is_the_official_closed_form() -> None:
    """The official custom backward: g = dy * w; dx = (g - y * mean_c(g * y) - mean_c(g)) / sqrt(var + eps)."""
    norm = LayerNorm2d(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64, requires_grad=True)
    norm = norm.double()
    upstream = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    (norm(x) * upstream).sum().backward()
    mean = x.detach().mean(1, keepdim=True)
    variance = (x.detach() - mean).pow(2).mean(1, keepdim=True)
    y = (x.detach() - mean) / (variance + 1e-6).sqrt()
    g = upstream * norm.weight.detach().view(1, -1, 1, 1)
    expected = (g - y * (g * y).mean(1, keepdim=True) - g.mean(1, keepdim=True)) / (variance + 1e-6).sqrt()
    assert torch.allclose(x.grad, expected, atol=1e-10)
    assert torch.allclose(norm.weight.grad, (upstream * y).sum((0, 2, 3)), atol=1e-10)
    assert torch.allclose(norm.bias.grad, upstream.sum((0, 2, 3)), atol=1e-10)


# --- official checkpoint format -----------------------------------------------------------------------

def test_basicsr_params_file_round_trips_through_the_card_strictly(model: NAFNet, tmp_path: Path) -> None:
    path = tmp_path / "NAFNet-width32.pth"
    torch.save({"params": model.state_dict()}, path)
    assert read_checkpoint(path).format == "basicsr"
    loaded = create_model("nafnet", checkpoint=path)
    image = photo(16, 24)
    with torch.no_grad():
        assert torch.equal(loaded(image), model(image))
