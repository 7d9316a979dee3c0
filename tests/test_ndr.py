"""NDR-Restore: official parameter counts and state_dict layout, the shared NDR, RGB/BGR and size conventions,
strict round trip of an official-format checkpoint, parity with the official code (through a committed
golden fixture), and the bidirectional training objective.

The golden fixture ``fixtures/ndr_golden.pt`` was produced outside the repository from the official
``models/modules/NDR.py : NDRN`` (mdyao/NDR-Restore at e4e0436, unmodified): weights made by
:func:`seeded_ndr` were loaded into the official class with ``strict=True``; for the stored BGR inputs it
holds the official ``restoration_process`` and ``degradation_process`` outputs, the two L1 terms of
``NDR_model.optimize_parameters`` and the gradient of their sum with respect to the NDR. No official code
is in this repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench_ir.cards import count_parameters, get_card
from bench_ir.checkpoints import create_model
from bench_ir.geometry import fit_policy, run_padded
from bench_ir.models.ndr import NDRRestore, NDRTrainingOutput
from bench_ir.ndr_objective import GRAD_CLIP_NORM, NDRObjective, ndr_optimizer
from bench_ir.profiling import inference_parameter_count

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

GOLDEN = Path(__file__).parent / "fixtures" / "ndr_golden.pt"
WEIGHT_SEED = 0
PERTURB_SEED = 1
PERTURB_SCALE = 0.02
PARITY_ATOL = 1e-5

OFFICIAL_TOTAL_PARAMS = 36_962_484
OFFICIAL_RESTORATION_PARAMS = 27_330_315
OFFICIAL_DEGRADATION_PARAMS = 9_632_169
OFFICIAL_KEYS = 671


def seeded_ndr() -> NDRRestore:
    """Deterministic NDR weights (the recipe the golden fixture was made with): ``torch.manual_seed(WEIGHT_SEED)``,
    construction (PyTorch default init, official module order), then N(0, PERTURB_SCALE^2) noise added to
    every parameter in ``named_parameters()`` order from a CPU generator seeded ``PERTURB_SEED`` (moves the
    temperatures and LayerNorm affines off their init values)."""
    torch.manual_seed(WEIGHT_SEED)
    model = NDRRestore()
    generator = torch.Generator().manual_seed(PERTURB_SEED)
    with torch.no_grad():
        for _, parameter in model.named_parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * PERTURB_SCALE)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> NDRRestore:
    return seeded_ndr()


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


def _backward(model: NDRRestore, loss: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    loss.backward()


def images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# --- size and layout: identical to the official NDRN ----------------------------------------------------

def test_parameter_counts_equal_official_and_card() -> None:
    with torch.device("meta"):
        built = NDRRestore()
    card = get_card("ndr-restore")
    assert count_parameters(built) == OFFICIAL_TOTAL_PARAMS == card.expected_params
    assert count_parameters(built.restoration_net) == OFFICIAL_RESTORATION_PARAMS == card.inference_params
    assert count_parameters(built.degradation_net) == OFFICIAL_DEGRADATION_PARAMS


def test_inference_parameters_exclude_only_the_degradation_net() -> None:
    with torch.device("meta"):
        built = NDRRestore()
    count, _ = inference_parameter_count(built)
    assert count == OFFICIAL_RESTORATION_PARAMS


def test_the_ndr_is_one_parameter_stored_under_both_official_keys(model: NDRRestore) -> None:
    state = model.state_dict()
    assert len(state) == OFFICIAL_KEYS
    assert model.restoration_net.dr is model.degradation_representations
    assert state["degradation_representations"].data_ptr() == state["restoration_net.dr"].data_ptr()


@pytest.mark.parametrize(("key", "shape"), [
    ("degradation_representations", (1, 32, 128)),
    ("restoration_net.dr", (1, 32, 128)),
    ("restoration_net.extractor.bias", (48,)),
    ("restoration_net.bottom.7.attn.temperature", (6, 1, 1)),
    ("restoration_net.res_connect3.mapping.weight", (64, 192, 3, 3)),
    ("restoration_net.res_connect1.degradation_recog.attn.qkv.weight", (128, 64, 1, 1)),
    ("restoration_net.res_connect1.degradation_recog.attn.temperature", (1,)),
    ("restoration_net.res_connect1.degradation_recog.ffn.project_out.bias", (64,)),
    ("restoration_net.res_connect2.inject_degradation.low_rank_transform3.conv_C.1.weight", (1536, 96, 1, 1)),
    ("restoration_net.res_connect2.inject_degradation.low_rank_transform1.conv_H.1.weight", (16, 64, 1, 1)),
    ("restoration_net.block_up3.6.ffn.dwconv.weight", (1020, 1, 3, 3)),
    ("restoration_net.block_up1.0.weight", (96, 96, 1, 1)),
    ("restoration_net.refinement.2.ffn.project_in.weight", (510, 96, 1, 1)),
    ("restoration_net.reconstruction.weight", (3, 96, 3, 3)),
    ("degradation_net.bottom.conv.2.weight", (384, 384, 3, 3)),
    ("degradation_net.inject_degradation1.low_rank_transform3.conv_W.1.weight", (16, 48, 1, 1)),
    ("degradation_net.refinement.body.0.body.3.conv_du.0.weight", (6, 96, 1, 1)),
    ("degradation_net.block_up3.0.weight", (192, 384, 1, 1)),
])
def test_official_key_has_official_shape(model: NDRRestore, key: str, shape: tuple[int, ...]) -> None:
    assert tuple(model.state_dict()[key].shape) == shape


# --- conventions: RGB outside, BGR inside, multiples of 8 ------------------------------------------------

def test_forward_restores_rgb_by_running_the_bgr_network_on_flipped_channels(model: NDRRestore) -> None:
    rgb = images((1, 3, 16, 24), seed=3)
    with torch.no_grad():
        out = model(rgb)
        bgr_out, _ = model.restoration_process(rgb[:, [2, 1, 0]])
    assert out.shape == rgb.shape
    torch.testing.assert_close(out, bgr_out[:, [2, 1, 0]], rtol=0, atol=0)


def test_forward_with_a_clean_image_returns_restored_and_synthesised_lq(model: NDRRestore) -> None:
    lq, clean = images((1, 3, 16, 16), seed=4), images((1, 3, 16, 16), seed=5)
    with torch.no_grad():
        out = model(lq, clean)
        restored = model(lq)
    assert isinstance(out, NDRTrainingOutput)
    assert out.degraded.shape == clean.shape
    torch.testing.assert_close(out.restored, restored, rtol=0, atol=0)


@pytest.mark.parametrize("size", [(20, 16), (16, 30)])
def test_size_not_divisible_by_8_raises_a_clear_error(model: NDRRestore, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 3, *size))


def test_card_size_rule_reflect_pads_bottom_right_and_crops_like_the_official_test(model: NDRRestore) -> None:
    card = get_card("ndr-restore")
    lq = images((1, 3, 13, 21), seed=6)
    policy = fit_policy(card.input_multiple, card.pad_mode, "none", 1, "none")
    with torch.no_grad():
        engine_out = run_padded(model, lq, policy)
        official_way = model(F.pad(lq, (0, 3, 0, 3), mode="reflect"))[..., :13, :21]
    torch.testing.assert_close(engine_out, official_way, rtol=0, atol=0)


def test_official_format_checkpoint_loads_strictly_and_reproduces_outputs(model: NDRRestore, tmp_path) -> None:
    # the release saves a plain state_dict, possibly from DataParallel ("module." prefix)
    path = tmp_path / "model_L.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    loaded = create_model("ndr-restore", checkpoint=path)
    lq = images((1, 3, 16, 16), seed=7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lq), model(lq), rtol=0, atol=0)
    assert loaded.restoration_net.dr is loaded.degradation_representations


# --- parity with the official NDRN (golden fixture) -------------------------------------------------------

def test_restoration_and_degradation_match_official(model: NDRRestore, golden: dict) -> None:
    with torch.no_grad():
        restored, representations = model.restoration_process(golden["lq_bgr"])
        degraded = model.degradation_process(golden["clean_bgr"], representations)
    torch.testing.assert_close(restored, golden["restored_bgr"], rtol=0, atol=PARITY_ATOL)
    torch.testing.assert_close(degraded, golden["degraded_bgr"], rtol=0, atol=PARITY_ATOL)


def test_objective_losses_and_ndr_gradient_match_official_training_step(model: NDRRestore, golden: dict) -> None:
    rgb = [golden[key][:, [2, 1, 0]] for key in ("lq_bgr", "clean_bgr")]
    terms = NDRObjective()(model, *rgb, step=0)
    _backward(model, terms["total"])
    torch.testing.assert_close(terms["restoration"], golden["loss_restoration"], rtol=0, atol=1e-6)
    torch.testing.assert_close(terms["degradation"], golden["loss_degradation"], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.degradation_representations.grad, golden["ndr_grad"], rtol=1e-4, atol=1e-8)


# --- the training objective -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return images((1, 3, 16, 16), seed=8), images((1, 3, 16, 16), seed=9)


def test_degradation_loss_reaches_the_ndr_and_queries_but_not_the_restoration_decoder(model, pair) -> None:
    _backward(model, NDRObjective()(model, *pair, step=0)["degradation"])
    query = model.restoration_net.res_connect1.degradation_recog.attn.qkv.weight
    assert model.degradation_representations.grad.abs().sum() > 0
    assert query.grad.abs().sum() > 0
    assert model.degradation_net.reconstruction.weight.grad.abs().sum() > 0
    assert model.restoration_net.reconstruction.weight.grad is None


def test_joint_total_is_the_weighted_sum_of_both_terms(model, pair) -> None:
    terms = NDRObjective(lambda_restore=0.5, lambda_degrade=2.0)(model, *pair, step=3)
    torch.testing.assert_close(terms["total"], 0.5 * terms["restoration"] + 2.0 * terms["degradation"])


def test_alternating_schedule_switches_phase_every_n_steps() -> None:
    objective = NDRObjective(schedule="alternating", alternate_every=2)
    assert [objective.phase(step) for step in range(6)] == ["restoration", "restoration", "degradation",
                                                           "degradation", "restoration", "restoration"]
    assert NDRObjective().phase(1) == "joint"


@pytest.mark.parametrize(("step", "active", "untouched"), [
    (0, "restoration", "degradation_net.reconstruction.weight"),
    (1, "degradation", "restoration_net.reconstruction.weight"),
])
def test_alternating_total_holds_only_the_active_term(model, pair, step, active, untouched) -> None:
    terms = NDRObjective(lambda_restore=0.5, lambda_degrade=2.0, schedule="alternating")(model, *pair, step=step)
    weight = 0.5 if active == "restoration" else 2.0
    torch.testing.assert_close(terms["total"], weight * terms[active])
    _backward(model, terms["total"])
    assert dict(model.named_parameters())[untouched].grad is None
    assert model.degradation_representations.grad.abs().sum() > 0


def test_objective_rejects_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="schedule"):
        NDRObjective(schedule="cyclic")  # type: ignore[arg-type]


def test_optimizer_has_the_released_settings_and_holds_the_ndr_once() -> None:
    with torch.device("meta"):
        built = NDRRestore()
    optimizer = ndr_optimizer(built)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-4, (0.9, 0.999), 1e-8)
    assert sum(p.numel() for p in group["params"]) == OFFICIAL_TOTAL_PARAMS
    assert GRAD_CLIP_NORM == 10
