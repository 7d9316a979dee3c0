"""A researcher's own recipes (edited copies of shipped ones): a model card's option replacing a value of the recipe
and a schedule the training does not fit are noticed, fields a data entry's layout ignores are refused, `validate`
resolves `include:` as loading does, a recipe's own validation protocol is read beside it, and a step interval given
alone is the only one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import write_one_pair_protocol

from bench_ir.cards import get_card
from bench_ir.protocol import load_protocol
from bench_ir.train.plan_notices import plan_notices
from bench_ir.train.recipes import (
    ScheduleSpec,
    list_recipes,
    load_recipe,
    not_own_training_notices,
    recipes_dir,
    resolve_plan,
)
from bench_ir.train.schedule import schedule_end_notices
from bench_ir.validation import validate_file
from bench_ir.yamlio import SpecError

REPLACED = "epochs.code 2 of recipe 'mine' is replaced by 130, the code value of the model card's option 'epochs_3deg'"


def _copy(tmp_path: Path, shipped: str = "3deg", name: str = "mine", **changes) -> Path:
    """``tmp_path/<name>.yaml``: the shipped recipe ``shipped`` (its own keys; includes kept) with ``changes``."""
    data = yaml.safe_load((recipes_dir() / f"{shipped}.yaml").read_text(encoding="utf-8"))
    data.update(name=name, **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- card options and the schedule
def test_a_card_option_replacing_the_recipes_own_epochs_is_noticed_with_how_to_keep_them(tmp_path):
    recipe = load_recipe(_copy(tmp_path, epochs={"card_option": "epochs_3deg", "code": 2}))
    plan = resolve_plan(recipe, get_card("mirage-t"))
    assert plan.epochs == 130  # the card's option still wins
    (notice,) = plan.notices
    assert notice.startswith(REPLACED) and "remove `card_option: epochs_3deg` from the recipe's 'epochs'" in notice


def test_the_recipes_own_epochs_win_without_card_option(tmp_path):
    plan = resolve_plan(load_recipe(_copy(tmp_path, epochs={"code": 2})), get_card("mirage-t"))
    assert (plan.epochs, plan.notices) == (2, [])


def test_a_card_option_replacing_an_edited_loss_weight_is_noticed(tmp_path):
    loss = {"fft_weight": {"code": 0.1, "card_option": "fft_weight"},
            "spd_weight": {"code": 0.0, "paper": 0.05, "card_option": "spd_weight"}}
    plan = resolve_plan(load_recipe(_copy(tmp_path, loss=loss)), get_card("mirage-t"))
    assert plan.spd_weight == 0.01
    assert [n.split(",")[0] for n in plan.notices] == ["loss.spd_weight.code 0 of recipe 'mine' is replaced by 0.01"]


@pytest.mark.parametrize("name", list_recipes())
def test_the_shipped_recipes_give_the_registered_cards_no_notice(name):
    recipe = load_recipe(name)
    for card in ("mirage-t", "mirage-s", "ndr-restore", "moce-ir"):
        for source in ("code", "paper"):
            try:
                plan = resolve_plan(recipe, get_card(card), source, source)
            except ValueError:  # the sample recipes state no paper epochs
                continue
            other_models_training = not_own_training_notices(recipe, get_card(card), plan)  # its own test file
            assert [n for n in plan_notices(recipe, plan) if n not in other_models_training] == [], (card, source)


def test_planned_epochs_past_the_schedules_end_are_noticed(tmp_path):
    recipe = load_recipe(_copy(tmp_path, epochs={"card_option": "epochs_3deg", "code": 2},
                               schedule={"warmup": 1, "max": 2, "delay": 1}))
    notices = plan_notices(recipe, resolve_plan(recipe, get_card("mirage-t")))
    assert notices[0].startswith(REPLACED)
    assert notices[1] == ("schedule: the planned 130 epochs run past the end of the learning-rate schedule "
                          "(warmup_cosine to epoch 2, delay 1): the last 127 epochs train at its end factor (lr 0); "
                          "set schedule.max to 129 or more to keep every epoch on the cosine, or plan fewer epochs")


def test_a_training_ending_inside_the_warmup_is_noticed():
    (notice,) = schedule_end_notices(ScheduleSpec(warmup=15, max=150, delay=1), epochs=10, steps=None)
    assert notice.startswith("schedule: the planned 10 epochs end inside the learning-rate warmup (warmup 15, "
                             "delay 1): the last trains at 0.571 x the initial lr")
    assert "set schedule.warmup to at most 8" in notice


def test_a_schedule_in_epochs_is_checked_against_steps_once_the_steps_per_epoch_are_known():
    spec = ScheduleSpec(warmup=1, max=4)
    assert schedule_end_notices(spec, epochs=None, steps=50) == []  # epochs unknown without the data
    (notice,) = schedule_end_notices(spec, epochs=None, steps=50, steps_per_epoch=10)
    assert "the planned 5 epochs run past" in notice and "the last 1 epoch train" in notice
    assert schedule_end_notices(spec, epochs=None, steps=40, steps_per_epoch=10) == []


def test_schedules_without_an_end_are_never_noticed():
    spec = ScheduleSpec(name="multistep", unit="step", milestones=[2])
    assert schedule_end_notices(spec, epochs=None, steps=10**6) == []


def test_validate_notes_what_the_registered_models_cards_replace_and_the_schedule_they_overrun(tmp_path):
    path = _copy(tmp_path, epochs={"card_option": "epochs_3deg", "code": 2},
                 schedule={"warmup": 1, "max": 2, "delay": 1})
    notes: list[str] = []
    assert validate_file(path, notes=notes) == ("recipe", "mine")
    assert f"{path}: with model mirage-s, mirage-t: {REPLACED}" in [n.split(" (a card")[0] for n in notes]
    assert any(n.startswith(f"{path}: with model mirage-s, mirage-t: schedule: the planned 130 epochs") for n in notes)


def test_validate_notes_a_schedule_the_recipes_own_epochs_overrun(tmp_path):
    notes: list[str] = []
    validate_file(_copy(tmp_path, epochs={"code": 160}), notes=notes)
    assert [n for n in notes if "schedule:" in n] == [
        f"{tmp_path / 'mine.yaml'}: schedule: the planned 160 epochs run past the end of the learning-rate schedule "
        "(warmup_cosine to epoch 150, delay 1): the last 9 epochs train at its end factor (lr 0); set schedule.max "
        "to 159 or more to keep every epoch on the cosine, or plan fewer epochs"]


# ------------------------------------------------------------------------------- data fields a layout ignores
@pytest.mark.parametrize(("entry", "field", "users"), [
    ({"layout": "paired", "root": "p", "input": "a", "target": "b", "sigmas": [25]}, "sigmas",
     "layouts 'denoise', 'sample' read it"),
    ({"layout": "paired", "root": "p", "input": "a", "target": "b", "max_side": 256}, "max_side",
     "layout 'sample' reads it"),
    ({"layout": "paired", "root": "p", "input": "a", "target": "b", "subsets": ["haze"]}, "subsets",
     "layout 'cdd11' reads it"),
    ({"layout": "derain", "root": "r", "pairing": "stem"}, "pairing", "layout 'paired' reads it"),
    ({"layout": "denoise", "root": "d", "sigmas": [25], "input": "noisy"}, "input", "layout 'paired' reads it"),
    ({"layout": "sample", "degradations": ["haze"], "root": "photos"}, "root", "layouts 'denoise', 'derain'"),
], ids=["paired-sigmas", "paired-max_side", "paired-subsets", "derain-pairing", "denoise-input", "sample-root"])
def test_a_data_field_the_entrys_layout_ignores_is_refused(tmp_path, entry, field, users):
    path = _copy(tmp_path, data=[{"task": "mine", **entry}])
    with pytest.raises(SpecError, match=rf"data\[0\] \(task 'mine'\): field '{field}' has no effect in layout "
                                        rf"'{entry['layout']}' \(only {users}"):
        load_recipe(path)


# ------------------------------------------------------------------------------- validate resolves includes
@pytest.mark.parametrize("include", ["3deg", "3deg.yaml"])
def test_validate_reads_a_recipe_including_a_shipped_one_by_name(tmp_path, include):
    path = _write(tmp_path / "mine.yaml", {"name": "mine", "include": include, "epochs": {"code": 5}})
    assert validate_file(path) == ("recipe", "mine")
    with_data = _copy(tmp_path, shipped="5deg", name="mine5")  # its own data, `include: 3deg.yaml` kept
    assert validate_file(with_data) == ("recipe", "mine5")


def test_validate_reads_a_protocol_including_a_shipped_one_by_name(tmp_path):
    path = _write(tmp_path / "rain.yaml", {"name": "rain-only", "include": "3deg", "only_tasks": ["derain"]})
    assert validate_file(path) == ("protocol", "rain-only")
    assert load_protocol(path).name == "rain-only"


def test_validate_names_a_file_that_is_valid_as_the_shipped_recipe_and_the_shipped_protocol(tmp_path):
    path = _write(tmp_path / "both.yaml", {"name": "both", "include": "3deg"})
    notes: list[str] = []
    assert validate_file(path, notes=notes) == ("recipe and protocol", "both")
    assert any("names both a shipped recipe and a shipped protocol" in note for note in notes)


def test_validate_reports_an_include_that_names_nothing(tmp_path):
    path = _write(tmp_path / "mine.yaml", {"name": "mine", "include": "nosuch"})
    with pytest.raises(SpecError, match="field 'include'"):
        validate_file(path)


# ------------------------------------------------------------------------------- a validation protocol of its own
def _recipe_with_own_protocol(folder: Path) -> Path:
    folder.mkdir()
    write_one_pair_protocol(folder, "toy")
    return _copy(folder, shipped="sample", validation={"protocol": "toy.yaml", "tasks": ["t"], "limit": 1})


def test_a_validation_protocol_file_is_read_beside_the_recipe_from_any_folder(tmp_path, monkeypatch):
    path = _recipe_with_own_protocol(tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(path)
    assert recipe.validation.protocol == str((tmp_path / "recipes" / "toy.yaml").resolve())
    assert load_protocol(recipe.validation.protocol).name == "toy"


def test_a_training_manifest_replays_with_the_recipes_own_validation_protocol(tmp_path, monkeypatch):
    recipe = load_recipe(_recipe_with_own_protocol(tmp_path / "recipes"))
    manifest = tmp_path / "run" / "train_manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"kind": "training", "recipe": {"name": recipe.name, "sha256": recipe.sha256,
                                                                   "resolved": recipe.to_dict()}}))
    monkeypatch.chdir(manifest.parent)
    again = load_recipe(manifest)
    assert again.validation.protocol == recipe.validation.protocol and again.sha256 == recipe.sha256


def test_a_shipped_protocol_name_stays_a_name_beside_recipe_files_of_that_name(tmp_path):
    _copy(tmp_path, shipped="5deg", name="5deg")  # a recipe file 5deg.yaml beside the recipe
    recipe = load_recipe(_copy(tmp_path, shipped="sample", validation={"protocol": "5deg", "sample": True}))
    assert recipe.validation.protocol == "5deg"


# ------------------------------------------------------------------------------- step intervals
@pytest.mark.parametrize("section", ["validation", "checkpoint"])
def test_a_step_interval_given_alone_is_the_only_interval(tmp_path, section):
    recipe = load_recipe(_copy(tmp_path, shipped="sample", **{section: {"every_steps": 4}}))
    spec = getattr(recipe, section)
    assert (spec.every_steps, spec.every_epochs) == (4, None)


def test_without_any_interval_a_recipe_still_runs_every_epoch(tmp_path):
    recipe = load_recipe(_copy(tmp_path, shipped="sample", checkpoint={}))
    assert (recipe.checkpoint.every_steps, recipe.checkpoint.every_epochs) == (None, 1)


def test_train_keeps_the_notice_of_a_card_option_replacing_the_recipes_epochs(tmp_path):
    import json

    from conftest import FAST_TRAINING

    from bench_ir.train import train

    recipe = _copy(tmp_path, shipped="sample", epochs={"card_option": "epochs_3deg", "code": 2})
    train(str(recipe), "mirage-t", None, tmp_path / "run", max_steps=1, **FAST_TRAINING)
    notices = json.loads((tmp_path / "run" / "train_manifest.json").read_text())["notices"]
    assert any(notice.startswith(REPLACED) for notice in notices), notices
