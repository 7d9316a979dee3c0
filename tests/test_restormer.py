"""Restormer: official parameter counts and state_dict layout (WithBias, BiasFree, dual-pixel), parity with
the official code through a committed golden fixture, BasicSR checkpoint loading, and the size rule.

The golden fixture ``fixtures/restormer_golden.pt`` was produced outside the repository from the official
``basicsr/models/archs/restormer_arch.py`` (swz30/Restormer at df766d5, unmodified): weights made by
:func:`seeded_restormer` were loaded into the official class with ``strict=True`` and its eval outputs for
the stored inputs were saved. No official code is in this repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from conftest import add_weight_noise

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import CheckpointMismatchError, create_model
from bench_ir.geometry import fit_policy, run_padded
from bench_ir.models.restormer import MDTA, Restormer

GOLDEN = Path(__file__).parent / "fixtures" / "restormer_golden.pt"
WEIGHT_SEED = 0
PERTURB_SEED = 1
PERTURB_SCALE = 0.02
PARITY_ATOL = 1e-5
INPUT_SHAPE = (1, 3, 16, 24)  # one shape throughout: CPU conv kernels are prepared once per input shape

VARIANTS = {
    "with_bias": {},
    "bias_free": {"LayerNorm_type": "BiasFree"},
    "dual_pixel": {"inp_channels": 6, "dual_pixel_task": True},
}
OFFICIAL_PARAMS = {"with_bias": 26_126_644, "bias_free": 26_111_668, "dual_pixel": 26_132_548}
OFFICIAL_KEYS = {"with_bias": 494, "bias_free": 406, "dual_pixel": 495}


@cache
def seeded_restormer(variant: str) -> Restormer:
    """Deterministic weights (the recipe of the golden fixture; built once per variant):
    ``torch.manual_seed(WEIGHT_SEED)``, then construction, then N(0, PERTURB_SCALE^2) noise added to every
    tensor in state_dict key order from a CPU generator seeded ``PERTURB_SEED`` (moves norms and temperatures
    off their init values)."""
    torch.manual_seed(WEIGHT_SEED)
    return add_weight_noise(Restormer(**VARIANTS[variant]), PERTURB_SEED, PERTURB_SCALE).eval()


@cache
def state_dict_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = Restormer(**VARIANTS[variant])
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


@pytest.fixture(scope="module")
def restormer() -> Restormer:
    return seeded_restormer("with_bias")


# --- size and layout: identical to the official class -----------------------------------------------

def test_card_builds_the_with_bias_model_with_the_official_count() -> None:
    with torch.device("meta"):
        model = create_model("restormer")
    assert count_parameters(model) == OFFICIAL_PARAMS["with_bias"] == get_card("restormer").expected_params


def test_bias_free_variant_is_selected_through_the_layer_norm_argument() -> None:
    with torch.device("meta"):
        model = create_model("restormer", LayerNorm_type="BiasFree")
    assert count_parameters(model) == OFFICIAL_PARAMS["bias_free"]
    assert not [key for key in model.state_dict() if ".norm1.body.bias" in key or ".norm2.body.bias" in key]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_has_official_parameter_and_key_counts(variant: str) -> None:
    shapes = state_dict_shapes(variant)
    assert len(shapes) == OFFICIAL_KEYS[variant]
    with torch.device("meta"):
        assert count_parameters(Restormer(**VARIANTS[variant])) == OFFICIAL_PARAMS[variant]


@pytest.mark.parametrize(("variant", "key", "shape"), [
    ("with_bias", "patch_embed.proj.weight", (48, 3, 3, 3)),
    ("with_bias", "encoder_level1.0.norm1.body.weight", (48,)),
    ("with_bias", "encoder_level1.0.norm1.body.bias", (48,)),
    ("with_bias", "encoder_level1.0.attn.temperature", (1, 1, 1)),
    ("with_bias", "encoder_level1.0.attn.qkv.weight", (144, 48, 1, 1)),
    ("with_bias", "encoder_level1.0.attn.qkv_dwconv.weight", (144, 1, 3, 3)),
    ("with_bias", "encoder_level1.0.attn.project_out.weight", (48, 48, 1, 1)),
    ("with_bias", "encoder_level1.0.ffn.project_in.weight", (254, 48, 1, 1)),
    ("with_bias", "encoder_level1.0.ffn.dwconv.weight", (254, 1, 3, 3)),
    ("with_bias", "encoder_level1.0.ffn.project_out.weight", (48, 127, 1, 1)),
    ("with_bias", "down1_2.body.0.weight", (24, 48, 3, 3)),
    ("with_bias", "encoder_level3.5.attn.temperature", (4, 1, 1)),
    ("with_bias", "latent.7.attn.temperature", (8, 1, 1)),
    ("with_bias", "latent.7.ffn.project_in.weight", (2042, 384, 1, 1)),
    ("with_bias", "up4_3.body.0.weight", (768, 384, 3, 3)),
    ("with_bias", "reduce_chan_level3.weight", (192, 384, 1, 1)),
    ("with_bias", "reduce_chan_level2.weight", (96, 192, 1, 1)),
    ("with_bias", "up2_1.body.0.weight", (192, 96, 3, 3)),
    ("with_bias", "decoder_level1.3.attn.qkv.weight", (288, 96, 1, 1)),
    ("with_bias", "refinement.3.ffn.project_out.weight", (96, 255, 1, 1)),
    ("with_bias", "output.weight", (3, 96, 3, 3)),
    ("dual_pixel", "patch_embed.proj.weight", (48, 6, 3, 3)),
    ("dual_pixel", "skip_conv.weight", (96, 48, 1, 1)),
])
def test_official_key_has_official_shape(variant: str, key: str, shape: tuple[int, ...]) -> None:
    assert state_dict_shapes(variant)[key] == shape


def test_bias_argument_adds_biases_to_convolutions() -> None:
    with torch.device("meta"):
        model = Restormer(bias=True)
    assert model.state_dict()["encoder_level1.0.attn.qkv.bias"].shape == (144,)


def test_heads_must_divide_the_attention_channels() -> None:
    with pytest.raises(ValueError, match="not divisible by 5 heads"):
        MDTA(48, 5, bias=False)


def test_residual_model_needs_as_many_output_as_input_channels() -> None:
    with pytest.raises(ValueError, match="inp_channels == out_channels"):
        Restormer(inp_channels=6, out_channels=3)


# --- parity with the official code -------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS))
def test_eval_output_matches_official(golden: dict, variant: str) -> None:
    model = seeded_restormer(variant)
    with torch.no_grad():
        out = model(golden[variant]["input"])
    assert (out - golden[variant]["output"]).abs().max().item() <= PARITY_ATOL


def test_bias_free_checkpoint_is_rejected_by_the_with_bias_card(tmp_path: Path) -> None:
    with torch.device("meta"):
        bias_free = Restormer(LayerNorm_type="BiasFree")
    path = tmp_path / "gaussian_color_denoising_blind.pth"
    torch.save({"params": {k: torch.zeros(v.shape) for k, v in bias_free.state_dict().items()}}, path)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)88 missing.*norm1\.body\.bias"):
        create_model("restormer", checkpoint=path)


# --- size rule ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(30, 32), (32, 36)])
def test_size_not_divisible_by_8_raises_a_clear_error(restormer: Restormer, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=f"Restormer needs H and W divisible by 8, got {size[0]}x{size[1]}"):
        restormer(torch.rand(1, 3, *size))


def test_card_reflect_pads_other_sizes_to_8_and_crops_back(restormer: Restormer) -> None:
    card = get_card("restormer")
    policy = fit_policy(card.input_multiple, card.pad_mode, "none", 1, "reflect")
    x = torch.rand(1, 3, 13, 22)
    with torch.no_grad():
        out = run_padded(restormer, x, policy)
        padded = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect")
        assert torch.equal(out, restormer(padded)[..., :13, :22])
