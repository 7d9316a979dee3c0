"""AdaIR (decoder=True): official parameter count and state_dict layout (unused layers included), the
learned FFT box mask, parity with the official code (whole model, and one frequency block with non-empty
per-sample masks) through a committed golden fixture, Lightning checkpoint loading, and the size rule.

The golden fixture ``fixtures/adair_golden.pt`` was produced outside the repository from the official
``net/model.py`` (c-yn/AdaIR at ccb8b98, unmodified): weights made by :func:`seeded_adair` and
:func:`seeded_frequency_block` were loaded into ``AdaIR(decoder=True)`` and ``FreModule(16, num_heads=2,
bias=False)`` with ``strict=True``, and their eval outputs for the stored inputs were saved (for the block,
every 32nd pixel of the output and of its low-frequency part, to keep the file small). No official code is
in this repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import add_weight_noise

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import create_model
from bench_ir.models.adair import UNUSED_MODULES, AdaIR, FrequencyLearningBlock, frequency_mask
from bench_ir.models.restormer import Restormer

GOLDEN = Path(__file__).parent / "fixtures" / "adair_golden.pt"
WEIGHT_SEED = 0
PERTURB_SEED = 1
PERTURB_SCALE = 0.02
PARITY_ATOL = 1e-5
INPUT_SHAPE = (2, 3, 16, 24)  # one shape throughout: CPU conv kernels are prepared once per input shape
OFFICIAL_PARAMS = 28_784_824
OFFICIAL_KEYS = 587
UNUSED_PARAMS = 18_738
BLOCK_DIM, BLOCK_HEADS, BLOCK_PERTURB_SCALE = 16, 2, 0.3
BLOCK_FEATURE_SIZE = (384, 384)
BLOCK_STRIDE = 32


@cache
def seeded_adair() -> AdaIR:
    """Deterministic weights (fixture recipe; built once): ``torch.manual_seed(WEIGHT_SEED)``, construction, then
    N(0, PERTURB_SCALE^2) noise on every tensor in state_dict key order (CPU generator ``PERTURB_SEED``)."""
    torch.manual_seed(WEIGHT_SEED)
    model = AdaIR()
    add_weight_noise(model, PERTURB_SEED, PERTURB_SCALE)
    return model.eval()


def seeded_frequency_block() -> FrequencyLearningBlock:
    """A small frequency block (dim 16, 2 heads) whose output depends strongly on both frequency parts:
    the :func:`seeded_adair` recipe with noise scale 0.3, then ``para1`` set to 1 and the last rate conv
    scaled by 4 (so the two fixture samples get different, non-empty low-frequency boxes)."""
    torch.manual_seed(WEIGHT_SEED)
    block = FrequencyLearningBlock(BLOCK_DIM, BLOCK_HEADS, bias=False)
    add_weight_noise(block, PERTURB_SEED, BLOCK_PERTURB_SCALE)
    with torch.no_grad():
        block.para1.fill_(1.0)
        block.rate_conv[2].weight.mul_(4.0)
    return block.eval()


def block_features(seed: torch.Tensor) -> torch.Tensor:
    """The block's feature input: the stored (2, 16, 12, 12) seed upsampled bilinearly to 384x384."""
    return F.interpolate(seed, BLOCK_FEATURE_SIZE, mode="bilinear")


@cache
def state_dict_shapes(decoder: bool = True) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = AdaIR(decoder=decoder)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def adair() -> AdaIR:
    return seeded_adair()


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


# --- size and layout: identical to the official class -----------------------------------------------

def test_card_builds_the_model_with_the_official_count() -> None:
    with torch.device("meta"):
        model = create_model("adair")
    assert count_parameters(model) == OFFICIAL_PARAMS == get_card("adair").expected_params
    assert len(state_dict_shapes()) == OFFICIAL_KEYS


@pytest.mark.parametrize(("key", "shape"), [
    ("fre1.conv.weight", (384, 3, 3, 3)),
    ("fre1.conv1.weight", (384, 3, 3, 3)),
    ("fre1.score_gen.weight", (2, 2, 7, 7)),
    ("fre1.score_gen.bias", (2,)),
    ("fre1.para1", (384, 1, 1)),
    ("fre1.para2", (384, 1, 1)),
    ("fre1.channel_cross_l.temperature", (4, 1, 1)),
    ("fre1.channel_cross_l.q.weight", (384, 384, 1, 1)),
    ("fre1.channel_cross_h.q_dwconv.weight", (384, 1, 3, 3)),
    ("fre1.channel_cross_agg.kv.weight", (768, 384, 1, 1)),
    ("fre1.channel_cross_agg.kv_dwconv.weight", (768, 1, 3, 3)),
    ("fre1.channel_cross_agg.project_out.weight", (384, 384, 1, 1)),
    ("fre1.frequency_refine.SpatialGate.spatial.weight", (1, 2, 7, 7)),
    ("fre1.frequency_refine.ChannelGate.mlp.0.weight", (24, 384, 1, 1)),
    ("fre1.frequency_refine.ChannelGate.mlp.2.weight", (384, 24, 1, 1)),
    ("fre1.frequency_refine.proj.weight", (384, 384, 1, 1)),
    ("fre1.frequency_refine.proj.bias", (384,)),
    ("fre1.rate_conv.0.weight", (48, 384, 1, 1)),
    ("fre1.rate_conv.2.weight", (2, 48, 1, 1)),
    ("fre2.para1", (192, 1, 1)),
    ("fre3.conv1.weight", (96, 3, 3, 3)),
    ("fre3.channel_cross_l.temperature", (4, 1, 1)),
    ("up4_3.body.0.weight", (768, 384, 3, 3)),
    ("reduce_chan_level3.weight", (192, 384, 1, 1)),
    ("refinement.3.ffn.project_out.weight", (96, 255, 1, 1)),
])
def test_official_key_has_official_shape(key: str, shape: tuple[int, ...]) -> None:
    assert state_dict_shapes()[key] == shape


def test_without_the_frequency_blocks_the_layout_is_restormer() -> None:
    with torch.device("meta"):
        restormer = Restormer()
    assert state_dict_shapes(decoder=False) == {k: tuple(v.shape) for k, v in restormer.state_dict().items()}


def test_unused_official_layers_are_kept_but_never_run(adair: AdaIR) -> None:
    names = [f"fre{level}.{module}" for level in (1, 2, 3) for module in UNUSED_MODULES]
    assert sum(p.numel() for name in names for p in adair.get_submodule(name).parameters()) == UNUSED_PARAMS
    calls: list[str] = []
    hooks = [adair.get_submodule(name).register_forward_hook(lambda *_, name=name: calls.append(name))
             for name in names]
    with torch.no_grad():
        adair(torch.rand(INPUT_SHAPE))
    for hook in hooks:
        hook.remove()
    assert calls == []


# --- the learned low-frequency box -------------------------------------------------------------------

def test_mask_is_a_centred_box_with_truncated_half_sides() -> None:
    mask = frequency_mask(torch.tensor([[0.5, 0.99]]), 512, 384)  # half-sides int(4*.5)=2, int(3*.99)=2
    expected = torch.zeros(1, 1, 512, 384)
    expected[..., 254:258, 190:194] = 1.0
    assert torch.equal(mask, expected)


def test_mask_is_empty_when_a_side_is_under_128_pixels() -> None:
    assert frequency_mask(torch.tensor([[1.0, 1.0]]), 127, 1024).sum() == 0


def test_mask_below_256_pixels_needs_a_saturated_rate() -> None:
    rates = torch.tensor([[0.999, 0.999], [1.0, 1.0]])
    assert frequency_mask(rates, 200, 200).flatten(1).sum(1).tolist() == [0.0, 4.0]


def test_empty_mask_sends_the_whole_signal_to_the_high_frequency_part() -> None:
    block = seeded_frequency_block()
    image = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        high, low = block.split_frequencies(image)
        embedded = block.conv1(image)
    assert torch.equal(low, torch.zeros_like(low))
    torch.testing.assert_close(high, embedded.abs(), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def block_run(golden: dict) -> dict:
    """The seeded block on the fixture inputs: masks, batched output, per-sample outputs, low part."""
    block = seeded_frequency_block()
    image, features = golden["block"]["image"], block_features(golden["block"]["feature_seed"])
    resized = F.interpolate(image, BLOCK_FEATURE_SIZE, mode="bilinear")
    with torch.no_grad():
        return {
            "masks": frequency_mask(block.rates(block.conv1(resized)), *BLOCK_FEATURE_SIZE),
            "output": block(image, features),
            "single": torch.cat([block(image[i:i + 1], features[i:i + 1]) for i in range(2)]),
            "low": block.split_frequencies(resized)[1],
        }


def test_each_sample_gets_its_own_box(golden: dict, block_run: dict) -> None:
    areas = golden["block"]["mask_areas"]
    assert block_run["masks"].flatten(1).sum(1).tolist() == areas
    assert len(set(areas)) == 2 and min(areas) > 0
    torch.testing.assert_close(block_run["output"], block_run["single"], atol=1e-5, rtol=0)


# --- parity with the official code -------------------------------------------------------------------

def test_eval_output_matches_official(golden: dict, adair: AdaIR) -> None:
    with torch.no_grad():
        out = adair(golden["model"]["input"])
    assert (out - golden["model"]["output"]).abs().max().item() <= PARITY_ATOL


def test_frequency_block_with_non_empty_masks_matches_official(golden: dict, block_run: dict) -> None:
    sub = (..., slice(None, None, BLOCK_STRIDE), slice(None, None, BLOCK_STRIDE))
    assert (block_run["output"][sub] - golden["block"]["output"]).abs().max().item() <= PARITY_ATOL
    assert (block_run["low"][sub] - golden["block"]["low"]).abs().max().item() <= PARITY_ATOL


# --- size rule ---------------------------------------------------------------------------------------

def test_card_needs_multiples_of_8_without_padding() -> None:
    card = get_card("adair")
    assert (card.input_multiple, card.pad_mode) == (8, "none")


def test_size_not_divisible_by_8_raises_a_clear_error(adair: AdaIR) -> None:
    with pytest.raises(ValueError, match="AdaIR needs H and W divisible by 8, got 16x12"):
        adair(torch.rand(1, 3, 16, 12))
