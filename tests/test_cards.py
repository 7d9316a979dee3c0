"""Model cards: every registered card builds its model with exactly the expected parameter count."""

from __future__ import annotations

import os
import textwrap
import time

import pytest
import torch

from bench_ir.cards import count_parameters, get_card, list_cards, list_models, load_card
from bench_ir.checkpoints import create_model
from bench_ir.yamlio import SpecError

CARDS = list_cards()


@pytest.mark.parametrize("card", CARDS, ids=[c.name for c in CARDS])
def test_every_card_builds_with_its_expected_parameter_count(card):
    with torch.device("meta"):
        model = create_model(card)
    assert card.expected_params is not None, f"{card.name}: expected_params missing"
    assert count_parameters(model) == card.expected_params


@pytest.mark.parametrize("card", CARDS, ids=[c.name for c in CARDS])
def test_every_card_model_is_returned_in_eval_mode(card):
    with torch.device("meta"):
        model = create_model(card)
    assert not model.training


def test_list_models_includes_both_mirage_variants_and_the_input_row():
    assert {"mirage-t", "mirage-s", "input"} <= set(list_models())


def test_list_models_filters_by_glob_pattern():
    assert list_models("mirage-*") == ["mirage-s", "mirage-t"]


@pytest.mark.parametrize("typed", ["MIRAGE-T", "Mirage-T", "mirage-t", "MIRAGE-t"])
def test_a_display_name_or_name_in_any_letter_case_names_the_card(typed):
    assert get_card(typed).name == "mirage-t"


def test_a_case_folded_display_name_with_spaces_names_its_card():
    assert get_card("restormer (biasfree ln)").name == "restormer-biasfree"


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean: mirage-t"):
        get_card("mirage-tt")


def _registry_copy(folder, names):
    """A registry folder holding copies of the shipped cards ``names``."""
    from bench_ir.resources import registry_dir

    folder.mkdir()
    for name in names:
        (folder / f"{name}.yaml").write_text((registry_dir() / f"{name}.yaml").read_text())
    return folder


def test_looking_up_names_reads_each_card_file_once(tmp_path, monkeypatch):
    """Once per version of each file: these were written an hour ago (one written within the last clock tick is read
    at every lookup, since an edit in the same tick could keep its mtime and size)."""
    import bench_ir.cards as cards_module

    registry = _registry_copy(tmp_path / "registry", ["mirage-t", "input"])
    an_hour_ago_ns = time.time_ns() - 3600 * 10**9
    for card in registry.iterdir():
        os.utime(card, ns=(an_hour_ago_ns, an_hour_ago_ns))
    reads = []
    real_load_card = cards_module.load_card
    monkeypatch.setattr(cards_module, "load_card", lambda path: reads.append(path) or real_load_card(path))
    for _ in range(5):
        assert get_card("mirage-t", registry=registry).name == "mirage-t"
        assert get_card("input", registry=registry).name == "input"
    assert len(reads) == 2


def test_an_edited_card_file_is_read_again(tmp_path):
    registry = _registry_copy(tmp_path / "registry", ["input"])
    assert get_card("input", registry=registry).display_name != "Degraded input (edited)"
    card = registry / "input.yaml"
    lines = card.read_text().splitlines()
    card.write_text("\n".join("display_name: Degraded input (edited)" if line.startswith("display_name:") else line
                              for line in lines))
    assert get_card("input", registry=registry).display_name == "Degraded input (edited)"


def test_card_with_unknown_field_names_the_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndisplay_name: X\nfactory: a.b:C\nexpected_parmas: 3\n")
    with pytest.raises(SpecError, match=r"bad.yaml: unknown field\(s\) \['expected_parmas'\]"):
        load_card(path)


def test_card_with_wrong_type_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndisplay_name: X\nfactory: a.b:C\ninput_multiple: eight\n")
    with pytest.raises(SpecError, match="field 'input_multiple': expected an integer"):
        load_card(path)


@pytest.mark.parametrize("name", ["my/net", "..", "my net", "net\\x"])
def test_a_card_name_that_is_not_a_safe_folder_name_names_the_file_and_field(tmp_path, name):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: '{name}'\ndisplay_name: X\nfactory: torch.nn:Identity\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: field 'name': .* is not a safe name"):
        load_card(path)


def test_card_whose_factory_cannot_be_imported_names_the_field(tmp_path):
    path = tmp_path / "ghost.yaml"
    path.write_text("name: ghost\ndisplay_name: Ghost\nfactory: no_such_package.nets:Net\n")
    with pytest.raises(SpecError, match="ghost.yaml: field 'factory': cannot import module 'no_such_package.nets'"):
        create_model(path)


def test_user_card_file_builds_a_model_from_its_factory(tmp_path):
    path = tmp_path / "conv.yaml"
    path.write_text(textwrap.dedent("""
        name: conv
        display_name: One conv
        factory: torch.nn:Conv2d
        args: {in_channels: 3, out_channels: 3, kernel_size: 3, padding: 1}
        expected_params: 84
    """))
    model = create_model(str(path))
    assert count_parameters(model) == 84
    assert model.bench_ir_card.name == "conv"


def test_overrides_replace_card_arguments():
    with torch.device("meta"):
        model = create_model("mirage-t", num_refinement_blocks=3)
    assert len(model.refinement) == 3


def test_two_cards_whose_modules_share_a_name_each_build_their_own_network(tmp_path):
    cards = []
    for width in (3, 5):
        folder = tmp_path / f"card{width}"
        folder.mkdir()
        (folder / "samename_net.py").write_text(textwrap.dedent(f"""
            import torch
            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = torch.nn.Conv2d(3, {width}, 1)
            """))
        (folder / "card.yaml").write_text("name: mine\ndisplay_name: Mine\nfactory: samename_net:Net\n")
        cards.append(load_card(folder / "card.yaml"))
    widths = [create_model(card).conv.out_channels for card in cards]
    assert widths == [3, 5]


def test_a_card_with_model_args_states_no_parameter_count_of_its_own_args():
    """A training run writes this card as model-card.yaml: a count of the original args would be false there."""
    from bench_ir.cards import get_card, with_model_args

    changed = with_model_args(get_card("mirage-t"), {"dim": 16})
    assert get_card("mirage-t").expected_params is not None and changed.expected_params is None
