"""A recipe that includes another inherits its training, not what it says about itself: description, reference and
notes are the including file's own (or empty), a file without a title is titled as the included recipe changed by
it, and a run resumes when only those words of its recipe changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import FAST_TRAINING as FAST

from bench_ir.train.recipes import load_recipe
from bench_ir.train.session import TrainResumeError
from bench_ir.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _write(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def test_an_including_recipe_says_only_what_it_says_itself(tmp_path):
    mine = load_recipe(_write(tmp_path / "mine.yaml", {"name": "mine", "include": "3deg", "title": "Mine",
                                                       "description": "3deg for 5 epochs", "epochs": {"code": 5}}))
    assert (mine.title, mine.description, mine.reference, mine.notes) == ("Mine", "3deg for 5 epochs", "", "")
    assert mine.to_dict()["description"] == "3deg for 5 epochs"  # what a training manifest records


def test_an_including_recipe_inherits_the_training_of_the_included_one(tmp_path):
    mine = load_recipe(_write(tmp_path / "mine.yaml", {"name": "mine", "include": "3deg", "title": "Mine"}))
    official = load_recipe("3deg")
    assert (mine.data, mine.epochs, mine.loss, mine.schedule, mine.validation) == (
        official.data, official.epochs, official.loss, official.schedule, official.validation)


def test_a_recipe_without_a_title_of_its_own_is_titled_as_the_included_one_changed_by_its_file(tmp_path):
    mine = load_recipe(_write(tmp_path / "mine.yaml", {"name": "mine", "include": "3deg", "epochs": {"code": 5}}))
    assert mine.title == f"{load_recipe('3deg').title}, as changed by mine.yaml"


def test_shipped_recipes_that_include_another_do_not_carry_its_description_or_reference():
    assert load_recipe("derain").description == "" != load_recipe("3deg").description
    assert load_recipe("sample-cpu").reference == "" != load_recipe("sample").reference
    assert load_recipe("sample-cpu-deblur-tail").description.startswith("The last stage of the shipped MIRAGE-T")


# ------------------------------------------------------------------------------------------------ resuming
@pytest.fixture
def started_run(tmp_path: Path) -> tuple[Path, Path]:
    """(recipe file, run directory) of a 1-step run of a recipe including the sample recipe."""
    recipe = _write(tmp_path / "mine.yaml", {"name": "mine", "include": "sample", "description": "first words"})
    train(recipe, "mirage-t", None, tmp_path / "run", max_steps=1, **FAST)
    return recipe, tmp_path / "run"


def test_a_run_resumes_when_only_the_words_of_its_recipe_changed(started_run):
    recipe, run = started_run
    _write(recipe, {"name": "mine", "include": "sample", "description": "other words", "reference": "mine"})
    outcome = train(recipe, "mirage-t", None, run, max_steps=2, resume=True, **FAST)
    assert outcome.steps == 2
    assert ("the recipe's description and reference differ from the run's start; its training is the same, so the "
            "run resumes") in outcome.manifest["notices"]


def test_a_run_does_not_resume_when_the_training_of_its_recipe_changed(started_run):
    recipe, run = started_run
    _write(recipe, {"name": "mine", "include": "sample", "description": "first words", "loss": {"grad_clip": 1.0}})
    with pytest.raises(TrainResumeError, match="cannot resume: recipe_sha256 was"):
        train(recipe, "mirage-t", None, run, max_steps=2, resume=True, **FAST)
