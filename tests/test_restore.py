"""`bench-ir restore`: a folder of degraded images restored into PNGs of the same size, with provenance, resumable,
never mixing two setups in one folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

from bench_ir import folder_restore as restore_module
from bench_ir.cards import get_card
from bench_ir.checkpoints import create_model
from bench_ir.cli import app
from bench_ir.data.io import read_rgb_uint8
from bench_ir.data.sample import load_sample_photo
from bench_ir.folder_restore import RestoreConfig, restore_folder
from bench_ir.geometry import FitPolicy, run_padded
from bench_ir.resume import RunLock
from bench_ir.runner import MissingWeightsError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY_UNET = {"model": str(EXAMPLES / "tiny-unet.yaml"), "checkpoint": EXAMPLES / "tiny-unet.safetensors",
             "device": "cpu"}
runner = CliRunner()


def _photos(folder: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """Crops of chelsea, darkened (a degraded look), saved under ``folder`` with the given names and (H, W)."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = load_sample_photo("chelsea")
    for i, (name, (height, width)) in enumerate(sizes.items()):
        crop = photo[7 * i:7 * i + height, 11 * i:11 * i + width] // 2
        Image.fromarray(crop).save(folder / name, quality=95)
    return folder


def test_the_input_model_writes_each_image_back_unchanged_as_png(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (40, 52), "b.jpg": (33, 47)})
    outcome = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert sorted(p.name for p in outcome.restored) == ["a.png", "b.png"] and outcome.kept == []
    for source, out in (("a.png", "a.png"), ("b.jpg", "b.png")):
        assert np.array_equal(read_rgb_uint8(tmp_path / "out" / out), read_rgb_uint8(inputs / source))


def test_an_image_of_any_size_is_padded_to_the_models_multiple_and_cropped_back(tmp_path):
    inputs = _photos(tmp_path / "in", {"odd.png": (33, 47)})
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    card = get_card(TINY_UNET["model"])
    model = create_model(card, checkpoint=TINY_UNET["checkpoint"]).eval()
    x = torch.from_numpy(read_rgb_uint8(inputs / "odd.png")).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        expected = run_padded(model, x, FitPolicy(card.input_multiple, card.pad_mode))
    written = read_rgb_uint8(tmp_path / "out" / "odd.png")
    assert written.shape == (33, 47, 3)
    assert np.array_equal(written, np.round(expected[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8))


def test_a_restored_image_equals_what_run_save_images_writes_for_it(tmp_path):
    """Sides that are multiples of 16: the protocol's centre crop keeps the whole image, so both paths agree."""
    inputs = _photos(tmp_path / "in", {"cat.png": (64, 80)})
    targets = _photos(tmp_path / "gt", {"cat.png": (64, 80)})  # a run needs targets; these are not scored here
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    result = runner.invoke(app, ["run", "--model", TINY_UNET["model"], "--checkpoint", str(TINY_UNET["checkpoint"]),
                                 "--input-dir", str(inputs), "--target-dir", str(targets), "--device", "cpu",
                                 "--save-images", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(read_rgb_uint8(tmp_path / "out" / "cat.png"),
                          read_rgb_uint8(tmp_path / "run" / "images" / "folder" / "cat.png"))


def test_a_photos_exif_orientation_is_carried_to_its_output_so_viewers_turn_both_alike(tmp_path):
    """Pixels are restored as stored (as the references read them); the 'rotate to display' tag goes along."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo = Image.fromarray(load_sample_photo("chelsea")[:48, :80])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    photo.save(inputs / "phone.jpg", quality=95, exif=exif.tobytes())
    photo.save(inputs / "plain.png")
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    with Image.open(tmp_path / "out" / "phone.png") as out:
        assert out.size == (80, 48) and out.getexif().get(0x0112) == 6
        assert ImageOps.exif_transpose(out).size == ImageOps.exif_transpose(Image.open(inputs / "phone.jpg")).size
    assert np.array_equal(read_rgb_uint8(tmp_path / "out" / "phone.png"), read_rgb_uint8(inputs / "phone.jpg"))
    with Image.open(tmp_path / "out" / "plain.png") as out:
        assert 0x0112 not in out.getexif()


def test_recursive_restores_every_sub_folder_into_the_same_sub_folder_of_out(tmp_path):
    inputs = _photos(tmp_path / "in", {"top.png": (16, 16)})
    _photos(inputs / "day" / "street", {"a.jpg": (16, 24)})
    _photos(inputs / "night", {"a.png": (24, 16)})  # the same output name as day/street's, in another folder
    _photos(inputs / ".cache", {"hidden.png": (8, 8)})
    outcome = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", recursive=True))
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in outcome.restored)
    assert written == ["day/street/a.png", "night/a.png", "top.png"]
    assert np.array_equal(read_rgb_uint8(tmp_path / "out" / "night" / "a.png"), read_rgb_uint8(inputs / "night/a.png"))
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["images"] == {"top.png": "top.png", "day/street/a.png": "day/street/a.jpg",
                                  "night/a.png": "night/a.png"}
    assert manifest["recursive"] is True


def test_recursive_follows_a_linked_folder_once_and_a_link_cycle_ends(tmp_path):
    inputs = _photos(tmp_path / "in", {"top.png": (8, 8)})
    _photos(tmp_path / "elsewhere", {"far.png": (8, 8)})
    (inputs / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere" / "back").symlink_to(inputs, target_is_directory=True)  # a cycle
    outcome = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", recursive=True))
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in outcome.restored) == ["linked/far.png",
                                                                                            "top.png"]


def test_a_broken_link_with_an_images_name_is_named_unreadable_not_passed_over(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8)})
    (inputs / "gone.png").symlink_to(tmp_path / "unmounted" / "gone.png")
    outcome = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert [p.name for p in outcome.restored] == ["a.png"]
    assert outcome.unreadable == {"gone.png": f"broken symbolic link (to {tmp_path / 'unmounted' / 'gone.png'}, "
                                              "which does not exist)"}


def test_recursive_never_reads_the_output_folder_inside_the_input_folder(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (16, 16)})
    _photos(inputs / "sub", {"b.png": (16, 16)})
    config = RestoreConfig(inputs, inputs / "restored", model="input", device="cpu", recursive=True)
    assert len(restore_folder(config).restored) == 2
    again = restore_folder(config)
    assert again.restored == [] and len(again.kept) == 2
    assert not (inputs / "restored" / "restored").exists()


def test_recursive_refuses_two_images_of_one_sub_folder_that_would_share_an_output(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8)})
    _photos(inputs / "sub", {"b.png": (8, 8), "b.jpg": (8, 8)})
    with pytest.raises(ValueError, match=f"b.jpg and b.png in {inputs / 'sub'} would both be restored to b.png"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", recursive=True))


def test_one_image_file_is_restored_like_a_folder_of_one(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.jpg": (16, 24), "b.png": (16, 16)})
    outcome = restore_folder(RestoreConfig(inputs / "a.jpg", tmp_path / "out", model="input", device="cpu"))
    assert [p.name for p in outcome.restored] == ["a.png"] and not (tmp_path / "out" / "b.png").exists()
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["images"] == {"a.png": "a.jpg"} and manifest["input_dir"] == str((inputs / "a.jpg").resolve())


def test_restore_json_records_the_model_weights_and_each_output_with_its_input(tmp_path):
    inputs = _photos(tmp_path / "in", {"b.jpg": (32, 32)})
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"]["name"] == "tiny-unet"
    assert manifest["checkpoint"]["sha256"] and manifest["images"] == {"b.png": "b.jpg"}
    assert manifest["fit"] == {"multiple": 2, "pad_mode": "reflect"}


def test_outputs_already_there_are_kept_and_overwrite_redoes_them(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (24, 24), "b.png": (24, 24)})
    config = RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu")
    restore_folder(config)
    marker = tmp_path / "out" / "a.png"
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(marker)  # an output a second call must not touch
    again = restore_folder(config)
    assert again.restored == [] and len(again.kept) == 2 and read_rgb_uint8(marker).max() == 0
    redone = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", overwrite=True))
    assert len(redone.restored) == 2 and read_rgb_uint8(marker).max() > 0


def test_an_output_whose_input_changed_is_restored_again_and_named(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (24, 24), "b.png": (24, 24)})
    config = RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu")
    restore_folder(config)
    Image.fromarray(load_sample_photo("coffee")[:33, :47]).save(inputs / "b.png")  # another photo, another size
    again = restore_folder(config)
    assert [p.name for p in again.restored] == ["b.png"] and [p.name for p in again.kept] == ["a.png"]
    assert again.redone == {"b.png": "b.png has changed since it was restored"}
    assert np.array_equal(read_rgb_uint8(tmp_path / "out" / "b.png"), read_rgb_uint8(inputs / "b.png"))


def test_an_output_restored_from_another_input_folder_is_restored_again(tmp_path):
    first = _photos(tmp_path / "first", {"a.png": (16, 16)})
    second = tmp_path / "second"
    second.mkdir()
    Image.fromarray(load_sample_photo("coffee")[:16, :16]).save(second / "a.png")
    restore_folder(RestoreConfig(first, tmp_path / "out", model="input", device="cpu"))
    again = restore_folder(RestoreConfig(second, tmp_path / "out", model="input", device="cpu"))
    assert again.redone == {"a.png": "a.png has changed since it was restored"} and len(again.restored) == 1
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["input_dir"] == str(second.resolve())
    assert np.array_equal(read_rgb_uint8(tmp_path / "out" / "a.png"), read_rgb_uint8(second / "a.png"))


def test_an_output_whose_input_became_unreadable_is_removed_not_kept(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (16, 16), "b.png": (16, 16)})
    config = RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu")
    restore_folder(config)
    (inputs / "b.png").write_bytes(b"not a png any more")
    again = restore_folder(config)
    assert set(again.unreadable) == {"b.png"} and not (tmp_path / "out" / "b.png").exists()
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["images"] == {"a.png": "a.png"}


def test_an_output_restore_json_does_not_record_is_restored_again(tmp_path):
    """As after kill -9 between two writes of restore.json: the file may be from another input."""
    inputs = _photos(tmp_path / "in", {"a.png": (16, 16), "b.png": (16, 16)})
    config = RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu")
    restore_folder(config)
    manifest_path = tmp_path / "out" / "restore.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["images"]["b.png"], manifest["input_sha256"]["b.png"]
    manifest_path.write_text(json.dumps(manifest))
    again = restore_folder(config)
    assert again.redone == {"b.png": "restore.json does not record it"} and len(again.kept) == 1


def test_restore_json_records_the_sha256_of_each_outputs_input(tmp_path):
    from bench_ir.checkpoints import sha256_file

    inputs = _photos(tmp_path / "in", {"a.png": (16, 16)})
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["input_sha256"] == {"a.png": sha256_file(inputs / "a.png")}


def test_an_output_recorded_before_input_digests_were_kept_is_trusted_on_its_inputs_path(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (16, 16)})
    config = RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu")
    restore_folder(config)
    manifest_path = tmp_path / "out" / "restore.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["input_sha256"]
    manifest_path.write_text(json.dumps(manifest))
    again = restore_folder(config)
    assert again.redone == {} and len(again.kept) == 1


def test_a_folder_restored_with_another_setup_is_refused_unless_overwrite(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (24, 24)})
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    with pytest.raises(ValueError, match=r"holds images restored with another setup: model: card 'input'.*→ card "
                                         r"'tiny-unet'.*Choose another --out, or pass --overwrite"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET))
    restore_folder(RestoreConfig(inputs, tmp_path / "out", **TINY_UNET, overwrite=True))
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["model"]["name"] == "tiny-unet"


def test_a_folder_without_restore_json_that_holds_an_outputs_name_is_refused_unless_overwrite(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8), "b.png": (8, 8)})
    (tmp_path / "out").mkdir()
    mine = tmp_path / "out" / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mine)  # someone else's file of that name
    with pytest.raises(FileExistsError, match=r"already holds a.png but no restore.json: not a bench-ir restore "
                                              r"folder.*--overwrite to replace those files"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert read_rgb_uint8(mine).max() == 0
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", overwrite=True))
    assert np.array_equal(read_rgb_uint8(mine), read_rgb_uint8(inputs / "a.png"))


def test_restore_json_is_written_before_the_first_image_so_a_killed_restore_can_continue(tmp_path, monkeypatch):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8)})
    seen = []
    original = restore_module._restore_one

    def look(*args):
        seen.append(json.loads((tmp_path / "out" / "restore.json").read_text())["status"])
        return original(*args)

    monkeypatch.setattr(restore_module, "_restore_one", look)
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert seen == ["running"]


def test_restore_json_records_the_outputs_as_they_are_written_so_kill_9_loses_little(tmp_path, monkeypatch):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8), "b.png": (8, 8), "c.png": (8, 8)})
    recorded = []
    original = restore_module._restore_one

    def look(*args):
        recorded.append(sorted(json.loads((tmp_path / "out" / "restore.json").read_text())["images"]))
        return original(*args)

    monkeypatch.setattr(restore_module, "MANIFEST_EVERY_S", 0.0)
    monkeypatch.setattr(restore_module, "_restore_one", look)
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert recorded == [[], ["a.png"], ["a.png", "b.png"]]


def test_cli_names_the_outputs_restored_again_because_their_input_changed(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (16, 16)})
    command = ["restore", "--input-dir", str(inputs), "--out", str(tmp_path / "out"), "--model", "input",
               "--device", "cpu"]
    assert runner.invoke(app, command).exit_code == 0
    Image.fromarray(load_sample_photo("coffee")[:16, :16]).save(inputs / "a.png")
    again = runner.invoke(app, command, terminal_width=300)
    assert again.exit_code == 0, again.output
    assert ("note: 1 output(s) already there no longer matched their input and were restored again (or removed, "
            "when the input cannot be read):\n  a.png: a.png has changed since it was restored") in again.output


def test_a_model_with_parameters_needs_weights_and_names_the_shipped_sample_checkpoint(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (24, 24)})
    with pytest.raises(MissingWeightsError, match=r"pass --checkpoint FILE \(official checkpoints: .*\), or "
                                                  r"--sample-checkpoint for the sample checkpoint shipped"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="mirage-t", device="cpu"))
    with pytest.raises(MissingWeightsError) as no_sample:  # a card that ships no sample checkpoint: one way only
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="restormer", device="cpu"))
    assert str(no_sample.value).startswith("model 'restormer' has no checkpoint: pass --checkpoint FILE")
    assert ", or" not in str(no_sample.value)
    with pytest.raises(ValueError, match="two choices of weights"):
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="mirage-t", checkpoint=TINY_UNET["checkpoint"],
                                     use_sample_checkpoint=True, device="cpu"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "--input-dir {in}: not found"),
    ("empty", "--input-dir {in} holds no image"),
    ("nested", "holds no image (.bmp, .jpeg, .jpg, .pgm, .png, .ppm, .tif, .tiff, .webp); sub-folders are searched "
               "with --recursive (their outputs go to the same sub-folders of --out), and these hold images: "
               "{in}/day (1)"),
    ("same", "--out {in} is the input folder: restored PNGs would replace its images"),
    ("twins", "a.jpg and a.png in {in} would both be restored to a.png; rename one of them"),
    ("file", "--out {out} is a file, not a folder"),
    ("pad", "--pad none: choose one of reflect, replicate, constant"),  # a photo of any size needs padding
    ("notes", "--input-dir {in}/notes.txt: not a folder, nor an image file"),
    ("hidden", "--input-dir {in}/._a.png: a hidden file (a name starting with '.', such as macOS's ._ copies), which "
               "bench-ir never takes for an image; give the image or its folder"),
    ("replace", "--out {in}: the restored PNG would replace its input {in}/a.png; choose another folder"),
    ("recursive", "--recursive restores the sub-folders of a folder; --input-dir {in}/a.png is a file"),
])
def test_folders_that_cannot_be_restored_are_errors_naming_them(tmp_path, setup, message):
    inputs, out = tmp_path / "in", tmp_path / "out"
    if setup != "missing":
        inputs.mkdir()
    if setup == "twins":
        _photos(inputs, {"a.png": (8, 8), "a.jpg": (8, 8)})
    if setup == "nested":
        (inputs / "empty").mkdir()
        _photos(inputs / "day", {"a.png": (8, 8)})
    if setup in ("same", "file"):
        _photos(inputs, {"a.png": (8, 8)})
    if setup == "file":
        out.write_text("not a folder")
    if setup == "pad":
        _photos(inputs, {"a.png": (8, 8)})
    if setup == "notes":
        (inputs / "notes.txt").write_text("not an image")
    if setup == "hidden":
        _photos(inputs, {"._a.png": (8, 8)})
    if setup in ("replace", "recursive"):
        _photos(inputs, {"a.png": (8, 8)})
    source = {"notes": inputs / "notes.txt", "hidden": inputs / "._a.png", "replace": inputs / "a.png",
              "recursive": inputs / "a.png"}.get(setup, inputs)
    config = RestoreConfig(source, inputs if setup in ("same", "replace") else out, model="input", device="cpu",
                           pad="none" if setup == "pad" else None, recursive=setup == "recursive")
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        restore_folder(config)
    assert message.format(**{"in": inputs, "out": out}) in str(err.value)


def test_an_unreadable_image_is_skipped_and_named_while_the_others_are_restored(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8), "c.png": (8, 8)})
    (inputs / "b.png").write_bytes(b"junk")
    outcome = restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert sorted(path.name for path in outcome.restored) == ["a.png", "c.png"]
    assert outcome.unreadable == {"b.png": "not an image or an unsupported format"}
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["unreadable"] == outcome.unreadable
    assert manifest["images"] == {"a.png": "a.png", "c.png": "c.png"}


def test_cli_names_the_skipped_inputs_exits_1_and_a_rerun_restores_only_the_replaced_one(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8), "b.png": (8, 8)})
    good = (inputs / "b.png").read_bytes()
    (inputs / "b.png").write_bytes(good[:len(good) // 2])
    command = ["restore", "--input-dir", str(inputs), "--out", str(tmp_path / "out"), "--model", "input", "--device",
               "cpu"]
    first = CliRunner(env={"COLUMNS": "300"}).invoke(app, command)
    assert first.exit_code == 1
    assert "error: 1 input(s) could not be read and were skipped" in first.output
    assert "b.png: corrupt or truncated image" in first.output
    (inputs / "b.png").write_bytes(good)
    again = CliRunner(env={"COLUMNS": "300"}).invoke(app, command)
    assert again.exit_code == 0, again.output
    assert "restored 1 image(s)" in again.output and "(1 already there, kept" in again.output
    manifest = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert manifest["status"] == "complete" and manifest["unreadable"] == {}


def test_a_folder_another_process_writes_is_refused(tmp_path):
    inputs = _photos(tmp_path / "in", {"a.png": (8, 8)})
    (tmp_path / "out").mkdir()
    with RunLock(tmp_path / "out", file_name=restore_module.LOCK_NAME):
        with pytest.raises(RuntimeError, match="being written by another bench-ir process .* then run the same "
                                               "command again"):
            restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))


def test_cli_restores_and_an_interrupted_restore_continues_where_it_stopped(tmp_path, monkeypatch):
    inputs = _photos(tmp_path / "in", {"a.png": (16, 16), "b.png": (16, 16), "c.png": (16, 16)})
    out = tmp_path / "out"
    command = ["restore", "--input-dir", str(inputs), "--out", str(out), "--model", "input", "--device", "cpu"]
    original, calls = restore_module._restore_one, []

    def stop_at_the_second(*args):
        calls.append(args[1].name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(restore_module, "_restore_one", stop_at_the_second)
    stopped = runner.invoke(app, command, terminal_width=300)
    assert stopped.exit_code == 130
    assert f"interrupted: the images restored so far are kept in {out}; run the same command again" in stopped.output
    assert json.loads((out / "restore.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(restore_module, "_restore_one", original)
    resumed = runner.invoke(app, command, terminal_width=300)
    assert resumed.exit_code == 0, resumed.output
    assert (f"restored 2 image(s) with Input (no restoration) into {out} (1 already there, kept; --overwrite redoes "
            "them)") in resumed.output
    manifest = json.loads((out / "restore.json").read_text())
    assert manifest["status"] == "complete" and sorted(manifest["images"]) == ["a.png", "b.png", "c.png"]


def test_the_package_level_restore_folder_stays_the_function_after_its_module_is_imported():
    import bench_ir
    import bench_ir.folder_restore  # noqa: F401  (what the CLI does)

    assert callable(bench_ir.restore_folder) and bench_ir.restore_folder is restore_folder
    assert bench_ir.RestoreConfig is RestoreConfig



def test_cli_recursive_restores_sub_folders(tmp_path):
    inputs = tmp_path / "in"
    _photos(inputs / "indoor", {"a.png": (16, 16)})
    result = runner.invoke(app, ["restore", "--input-dir", str(inputs), "--out", str(tmp_path / "out"), "--model",
                                 "input", "--device", "cpu", "--recursive"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "indoor" / "a.png").is_file()
