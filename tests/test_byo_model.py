"""Bring your own model: a card file next to its module, an installed plugin, and clear errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from bench_ir.cards import count_parameters, list_models
from bench_ir.checkpoints import create_model
from bench_ir.yamlio import SpecError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_example_card_builds_the_network_defined_next_to_it():
    model = create_model(EXAMPLES / "tiny-unet.yaml")
    assert count_parameters(model) == 33379
    assert model(torch.rand(1, 3, 16, 24)).shape == (1, 3, 16, 24)


def test_plugin_cards_are_found_through_the_entry_point_group(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "byo_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "byo_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: byo-plugin\n"
                                                                "Version: 0.1\n")
    (site / "byo_plugin-0.1.dist-info" / "entry_points.txt").write_text("[bench_ir.models]\nbyo = byo_plugin:cards\n")
    (site / "byo_plugin.py").write_text(textwrap.dedent("""
        def cards():
            return [{"name": "plugin-conv", "display_name": "Plugin conv", "factory": "torch.nn:Conv2d",
                     "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 1}, "expected_params": 12}]
    """))
    monkeypatch.syspath_prepend(str(site))
    assert "plugin-conv" in list_models()
    assert count_parameters(create_model("plugin-conv")) == 12


def test_plugin_card_with_a_wrong_field_names_the_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "bad_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "bad_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\n"
                                                                "Version: 0.1\n")
    (site / "bad_plugin-0.1.dist-info" / "entry_points.txt").write_text("[bench_ir.models]\nbad = bad_plugin:CARD\n")
    (site / "bad_plugin.py").write_text('CARD = {"name": "x", "display_name": "X", "factory": "a:b", "widht": 3}\n')
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(SpecError, match=r"entry point bad .*unknown field\(s\) \['widht'\]"):
        list_models()


def test_a_factory_that_is_not_a_module_is_a_clear_error(tmp_path):
    card = tmp_path / "fn.yaml"
    card.write_text("name: fn\ndisplay_name: Fn\nfactory: builtins:dict\nargs: {x: 4}\n")
    with pytest.raises(SpecError, match=r"fn.yaml: field 'factory': builtins:dict returned dict, not a torch.nn"):
        create_model(card)


class HalvingNet(torch.nn.Module):
    def forward(self, x):
        return x[..., ::2, ::2]


def test_a_model_whose_output_shape_differs_from_its_input_is_named_in_the_error(tmp_path, monkeypatch):
    from bench_ir.runner import RunConfig, run_protocol

    card = tmp_path / "half.yaml"
    card.write_text(f"name: half\ndisplay_name: Half\nfactory: {__name__}:HalvingNet\nexpected_params: 0\n")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    with pytest.raises(RuntimeError, match=r"model 'half' .* returned output shape \(1, 3, 96, 96\) for input "
                       r"\(1, 3, 192, 192\)"):
        run_protocol(RunConfig(protocol="derain", model=str(card), sample=True, run_dir=tmp_path / "r", limit=1))


def test_a_factory_that_fails_is_an_error_naming_the_card_its_values_and_the_line(tmp_path):
    """A wrong --model-arg value used to surface as 'unexpected IndexError: tuple index out of range'."""
    from bench_ir.checkpoints import ModelBuildError, create_model

    with pytest.raises(ModelBuildError, match=r"registry/mirage-t.yaml: bench_ir.models.mirage:MIRAGE\(variant='tiny', "
                                              r"num_blocks=\[1, 1\]\) raised IndexError: .* \(at .*mirage.py:\d+\); "
                                              r"check the card's args and any --model-arg values"):
        create_model("mirage-t", num_blocks=[1, 1])


CONV_CARD = ("name: conv\ndisplay_name: Conv\nfactory: torch.nn:Conv2d\n"
             "args: {in_channels: 3, out_channels: 3, kernel_size: 3, padding: 1}\n")  # 3*3*3*3 + 3 = 84 parameters


def test_a_run_of_a_model_whose_parameter_count_differs_from_expected_params_warns_naming_the_card_and_both(tmp_path):
    from bench_ir.runner import RunConfig, run_protocol

    card = tmp_path / "conv.yaml"
    card.write_text(CONV_CARD + "expected_params: 999\n")
    with pytest.warns(UserWarning, match=r"model card .*conv\.yaml: expected_params is 999 but the model built from "
                                         r"torch\.nn:Conv2d has 84 parameters"):
        outcome = run_protocol(RunConfig(protocol="derain", model=str(card), sample=True, run_dir=tmp_path / "r",
                                         limit=1))
    assert outcome.manifest["model"]["params"] == 84


def test_expected_params_counts_the_cards_own_args_so_a_model_arg_override_is_not_compared(tmp_path):
    card = tmp_path / "conv.yaml"
    card.write_text(CONV_CARD + "expected_params: 84\n")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert count_parameters(create_model(card)) == 84
        assert count_parameters(create_model(card, kernel_size=1, padding=0)) == 12


def test_a_users_card_whose_default_checkpoint_is_missing_names_the_card_field_and_path_not_reinstalling(tmp_path):
    from bench_ir.runner import RunConfig, run_protocol

    card = tmp_path / "conv.yaml"
    card.write_text(CONV_CARD + "default_checkpoint: weights/conv.safetensors\n")
    with pytest.raises(FileNotFoundError) as caught:
        run_protocol(RunConfig(protocol="derain", model=str(card), sample=True, run_dir=tmp_path / "r", limit=1))
    message = str(caught.value)
    assert f"{card}: field 'default_checkpoint': weights/conv.safetensors names " \
           f"{(tmp_path / 'weights' / 'conv.safetensors').resolve()}, which does not exist" in message
    assert "reinstall" not in message and "--checkpoint" in message


def test_a_shipped_cards_missing_sample_checkpoint_still_says_to_reinstall_bench_ir():
    from dataclasses import replace

    from bench_ir.cards import get_card, sample_checkpoint

    card = replace(get_card("mirage-t"), default_checkpoint="weights/gone.safetensors")
    with pytest.raises(FileNotFoundError, match=r"gone\.safetensors\) but the file is missing; reinstall bench-ir"):
        sample_checkpoint(card)
