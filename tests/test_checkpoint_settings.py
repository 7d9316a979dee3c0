"""A checkpoint released for one setting, run on another protocol, is said to be no reproduction of that protocol's
row; a suite's missing checkpoint comes with where to get it; a shipped suite is never the place to name a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import write_one_pair_protocol, write_sample_suite

from bench_ir.cards import get_card
from bench_ir.checkpoint_settings import matching_settings, official_files, setting_mismatch_notice
from bench_ir.runner import RunConfig, run_protocol
from bench_ir.suite import plan_suite
from bench_ir.suite.plan import check_cells

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# ------------------------------------------------------------------------------------- official file names
@pytest.mark.parametrize("value, files", [
    ("train_ckpt/3deg_tiny/3Deg_tiny.ckpt", ["train_ckpt/3deg_tiny/3Deg_tiny.ckpt"]),
    ("ckpt/Denoise.pth (train_batch_size 3)", ["ckpt/Denoise.pth"]),
    ("model_L.pth (https://huggingface.co/Mingde/pre-trained-models/resolve/main/model_L.pth)", ["model_L.pth"]),
    ("Denoising/pretrained_models/gaussian_color_denoising_{blind,sigma15}.pth (BiasFree layer norm)",
     ["Denoising/pretrained_models/gaussian_color_denoising_blind.pth",
      "Denoising/pretrained_models/gaussian_color_denoising_sigma15.pth"]),
    ({"path": "ckpt/adair5d.ckpt", "note": "Google Drive"}, ["ckpt/adair5d.ckpt"]),
    ("CDD11 Small checkpoint (README link)", []),
    ("the three-degradation checkpoint in the same Google Drive folder (file name not given)", []),
])
def test_official_files_are_read_from_every_value_form_of_the_cards(value, files):
    assert [str(file) for file in official_files(value)] == files


def test_the_longest_shared_path_tail_decides_between_official_files_of_the_same_name():
    card = get_card("moce-ir")
    assert matching_settings(card, "ck/moce-ir/MoCE_IR_AIO3/last.ckpt") == ["3deg"]
    assert matching_settings(card, "ck/last.ckpt") == ["3deg", "5deg", "cdd11"]
    assert matching_settings(card, "ck/my-own.ckpt") == []


# ------------------------------------------------------------------------------------- the notice
def test_an_official_checkpoint_of_another_setting_gets_a_notice_naming_both():
    notice = setting_mismatch_notice(get_card("mirage-t"), "ck/mirage/3Deg_tiny.ckpt", "5deg")
    assert notice == ("checkpoint 3Deg_tiny.ckpt is named like mirage-t's official 3deg checkpoint; this run is on "
                      "5deg, whose official checkpoint is 5Deg_tiny.ckpt: if it is that file, this run's numbers "
                      "are not a reproduction of the published 5deg row of mirage-t")


def test_the_official_checkpoint_of_the_runs_own_protocol_gets_no_notice():
    assert setting_mismatch_notice(get_card("mirage-t"), "ck/mirage/5Deg_tiny.ckpt", "5deg") is None
    assert setting_mismatch_notice(get_card("airnet"), "ck/airnet/Derain.pth", "derain") is None
    assert setting_mismatch_notice(get_card("moce-ir"), "ck/last.ckpt", "5deg") is None  # the name fits 5deg too


def test_a_file_name_that_is_no_official_one_gets_no_notice():
    assert setting_mismatch_notice(get_card("mirage-t"), "runs/mine/final.safetensors", "5deg") is None


def test_a_protocol_without_an_official_checkpoint_on_the_card_is_said_to_have_none():
    notice = setting_mismatch_notice(get_card("promptir"), "ck/promptir/model.ckpt", "5deg")
    assert notice is not None and "this run is on 5deg, for which promptir has no official checkpoint" in notice


def test_a_single_task_setting_of_its_own_name_is_not_the_protocol():
    notice = setting_mismatch_notice(get_card("airnet"), "ck/airnet/All.pth", "derain")
    assert notice is not None and "airnet's official 3deg checkpoint" in notice
    assert "whose official checkpoint is Derain.pth" in notice


def test_run_records_and_returns_the_notice_for_another_settings_checkpoint(tmp_path):
    folder = tmp_path / "card"
    folder.mkdir()
    shutil.copy(EXAMPLES / "tiny_unet.py", folder / "tiny_unet.py")
    card = yaml.safe_load((EXAMPLES / "tiny-unet.yaml").read_text())
    card["official_checkpoints"] = {"3deg": "ckpt/Three.safetensors", "derain": "ckpt/Rain.safetensors"}
    (folder / "tiny-unet.yaml").write_text(yaml.safe_dump(card))
    shutil.copy(EXAMPLES / "tiny-unet.safetensors", tmp_path / "Three.safetensors")
    outcome = run_protocol(RunConfig(protocol="derain", model=str(folder / "tiny-unet.yaml"), sample=True, limit=1,
                                     checkpoint=str(tmp_path / "Three.safetensors"), device="cpu",
                                     run_dir=tmp_path / "run"))
    expected = [n for n in outcome.notices if n.startswith("checkpoint Three.safetensors is named like tiny-unet's "
                                                            "official 3deg checkpoint; this run is on derain")]
    assert len(expected) == 1 and expected[0] in outcome.manifest["notices"]


# ------------------------------------------------------------------------------------- suites
def test_a_suites_missing_checkpoint_names_the_cards_official_checkpoints_and_where_to_download_them(tmp_path):
    toy = write_one_pair_protocol(tmp_path / "data", "toy")
    path = write_sample_suite(tmp_path, "ck", [str(toy)], entries=[{"model": "mirage-t",
                                                                    "checkpoint": "mirage/3Deg_tiny.ckpt"}],
                              options={"device": "cpu"})
    plan = plan_suite(path, tmp_path / "out", data_root=tmp_path / "data", checkpoint_dir=tmp_path / "ck")
    (problem,) = check_cells(plan, plan.cells)
    assert str(tmp_path / "ck" / "mirage" / "3Deg_tiny.ckpt") in problem
    assert "Official MIRAGE-T checkpoints: 3deg: train_ckpt/3deg_tiny/3Deg_tiny.ckpt; 5deg:" in problem
    assert "download links in the README of https://github.com/Amazingren/MIRAGE" in problem


def test_a_shipped_suite_without_a_checkpoint_folder_is_not_asked_to_be_edited(tmp_path):
    with pytest.raises(ValueError) as err:
        plan_suite("mirage-paper", tmp_path / "out", data_root=tmp_path)
    message = str(err.value)
    assert "no folder was given: pass --checkpoint-dir or set BENCH_IR_CHECKPOINT_DIR" in message
    assert "copy " in message and "give the copy a field 'checkpoint_dir'" in message
    assert "give the suite file" not in message
