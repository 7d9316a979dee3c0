"""PromptIR (decoder=True): official parameter count and state_dict layout (unused layers included), prompt
generation, parity with the official code through a committed golden fixture, Lightning checkpoint
loading, and the size rule.

The golden fixture ``fixtures/promptir_golden.pt`` was produced outside the repository from the official
``net/model.py`` (va1shn9v/PromptIR at 106159a, unmodified): weights made by :func:`seeded_promptir` were
loaded into ``PromptIR(decoder=True)`` with ``strict=True`` and its eval output for the stored input was
saved. No official code is in this repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from conftest import add_weight_noise

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import create_model
from bench_ir.models.promptir import UNUSED_MODULES, PromptGenBlock, PromptIR

GOLDEN = Path(__file__).parent / "fixtures" / "promptir_golden.pt"
WEIGHT_SEED = 0
PERTURB_SEED = 1
PERTURB_SCALE = 0.02
PARITY_ATOL = 1e-5
INPUT_SHAPE = (2, 3, 16, 24)  # one shape throughout: CPU conv kernels are prepared once per input shape
OFFICIAL_PARAMS = 35_592_263
OFFICIAL_KEYS = 548
UNUSED_PARAMS = 215_296


@cache
def seeded_promptir() -> PromptIR:
    """Deterministic weights (the recipe of the golden fixture; built once): ``torch.manual_seed(WEIGHT_SEED)``, then
    construction, then N(0, PERTURB_SCALE^2) noise added to every tensor in state_dict key order from a CPU
    generator seeded ``PERTURB_SEED``."""
    torch.manual_seed(WEIGHT_SEED)
    return add_weight_noise(PromptIR(), PERTURB_SEED, PERTURB_SCALE).eval()


@cache
def state_dict_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = PromptIR()
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def promptir() -> PromptIR:
    return seeded_promptir()


# --- size and layout: identical to the official class -----------------------------------------------

def test_card_builds_the_model_with_the_official_count() -> None:
    with torch.device("meta"):
        model = create_model("promptir")
    assert count_parameters(model) == OFFICIAL_PARAMS == get_card("promptir").expected_params
    assert len(state_dict_shapes()) == OFFICIAL_KEYS


@pytest.mark.parametrize(("key", "shape"), [
    ("prompt1.prompt_param", (1, 5, 64, 64, 64)),
    ("prompt1.linear_layer.weight", (5, 96)),
    ("prompt1.conv3x3.weight", (64, 64, 3, 3)),
    ("prompt2.prompt_param", (1, 5, 128, 32, 32)),
    ("prompt2.linear_layer.weight", (5, 192)),
    ("prompt3.prompt_param", (1, 5, 320, 16, 16)),
    ("prompt3.linear_layer.bias", (5,)),
    ("chnl_reduce1.weight", (64, 64, 1, 1)),
    ("chnl_reduce3.weight", (256, 320, 1, 1)),
    ("reduce_noise_channel_1.weight", (48, 112, 1, 1)),
    ("reduce_noise_channel_3.weight", (192, 448, 1, 1)),
    ("up4_3.body.0.weight", (384, 192, 3, 3)),
    ("reduce_chan_level3.weight", (192, 288, 1, 1)),
    ("noise_level3.norm1.body.weight", (704,)),
    ("noise_level3.attn.temperature", (4, 1, 1)),
    ("noise_level3.ffn.project_in.weight", (3744, 704, 1, 1)),
    ("reduce_noise_level3.weight", (192, 704, 1, 1)),
    ("up3_2.body.0.weight", (384, 192, 3, 3)),
    ("noise_level2.attn.qkv.weight", (960, 320, 1, 1)),
    ("reduce_noise_level2.weight", (192, 320, 1, 1)),
    ("noise_level1.attn.temperature", (4, 1, 1)),
    ("noise_level1.ffn.project_out.weight", (160, 425, 1, 1)),
    ("reduce_noise_level1.weight", (96, 160, 1, 1)),
    ("output.weight", (3, 96, 3, 3)),
])
def test_official_key_has_official_shape(key: str, shape: tuple[int, ...]) -> None:
    assert state_dict_shapes()[key] == shape


def test_unused_official_layers_are_kept_but_never_run(promptir: PromptIR) -> None:
    unused = sum(p.numel() for name in UNUSED_MODULES for p in promptir.get_submodule(name).parameters())
    assert unused == UNUSED_PARAMS
    calls: list[str] = []
    hooks = [promptir.get_submodule(name).register_forward_hook(lambda *_, name=name: calls.append(name))
             for name in UNUSED_MODULES]
    with torch.no_grad():
        promptir(torch.rand(INPUT_SHAPE))
    for hook in hooks:
        hook.remove()
    assert calls == []


# --- prompts -----------------------------------------------------------------------------------------

def test_prompt_is_resized_to_the_feature_map() -> None:
    block = PromptGenBlock(prompt_dim=8, prompt_len=5, prompt_size=16, lin_dim=12)
    assert block(torch.rand(2, 12, 6, 10)).shape == (2, 8, 6, 10)


def test_prompt_is_a_convex_combination_of_the_components() -> None:
    block = PromptGenBlock(prompt_dim=4, prompt_len=5, prompt_size=8, lin_dim=6)
    with torch.no_grad():
        block.prompt_param.copy_(block.prompt_param[:, :1].clone().expand_as(block.prompt_param))
        block.conv3x3.weight.zero_()
        block.conv3x3.weight[:, :, 1, 1] = torch.eye(4)  # identity conv
        features = torch.randn(3, 6, 8, 8) * 10
        prompt = block(features)
    # equal components: whatever the softmax weights of each sample, the prompt is that component
    torch.testing.assert_close(prompt, block.prompt_param[:, 0].expand(3, -1, -1, -1))


# --- parity with the official code -------------------------------------------------------------------

def test_eval_output_matches_official(promptir: PromptIR) -> None:
    golden = torch.load(GOLDEN, weights_only=True)
    with torch.no_grad():
        out = promptir(golden["input"])
    assert (out - golden["output"]).abs().max().item() <= PARITY_ATOL


# --- size rule ---------------------------------------------------------------------------------------

def test_card_needs_multiples_of_8_without_padding() -> None:
    card = get_card("promptir")
    assert (card.input_multiple, card.pad_mode) == (8, "none")


def test_size_not_divisible_by_8_raises_a_clear_error(promptir: PromptIR) -> None:
    with pytest.raises(ValueError, match="PromptIR needs H and W divisible by 8, got 20x16"):
        promptir(torch.rand(1, 3, 20, 16))
