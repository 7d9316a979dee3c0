"""CLI commands other than `run` on a protocol: ad-hoc folders, data check, convert, validate, profile."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from bench_ir import profiling
from bench_ir.cli import app
from bench_ir.resources import protocols_dir
from bench_ir.results import load_run
from bench_ir.runner import RunConfig, folder_protocol, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

runner = CliRunner()
SAMPLE_WEIGHTS = Path(__file__).resolve().parents[1] / "registry" / "weights" / "mirage-t-sample.safetensors"


def _write_pair_folders(root, names=("a.png", "b.png"), shift=10):
    photo = skdata.astronaut()[:72, :88]
    (root / "in").mkdir()
    (root / "gt").mkdir()
    for i, name in enumerate(names):
        clean = np.roll(photo, 7 * i, axis=1)
        Image.fromarray(clean).save(root / "gt" / name)
        Image.fromarray(np.clip(clean.astype(int) + shift, 0, 255).astype(np.uint8)).save(root / "in" / name)


def test_ad_hoc_folder_run_pairs_by_name_and_crops_to_a_multiple_of_16(tmp_path):
    _write_pair_folders(tmp_path)
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    records = load_run(tmp_path / "run").records
    assert list(records["image"]) == ["a.png", "b.png"]
    assert (records["height"] == 64).all() and (records["width"] == 80).all()
    # a constant +10 shift (no clipping at this level for most pixels) is about 28 dB
    assert records["psnr"].between(26, 30).all()


def test_input_dir_without_target_dir_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path)])
    assert result.exit_code == 2 and "go together" in result.output


class _NanModel(torch.nn.Module):
    def forward(self, x):
        return torch.full_like(x, float("nan"))


def test_nonfinite_outputs_are_flagged_per_image_and_warned(tmp_path, monkeypatch):
    _write_pair_folders(tmp_path)
    card = tmp_path / "nan.yaml"
    card.write_text(f"name: nan\ndisplay_name: NaN\nfactory: {__name__}:_NanModel\nexpected_params: 0\n")
    monkeypatch.syspath_prepend(str(tmp_path.parent))
    result = runner.invoke(app, ["run", "--model", str(card), "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "2 image(s) with NaN/Inf outputs" in result.output
    assert load_run(tmp_path / "run").records["nonfinite"].all()


@pytest.mark.parametrize(("inputs", "targets", "label"), [
    ("Rain100L/input", "Rain100L/target", "Rain100L"),  # siblings: the dataset folder names the column
    ("hazy", "clear/gt", "hazy"),
])
def test_a_folder_pairs_label_is_the_folders_common_parent_or_the_input_folder(tmp_path, inputs, targets, label):
    assert folder_protocol(tmp_path / inputs, tmp_path / targets).tasks[0].label == label


def test_save_images_refuses_two_images_that_would_share_an_output_file(tmp_path):
    _write_pair_folders(tmp_path, names=("a.png", "a.jpg"))
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--save-images", "--run-dir", str(tmp_path / "run")],
                           terminal_width=300)
    assert result.exit_code == 2
    assert ("error: task folder: a.jpg and a.png would both be saved as a.png by --save-images; rename one of them "
            "or run without --save-images") in result.output
    assert not (tmp_path / "run").exists()


def test_saved_images_carry_the_exif_orientation_of_their_source_photos(tmp_path):
    """Pixels are scored and saved as stored (as the references read them); the 'rotate to display' tag goes along,
    so that a viewer turns the output, the input and the target as it turns the photos."""
    photo = Image.fromarray(skdata.chelsea()[:48, :80])
    for folder, orientation in (("in", 6), ("gt", 8)):
        (tmp_path / folder).mkdir()
        exif = Image.Exif()
        exif[0x0112] = orientation
        photo.save(tmp_path / folder / "phone.jpg", quality=95, exif=exif.tobytes())
        photo.save(tmp_path / folder / "plain.png")
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--save-images", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = tmp_path / "run" / "images" / "folder"
    tags = {}
    for path in sorted(saved.rglob("*.png")):
        with Image.open(path) as image:
            tags[path.relative_to(saved).as_posix()] = image.getexif().get(0x0112)
    assert tags == {"_input/phone.png": 6, "_input/plain.png": None, "_target/phone.png": 8,
                    "_target/plain.png": None, "phone.png": 6, "plain.png": None}


def test_a_resume_that_adds_save_images_refuses_two_images_that_would_share_an_output_file(tmp_path):
    _write_pair_folders(tmp_path, names=("a.png", "a.jpg"))
    command = ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir", str(tmp_path / "gt"),
               "--run-dir", str(tmp_path / "run")]
    assert runner.invoke(app, command).exit_code == 0
    result = runner.invoke(app, [*command, "--resume", "--save-images"], terminal_width=300)
    assert result.exit_code == 2
    assert "a.jpg and a.png would both be saved as a.png by --save-images" in result.output
    assert not (tmp_path / "run" / "images").exists()


def test_an_input_whose_size_differs_from_its_targets_is_refused_before_any_image_is_scored(tmp_path):
    _write_pair_folders(tmp_path, names=("a.png", "b.png"))
    Image.fromarray(skdata.astronaut()[:70, :88]).save(tmp_path / "in" / "b.png")
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--run-dir", str(tmp_path / "run")], terminal_width=300)
    assert result.exit_code == 2
    assert f"error: b.png: input {tmp_path / 'in' / 'b.png'} is 70x88 (HxW) but target" in result.output
    assert not (tmp_path / "run").exists()


def test_a_size_mismatch_that_an_exif_quarter_turn_explains_says_so_in_run(tmp_path):
    _write_pair_folders(tmp_path, names=("a.jpg",))
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo stored lying on its side
    Image.fromarray(np.ascontiguousarray(np.rot90(skdata.astronaut()[:72, :88]))).save(tmp_path / "in" / "a.jpg",
                                                                                       exif=exif.tobytes())
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--run-dir", str(tmp_path / "run")], terminal_width=300)
    assert result.exit_code == 2
    assert (f"is 88x72 (HxW) but target {tmp_path / 'gt' / 'a.jpg'} is 72x88; {tmp_path / 'in' / 'a.jpg'} (EXIF "
            "orientation 6) is turned a quarter turn in viewers, but pixels are read as stored") in result.output


def test_folder_protocol_run_is_resumable_like_any_protocol(tmp_path):
    _write_pair_folders(tmp_path, names=("a.png", "b.png", "c.png"))
    protocol = folder_protocol(tmp_path / "in", tmp_path / "gt")
    run_protocol(RunConfig(protocol=protocol, model="input", run_dir=tmp_path / "run"))
    (tmp_path / "run" / "records.jsonl").write_text(
        (tmp_path / "run" / "records.jsonl").read_text().splitlines(keepends=True)[0])  # as if stopped after one
    outcome = run_protocol(RunConfig(protocol=protocol, model="input", run_dir=tmp_path / "run", resume=True))
    assert outcome.summary.loc["folder", "images"] == 3


def test_data_check_reports_a_missing_layout_and_exits_nonzero(tmp_path):
    result = runner.invoke(app, ["data", "check", "--protocol", "derain", "--data-root", str(tmp_path)])
    assert result.exit_code == 1
    assert "derain" in result.output and "not found" in result.output


def _mini_sots(root):
    """Three hazy/clear pairs in the official SOTS naming, a clear image without a hazy one, and a readme."""
    photo = skdata.astronaut()[:48, :64]
    for folder in ("input", "target"):
        (root / "dehaze" / folder).mkdir(parents=True)
    for name in ("0001", "0003", "0004"):
        Image.fromarray(photo // 2).save(root / "dehaze" / "input" / f"{name}_0.8_0.2.jpg")
        Image.fromarray(photo).save(root / "dehaze" / "target" / f"{name}.png")
    Image.fromarray(photo).save(root / "dehaze" / "target" / "0002.png")
    (root / "dehaze" / "target" / "readme.txt").write_text("notes")


def test_data_check_at_80_columns_folds_the_layout_paths_instead_of_cutting_them(tmp_path):
    _mini_sots(tmp_path)
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["data", "check", "--protocol", "dehaze", "--data-root",
                                                           str(tmp_path)])
    rows = [line for line in result.stdout.splitlines() if line.count("│") > 3]
    assert max(len(line) for line in rows) <= 80 and not any("…" in line for line in rows)
    layout = "".join(line.split("│")[2].strip() for line in rows)
    assert str(tmp_path / "dehaze" / "input") in layout and str(tmp_path / "dehaze" / "target") in layout


def test_data_check_text_shows_every_warning_of_the_json_and_marks_a_short_task_incomplete(tmp_path):
    _mini_sots(tmp_path)
    text = runner.invoke(app, ["data", "check", "--protocol", "dehaze", "--data-root", str(tmp_path)])
    as_json = runner.invoke(app, ["data", "check", "--protocol", "dehaze", "--data-root", str(tmp_path), "--json"])
    report = json.loads(as_json.stdout)[0]
    assert report["warnings"] == ["3 pairs found, 500 expected", "targets without an input: 1: 0002.png",
                                  f"non-image files skipped: 1: {tmp_path / 'dehaze' / 'target' / 'readme.txt'}"]
    assert report["status"] == "incomplete" and report["incomplete"] and report["ok"]
    for warning in report["warnings"]:
        assert f"dehaze: warning: {warning}\n" in text.output
    table = text.output.split("dehaze: warning:")[0]
    assert "incomplete" in table and not re.search(r"\bok\b", table)


def test_data_check_exits_0_with_warnings_only(tmp_path):
    _mini_sots(tmp_path)
    result = runner.invoke(app, ["data", "check", "--protocol", "dehaze", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_data_check_exits_1_for_an_input_without_a_target(tmp_path):
    _mini_sots(tmp_path)
    (tmp_path / "dehaze" / "input" / "0009_0.8_0.2.jpg").write_bytes(
        (tmp_path / "dehaze" / "input" / "0001_0.8_0.2.jpg").read_bytes())
    result = runner.invoke(app, ["data", "check", "--protocol", "dehaze", "--data-root", str(tmp_path)])
    assert result.exit_code == 1
    assert "dehaze: error: inputs without a target (sots): 1: 0009_0.8_0.2.jpg\n" in result.output


def test_data_check_names_a_missing_data_root_once_in_one_line(tmp_path):
    result = runner.invoke(app, ["data", "check", "--protocol", "5deg", "--data-root", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: data root {tmp_path / 'nope'} does not exist"


def test_data_check_does_not_tell_the_user_to_run_data_check(tmp_path):
    result = runner.invoke(app, ["data", "check", "--protocol", "derain", "--data-root", str(tmp_path)])
    assert result.exit_code == 1 and "Rain100L/input (missing)" in result.output
    assert "bench-ir data check" not in result.output and "Tried:" not in result.output


def test_data_check_json_counts_pairs_of_a_valid_layout(tmp_path):
    root = tmp_path / "derain" / "Rain100L"
    root.mkdir(parents=True)
    _write_pair_folders(root)
    (root / "in").rename(root / "input")
    (root / "gt").rename(root / "target")
    result = runner.invoke(app, ["data", "check", "--protocol", "derain", "--data-root", str(tmp_path), "--json"])
    report = json.loads(result.stdout)
    assert report[0]["pairs"] == 2 and report[0]["expected"] == 100


def test_convert_writes_safetensors_and_a_provenance_sidecar(tmp_path):
    from bench_ir.checkpoints import create_model, save_lightning_checkpoint

    torch.manual_seed(0)
    ckpt = save_lightning_checkpoint(create_model("mirage-t"), tmp_path / "5Deg_tiny.ckpt")
    out = tmp_path / "mirage-t.safetensors"
    result = runner.invoke(app, ["convert", str(ckpt), str(out), "--model", "mirage-t"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "mirage-t.safetensors.json").read_text())
    assert sidecar["model"] == "mirage-t" and len(sidecar["source_sha256"]) == 64


def test_convert_refuses_to_write_over_the_checkpoint_it_converts(tmp_path):
    shutil.copy(SAMPLE_WEIGHTS, tmp_path / "w.safetensors")
    before = (tmp_path / "w.safetensors").read_bytes()
    result = runner.invoke(app, ["convert", str(tmp_path / "w.safetensors"), str(tmp_path / "." / "w.safetensors")])
    assert result.exit_code == 2 and "is the checkpoint being converted" in result.output
    assert (tmp_path / "w.safetensors").read_bytes() == before and not (tmp_path / "w.safetensors.json").exists()


def test_converted_weights_get_the_same_file_mode_as_their_sidecar(tmp_path):
    from bench_ir.checkpoints import create_model, save_lightning_checkpoint

    ckpt = save_lightning_checkpoint(create_model("mirage-t"), tmp_path / "5Deg_tiny.ckpt")
    out = tmp_path / "mirage-t.safetensors"
    previous = os.umask(0o022)
    try:
        assert runner.invoke(app, ["convert", str(ckpt), str(out)]).exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((tmp_path / "mirage-t.safetensors.json").stat().st_mode)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_validate_accepts_shipped_files_and_rejects_a_card_with_an_unknown_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ndisplay_name: B\nfactory: torch.nn:Identity\ncolour: red\n")
    ok = runner.invoke(app, ["validate", "registry/mirage-t.yaml", "protocols/5deg.yaml"])
    assert ok.exit_code == 0 and "model card 'mirage-t'" in ok.output and "protocol '5deg'" in ok.output
    failed = runner.invoke(app, ["validate", str(bad)])
    assert failed.exit_code == 1 and "unknown field(s) ['colour']" in failed.output


def _stand_in_flop_count(model: torch.nn.Module, size: int, with_training_heads: bool = False) -> profiling.FlopCount:
    """count_flops without its seconds of tracing MIRAGE-T (the counts themselves: tests/test_profiling.py)."""
    return profiling.FlopCount(1234 + with_training_heads, {"conv": 1234}, {})


def test_profile_json_reports_parameters_and_flops_and_stores_a_profile_run(tmp_path, monkeypatch):
    monkeypatch.setattr(profiling, "count_flops", _stand_in_flop_count)
    result = runner.invoke(app, ["profile", "--model", "mirage-t", "--size", "32", "--repeats", "1", "--warmup",
                                 "0", "--device", "cpu", "--json", "--runs-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["params_total"] == 6207412 and payload["params_inference"] == 6158576
    assert (payload["flops"], payload["flops_with_training_heads"]) == (1234, 1235)
    assert load_run(payload["run_dir"]).profile["params"] == 6207412


def test_validate_takes_a_folder_as_every_yaml_file_in_it(tmp_path):
    (tmp_path / "good.yaml").write_text("name: g\ndisplay_name: G\nfactory: torch.nn:Identity\n")
    (tmp_path / "bad.yml").write_text("name: b\ndisplay_name: B\nfactory: torch.nn:Identity\ncolour: red\n")
    (tmp_path / "notes.txt").write_text("not a spec")
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["validate", str(tmp_path)])  # one line per file
    assert result.exit_code == 1
    assert "model card 'g'" in result.stdout and "unknown field(s) ['colour']" in result.stderr
    assert "notes.txt" not in result.output


def test_validate_of_a_folder_without_yaml_files_is_an_error_naming_it(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 2 and f"{tmp_path}: a folder without YAML files" in result.output


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> tuple[Path, str]:
    """(profile run directory, the `next:` command printed) of the tiny example at 32 px on the CPU."""
    root = tmp_path_factory.mktemp("profile")
    card = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
    result = runner.invoke(app, ["profile", "--model", str(card), "--size", "32", "--repeats", "1", "--warmup", "0",
                                 "--device", "cpu", "--runs-root", str(root)], terminal_width=400)
    assert result.exit_code == 0, result.output
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    return folder, line.removeprefix("next: ")


def test_profile_ends_with_the_report_command_that_places_it_in_the_efficiency_table(profiled):
    folder, command = profiled
    words = shlex.split(command)
    assert words == ["bench-ir", "report", "--protocol", "efficiency", "--runs", str(folder)]
    result = runner.invoke(app, [*words[1:], "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("TinyUNet (example),measured,")


@pytest.mark.parametrize("command", ["compare", "export"])
def test_compare_or_export_of_a_profile_run_says_where_its_figures_go(profiled, command):
    folder, _ = profiled
    result = runner.invoke(app, [command, str(folder)], terminal_width=400)
    assert result.exit_code == 2
    assert f"is a profile run (params, FLOPs, memory, latency; no per-image scores): nothing to {command}" in (
        result.output)
    assert f"bench-ir report --protocol efficiency --runs {folder}" in result.output


def test_profile_of_a_size_the_model_cannot_take_is_a_clear_message(tmp_path):
    result = runner.invoke(app, ["profile", "--model", "mirage-t", "--size", "60", "--device", "cpu",
                                 "--runs-root", str(tmp_path)])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_the_average_of_a_one_task_protocol_names_its_task_rather_than_one_tasks(tmp_path):
    protocol = tmp_path / "one-task.yaml"  # the shipped derain protocol has no Average (Table B has none)
    protocol.write_text(f"name: one-task\ninclude: {protocols_dir() / 'derain.yaml'}\naverage: [derain]\n",
                        encoding="utf-8")
    result = runner.invoke(app, ["run", "--protocol", str(protocol), "--sample", "--limit", "1", "--model", "input",
                                 "--device", "cpu", "--run-dir", str(tmp_path / "r")], terminal_width=200)
    assert result.exit_code == 0, result.output
    average = next(line for line in result.output.splitlines() if line.lstrip("│ ").startswith("Average"))
    assert "the task derain" in average and "tasks" not in average
