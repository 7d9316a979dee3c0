"""What a training session can be trusted with: a resume continues only on the run's own data and weights (and a
fine-tune without its --init-weights file), the exported weights are the same bytes for the same tensors, reading
conversions are stated once, the training data check warns about pairs that train on mismatched images, and the
messages name what to do."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from conftest import FAST_TRAINING as FAST
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from bench_ir.checkpoints import sha256_file
from bench_ir.cli import app
from bench_ir.data.io import InputWarning, write_png_uint8
from bench_ir.train.command import interrupted_message
from bench_ir.train.data_check import check_training_data
from bench_ir.train.recipes import ValidationSpec, load_recipe
from bench_ir.train.session import TrainResumeError
from bench_ir.train.trainer import _Loop, train

pytestmark = pytest.mark.usefixtures("one_thread")

PHOTOS = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
RAINY, CLEAN = "Train/Derain/rainy", "Train/Derain/gt"


def _crop(photo: int, size: int = 32) -> np.ndarray:
    return np.ascontiguousarray(PHOTOS[photo][100:100 + size, 120:120 + size])


def _derain_tree(root: Path, first_photo: int = 0) -> Path:
    """Two 32x32 Rain100L-named pairs (input: the clean photo darkened) under ``root``, as the derain recipe reads."""
    for i in (1, 2):
        clean = _crop(first_photo + i - 1)
        write_png_uint8(root / RAINY / f"rain-{i}.png", clean // 2)
        write_png_uint8(root / CLEAN / f"norain-{i}.png", clean)
    return root


@pytest.fixture(scope="module")
def derain_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, run directory) of a 1-step derain training run, its checkpoint at step 1."""
    base = tmp_path_factory.mktemp("derain-run")
    root = _derain_tree(base / "data")
    train("derain", "mirage-t", root, base / "run", max_steps=1, command=["bench-ir", "train", "first"], **FAST)
    return root, base / "run"


def _copy(derain_run: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    root, run = derain_run
    return Path(shutil.copytree(root, tmp_path / "data")), Path(shutil.copytree(run, tmp_path / "run"))


def _manifest(run: Path) -> dict:
    return json.loads((run / "train_manifest.json").read_text())


# ------------------------------------------------------------------------------------------ the run's own data
def test_a_resume_on_other_images_of_the_same_names_is_refused_naming_the_files(derain_run, tmp_path):
    root, run = _copy(derain_run, tmp_path)
    before = {p: p.stat().st_size for p in (root / CLEAN).iterdir()}
    _derain_tree(root, first_photo=2)  # every image replaced by another photo, same names and count
    assert all(p.stat().st_size != size for p, size in before.items())
    with pytest.raises(TrainResumeError, match=r"training data: not the files the run was trained on \(4 files -> 4; "
                                               rf"names relative to the data root\): changed size: {RAINY}/rain-1.png, "
                                               rf"{CLEAN}/norain-1.png, {RAINY}/rain-2.png \.\.\. and 1 more"):
        train("derain", "mirage-t", root, run, max_steps=2, resume=True, **FAST)


def test_a_missing_and_a_new_file_are_named_in_the_refusal(derain_run, tmp_path):
    root, run = _copy(derain_run, tmp_path)
    (root / RAINY / "rain-2.png").rename(root / RAINY / "rain-3.png")
    (root / CLEAN / "norain-2.png").rename(root / CLEAN / "norain-3.png")
    with pytest.raises(TrainResumeError, match=rf"missing now: {RAINY}/rain-2.png, {CLEAN}/norain-2.png; new: "
                                               rf"{RAINY}/rain-3.png, {CLEAN}/norain-3.png; resume with the "
                                               "--data-root that holds the run's files, or use a new --run-dir"):
        train("derain", "mirage-t", root, run, max_steps=2, resume=True, **FAST)


def test_the_same_files_under_another_data_root_continue_and_each_segment_keeps_its_command_and_root(derain_run,
                                                                                                   tmp_path):
    root, run = _copy(derain_run, tmp_path)
    first = _manifest(run)
    train("derain", "mirage-t", root, run, max_steps=2, resume=True, command=["bench-ir", "train", "second"], **FAST)
    manifest = _manifest(run)
    assert manifest["command"] == ["bench-ir", "train", "first"] and manifest["data"]["root"] == first["data"]["root"]
    assert manifest["resumed"][-1]["command"] == ["bench-ir", "train", "second"]
    assert manifest["resumed"][-1]["data_root"] == str(root.resolve()) != first["data"]["root"]


def test_a_checkpoint_from_before_the_data_files_were_recorded_resumes_by_its_item_count(derain_run, tmp_path):
    root, run = _copy(derain_run, tmp_path)
    checkpoint = torch.load(run / "checkpoints/last.pt", weights_only=True)
    del checkpoint["identity"]["data_files"]
    torch.save(checkpoint, run / "checkpoints/last.pt")
    _derain_tree(root, first_photo=2)
    assert train("derain", "mirage-t", root, run, max_steps=2, resume=True, **FAST).steps == 2


# ------------------------------------------------------------------------------------------ fine-tunes
@pytest.fixture(scope="module")
def fine_tune(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(init weights, run directory) of a 1-step fine-tune started from ``init.safetensors``."""
    base = tmp_path_factory.mktemp("fine-tune")
    train("sample", "mirage-t", None, base / "pretrained", max_steps=1, **FAST)
    init = Path(shutil.copy(base / "pretrained/final.safetensors", base / "init.safetensors"))
    train("sample", "mirage-t", None, base / "run", max_steps=1, init_weights=init, **FAST)
    return init, base / "run"


def test_a_fine_tune_continues_from_its_checkpoint_once_its_init_weights_file_is_gone(fine_tune, tmp_path):
    init, run = Path(shutil.copy(fine_tune[0], tmp_path / "init.safetensors")), tmp_path / "run"
    shutil.copytree(fine_tune[1], run)
    recorded = _manifest(run)["init_weights"]
    init.unlink()
    outcome = train("sample", "mirage-t", None, run, max_steps=2, resume=True, **FAST)
    assert outcome.steps == 2 and outcome.manifest["init_weights"] == recorded
    assert recorded["sha256"] == sha256_file(fine_tune[0])


def test_a_fine_tune_resumed_with_other_init_weights_is_refused_naming_the_recorded_file(fine_tune, tmp_path):
    run = Path(shutil.copytree(fine_tune[1], tmp_path / "run"))
    with pytest.raises(TrainResumeError, match=rf"the run started from init.safetensors \(sha256 "
                                               rf"{sha256_file(fine_tune[0])}\); resume without --init-weights"):
        train("sample", "mirage-t", None, run, max_steps=2, resume=True, init_weights=run / "final.safetensors",
              **FAST)


def test_missing_init_weights_are_named_as_the_option_not_as_an_evaluation_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--init-weights .*gone.safetensors: no such file") as caught:
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, init_weights=tmp_path / "gone.safetensors",
              **FAST)
    assert "bench-ir run" not in str(caught.value) and "fficial" not in str(caught.value)


# ------------------------------------------------------------------------------------------ exported weights
_METADATA = {key: key.upper() for key in "qwertyuiop"}


def _export(path: Path) -> str:
    """The code that exports seeded weights with ``_METADATA`` to ``path``, for this process or another one."""
    return (f"import torch\nfrom bench_ir.train.checkpointing import export_safetensors\ntorch.manual_seed(0)\n"
            f"export_safetensors(torch.nn.Linear(3, 2), {str(path)!r}, {_METADATA!r})\n")


def test_the_same_weights_and_metadata_export_to_the_same_bytes_in_any_process(tmp_path):
    """safetensors wrote its metadata map in a random order (seeded anew per save and per process); with ten keys a
    chance match is unlikely. One export in another process, two in this one."""
    paths = [tmp_path / f"{name}.safetensors" for name in "abc"]
    job = subprocess.Popen([sys.executable, "-c", _export(paths[0])])
    for path in paths[1:]:
        exec(_export(path), {})
    assert job.wait(timeout=120) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()
    with safe_open(str(paths[0]), "pt") as handle:
        assert handle.metadata() == {"format": "pt", **_METADATA}


# ------------------------------------------------------------------------------------------ reading conversions
def _tree_with_conversions(root: Path) -> Path:
    """The derain tree with an RGBA input, a grayscale target and a 16-bit grayscale target."""
    _derain_tree(root)
    Image.fromarray(np.dstack([_crop(0) // 2, np.full((32, 32), 255, np.uint8)])).save(root / RAINY / "rain-1.png")
    Image.fromarray(_crop(0)[..., 1]).save(root / CLEAN / "norain-1.png")
    Image.fromarray(_crop(1)[..., 1].astype(np.uint16) * 257).save(root / CLEAN / "norain-2.png")
    return root


def test_reading_conversions_are_stated_once_per_kind_in_the_notices_and_not_warned_per_read(tmp_path):
    root = _tree_with_conversions(tmp_path / "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = train("derain", "mirage-t", root, tmp_path / "run", max_steps=2, **FAST)
    assert not [w for w in caught if issubclass(w.category, InputWarning)]
    notices = _manifest(tmp_path / "run")["notices"]
    assert notices == outcome.manifest["notices"]
    assert [n for n in notices if "as training reads them" in n] == [
        f"2 grayscale images replicated to 3 RGB channels (as training reads them): {CLEAN}/norain-1.png, "
        f"{CLEAN}/norain-2.png",
        f"1 image whose alpha channel is dropped without compositing (as training reads them): {RAINY}/rain-1.png",
        f"1 16-bit image scaled to 8 bits with round(v/257) (as training reads them): {CLEAN}/norain-2.png"]


# ------------------------------------------------------------------------------------------ data check --recipe
def test_the_training_data_check_warns_of_differing_exif_orientations_and_grayscale_targets_of_colour_inputs(
        tmp_path):
    root = _derain_tree(tmp_path)
    write_png_uint8(root / RAINY / "rain-1.png", _crop(0) // 2, orientation=6)  # square: no size difference
    Image.fromarray(_crop(1)[..., 0]).save(root / CLEAN / "norain-2.png")
    (check,) = check_training_data(load_recipe("derain"), root, patch_size=16)
    assert check.ok
    assert any(w.startswith(f"task 'derain': 1 pair(s) whose input and target EXIF orientations differ: "
                            f"{RAINY}/rain-1.png (input 6, target 1). ") for w in check.warnings), check.warnings
    assert any(w.startswith(f"task 'derain': 1 grayscale target(s) paired with a colour input: {CLEAN}/norain-2.png "
                            f"(input {RAINY}/rain-2.png). ") for w in check.warnings), check.warnings


# ------------------------------------------------------------------------------------------ messages
def test_refused_training_data_name_the_check_with_the_patch_size_given(tmp_path):
    root = _derain_tree(tmp_path / "data")
    with pytest.raises(ValueError, match=rf"`bench-ir data check --recipe derain --data-root {root} --patch-size 80` "
                                         "lists every problem"):
        train("derain", "mirage-t", root, tmp_path / "run", max_steps=1, **{**FAST, "patch_size": 80})


def test_missing_validation_test_sets_name_the_protocol_check_not_the_training_data_check(tmp_path):
    root = _derain_tree(tmp_path / "data")
    result = CliRunner().invoke(app, ["train", "--recipe", "derain", "--data-root", str(root), "--patch-size", "16",
                                      "--device", "cpu", "--run-dir", str(tmp_path / "run")], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert f"`bench-ir data check --protocol derain --data-root {root}` checks the test sets" in result.output
    assert "--recipe derain" not in result.output


def test_a_plan_change_on_resume_names_only_the_changed_keys_and_the_option_that_restores_them(tmp_path):
    train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, **FAST)
    with pytest.raises(TrainResumeError) as caught:
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, resume=True, **{**FAST, "patch_size": 24})
    assert str(caught.value) == (f"{tmp_path / 'run'}: cannot resume: plan: patch_size 16 -> 24; resume with "
                                 "--patch-size 16, or use a new --run-dir for the new setup")


def test_an_interruption_after_the_checkpoint_of_the_last_step_done_says_nothing_is_lost(tmp_path, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(_Loop, "validate", interrupted)
    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(protocol="5deg", sample=True,
                                                                                  every_steps=1))
    with pytest.raises(KeyboardInterrupt) as caught:
        train(recipe, "mirage-t", None, tmp_path / "run", max_steps=3, checkpoint_every=1, **{**FAST, "validate": True})
    message = interrupted_message(caught.value, ["bench-ir", "train"])
    assert message.startswith(f"interrupted: {tmp_path / 'run'} keeps its checkpoint of step 1, the last step done: "
                              "nothing is lost")
