"""A recipe names the models whose official training it is (``official_for``); any other model trained with it is
told that this is not its own published training, with what its card records as its own; the field is inherited by
``include:`` and left out of the recipe's sha256. Also: the official Rain100L list count and MoCE-IR's FFT weight."""

from __future__ import annotations

import pytest
import yaml

from bench_ir.cards import get_card
from bench_ir.train.plan_notices import model_notices, plan_notices
from bench_ir.train.recipes import list_recipes, load_recipe, recipe_sha256, resolve_plan

MIRAGE_RECIPES = ("3deg", "5deg", "dehaze", "derain", "denoise", "cdd11", "allweather")
NOT_OFFICIAL = ("recipe '3deg' is the official training of mirage-t, mirage-s; promptir trains here with its loss, "
                "schedule and data, not its own published training, so the result is no reproduction of promptir's "
                "published weights")


def _notices(recipe: str, card: str) -> list[str]:
    loaded = load_recipe(recipe)
    return plan_notices(loaded, resolve_plan(loaded, get_card(card)))


def test_a_baseline_trained_with_a_mirage_recipe_is_told_it_is_not_its_own_training():
    assert NOT_OFFICIAL in _notices("3deg", "promptir")


@pytest.mark.parametrize(("recipe", "card"), [("3deg", "mirage-t"), ("5deg", "mirage-s"), ("ndr", "ndr-restore"),
                                              ("ndr-alternating", "ndr-restore")])
def test_the_models_a_recipe_is_the_official_training_of_get_no_such_notice(recipe, card):
    assert _notices(recipe, card) == []


@pytest.mark.parametrize("recipe", MIRAGE_RECIPES)
def test_validate_says_nothing_of_a_recipe_being_another_models_training(recipe):
    """`bench-ir validate` reports findings about the recipe; that MoCE-IR (whose card defines the Fourier weight
    the recipe names) trains with another model's recipe is none."""
    assert model_notices(load_recipe(recipe), [get_card("moce-ir"), get_card("moce-ir-s")]) == []


def test_the_notice_quotes_the_training_the_card_records_as_its_own():
    (notice, *_) = _notices("3deg", "airnet")
    assert "; airnet's card records its own training as: loss L1 + 0.1 x MoCo cross-entropy (official" in notice
    assert "; lr 0.001 (Adam;" in notice


def test_a_model_with_its_own_objective_is_told_only_the_schedule_and_data_are_the_recipes():
    (notice,) = _notices("3deg", "ndr-restore")
    assert "ndr-restore trains here with its schedule and data (the loss is the card's own objective)" in notice


def test_the_training_outputs_the_recipes_loss_leaves_out_are_noticed():
    notices = _notices("sample", "airnet")  # whatever the recipe: the generic objective scores the image alone
    unused = ("airnet's training forward returns restored, logits, labels; the recipe's loss (L1 + Fourier) scores "
              "the restored image alone, so logits, labels are not used")
    assert any(notice.startswith(unused) for notice in notices)


def test_the_airnet_card_names_the_outputs_of_its_training_forward():
    from bench_ir.models.airnet import AirNetTrainingOutput

    assert get_card("airnet").options["train_outputs"]["default"] == list(AirNetTrainingOutput._fields)


@pytest.mark.parametrize("name", [name for name in list_recipes() if name.startswith("sample")])
def test_the_sample_recipes_are_no_models_official_training(name):
    recipe = load_recipe(name)
    assert recipe.official_for == []
    assert resolve_plan(recipe, get_card("promptir")).notices == []


@pytest.mark.parametrize("name", MIRAGE_RECIPES)
def test_the_mirage_recipes_are_the_official_training_of_mirage(name):
    assert load_recipe(name).official_for == ["mirage-t", "mirage-s"]


def test_include_inherits_the_models_a_recipe_is_the_official_training_of(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "include": "3deg", "batch_size": 8}), encoding="utf-8")
    assert load_recipe(path).official_for == ["mirage-t", "mirage-s"]
    assert load_recipe("ndr-alternating").official_for == ["ndr-restore"]


def test_the_models_a_recipe_is_the_official_training_of_are_not_part_of_its_hash():
    recipe = load_recipe("3deg")
    resolved = recipe.to_dict()
    assert recipe_sha256({**resolved, "official_for": []}) == recipe_sha256(resolved) == recipe.sha256


@pytest.mark.parametrize("name", ["3deg", "5deg", "derain"])
def test_the_rain100l_training_list_counts_the_official_200_pairs(name):
    (derain,) = [spec for spec in load_recipe(name).data if spec.task == "derain"]
    assert derain.expected_count == 200  # MIRAGE data_dir/rainy/rainTrain.txt: 200 lines, no final newline


@pytest.mark.parametrize("card", ["moce-ir", "moce-ir-s"])
def test_the_moce_ir_cards_fourier_weight_is_the_option_the_recipes_read(tmp_path, card):
    path = tmp_path / "mine.yaml"
    fft = {"code": 0.5, "paper": 0.5, "card_option": "fft_weight"}
    path.write_text(yaml.safe_dump({"name": "mine", "include": "3deg", "loss": {"fft_weight": fft}}), encoding="utf-8")
    plan = resolve_plan(load_recipe(path), get_card(card))
    assert plan.fft_weight == 0.1
    assert "fft_loss_weight" not in get_card(card).options
