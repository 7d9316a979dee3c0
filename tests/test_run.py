"""`bench-ir run` end to end on the built-in sample data (CPU), resume after an interruption, bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.protocol import list_protocols, load_protocol
from bench_ir.results import load_run, records_as_json
from bench_ir.runner import ResumeError, RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

runner = CliRunner()


@pytest.mark.parametrize("protocol", list_protocols())
def test_every_protocol_has_a_sample_variant_that_runs_offline(protocol, tmp_path):
    outcome = run_protocol(RunConfig(protocol=protocol, model="input", sample=True, run_dir=tmp_path / "run",
                                     limit=2))
    tasks = [t.name for t in load_protocol(protocol).tasks]
    assert list(outcome.summary.index) == tasks
    assert (outcome.summary["images"] == 2).all()
    assert outcome.summary["psnr"].between(5, 60).all()
    assert outcome.manifest["sample"] is True and outcome.manifest["status"] == "complete"


def test_manifest_records_provenance(tmp_path):
    outcome = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r"))
    manifest = outcome.manifest
    for key in ("command", "protocol", "convention", "model", "checkpoint", "versions", "device", "dtype", "seed",
                "git_revision", "sample", "limit", "created", "finished"):
        assert key in manifest, key
    assert manifest["protocol"]["sha256"] == load_protocol("derain").sha256
    assert manifest["versions"]["torch"]


def test_input_row_scores_the_degraded_input_itself(tmp_path):
    outcome = run_protocol(RunConfig(protocol="denoise", model="input", sample=True, run_dir=tmp_path / "r"))
    psnr = outcome.summary["psnr"]
    assert psnr["denoise-15"] > psnr["denoise-25"] > psnr["denoise-50"]
    # sigma 25 on uint8 with truncation: about 20.2 dB for natural images
    assert 19.0 < psnr["denoise-25"] < 21.5


def test_resume_after_an_interruption_scores_only_the_missing_images(tmp_path):
    run_dir = tmp_path / "run"
    calls = {"n": 0}

    class StopAfterThree:
        def start_task(self, task, total, done): ...

        def end_task(self, task): ...

        def record(self, record):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_protocol(RunConfig(protocol="3deg", model="input", sample=True, run_dir=run_dir), progress=StopAfterThree())
    assert load_run(run_dir).manifest["status"] == "interrupted"
    assert len(load_run(run_dir).records) == 3
    outcome = run_protocol(RunConfig(protocol="3deg", model="input", sample=True, run_dir=run_dir, resume=True))
    records = load_run(run_dir).records
    assert not records.duplicated(["task", "image"]).any()
    assert len(records) == 5 * len(load_protocol("3deg").tasks)
    assert outcome.manifest["status"] == "complete"


class _StopAfter:
    """A progress hook that presses Ctrl-C after ``n`` records."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start_task(self, task, total, done): ...

    def end_task(self, task): ...

    def record(self, record):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_resumed_run_gives_the_same_numbers_as_a_straight_run(tmp_path):
    straight = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt):
        run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "b"),
                     progress=_StopAfter(2))
    resumed = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "b",
                                     resume=True))
    assert math.isclose(resumed.summary.loc["derain", "psnr"], straight.summary.loc["derain", "psnr"], rel_tol=1e-12)


def test_limit_on_resume_scores_fewer_images_now_but_never_changes_the_run_description(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r"),
                     progress=_StopAfter(1))
    now = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r",
                                 resume=True, limit=2))
    assert now.summary.loc["derain", "images"] == 2
    manifest = load_run(tmp_path / "r").manifest
    assert manifest["limit"] is None and manifest["planned"] == {"derain": 5}
    assert manifest["status"] == "incomplete"
    assert load_run(tmp_path / "r").incomplete() == "incomplete: 2 of 5 images (derain 2 of 5)"
    done = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r",
                                  resume=True))
    assert done.manifest["status"] == "complete" and done.summary.loc["derain", "images"] == 5
    again = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r",
                                   resume=True, limit=1))
    assert again.manifest["limit"] is None and again.manifest["status"] == "complete"


def test_a_wider_limit_on_resume_widens_the_run_and_its_description(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=2))
    resumed = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r",
                                     resume=True, limit=3))
    assert resumed.manifest["limit"] == 3 and resumed.manifest["planned"] == {"derain": 3}
    assert resumed.summary.loc["derain", "images"] == 3 and resumed.manifest["status"] == "complete"
    assert any("made with --limit 2; it now covers --limit 3" in notice for notice in resumed.notices)


def test_task_on_resume_must_be_one_of_the_run_tasks(tmp_path):
    run_protocol(RunConfig(protocol="denoise", model="input", sample=True, run_dir=tmp_path / "r", limit=1,
                           tasks=["denoise-15"]))
    with pytest.raises(ResumeError, match=r"\['denoise-25'\] are not part of this run"):
        run_protocol(RunConfig(protocol="denoise", model="input", sample=True, run_dir=tmp_path / "r", resume=True,
                               tasks=["denoise-25"]))


def test_resume_refuses_a_run_directory_of_another_protocol(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1))
    with pytest.raises(ResumeError, match="cannot resume.*protocol: 'derain' .* → 'dehaze'"):
        run_protocol(RunConfig(protocol="dehaze", model="input", sample=True, run_dir=tmp_path / "r", resume=True))


def test_existing_run_directory_is_not_overwritten_without_resume(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1))
    with pytest.raises(FileExistsError, match="--resume"):
        run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1))


def test_missing_dataset_folder_fails_before_model_work_naming_task_path_and_help(tmp_path):
    built = []
    with pytest.raises(FileNotFoundError) as err:
        run_protocol(RunConfig(protocol="5deg", model="mirage-t", data_root=tmp_path, run_dir=tmp_path / "r"),
                     on_model=built.append)
    message = str(err.value)
    assert "dehaze" in message and "dehaze/input" in message
    assert "--sample" in message and "bench-ir data check" in message
    assert built == [] and not (tmp_path / "r").exists()


def test_cli_reports_a_missing_dataset_as_a_short_error_not_a_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--protocol", "derain", "--model", "input", "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output


def test_limit_is_stated_in_the_output_and_manifest(tmp_path):
    result = runner.invoke(app, ["run", "--protocol", "derain", "--model", "input", "--sample", "--limit", "2",
                                 "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "--limit 2" in result.output
    assert load_run(tmp_path / "r").manifest["limit"] == 2


def test_save_images_writes_restored_input_and_target_images(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1,
                           save_images=True))
    folder = tmp_path / "r" / "images" / "derain"
    assert len(list(folder.glob("*.png"))) == 1
    assert len(list((folder / "_input").glob("*.png"))) == 1 and len(list((folder / "_target").glob("*.png"))) == 1


def test_export_prints_stable_csv_columns(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=2))
    result = runner.invoke(app, ["export", str(tmp_path / "r"), "--format", "csv"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "task,image,psnr,ssim,lpips,height,width,seconds,nonfinite"
    assert len(result.output.splitlines()) == 3


def test_export_json_keeps_every_digit_of_the_stored_scores_and_writes_nonfinite_as_null(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=2))
    stored = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    exported = json.loads(runner.invoke(app, ["export", str(tmp_path / "r"), "--format", "json"]).output)
    assert [(r["psnr"], r["ssim"]) for r in exported] == [(r["psnr"], r["ssim"]) for r in stored]
    records = load_run(tmp_path / "r").records.assign(psnr=[float("inf"), float("nan")])
    assert [r["psnr"] for r in json.loads(records_as_json(records))] == [None, None]


def test_list_models_shows_exact_parameter_counts():
    result = runner.invoke(app, ["list", "models"])
    assert result.exit_code == 0
    assert "6,207,412" in result.output and "9,678,983" in result.output


def test_list_models_fits_80_columns_with_every_name_and_display_name_whole():
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["list", "models"])
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    first_cells = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") > 3}
    assert {"restormer-biasfree", "Restormer (BiasFree LN)", "mirage-t", "MIRAGE-T"} <= first_cells


def test_list_models_details_describes_every_card_with_its_parity_and_official_checkpoints():
    from bench_ir.cards import list_cards

    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["list", "models", "--details"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert all(card.display_name in text for card in list_cards())
    assert "Parity with the official code: Checked against official net/mirage_{tiny,small}.py" in text
    assert "5deg: train_ckpt/5deg_tiny/5Deg_tiny.ckpt" in text
    assert "spd_weight: 0.01 (the paper: 0.05)" in text


@pytest.mark.parametrize(("args", "message"), [
    (["list", "runs", "--details"], "--details applies to `list models` and `list protocols`, not `list runs`"),
    (["list", "protocols", "--registry", "cards"], "--registry applies to `list models`, not `list protocols`"),
], ids=["details", "registry"])
def test_a_list_option_that_would_be_ignored_is_an_error(args, message):
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, args)
    assert result.exit_code == 2 and f"error: {message}" in result.output


def test_list_protocols_stars_the_tasks_of_the_average_and_fits_80_columns():
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["list", "protocols"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    five = next(i for i, line in enumerate(lines) if line.startswith("│ 5deg "))
    tasks = " ".join(line.split("│")[3].strip() for line in lines[five:five + 8])
    # 5deg averages dehaze, derain, denoise-25, deblur and lowlight; sigma 15 and 50 are scored but not averaged
    assert "denoise-25*" in tasks and "lowlight*" in tasks and "denoise-15," in tasks and "denoise-50," in tasks


def test_list_protocols_at_80_columns_breaks_a_title_between_words_only():
    from bench_ir.protocol import list_protocols, load_protocol

    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["list", "protocols"])
    assert result.exit_code == 0
    title_cells = [line.split("│")[2] for line in result.stdout.splitlines() if line.count("│") == 6]
    words_shown = {word for cell in title_cells for word in cell.split()}
    title_words = {word for name in list_protocols() for word in load_protocol(name).title.split()}
    assert title_words <= words_shown, sorted(title_words - words_shown)


def test_list_protocols_shows_each_crop_rule_with_its_multiple():
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["list", "protocols"])
    rows = {line.split("│")[1].strip(): line.split("│")[5].strip() for line in result.stdout.splitlines()
            if line.count("│") == 6 and line.split("│")[1].strip()}
    assert (rows["3deg"], rows["allweather"], rows["cdd11"]) == ("centre ×16", "pad ×8", "none")


def test_list_protocols_details_describes_layout_pairing_and_metric():
    result = runner.invoke(app, ["list", "protocols", "--details"])
    assert result.exit_code == 0
    assert "pairing sots" in result.output and "σ=25" in result.output


def test_model_args_override_the_card_and_are_recorded(tmp_path):
    result = runner.invoke(app, ["run", "--protocol", "derain", "--sample", "--limit", "1", "--run-dir",
                                 str(tmp_path / "run"), "--model-arg", "dim=6",
                                 "--model-arg", "num_blocks=[1, 1, 1, 1]"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["args_overrides"] == {"dim": 6, "num_blocks": [1, 1, 1, 1]}
    assert manifest["model"]["display_name"] == "MIRAGE-T (dim=6, num_blocks=[1, 1, 1, 1])"
    assert manifest["model"]["params"] < 6207412


def test_malformed_model_arg_is_a_short_error(tmp_path):
    result = runner.invoke(app, ["run", "--protocol", "derain", "--sample", "--model-arg", "dim"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_model_arg_value_that_is_not_yaml_is_a_short_error_naming_it(tmp_path, command):
    choose = ["--protocol", "derain", "--sample"] if command == "run" else ["--recipe", "sample"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, [command, *choose, "--model-arg", "num_blocks=[1,1",
                                                            "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "error: --model-arg 'num_blocks=[1,1': the value is not valid YAML" in result.output
    assert "unexpected" not in result.output and not (tmp_path / "r").exists()


def test_a_finished_run_prints_the_next_commands_with_its_run_directory(tmp_path):
    result = runner.invoke(app, ["run", "--protocol", "derain", "--model", "input", "--sample", "--limit", "1",
                                 "--run-dir", str(tmp_path / "r")], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"bench-ir report --protocol derain --runs {tmp_path / 'r'} --format markdown" in result.output
    assert f"bench-ir compare {tmp_path / 'r'} --leaderboard" in result.output


def test_an_interrupted_run_names_its_run_directory_for_resume(tmp_path, monkeypatch):
    from bench_ir import cli

    def interrupt(self, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.RichProgress, "record", interrupt)
    result = runner.invoke(app, ["run", "--protocol", "derain", "--model", "input", "--sample", "--limit", "1",
                                 "--run-dir", str(tmp_path / "r")], terminal_width=400)
    assert result.exit_code == 130
    assert f"continue with the same command plus --resume --run-dir {tmp_path / 'r'}" in result.output
    assert "..." not in result.output


class _CollectProgress:
    def __init__(self):
        self.psnr: dict[str, list[float]] = {}

    def start_task(self, task, total, done):
        self.psnr[task.name] = []

    def resumed(self, task, records):
        self.psnr[task.name] += [r["psnr"] for r in records]

    def record(self, record):
        self.psnr[record["task"]].append(record["psnr"])

    def end_task(self, task): ...


def test_the_running_psnr_of_a_resumed_run_covers_the_images_scored_before(tmp_path):
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=2))
    progress = _CollectProgress()
    outcome = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r",
                                     resume=True), progress=progress)
    shown = progress.psnr["derain"]
    assert len(shown) == outcome.summary.loc["derain", "images"] == 5
    assert math.isclose(sum(shown) / len(shown), outcome.summary.loc["derain", "psnr"], rel_tol=1e-12)


def test_the_progress_bar_counts_resumed_records_in_its_running_mean():
    from bench_ir.cli import RichProgress
    from bench_ir.protocol import load_protocol as load

    bar = RichProgress()
    task = load("derain").tasks[0]
    bar.start_task(task, total=3, done=2)
    bar.resumed(task, [{"psnr": 20.0}, {"psnr": 30.0}])
    bar.record({"psnr": 40.0})
    assert bar.progress.tasks[0].fields["psnr"] == "PSNR 30.00 dB"


def _save(folder, name, seed=0, size=32):
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)


def test_position_pairing_of_folders_with_an_extra_target_is_refused_not_scored(tmp_path):
    """inputs a, b, c and targets clean_a, clean_a_copy, clean_b, clean_c: refused with a short error naming the
    counts, never scored with every pair after clean_a_copy shifted."""
    for name in ("a.png", "b.png", "c.png"):
        _save(tmp_path / "in", name)
    for name in ("clean_a.png", "clean_a_copy.png", "clean_b.png", "clean_c.png"):
        _save(tmp_path / "gt", name)
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--pairing", "position", "--run-dir", str(tmp_path / "r")],
                           terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "holds 3 image(s)" in result.output and "clean_c.png" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r" / "records.jsonl").exists()


def test_a_run_notes_the_targets_that_no_input_pairs_with(tmp_path):
    _save(tmp_path / "in", "a.png")
    for name in ("a.png", "b.png", "c.png"):
        _save(tmp_path / "gt", name)
    result = runner.invoke(app, ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir",
                                 str(tmp_path / "gt"), "--run-dir", str(tmp_path / "r")], terminal_width=400)
    assert result.exit_code == 0, result.output
    notices = load_run(tmp_path / "r").manifest["notices"]
    assert notices == [f"task 'folder' ({tmp_path.name}): 2 target images in {tmp_path / 'gt'} without an input in "
                       f"{tmp_path / 'in'} (pairing rule 'same_name'), not scored: b.png, c.png"]
    assert f"note: task 'folder' ({tmp_path.name}): 2 target images" in result.output


def test_unpaired_target_notes_name_the_first_five_and_how_many_more(tmp_path):
    from bench_ir.runner import folder_protocol

    _save(tmp_path / "in", "a.png")
    for i in range(8):
        _save(tmp_path / "gt", f"{i}.png")
    _save(tmp_path / "gt", "a.png")
    outcome = run_protocol(RunConfig(protocol=folder_protocol(tmp_path / "in", tmp_path / "gt"), model="input",
                                     run_dir=tmp_path / "r", device="cpu"))
    (notice,) = [n for n in outcome.notices if "without an input" in n]
    assert "8 target images" in notice and notice.endswith("not scored: 0.png, 1.png, 2.png, 3.png, 4.png ... and 3 "
                                                           "more")


SOTS_STYLE = """\
name: haze
title: many hazy images per clean one
version: 1
convention: M1
crop: {rule: center_multiple, base: 16}
average: [dehaze]
tasks:
  - {name: dehaze, label: SOTS, dataset: sots, layouts: [{input: hazy, target: gt, pairing: sots}]}
"""


def test_a_target_of_several_inputs_is_paired_and_only_a_target_without_any_input_is_noted(tmp_path):
    """SOTS-style many-to-one: three hazy images of 0001.png and 0002.png are quiet; 0003.png (no hazy image) is
    noted."""
    (tmp_path / "haze.yaml").write_text(SOTS_STYLE)
    for i, name in enumerate(["0001_0.8_0.2.png", "0001_0.9_0.1.png", "0002_0.8_0.2.png"]):
        _save(tmp_path / "data" / "hazy", name, seed=i)
    for name in ("0001.png", "0002.png"):
        _save(tmp_path / "data" / "gt", name)
    config = RunConfig(protocol=str(tmp_path / "haze.yaml"), model="input", data_root=tmp_path / "data",
                       run_dir=tmp_path / "r", device="cpu")
    assert not [n for n in run_protocol(config).notices if "without an input" in n]
    _save(tmp_path / "data" / "gt", "0003.png")
    outcome = run_protocol(dataclasses.replace(config, run_dir=tmp_path / "r2"))
    assert [n for n in outcome.notices if "without an input" in n] == [
        f"task 'dehaze' (SOTS): 1 target image in {tmp_path / 'data' / 'gt'} without an input in "
        f"{tmp_path / 'data' / 'hazy'} (pairing rule 'sots'), not scored: 0003.png"]


def test_the_shipped_layouts_of_sots_rain100l_and_a_shared_cdd11_clear_folder_raise_no_unpaired_target_note(
        tmp_path):
    root = tmp_path / "data"
    for name in ("0001_0.8_0.2.jpg", "0002_1_0.16.jpg"):
        _save(root / "dehaze" / "input", name)
    for name in ("0001.png", "0002.png"):
        _save(root / "dehaze" / "target", name)
    for i in (1, 2):
        _save(root / "derain" / "Rain100L" / "input", f"rain-{i:03d}.png")
        _save(root / "derain" / "Rain100L" / "target", f"norain-{i:03d}.png")
    for subset in ("low", "haze", "clear"):
        for name in ("001.png", "002.png"):
            _save(root / "test" / subset, name)
    notes = []
    for protocol, tasks in (("3deg", ["dehaze", "derain"]), ("cdd11", ["low", "haze"])):
        outcome = run_protocol(RunConfig(protocol=protocol, model="input", data_root=root, tasks=tasks,
                                         run_dir=tmp_path / protocol, device="cpu"))
        assert list(outcome.summary["images"]) == [2, 2]
        notes += [n for n in outcome.notices if "without an input" in n]
    assert notes == []
