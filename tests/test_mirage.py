"""MIRAGE-T/S: official parameter counts and state_dict layout, eval/train outputs, size rule, parity with
the official code (through a committed golden fixture), shared layers, and the ``input`` passthrough model.

The golden fixture ``fixtures/mirage_golden.pt`` was produced outside the repository from the official
``net/mirage_tiny.py`` / ``net/mirage_small.py`` (Amazingren/MIRAGE at 926dc83, unmodified, with timm's
DropPath): weights made by :func:`seeded_mirage` were loaded into the official class with ``strict=True``,
and the official outputs for the stored input were saved (eval image; train-mode image and
``loss_ctr_spd / 0.01`` with every DropPath rate set to 0). No official code is in this repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import create_model
from bench_ir.losses import SpdProjections, spd_contrastive_loss
from bench_ir.models.identity import InputPassthrough
from bench_ir.models.layers import ChannelLayerNorm, Downsample, DropPath, Upsample
from bench_ir.models.mirage import MIRAGE

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

GOLDEN = Path(__file__).parent / "fixtures" / "mirage_golden.pt"
WEIGHT_SEED = 0
PERTURB_SEED = 1
PERTURB_SCALE = 0.02
PARITY_ATOL = 1e-5

OFFICIAL_PARAMS = {"tiny": 6_207_412, "small": 9_678_983}
OFFICIAL_KEYS = {"tiny": 964, "small": 991}
OFFICIAL_BUFFERS = {"tiny": 105, "small": 108}
SPD_HEAD_PREFIXES = ("reduce_shallow.", "reduce_latent.", "spd_proj_shallow.", "spd_proj_latent.")


def seeded_mirage(variant: str, **overrides) -> MIRAGE:
    """Deterministic MIRAGE weights (the recipe the golden fixture was made with).

    ``torch.manual_seed(WEIGHT_SEED)`` then construction (PyTorch default init, official module order);
    then, walking the state_dict in key order with a CPU generator seeded ``PERTURB_SEED``, every float
    tensor gets N(0, PERTURB_SCALE^2) noise added, except BatchNorm ``running_var``, which is drawn from
    U[0.5, 1.5). The noise moves BatchNorm statistics, branch alphas and temperatures off their init
    values so that they all influence the output.
    """
    torch.manual_seed(WEIGHT_SEED)
    model = MIRAGE(variant, **overrides)
    generator = torch.Generator().manual_seed(PERTURB_SEED)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.add_(torch.randn(tensor.shape, generator=generator) * PERTURB_SCALE)
    return model


@cache
def state_dict_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in MIRAGE(variant).state_dict().items()}


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


# --- size and layout: identical to the official classes ---------------------------------------------

@pytest.mark.parametrize(("card", "variant"), [("mirage-t", "tiny"), ("mirage-s", "small")])
def test_parameter_count_equals_official_and_card(card: str, variant: str) -> None:
    model = create_model(card)
    assert count_parameters(model) == OFFICIAL_PARAMS[variant] == get_card(card).expected_params


@pytest.mark.parametrize(("card", "variant"), [("mirage-t", "tiny"), ("mirage-s", "small")])
def test_inference_parameters_exclude_only_the_spd_head(card: str, variant: str) -> None:
    model = MIRAGE(variant)
    inference = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(SPD_HEAD_PREFIXES))
    assert inference == get_card(card).inference_params


@pytest.mark.parametrize("variant", ["tiny", "small"])
def test_state_dict_has_official_key_and_buffer_counts(variant: str) -> None:
    model = MIRAGE(variant)
    assert len(model.state_dict()) == len(state_dict_shapes(variant)) == OFFICIAL_KEYS[variant]
    assert len(list(model.buffers())) == OFFICIAL_BUFFERS[variant]


@pytest.mark.parametrize(("variant", "key", "shape"), [
    ("tiny", "patch_embed.proj.weight", (24, 3, 3, 3)),
    ("tiny", "encoder_level1.0.norm1.body.weight", (24,)),
    ("tiny", "encoder_level1.0.norm2.body.bias", (24,)),
    ("tiny", "encoder_level1.0.attn.temperature", (1, 1, 1)),
    ("tiny", "encoder_level1.0.attn.alpha_gated", (1,)),
    ("tiny", "encoder_level1.0.attn.qkv.weight", (24, 8, 1, 1)),
    ("tiny", "encoder_level1.0.attn.qkv_dwconv.weight", (24, 1, 3, 3)),
    ("tiny", "encoder_level1.0.attn.gatedcnn.norm.running_var", (8,)),
    ("tiny", "encoder_level1.0.attn.gatedcnn.norm.num_batches_tracked", ()),
    ("tiny", "encoder_level1.0.attn.gatedcnn.gic1.weight", (42, 8, 1, 1)),
    ("tiny", "encoder_level1.0.attn.gatedcnn.kernel_generator.1.weight", (8, 8, 1, 1)),
    ("tiny", "encoder_level1.0.attn.gatedcnn.kernel_generator.3.weight", (392, 8, 1, 1)),
    ("tiny", "encoder_level1.0.attn.gatedcnn.gic2.weight", (8, 21, 1, 1)),
    ("tiny", "encoder_level1.0.attn.gatedcnn.proj_out.weight", (8, 8, 1, 1)),
    ("tiny", "encoder_level1.0.attn.mlp.0.weight", (16, 8, 1)),
    ("tiny", "encoder_level1.0.attn.mlp.2.weight", (8, 16, 1)),
    ("tiny", "encoder_level1.0.attn.project_out.weight", (24, 24, 1, 1)),
    ("tiny", "encoder_level1.0.ffn.project_in.weight", (96, 24, 1, 1)),
    ("tiny", "encoder_level1.0.ffn.dwconv.weight", (96, 1, 3, 3)),
    ("tiny", "encoder_level1.0.ffn.project_out.weight", (24, 48, 1, 1)),
    ("tiny", "down1_2.body.0.weight", (12, 24, 3, 3)),
    ("tiny", "latent.6.attn.temperature", (8, 1, 1)),
    ("tiny", "reduce_dim_level3.weight", (96, 192, 1, 1)),
    ("tiny", "up4_3.body.0.weight", (192, 96, 3, 3)),
    ("tiny", "decoder_level1.2.attn.qkv.weight", (48, 16, 1, 1)),
    ("tiny", "refinement.1.ffn.project_out.weight", (48, 96, 1, 1)),
    ("tiny", "output.weight", (3, 48, 3, 3)),
    ("tiny", "reduce_shallow.weight", (12, 24, 1, 1)),
    ("tiny", "reduce_latent.bias", (24,)),
    ("tiny", "spd_proj_shallow.weight", (64, 144)),
    ("tiny", "spd_proj_latent.weight", (64, 576)),
    ("small", "encoder_level1.0.attn.gatedcnn.gic1.weight", (52, 10, 1, 1)),
    ("small", "refinement.2.norm1.body.weight", (60,)),
    ("small", "reduce_shallow.weight", (12, 30, 1, 1)),
    ("small", "reduce_latent.weight", (24, 120, 1, 1)),
])
def test_official_key_has_official_shape(variant: str, key: str, shape: tuple[int, ...]) -> None:
    assert state_dict_shapes(variant)[key] == shape


def test_overrides_of_dim_and_refinement_reproduce_the_small_layout() -> None:
    tiny_as_small = MIRAGE("tiny", dim=30, num_refinement_blocks=3)
    assert {k: tuple(v.shape) for k, v in tiny_as_small.state_dict().items()} == state_dict_shapes("small")


def test_unknown_constructor_argument_is_rejected() -> None:
    with pytest.raises(TypeError, match="spd_weight"):
        MIRAGE("tiny", spd_weight=0.05)


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="'tiny', 'small'|'small', 'tiny'"):
        MIRAGE("base")


# --- behaviour ---------------------------------------------------------------------------------------

def test_eval_forward_returns_only_an_image_of_the_input_shape() -> None:
    model = MIRAGE("tiny").eval()
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == x.shape


def test_eval_forward_does_not_run_the_spd_head() -> None:
    model = MIRAGE("tiny").eval()
    calls: list[str] = []
    for name in ("reduce_shallow", "reduce_latent", "spd_proj_shallow", "spd_proj_latent"):
        getattr(model, name).register_forward_hook(lambda *_, name=name: calls.append(name))
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16))
    assert calls == []


def test_train_forward_returns_image_and_unit_norm_spd_projections() -> None:
    model = MIRAGE("tiny").train()
    x = torch.rand(2, 3, 16, 16)
    restored, spd = model(x)
    assert restored.shape == x.shape
    assert isinstance(spd, SpdProjections)
    for z in spd:
        assert z.shape == (2, 64)
        torch.testing.assert_close(z.norm(dim=1), torch.ones(2))


def test_spd_head_width_follows_dim() -> None:
    model = MIRAGE("tiny", dim=36).train()
    restored, spd = model(torch.rand(2, 3, 16, 16))
    assert restored.shape == (2, 3, 16, 16)
    assert spd.z_shallow.shape == spd.z_latent.shape == (2, 64)


def test_batch_of_one_gives_exactly_zero_spd_loss() -> None:
    _, spd = MIRAGE("tiny").train()(torch.rand(1, 3, 16, 16))
    assert spd_contrastive_loss(spd).item() == 0.0


@pytest.mark.parametrize("size", [(60, 60), (64, 60), (36, 64)])
def test_size_not_divisible_by_8_raises_a_clear_error(size: tuple[int, int]) -> None:
    height, width = size
    with pytest.raises(ValueError, match=f"divisible by 8, got {height}x{width}; crop or pad"):
        MIRAGE("tiny").eval()(torch.rand(1, 3, height, width))


def test_every_block_has_drop_path_0_1_in_its_gated_branch_only() -> None:
    model = MIRAGE("tiny")
    drop_paths = {name: m.drop_prob for name, m in model.named_modules() if isinstance(m, DropPath)}
    assert len(drop_paths) == 35
    assert set(drop_paths.values()) == {0.1}
    assert all(name.endswith(".attn.gatedcnn.drop_path") for name in drop_paths)


def test_block_is_random_in_training_and_deterministic_in_eval() -> None:
    block = MIRAGE("tiny").encoder_level1[0]
    x = torch.rand(8, 24, 8, 8)
    torch.manual_seed(0)
    with torch.no_grad():
        block.eval()
        assert torch.equal(block(x), block(x))
        block.train()
        assert not torch.equal(block(x), block(x))


# --- parity with the official code -------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["tiny", "small"])
def test_eval_output_matches_official(golden: dict, variant: str) -> None:
    model = seeded_mirage(variant).eval()
    with torch.no_grad():
        out = model(golden["input"])
    assert (out - golden[variant]["eval"]).abs().max().item() <= PARITY_ATOL


@pytest.mark.parametrize("variant", ["tiny", "small"])
def test_train_output_and_spd_loss_match_official(golden: dict, variant: str) -> None:
    model = seeded_mirage(variant, drop_path_rate=0.0).train()
    with torch.no_grad():
        out, spd = model(golden["input"])
    assert (out - golden[variant]["train"]).abs().max().item() <= PARITY_ATOL
    assert abs(spd_contrastive_loss(spd).item() - golden[variant]["spd_loss"].item()) <= PARITY_ATOL


# --- shared layers -----------------------------------------------------------------------------------

def test_with_bias_layer_norm_normalises_each_pixel_over_channels() -> None:
    norm = ChannelLayerNorm(6, "WithBias")
    with torch.no_grad():
        norm.body.weight.copy_(torch.arange(1.0, 7.0))
        norm.body.bias.fill_(0.5)
    x = torch.randn(2, 6, 5, 4)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.body.weight, norm.body.bias, eps=1e-5)
    torch.testing.assert_close(norm(x), expected.permute(0, 3, 1, 2))


def test_bias_free_layer_norm_scales_without_centring() -> None:
    norm = ChannelLayerNorm(3, "BiasFree")
    x = torch.tensor([1.0, 2.0, 6.0]).reshape(1, 3, 1, 1)
    population_variance = ((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3
    expected = x / (population_variance + 1e-5) ** 0.5
    torch.testing.assert_close(norm(x), expected)
    assert [name for name, _ in norm.named_parameters()] == ["body.weight"]


def test_layer_norm_kind_must_be_known() -> None:
    with pytest.raises(ValueError, match="WithBias"):
        ChannelLayerNorm(4, "withbias")  # type: ignore[arg-type]


def test_drop_path_zeroes_whole_samples_and_rescales_survivors() -> None:
    drop = DropPath(0.5).train()
    torch.manual_seed(0)
    out = drop(torch.ones(64, 3, 2, 2))
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()
    assert torch.equal(drop.eval()(torch.ones(2, 3)), torch.ones(2, 3))


def test_downsample_and_upsample_trade_resolution_for_channels() -> None:
    x = torch.rand(1, 8, 16, 12)
    assert Downsample(8)(x).shape == (1, 16, 8, 6)
    assert Upsample(8)(x).shape == (1, 4, 32, 24)


# --- the "input" row ---------------------------------------------------------------------------------

def test_input_passthrough_returns_its_input_and_has_no_parameters() -> None:
    model = create_model("input")
    x = torch.rand(1, 3, 30, 17)
    assert isinstance(model, InputPassthrough)
    assert count_parameters(model) == 0 and len(model.state_dict()) == 0
    assert model(x) is x
