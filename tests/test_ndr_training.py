"""NDR-Restore trains as published: the `ndr` recipe and the card's hooks replay the official update, the data
options it needs, `bench-ir validate` on training hooks, and `bench-ir train --model ndr-restore` end to end.

``fixtures/ndr_official_update.json`` was recorded once from the official code (mdyao/NDR-Restore @e4e0436,
unmodified, CPU, one thread) outside the repository: ``NDR_Model.optimize_parameters`` and
``update_learning_rate`` for 3 iterations from the weights of :func:`test_ndr.seeded_ndr` on seeded batches (the
recipe is in the fixture's ``about`` and ``batches``). It holds only numbers: both loss terms and the global
gradient norm per step, checksums of the weight change after the 3 steps, and the official scheduler's lr at
the milestone boundaries. No official code is in this repository.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_ndr import seeded_ndr
from typer.testing import CliRunner

from bench_ir.cards import get_card
from bench_ir.cli import app
from bench_ir.models import ndr
from bench_ir.models.ndr import NDRRestore
from bench_ir.ndr_objective import (
    BATCH_SIZE,
    GRAD_CLIP_NORM,
    LR_GAMMA,
    LR_MILESTONES,
    PATCH_SIZE,
    NDRObjective,
    ndr_optimizer,
)
from bench_ir.train.data import build_training_set
from bench_ir.train.objectives import build_objective, build_optimizer
from bench_ir.train.recipes import DataSpec, load_recipe, resolve_plan
from bench_ir.train.schedule import remember_initial_lr, schedule_factor, set_learning_rate
from bench_ir.train.trainer import apply_update
from bench_ir.validation import validate_file
from bench_ir.yamlio import SpecError

OFFICIAL = json.loads((Path(__file__).parent / "fixtures" / "ndr_official_update.json").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


def _official_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixture's batch of 0-based ``step`` (RGB; the official model was fed the BGR flip)."""
    spec = OFFICIAL["batches"]
    generator = torch.Generator().manual_seed(spec["seed_base"] + step)
    shape = (spec["batch"], 3, spec["size"], spec["size"])
    gt = torch.rand(shape, generator=generator)
    lq = (gt + spec["noise"] * torch.randn(shape, generator=generator)).clamp(0, 1)
    return lq, gt


# --- the official update, replayed through the recipe, the card and the trainer's update ----------------------

@pytest.fixture(scope="module")
def replay() -> dict:
    """3 steps of `bench-ir train --recipe ndr --model ndr-restore`'s update from the fixture's weights/batches."""
    recipe = load_recipe("ndr")
    plan = resolve_plan(recipe, get_card("ndr-restore"))
    model = seeded_ndr().train()
    before = {k: v.detach().clone().double() for k, v in model.named_parameters()}
    objective, optimizer = build_objective(plan), build_optimizer(plan, recipe.optimizer, model)
    remember_initial_lr(optimizer)
    steps = []
    for record in OFFICIAL["steps"]:
        lq, gt = _official_batch(record["step"])
        set_learning_rate(optimizer, recipe.schedule, 0, record["step"])
        lr = optimizer.param_groups[0]["lr"]
        optimizer.zero_grad(set_to_none=True)
        terms = objective(model, lq, gt, record["step"])
        norm = apply_update(model, optimizer, terms["total"], plan.grad_clip)
        steps.append({"lr": lr, "degradation": terms["degradation"].item(), "restoration": terms["restoration"].item(),
                      "grad_norm": float(norm)})
    delta = {k: v.detach().double() - before[k] for k, v in model.named_parameters()}
    return {"steps": steps, "delta": delta, "after": {k: v.detach().double() for k, v in model.named_parameters()}}


def test_both_loss_terms_lr_and_gradient_norm_match_the_official_steps(replay):
    for ours, official in zip(replay["steps"], OFFICIAL["steps"], strict=True):
        assert ours["lr"] == official["lr"]
        assert ours["degradation"] == pytest.approx(official["degradation"], abs=1e-6)
        assert ours["restoration"] == pytest.approx(official["restoration"], abs=1e-6)
        assert ours["grad_norm"] == pytest.approx(official["grad_norm"], rel=1e-5)


def test_weights_after_three_steps_match_the_official_checksum(replay):
    official = OFFICIAL["checksum"]
    delta = replay["delta"]
    assert set(delta) == set(official["per_tensor_delta_abs_sum"])  # the same parameters (the NDR once)
    assert sum(float(d.abs().sum()) for d in delta.values()) == pytest.approx(official["delta_abs_sum"], rel=1e-6)
    assert sum(float((d * d).sum()) for d in delta.values()) ** 0.5 == pytest.approx(official["delta_l2"], rel=1e-6)
    assert sum(float(w.sum()) for w in replay["after"].values()) == pytest.approx(official["weight_sum"], abs=1e-2)
    for name, value in official["per_tensor_delta_abs_sum"].items():
        assert float(delta[name].abs().sum()) == pytest.approx(value, rel=2e-3, abs=1e-9), name


def test_the_update_clips_the_global_gradient_norm_before_stepping():
    # with the recorded weights the official norm (about 1.5) stays under 10, so the replay cannot see the clip
    weight = torch.nn.Parameter(torch.zeros(4))
    model = torch.nn.Module()
    model.weight = weight
    optimizer = torch.optim.SGD([weight], lr=1.0)
    norm = apply_update(model, optimizer, (weight * torch.tensor([3.0, 4.0, 0.0, 0.0])).sum(), grad_clip=0.5)
    assert float(norm) == pytest.approx(5.0)
    torch.testing.assert_close(weight.detach(), torch.tensor([-0.3, -0.4, 0.0, 0.0]))


def test_the_recipe_schedule_halves_the_lr_at_the_same_iterations_as_the_official_scheduler():
    schedule = load_recipe("ndr").schedule
    for step, lr in OFFICIAL["lr_at_step"].items():
        assert 1e-4 * schedule_factor(schedule, int(step)) == pytest.approx(lr, rel=1e-12), step


# --- what the recipe and the card state ----------------------------------------------------------------------

def test_ndr_recipe_states_the_released_training():
    recipe = load_recipe("ndr")
    plan = resolve_plan(recipe, get_card("ndr-restore"))
    assert (plan.batch_size, plan.patch_size, plan.steps, recipe.augmentation) == (4, 128, 6_000_000, "dihedral")
    assert (plan.batch_size, plan.patch_size, plan.grad_clip) == (BATCH_SIZE, PATCH_SIZE, GRAD_CLIP_NORM)
    assert (tuple(recipe.schedule.milestones), recipe.schedule.gamma) == (LR_MILESTONES, LR_GAMMA)
    assert (plan.objective, plan.grad_clip) == ("bench_ir.ndr_objective:NDRObjective", 10.0)
    assert plan.objective_args == {"lambda_restore": 1.0, "lambda_degrade": 1.0, "schedule": "joint"}
    assert (recipe.optimizer.name, recipe.optimizer.lr, recipe.optimizer.betas, recipe.optimizer.weight_decay) == (
        "adam", 1e-4, [0.9, 0.999], 1e-8)
    assert (recipe.schedule.name, recipe.schedule.unit, recipe.schedule.milestones, recipe.schedule.gamma) == (
        "multistep", "step", [200_000, 400_000, 600_000, 800_000], 0.5)
    mix = {s.task: (s.layout, s.repeat, s.sigmas, s.sigma_draw, s.noise, s.crop_multiple) for s in recipe.data}
    assert mix == {"dehaze": ("dehaze_ots", 1, [], "each", "uint8", 1),
                   "derain": ("derain", 120, [], "each", "uint8", 1),
                   "denoise": ("denoise", 3, [15.0, 25.0, 50.0], "random", "float", 1)}


def test_the_recipe_optimizer_and_the_card_factory_are_the_same_adam():
    with torch.device("meta"):
        model = NDRRestore()
    recipe = load_recipe("ndr")
    from_recipe = build_optimizer(dataclasses.replace(resolve_plan(recipe, get_card("ndr-restore")),
                                                      optimizer_factory=None), recipe.optimizer, model)
    from_card = ndr_optimizer(model)
    assert type(from_recipe) is type(from_card) is torch.optim.Adam
    strip = ("params", "initial_lr")
    assert [{k: v for k, v in g.items() if k not in strip} for g in from_recipe.param_groups] == [
        {k: v for k, v in g.items() if k not in strip} for g in from_card.param_groups]
    assert [p for g in from_recipe.param_groups for p in g["params"]] == [
        p for g in from_card.param_groups for p in g["params"]]


def test_other_recipes_train_ndr_restore_with_the_card_objective_optimizer_and_clip():
    plan = resolve_plan(load_recipe("3deg"), get_card("ndr-restore"))
    assert (plan.objective, plan.optimizer_factory, plan.grad_clip) == (
        "bench_ir.ndr_objective:NDRObjective", "bench_ir.ndr_objective:ndr_optimizer", 10.0)
    assert build_objective(plan) == NDRObjective(schedule="joint")
    assert resolve_plan(load_recipe("3deg"), get_card("mirage-t")).objective is None  # MIRAGE keeps its own


def test_the_alternating_schedule_is_a_named_recipe():
    plan = resolve_plan(load_recipe("ndr-alternating"), get_card("ndr-restore"))
    objective = build_objective(plan)
    assert objective == NDRObjective(schedule="alternating", alternate_every=1)
    assert [objective.phase(step) for step in range(3)] == ["restoration", "degradation", "restoration"]
    assert plan.find_unused_parameters is True


def test_a_recipe_optimizer_factory_wins_over_the_card():
    recipe = load_recipe("ndr")
    recipe = dataclasses.replace(recipe, optimizer=dataclasses.replace(recipe.optimizer, factory="torch.optim:SGD"))
    assert resolve_plan(recipe, get_card("ndr-restore")).optimizer_factory == "torch.optim:SGD"


class _TwoInputs(torch.nn.Module):
    def forward(self, x, y=None):
        return x


@pytest.mark.parametrize("model", [torch.nn.Identity(), _TwoInputs()])
def test_the_ndr_objective_rejects_a_model_without_a_degradation_branch(model):
    with pytest.raises(ValueError, match="model\\(lq, clean\\)"):
        NDRObjective()(model, torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), 0)


# --- data: the recipe's mix, sigma drawn per item, float noise ------------------------------------------------

def _image(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48, 3), value, np.uint8)).save(path)


def test_ndr_recipe_finds_the_train_layout_with_its_repeats(tmp_path):
    for name in ("0001_0.8_0.2.jpg", "0002_0.9_0.1.jpg"):
        _image(tmp_path / "Train/Dehaze/synthetic/part1" / name, 200)
    for i in (1, 2):
        _image(tmp_path / "Train/Dehaze/original" / f"000{i}.png", 100)
        _image(tmp_path / f"Train/Derain/rainy/rain-{i}.png", 180)
        _image(tmp_path / f"Train/Derain/gt/norain-{i}.png", 90)
    for i in range(3):
        _image(tmp_path / f"Train/Denoise/{i}.png", 128)
    dataset = build_training_set(load_recipe("ndr"), tmp_path, patch_size=32, seed=0)
    assert {p["task"]: (p["pairs"], p["items"]) for p in dataset.describe()} == {
        "dehaze": (2, 2), "derain": (2, 240), "denoise": (3, 9)}
    assert dataset.notices == []
    item = dataset[(0, len(dataset) - 1)]  # a noise item: float noise around the grey image
    assert item["input"].shape == (3, 32, 32) and not torch.equal(item["input"], item["target"])


def _noise_items(folder: Path, **options) -> list[dict]:
    """Items of a ``denoise`` set of 8 flat grey (128) 64 px images, sigmas {15, 25, 50}, 48 px patches."""
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for i in range(8):
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / f"{i}.png")
    recipe = dataclasses.replace(load_recipe("sample"), data=[
        DataSpec(task="denoise", layout="denoise", root=folder.name, sigmas=[15, 25, 50], crop_multiple=1, **options)])
    dataset = build_training_set(recipe, folder.parent, patch_size=48, seed=0)
    return [dataset[(0, index)] for index in range(len(dataset))]


def test_random_sigma_draw_gives_one_item_per_image_with_sigma_from_the_set(tmp_path):
    items = _noise_items(tmp_path, sigma_draw="random", noise="float")
    assert len(items) == 8 and len(_noise_items(tmp_path)) == 8 * 3
    estimates = [float(((item["input"] - item["target"]) * 255).std()) for item in items]
    nearest = [min((15, 25, 50), key=lambda s, e=e: abs(s - e)) for e in estimates]
    assert all(abs(e - s) < 0.1 * s for e, s in zip(estimates, nearest, strict=True)), estimates
    assert len(set(nearest)) >= 2


def test_float_noise_is_not_quantised_and_uint8_noise_is(tmp_path):
    float_input = _noise_items(tmp_path, sigma_draw="random", noise="float")[0]["input"] * 255
    uint8_input = _noise_items(tmp_path)[0]["input"] * 255
    assert not torch.allclose(float_input, float_input.round(), atol=1e-3)
    assert torch.allclose(uint8_input, uint8_input.round(), atol=1e-3)


# --- validate -------------------------------------------------------------------------------------------------

def _card_with(tmp_path: Path, **options) -> Path:
    import yaml

    data = yaml.safe_load((Path(get_card("ndr-restore").source)).read_text())
    data["options"].update(options)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_validate_accepts_the_ndr_card_and_recipes():
    assert validate_file(get_card("ndr-restore").source) == ("model card", "ndr-restore")
    assert validate_file(load_recipe("ndr").source) == ("recipe", "ndr")
    assert validate_file(load_recipe("ndr-alternating").source) == ("recipe", "ndr-alternating")


@pytest.mark.parametrize(("options", "message"), [
    ({"optimizer": {"default": "Adam lr 1e-4, betas (0.9, 0.999)"}},
     r"options.optimizer: expected 'module:name', got 'Adam lr 1e-4"),
    ({"objective": "bench_ir.no_such_module:Objective"}, r"options.objective: cannot import module 'bench_ir.no_such"),
    ({"objective": {"default": "bench_ir.ndr_objective:NoSuch"}}, r"has no attribute 'NoSuch'"),
    ({"optimizer": "bench_ir.ndr_objective:LEARNING_RATE"}, r"options.optimizer: .*LEARNING_RATE is not callable"),
])
def test_validate_rejects_a_card_naming_a_hook_that_cannot_be_imported(tmp_path, options, message):
    with pytest.raises(SpecError, match=message):
        validate_file(_card_with(tmp_path, **options))


def test_validate_rejects_a_recipe_naming_an_unimportable_objective(tmp_path):
    text = load_recipe("ndr").source
    path = tmp_path / "recipe.yaml"
    path.write_text(Path(text).read_text().replace("bench_ir.ndr_objective:NDRObjective", "bench_ir.nope:Objective"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "loss.objective: cannot import module 'bench_ir.nope'" in result.output


# --- bench-ir train --model ndr-restore, end to end on the CPU ------------------------------------------------

FAST_CLI = ["--device", "cpu", "--batch-size", "2", "--patch-size", "16", "--workers", "0", "--no-val",
            "--no-tensorboard", "--log-every", "1"]


def _train(run_dir: Path, steps: int, *extra: str):
    result = CliRunner().invoke(app, ["train", "--recipe", "sample", "--model", "ndr-restore", "--max-steps",
                                      str(steps), "--run-dir", str(run_dir), *FAST_CLI, *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def narrow_ndr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The card builds its NDRN at width 12 with one transformer block per level (1.7M parameters): logging and
    resuming do not depend on the width, and an update of the full 37M-parameter network is replayed above."""
    monkeypatch.setattr(ndr, "RestorationNet", functools.partial(ndr.RestorationNet, dim=12, num_blocks=(1, 1, 1, 1),
                                                                 num_refinement_blocks=1))
    monkeypatch.setattr(ndr, "DegradationNet", functools.partial(ndr.DegradationNet, dim=12))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:model card .*expected_params is 36962484:UserWarning")  # the narrow network
def test_train_logs_both_terms_and_resumes_bit_exactly(tmp_path, narrow_ndr):
    # 16 px patches and batch 2 instead of the sample recipe's 64 px x 8 keep it fast
    straight = _train(tmp_path / "straight", 2)
    assert "degradation" in straight.output and "restoration" in straight.output
    header, *rows = (tmp_path / "straight/train_log.csv").read_text().splitlines()
    assert header == "step,epoch,lr,lr_factor,total,degradation,restoration,samples_per_s" and len(rows) == 2
    manifest = json.loads((tmp_path / "straight/train_manifest.json").read_text())
    assert (manifest["plan"]["objective"], manifest["plan"]["grad_clip"]) == ("bench_ir.ndr_objective:NDRObjective",
                                                                              10.0)
    assert set(manifest["final_losses"]) == {"total", "degradation", "restoration"}
    for values in (row.split(",") for row in rows):
        assert float(values[4]) == pytest.approx(float(values[5]) + float(values[6]), rel=1e-6)
    _train(tmp_path / "split", 1)
    _train(tmp_path / "split", 2, "--resume")
    a, b = load_file(tmp_path / "straight/final.safetensors"), load_file(tmp_path / "split/final.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    resumed = json.loads((tmp_path / "split/train_manifest.json").read_text())
    assert resumed["final_losses"] == manifest["final_losses"]
    assert np.array_equal(np.loadtxt(tmp_path / "split/train_log.csv", delimiter=",", skiprows=1)[:, 4:7],
                          np.loadtxt(tmp_path / "straight/train_log.csv", delimiter=",", skiprows=1)[:, 4:7])
