"""Training recipes: the official MIRAGE values, paper alternatives, card options, and invalid recipe files."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from bench_ir.cards import get_card
from bench_ir.train.recipes import list_recipes, load_recipe, recipes_dir, resolve_plan
from bench_ir.yamlio import SpecError


@pytest.mark.parametrize("name", list_recipes())
def test_every_builtin_recipe_loads_and_resolves_for_mirage_t(name):
    recipe = load_recipe(name)
    plan = resolve_plan(recipe, get_card("mirage-t"))
    assert recipe.name == name and len(recipe.sha256) == 64
    assert (plan.epochs or 0) > 0 or (plan.steps or 0) > 0
    assert recipe.validation.protocol is not None


@pytest.mark.parametrize("name", list_recipes())
def test_every_builtin_recipe_passes_validate(name):
    from bench_ir.validation import validate_file

    assert validate_file(recipes_dir() / f"{name}.yaml") == ("recipe", name)


def test_issue_lists_the_required_recipes():
    assert {"3deg", "5deg", "cdd11", "allweather", "dehaze", "derain", "denoise", "sample"} <= set(list_recipes())


def test_5deg_recipe_states_the_official_training_script():
    recipe = load_recipe("5deg")
    assert (recipe.patch_size, recipe.batch_size, recipe.augmentation) == (128, 32, "dihedral_nonidentity")
    assert dataclasses.asdict(recipe.optimizer) == {"name": "adamw", "lr": 2e-4, "weight_decay": 0.01,
                                                    "betas": [0.9, 0.999], "eps": 1e-8, "factory": None}
    schedule = recipe.schedule
    assert (schedule.name, schedule.unit, schedule.warmup, schedule.max, schedule.delay) == (
        "warmup_cosine", "epoch", 15, 150, 1)
    mix = {spec.task: (spec.layout, spec.repeat) for spec in recipe.data}
    assert mix == {"denoise": ("denoise", 3), "derain": ("derain", 120), "dehaze": ("dehaze_ots", 1),
                   "deblur": ("paired", 5), "lowlight": ("paired", 20)}
    assert recipe.data[0].sigmas == [15.0, 25.0, 50.0]
    assert recipe.validation.protocol == "5deg"


def test_code_values_are_the_default_and_paper_values_are_selectable():
    card = get_card("mirage-t")
    code = resolve_plan(load_recipe("5deg"), card)
    paper = resolve_plan(load_recipe("5deg"), card, epochs_from="paper", loss_from="paper")
    assert (code.epochs, code.spd_weight, code.fft_weight) == (150, 0.01, 0.1)
    assert (paper.epochs, paper.spd_weight, paper.fft_weight) == (130, 0.05, 0.1)
    assert resolve_plan(load_recipe("3deg"), card).epochs == 130
    assert resolve_plan(load_recipe("3deg"), card, epochs_from="paper").epochs == 120


def test_single_task_recipes_inherit_the_3deg_settings_and_keep_only_their_data():
    base, derain = load_recipe("3deg"), load_recipe("derain")
    assert derain.optimizer == base.optimizer and derain.schedule == base.schedule
    assert [spec.task for spec in derain.data] == ["derain"]
    assert derain.validation.protocol == "derain"


def test_a_card_option_overrides_the_recipe_value():
    card = dataclasses.replace(get_card("mirage-t"), options={"spd_weight": {"default": 0.02, "paper": 0.07},
                                                              "epochs_5deg": {"default": 3, "paper": 4}})
    plan = resolve_plan(load_recipe("5deg"), card, epochs_from="paper", loss_from="paper")
    assert (plan.spd_weight, plan.epochs) == (0.07, 4)


def test_a_card_can_name_its_own_objective_optimizer_and_gradient_clip():
    card = dataclasses.replace(get_card("mirage-t"), options={"objective": "some.module:Objective",
                                                              "optimizer": "some.module:make_optimizer",
                                                              "grad_clip": 10})
    plan = resolve_plan(load_recipe("3deg"), card)
    assert (plan.objective, plan.optimizer_factory, plan.grad_clip) == ("some.module:Objective",
                                                                        "some.module:make_optimizer", 10.0)


def test_a_paper_value_the_recipe_does_not_state_is_an_error():
    with pytest.raises(ValueError, match="no paper value for epochs"):
        resolve_plan(load_recipe("sample"), get_card("mirage-t"), epochs_from="paper")


def _variant(tmp_path, **changes):
    data = yaml.safe_load((recipes_dir() / "sample.yaml").read_text())
    data.pop("include")
    data.update(changes)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_recipe_naming_an_unknown_degradation_is_rejected_with_the_known_ones(tmp_path):
    path = _variant(tmp_path, data=[{"task": "sample", "layout": "sample", "degradations": ["haze", "fog"]}])
    with pytest.raises(SpecError, match=r"unknown degradation\(s\) \['fog'\].*known: .*haze"):
        load_recipe(path)


def test_a_recipe_naming_an_unknown_layout_is_rejected(tmp_path):
    path = _variant(tmp_path, data=[{"task": "x", "layout": "zip_archive", "root": "x"}])
    with pytest.raises(SpecError, match="zip_archive"):
        load_recipe(path)


def test_a_validation_protocol_that_does_not_exist_is_rejected_before_any_training(tmp_path):
    path = _variant(tmp_path, validation={"protocol": "nosuchproto", "sample": True})
    with pytest.raises(SpecError, match=r"validation.protocol 'nosuchproto': .*unknown protocol"):
        load_recipe(path)


def test_validation_tasks_outside_the_validation_protocol_are_rejected(tmp_path):
    path = _variant(tmp_path, validation={"protocol": "5deg", "sample": True, "tasks": ["derain", "dehazing"]})
    with pytest.raises(SpecError, match=r"validation.tasks \['dehazing'\] are not tasks of protocol '5deg'"):
        load_recipe(path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"checkpoint": {"every_epochs": 0, "every_steps": None}}, "checkpoint.every_epochs must be >= 1"),
    ({"log_every_steps": 0}, "log_every_steps must be >= 1"),
    ({"num_workers": -1}, "num_workers must be >= 0"),
    ({"epochs": {"code": 0}}, r"epochs.code must be >= 1"),
])
def test_loop_counts_that_would_divide_by_zero_or_train_nothing_are_rejected(tmp_path, changes, message):
    with pytest.raises(SpecError, match=message):
        load_recipe(_variant(tmp_path, **changes))


@pytest.mark.parametrize("entry", [{"root": "../../outside"}, {"root": "Train/Derain", "list_file": "../../x.txt"}],
                         ids=["root", "list_file"])
def test_a_relative_root_or_list_file_that_climbs_out_is_rejected(tmp_path, entry):
    path = _variant(tmp_path, data=[{"task": "derain", "layout": "derain", **entry}])
    with pytest.raises(SpecError, match="climbs out of the folder it is relative to"):
        load_recipe(path)


def test_an_unknown_recipe_name_suggests_the_closest():
    with pytest.raises(KeyError, match="Did you mean: 5deg"):
        load_recipe("5dge")


def _training_manifest(tmp_path, recipe_name: str) -> tuple:
    """A run's train_manifest.json as the trainer writes it (kind, recipe name, sha256 and the resolved recipe)."""
    import json

    recipe = load_recipe(recipe_name)
    manifest = {"kind": "training", "run_id": "r1", "steps_done": 5,
                "recipe": {"name": recipe.name, "sha256": recipe.sha256, "resolved": recipe.to_dict()}}
    path = tmp_path / "train_manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path, recipe


@pytest.mark.parametrize("name", ["sample-cpu", "5deg"])
def test_a_training_manifest_reads_as_the_recipe_its_run_resolved_with_the_same_sha256(tmp_path, name):
    path, recipe = _training_manifest(tmp_path, name)
    again = load_recipe(path)
    assert again.sha256 == recipe.sha256
    assert dataclasses.replace(again, source="") == dataclasses.replace(recipe, source="")
    assert again.source == str(path)


def test_a_training_manifest_without_its_resolved_recipe_is_a_recipe_error(tmp_path):
    path = tmp_path / "train_manifest.json"
    path.write_text('{"kind": "training", "recipe": {"name": "sample-cpu", "sha256": "ab"}}')
    with pytest.raises(SpecError, match="recipe.resolved"):
        load_recipe(path)
