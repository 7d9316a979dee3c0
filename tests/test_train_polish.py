"""Small points of training's surface: `bench-ir list recipes`, notices that name the recipe they come from (official
only for a shipped one), and the model-card.yaml of a run with --model-arg, which describes the network it trains."""

from __future__ import annotations

from types import SimpleNamespace

from test_train_data import make_train_tree
from typer.testing import CliRunner

from bench_ir.cards import get_card, load_card, model_record, with_model_args
from bench_ir.cli import app
from bench_ir.report.delta import leaderboard_key
from bench_ir.train.data import build_training_set
from bench_ir.train.recipes import list_recipes, load_recipe
from bench_ir.train.session import _write_card


def test_list_recipes_shows_every_shipped_recipe_with_its_title_what_it_trains_and_how_long_in_80_columns():
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["list", "recipes"])
    assert result.exit_code == 0, result.output
    assert all(f"│ {name} " in result.output for name in list_recipes())
    assert "│ 3deg                   │ Three-degradation        │ denoise, derain, dehaze  │" in result.output
    assert "150 epochs" in result.output and "300,000 steps" in result.output  # 5deg; allweather counts steps
    assert "sample(motion_blur)" in result.output  # the sample photos: the degradations they are given
    assert max(map(len, result.output.splitlines())) <= 80


def _derain_notices(recipe, data_root) -> list[str]:
    make_train_tree(data_root)  # 2 rain pairs, no rainTrain.txt
    return build_training_set(recipe, data_root, patch_size=32, seed=0).notices


def test_a_researchers_recipe_is_named_in_its_notices_and_never_called_official(tmp_path):
    own = tmp_path / "my-derain.yaml"
    own.write_text("name: my-derain\ninclude: derain\ntitle: My deraining\n", encoding="utf-8")
    notices = _derain_notices(load_recipe(own), tmp_path / "data")
    assert any("using every image found (the recipe 'my-derain' names the list rainTrain.txt)" in n for n in notices)
    assert any(n.endswith("; the recipe 'my-derain' expects 200") for n in notices)
    assert not any("official" in n for n in notices)


def test_a_shipped_recipe_is_named_as_the_official_one(tmp_path):
    notices = _derain_notices(load_recipe("derain"), tmp_path)
    assert any("(the official recipe 'derain' names the list rainTrain.txt)" in n for n in notices)
    assert any(n.endswith("; the official recipe uses 200 (recipe 'derain')") for n in notices)


def _written_card(tmp_path):
    path = tmp_path / "model-card.yaml"
    _write_card(with_model_args(get_card("mirage-t"), {"dim": 16}), path)
    return load_card(path)


def test_the_card_of_a_run_with_model_args_keeps_nothing_of_the_full_size_network(tmp_path):
    card = _written_card(tmp_path)
    assert (card.expected_params, card.inference_params, card.leaderboard_key) == (None, None, None)
    assert (card.official_checkpoints, card.published, card.parity) == ({}, {}, "")
    assert card.args["dim"] == 16 and card.display_name == "MIRAGE-T (dim=16)"
    assert card.description.startswith("MIRAGE-T (dim=16): the network of model card 'mirage-t' with --model-arg")


def test_a_run_of_that_card_matches_no_published_row(tmp_path):
    def key(card) -> str:
        return leaderboard_key(SimpleNamespace(manifest={"model": model_record(card, None, None)}))

    assert key(get_card("mirage-t")) == "MIRAGE-T"
    assert key(_written_card(tmp_path)) == ""
