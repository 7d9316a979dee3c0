"""MoCE-IR / MoCE-IR-S: official parameter counts and state_dict layout, routing-noise modes, per-sample
routing in batches, size rule, Lightning checkpoint round trip, and parity with the official code through a
committed golden fixture.

The golden fixture ``fixtures/moce_ir_golden.pt`` was produced outside the repository from the official
``src/net/moce_ir.py`` (eduardzamfir/MoCE-IR at a1a6e74, unmodified, built with the constructor values of
``src/test.py`` + ``src/options.py``): MoCE-IR-S weights made by :func:`seeded_moce` were loaded into the
official class with ``strict=True``. It holds the eval image with ``torch.manual_seed(0)`` set right before
the forward (as the official test seeds it), the outputs of four decoder ``adapter`` modules (the expert
mixtures: the tensors that depend on the routing; the image barely does with random weights), and the
train-mode image and ``total_loss`` with ``torch.manual_seed(3)``. MoCE-IR differs only in width: its layout
is checked here, its outputs were compared on the side (see the card's ``parity``).
No official code is in this repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import create_model, save_lightning_checkpoint
from bench_ir.models.moce_ir import MoCEIR
from bench_ir.models.moce_ir_layers import ComplexityExpertLayer, LaplacianHighPass, RoutingNoise

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

GOLDEN = Path(__file__).parent / "fixtures" / "moce_ir_golden.pt"
LEADERBOARD = Path(__file__).parents[1] / "registry" / "leaderboard" / "table1_3deg.csv"
WEIGHT_SEED = 0
PERTURB_SEED = 1
PERTURB_SCALE = 0.02
PARITY_ATOL = 1e-5

OFFICIAL_PARAMS = {"base": 25_353_796, "small": 11_477_752}
CARDS = {"base": "moce-ir", "small": "moce-ir-s"}
OFFICIAL_KEYS = 1262
ADAPTERS = [f"dec.{level}.2.layers.{block}.adapter" for level, blocks in enumerate((4, 4, 2))
            for block in range(blocks)]


def seeded_moce(variant: str, **kwargs) -> MoCEIR:
    """Deterministic MoCE-IR weights (the recipe the golden fixture was made with).

    ``torch.manual_seed(WEIGHT_SEED)`` then construction (PyTorch default init, official module order); then,
    walking the state_dict in key order with a CPU generator seeded ``PERTURB_SEED``, every float tensor except
    the ``complexity`` buffers gets N(0, PERTURB_SCALE^2) noise added (moves norms, temperatures and the
    Laplacian kernel off their init values).
    """
    torch.manual_seed(WEIGHT_SEED)
    model = MoCEIR(variant, **kwargs)
    generator = torch.Generator().manual_seed(PERTURB_SEED)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not name.endswith("routing.complexity"):
                tensor.add_(torch.randn(tensor.shape, generator=generator) * PERTURB_SCALE)
    return model.eval()


@pytest.fixture(scope="module")
def small() -> MoCEIR:
    return seeded_moce("small")


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


@pytest.fixture(scope="module")
def seeded_run(small: MoCEIR, golden: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Image and adapter outputs of the small model (routing_noise "seeded") on the golden input, computed
    after an arbitrary global seed."""
    torch.manual_seed(123)
    return run_with_adapter_outputs(small, golden["eval_input"])


@cache
def meta_model(variant: str) -> MoCEIR:
    """The model on the meta device (shapes only), built once per variant."""
    with torch.device("meta"):
        return MoCEIR(variant)


def run_with_adapter_outputs(model: MoCEIR, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The image and the mixture output of every decoder adapter (the routing-dependent tensors)."""
    captured: dict[str, torch.Tensor] = {}

    def keep_first(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: tuple) -> None:
            captured.setdefault(name, output[0])
        return hook

    modules = dict(model.named_modules())
    hooks = [modules[name].register_forward_hook(keep_first(name)) for name in ADAPTERS]
    try:
        with torch.no_grad():
            image = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return image, captured


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --- size and layout: identical to the official class ------------------------------------------------

@pytest.mark.parametrize("variant", ["base", "small"])
def test_parameter_count_equals_official_and_card(variant: str) -> None:
    assert count_parameters(meta_model(variant)) == OFFICIAL_PARAMS[variant] == get_card(CARDS[variant]).expected_params


@pytest.mark.parametrize("variant", ["base", "small"])
def test_state_dict_has_official_key_count_and_ten_complexity_buffers(variant: str) -> None:
    model = meta_model(variant)
    buffers = [name for name, _ in model.named_buffers()]
    assert len(model.state_dict()) == OFFICIAL_KEYS
    assert len(buffers) == 10 and all(name.endswith(".adapter.routing.complexity") for name in buffers)


@pytest.mark.parametrize(("variant", "key", "shape"), [
    ("base", "patch_embed.proj.weight", (48, 3, 3, 3)),
    ("base", "freq_embed.high_conv.0.conv.weight", (384, 1, 3, 3)),
    ("base", "freq_embed.mlp.0.weight", (768, 384)),
    ("base", "freq_embed.mlp.2.bias", (384,)),
    ("base", "enc.0.0.layers.3.norms.1.body.bias", (48,)),
    ("base", "enc.0.0.layers.0.mixer.qkv.bias", (144,)),
    ("base", "enc.2.1.body.0.weight", (96, 192, 3, 3)),
    ("base", "latent.layers.7.mixer.temperature", (8, 1, 1)),
    ("base", "latent.layers.0.ffn.project_in.bias", (1536,)),
    ("base", "dec.0.0.body.0.weight", (768, 384, 3, 3)),
    ("base", "dec.0.1.weight", (192, 384, 1, 1)),
    ("base", "dec.0.2.layers.3.proj.1.bias", (192,)),
    ("base", "dec.0.2.layers.0.shared.temperature", (4, 1, 1)),
    ("base", "dec.1.2.layers.0.mixer.kv_dwconv.weight", (192, 1, 7, 7)),
    ("base", "dec.2.2.layers.1.mixer.temperature", (1, 1, 1)),
    ("base", "dec.0.2.layers.0.adapter.experts.0.0.proj.0.weight", (24, 192, 1, 1)),
    ("base", "dec.0.2.layers.0.adapter.experts.3.0.proj.2.weight", (192, 192, 1, 1)),
    ("base", "dec.2.2.layers.1.adapter.experts.0.0.body.kv_dwconv.bias", (12,)),
    ("base", "dec.1.2.layers.2.adapter.experts.2.0.body.norm.body.weight", (48,)),
    ("base", "dec.0.2.layers.0.adapter.proj_out.weight", (192, 192, 1, 1)),
    ("base", "dec.0.2.layers.0.adapter.routing.gate.2.weight", (4, 192)),
    ("base", "dec.2.2.layers.0.adapter.routing.freq_gate.weight", (4, 384)),
    ("base", "dec.2.2.layers.0.adapter.routing.complexity", (4,)),
    ("base", "refinement.layers.3.mixer.project_out.bias", (48,)),
    ("base", "output.weight", (3, 48, 3, 3)),
    ("small", "freq_embed.high_conv.0.conv.weight", (256, 1, 3, 3)),
    ("small", "dec.0.2.layers.0.adapter.experts.0.0.body.q.weight", (16, 16, 1, 1)),
    ("small", "dec.2.2.layers.1.ffn.project_out.weight", (32, 64, 1, 1)),
])
def test_official_key_has_official_shape(variant: str, key: str, shape: tuple[int, ...]) -> None:
    assert tuple(meta_model(variant).state_dict()[key].shape) == shape


def test_decoder_blocks_have_no_bias_where_the_official_ones_have_none() -> None:
    keys = meta_model("small").state_dict()
    assert "dec.0.2.layers.0.shared.qkv.bias" not in keys
    assert "dec.0.2.layers.0.ffn.project_in.bias" not in keys
    assert "dec.0.1.bias" not in keys and "output.bias" not in keys


def test_complexity_buffer_is_expert_parameter_count_over_the_largest(small: MoCEIR) -> None:
    layer = small.dec[2][2].layers[0].adapter
    counts = torch.tensor([count_parameters(expert) for expert in layer.experts], dtype=torch.float32)
    torch.testing.assert_close(layer.routing.complexity, counts / counts.max())
    torch.testing.assert_close(layer.routing.complexity, torch.tensor([0.0835, 0.1788, 0.4050, 1.0]), atol=5e-5,
                               rtol=0)


def test_laplacian_high_pass_starts_as_the_8_neighbour_kernel_and_is_trainable() -> None:
    high_pass = LaplacianHighPass(2)
    kernel = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])
    assert torch.equal(high_pass.conv.weight, kernel.expand(2, 1, 3, 3))
    assert high_pass.conv.weight.requires_grad
    assert high_pass(torch.ones(1, 2, 5, 5))[..., 1:-1, 1:-1].abs().max() == 0  # flat regions vanish


def test_unknown_constructor_argument_and_variant_are_rejected() -> None:
    with pytest.raises(TypeError, match="stage_depth"):
        MoCEIR("small", stage_depth=[1, 1, 1])
    with pytest.raises(ValueError, match="'base', 'small'"):
        MoCEIR("large")


# --- parity with the official code -------------------------------------------------------------------

def test_eval_image_and_expert_mixtures_match_official_seeded_once(seeded_run: tuple, golden: dict) -> None:
    image, adapters = seeded_run
    assert max_abs_diff(image, golden["small"]["eval"]) <= PARITY_ATOL
    for name, official in golden["small"]["adapters"].items():
        assert max_abs_diff(adapters[name], official) <= PARITY_ATOL, name


def test_train_image_and_balance_loss_match_official(small: MoCEIR, golden: dict) -> None:
    small.train()
    try:
        torch.manual_seed(3)
        with torch.no_grad():
            image = small(golden["train_input"])
        balance_loss = small.balance_loss.item()
    finally:
        small.eval()
    assert max_abs_diff(image, golden["small"]["train"]) <= PARITY_ATOL
    assert abs(balance_loss - golden["small"]["balance_loss"].item()) <= PARITY_ATOL


# --- routing noise -----------------------------------------------------------------------------------

def test_seeded_routing_is_deterministic_and_ignores_the_global_rng(small: MoCEIR, seeded_run: tuple,
                                                                    golden: dict) -> None:
    torch.manual_seed(456)
    image, adapters = run_with_adapter_outputs(small, golden["eval_input"])
    assert torch.equal(image, seeded_run[0])
    assert all(torch.equal(adapters[n], seeded_run[1][n]) for n in ADAPTERS)


def test_official_routing_draws_from_the_global_rng_and_starts_like_seeded(small: MoCEIR, seeded_run: tuple,
                                                                           golden: dict) -> None:
    small.routing_noise = "official"
    try:
        torch.manual_seed(0)
        first_image, first = run_with_adapter_outputs(small, golden["eval_input"])
        _, second = run_with_adapter_outputs(small, golden["eval_input"])
    finally:
        small.routing_noise = "seeded"
    assert torch.equal(first_image, seeded_run[0])
    assert all(torch.equal(first[n], seeded_run[1][n]) for n in ADAPTERS)
    assert any(max_abs_diff(first[n], second[n]) > 1e-3 for n in ADAPTERS)


def test_routing_without_noise_changes_the_expert_mixtures(small: MoCEIR, seeded_run: tuple, golden: dict) -> None:
    small.routing_noise = "off"
    try:
        _, clean = run_with_adapter_outputs(small, golden["eval_input"])
    finally:
        small.routing_noise = "seeded"
    noisy = seeded_run[1]
    relative = [((noisy[n] - clean[n]).norm() / noisy[n].norm()).item() for n in ADAPTERS]
    assert max(relative) > 0.05


def test_routing_seed_selects_another_noise_draw(small: MoCEIR, seeded_run: tuple, golden: dict) -> None:
    small.routing_seed = 1
    try:
        _, other = run_with_adapter_outputs(small, golden["eval_input"])
    finally:
        small.routing_seed = 0
    assert any(max_abs_diff(other[n], seeded_run[1][n]) > 1e-3 for n in ADAPTERS)


def test_unknown_routing_noise_mode_is_rejected_with_a_yaml_hint() -> None:
    with pytest.raises(ValueError, match="'seeded', 'off', 'official'"):
        MoCEIR("small", routing_noise="random")
    with pytest.raises(ValueError, match='write "off"'):
        MoCEIR("small", routing_noise=False)  # type: ignore[arg-type]


# --- batches -----------------------------------------------------------------------------------------

def test_eval_batch_gives_each_image_its_batch_of_one_output(small: MoCEIR) -> None:
    x = torch.rand(2, 3, 8, 16, generator=torch.Generator().manual_seed(7))
    batched, batched_adapters = run_with_adapter_outputs(small, x)
    singles = [run_with_adapter_outputs(small, x[i:i + 1]) for i in range(2)]
    assert torch.equal(batched, torch.cat([image for image, _ in singles]))
    for name in ADAPTERS:  # the hook keeps the first call: the first image of the batch
        assert torch.equal(batched_adapters[name], singles[0][1][name])


def test_official_routing_on_a_batch_equals_images_one_after_another(small: MoCEIR) -> None:
    x = torch.rand(2, 3, 8, 16, generator=torch.Generator().manual_seed(8))
    small.routing_noise = "official"
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            batched = small(x)
            torch.manual_seed(0)
            sequential = torch.cat([small(x[:1]), small(x[1:])])
    finally:
        small.routing_noise = "seeded"
    assert torch.equal(batched, sequential)


def test_expert_layer_routes_every_sample_to_its_own_experts() -> None:
    torch.manual_seed(0)
    layer = ComplexityExpertLayer(dim=16, freq_dim=8, num_experts=4, top_k=1).eval()
    with torch.no_grad():  # sample 0 to expert 0, sample 1 to expert 3, by large routing logits
        layer.routing.freq_gate.weight.zero_()
        layer.routing.gate[2].weight.zero_()
        layer.routing.freq_gate.weight[0, 0] = 50.0
        layer.routing.freq_gate.weight[3, 1] = 50.0
    generator = torch.Generator().manual_seed(1)
    x, shared = torch.randn(2, 16, 8, 8, generator=generator), torch.randn(2, 16, 8, 8, generator=generator)
    freq_emb = torch.eye(2, 8)
    off = RoutingNoise(enabled=False)
    with torch.no_grad():
        batched, _ = layer(x, freq_emb, shared, off)
        singles = [layer(x[i:i + 1], freq_emb[i:i + 1], shared[i:i + 1], off)[0] for i in range(2)]
        expert_0 = layer.proj_out(layer.experts[0][0](x[:1], shared[:1]))
    torch.testing.assert_close(batched, torch.cat(singles), rtol=0, atol=1e-6)
    torch.testing.assert_close(singles[0], expert_0, rtol=1e-4, atol=1e-5)  # gate ~1 for a logit gap of 50


# --- training ----------------------------------------------------------------------------------------

def test_train_forward_returns_the_image_and_stores_a_differentiable_balance_loss(small: MoCEIR) -> None:
    x = torch.rand(2, 3, 8, 16, generator=torch.Generator().manual_seed(9))
    small.train()
    try:
        restored = small(x)
        balance_loss = small.balance_loss
        assert balance_loss is not None
        balance_loss.backward()
        router_grad = small.dec[0][2].layers[0].adapter.routing.freq_gate.weight.grad
    finally:
        small.eval()
        small.zero_grad(set_to_none=True)
    assert isinstance(restored, torch.Tensor) and restored.shape == x.shape
    assert balance_loss.ndim == 0 and balance_loss.item() > 0
    assert router_grad is not None and router_grad.abs().sum() > 0
    with torch.no_grad():
        small(x[:1])
    assert small.balance_loss is None


# --- size rule ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(24, 40), (24, 8)])
def test_multiples_of_8_that_are_not_of_16_or_of_the_patch_sizes_work(small: MoCEIR, size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert small(x).shape == x.shape


@pytest.mark.parametrize("size", [(60, 64), (64, 36)])
def test_size_not_divisible_by_8_raises_a_clear_error(small: MoCEIR, size: tuple[int, int]) -> None:
    height, width = size
    with pytest.raises(ValueError, match=f"divisible by 8, got {height}x{width}; crop or pad"):
        small(torch.rand(1, 3, height, width))


# --- cards and checkpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["base", "small"])
def test_card_states_the_size_rule_batch_rule_and_leaderboard_key(variant: str) -> None:
    card = get_card(CARDS[variant])
    assert card.input_multiple == 8 and card.pad_mode == "none" and card.batch_size_one
    assert card.checkpoint.format == "lightning" and card.checkpoint.strip_prefixes == ["net."]
    assert card.args["routing_noise"] == "seeded"
    assert f",{card.leaderboard_key}," in LEADERBOARD.read_text(encoding="utf-8")


def test_lightning_checkpoint_round_trips_strictly(small: MoCEIR, tmp_path: Path) -> None:
    path = save_lightning_checkpoint(small, tmp_path / "MoCE_IR_S_AIO3" / "last.ckpt")
    state = torch.load(path, weights_only=True)["state_dict"]
    assert all(key.startswith("net.") for key in state) and len(state) == OFFICIAL_KEYS
    loaded = create_model("moce-ir-s", checkpoint=path)
    assert list(loaded.state_dict()) == list(small.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), small.state_dict().values(),
                                                 strict=True))
    assert loaded.routing_noise == "seeded" and not loaded.training
