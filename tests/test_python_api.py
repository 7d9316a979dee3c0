"""The Python API refuses wrong arguments where they are given, with one message naming the argument, the value and
what it takes (the CLI parses its options into the right types; a Python caller gets no such help)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_ir.cards import list_cards, list_models
from bench_ir.protocol import load_protocol
from bench_ir.report import build_report, build_table
from bench_ir.run_config import RunConfig

STORE = Path(__file__).parent / "fixtures" / "store"


# 1. RunConfig checks the types of its fields when it is built


def test_a_single_task_name_is_one_task_not_its_letters():
    config = RunConfig(protocol="5deg", tasks="dehaze")
    assert config.tasks == ["dehaze"]
    assert [task.name for task in load_protocol("5deg").select_tasks(config.tasks)] == ["dehaze"]


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("limit", "2", "an integer or None"),
    ("limit", 2.0, "an integer or None"),
    ("limit", True, "an integer or None"),
    ("seed", "x", "an integer"),
    ("tile_overlap", None, "an integer"),
    ("batch_size", "8", "an integer or None"),
    ("exact", "no", "True or False"),
    ("save_images", "yes", "True or False"),
    ("sample", 1, "True or False"),
    ("resume", None, "True or False"),
    ("random_weights", "false", "True or False"),
    ("device", 0, "a string"),
    ("dtype", None, "a string"),
    ("lpips", True, "a string or None"),
    ("checkpoint", 3, "a path (str or Path) or None"),
    ("runs_root", None, "a path (str or Path)"),
    ("tasks", ["dehaze", 2], "a task name, a list of task names or None"),
    ("command", "bench-ir run", "a list of strings or None"),
    ("model_args", ["dim=6"], "a dict of card argument names to values"),
    ("model", 7, "a model card name, a YAML path or a ModelCard"),
])
def test_a_field_of_the_wrong_type_is_a_type_error_naming_field_value_and_expected_type(name, value, expected):
    with pytest.raises(TypeError) as err:
        RunConfig(**{"protocol": "5deg", name: value})
    assert str(err.value) == f"RunConfig {name} must be {expected}, got {value!r} ({type(value).__name__})"


def test_a_protocol_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match=r"RunConfig protocol must be a protocol name, a YAML path or a Protocol, "
                                        r"got \['5deg'\] \(list\)"):
        RunConfig(protocol=["5deg"])


def test_well_typed_values_are_kept_and_integer_types_become_int():
    np = pytest.importorskip("numpy")
    config = RunConfig(protocol=Path("protocols/5deg.yaml"), limit=np.int64(2), tasks=("dehaze", "derain"),
                       checkpoint=Path("w.ckpt"), run_dir="runs/a", exact=True, seed=3, lpips="alex")
    assert config.limit == 2 and type(config.limit) is int
    assert config.tasks == ("dehaze", "derain") and config.seed == 3 and config.exact is True
    assert RunConfig(protocol="5deg").limit is None  # the defaults pass their own check


# 2. an unknown noise order is named as such, before what the sample data cannot do


def test_an_unknown_noise_order_is_refused_by_its_value_first():
    with pytest.raises(ValueError, match=r"^unknown noise order 'random'; expected one of sorted, listdir$"):
        RunConfig(protocol="5deg", noise_order="random", sample=True)


def test_run_config_knows_the_noise_orders_of_the_datasets():
    from bench_ir.data.datasets import NOISE_ORDERS as DATASET_NOISE_ORDERS
    from bench_ir.run_config import NOISE_ORDERS

    assert NOISE_ORDERS == DATASET_NOISE_ORDERS


# 3. a single run directory is a list of one, never the characters of its path


@pytest.mark.parametrize("single", [str(STORE / "5deg-mirage-t"), STORE / "5deg-mirage-t"])
def test_build_report_takes_a_single_run_directory_as_a_list_of_one(single):
    expected = build_report("5deg", [STORE / "5deg-mirage-t"], "markdown")
    assert build_report("5deg", single, "markdown") == expected


def test_build_table_takes_a_single_run_directory_as_a_list_of_one():
    run = STORE / "5deg-mirage-t"
    assert build_table("5deg", str(run)) == build_table("5deg", [run])


# 4. a registry folder that is not there is an error naming it


def test_a_registry_folder_that_does_not_exist_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nonexistent"
    with pytest.raises(FileNotFoundError, match=f"model registry folder {missing} does not exist"):
        list_models(registry=missing)
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        list_cards(str(missing))


def test_a_registry_that_is_a_file_is_an_error_naming_it(tmp_path):
    card = tmp_path / "mirage-t.yaml"
    card.write_text("name: mirage-t\n")
    with pytest.raises(ValueError, match=f"model registry {card} is a file, not a folder of model cards"):
        list_models(registry=card)


def test_an_empty_registry_folder_lists_no_model_of_its_own(tmp_path):
    assert "mirage-t" not in list_models(registry=tmp_path)
