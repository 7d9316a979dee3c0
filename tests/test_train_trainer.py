"""`bench-ir train` on CPU with a tiny MIRAGE and the sample recipe: exact resume, export, validation, bad input."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import shlex
import sys
from pathlib import Path

import pytest
import torch
import typer
from conftest import FAST_TRAINING as FAST
from conftest import TINY_MIRAGE_ARGS as TINY
from safetensors.torch import load_file
from typer.testing import CliRunner

from bench_ir.checkpoints import sha256_file
from bench_ir.data.datasets import DatasetNotFoundError
from bench_ir.runner import RunConfig, run_protocol
from bench_ir.train.command import train_command
from bench_ir.train.evaluation import evaluation_command
from bench_ir.train.recipes import ValidationSpec, load_recipe
from bench_ir.train.session import TrainResumeError
from bench_ir.train.trainer import NonFiniteLossError, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_training_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    straight = train("sample", "mirage-t", None, tmp_path / "straight", max_steps=4, **FAST)
    train("sample", "mirage-t", None, tmp_path / "split", max_steps=2, **FAST)
    resumed = train("sample", "mirage-t", None, tmp_path / "split", max_steps=4, resume=True, **FAST)
    assert resumed.steps == straight.steps == 4
    assert _states_equal(straight.model.state_dict(), resumed.model.state_dict())
    a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert all(_states_equal(a["optimizer"]["state"][i], b["optimizer"]["state"][i]) for i in a["optimizer"]["state"])
    assert straight.final_losses == resumed.final_losses
    manifest = json.loads((tmp_path / "split/train_manifest.json").read_text())
    assert [r["step"] for r in manifest["resumed"]] == [2] and manifest["status"] == "complete"


def test_run_directory_holds_logs_weights_and_a_manifest_that_bench_ir_run_can_use(tmp_path):
    outcome = train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, seed=5, log_every=1,
                    **{**FAST, "tensorboard": True})
    log = (tmp_path / "run/train_log.csv").read_text().splitlines()
    assert log[0] == "step,epoch,lr,lr_factor,total,fourier,l1,spd,samples_per_s" and len(log) == 3
    if importlib.util.find_spec("tensorboard") is not None:  # optional: tests/test_train_logs.py covers its absence
        assert list((tmp_path / "run/tensorboard").glob("events.out.tfevents.*"))
    weights = load_file(tmp_path / "run/final.safetensors")
    assert _states_equal(weights, {k: v for k, v in outcome.model.state_dict().items()})
    manifest = json.loads((tmp_path / "run/train_manifest.json").read_text())
    assert manifest["recipe"]["sha256"] == load_recipe("sample").sha256
    assert manifest["seed"] == 5 and manifest["steps_done"] == 2 and manifest["model"]["args_overrides"] == TINY
    assert set(manifest["final_losses"]) == {"total", "l1", "fourier", "spd"}
    for key in ("versions", "git_revision", "device", "plan", "data", "final_weights", "notices"):
        assert key in manifest, key
    evaluation = run_protocol(RunConfig(protocol="5deg", model=str(tmp_path / "run/model-card.yaml"),
                                        checkpoint=tmp_path / "run/final.safetensors", sample=True, limit=1,
                                        tasks=["derain"], run_dir=tmp_path / "eval"))
    assert evaluation.manifest["random_weights"] is False
    assert math.isfinite(evaluation.summary.loc["derain", "psnr"])


def test_periodic_validation_scores_the_current_weights_into_the_run_directory(tmp_path):
    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(
        protocol="5deg", sample=True, limit=1, tasks=["derain", "denoise-25"], every_steps=2, every_epochs=None))
    outcome = train(recipe, "mirage-t", None, tmp_path / "run", max_steps=3, **{**FAST, "validate": True})
    assert [v.step for v in outcome.validations] == [2, 3]  # every 2 steps and at the end
    manifest = json.loads((tmp_path / "run/val/step-0000003/manifest.json").read_text())
    assert manifest["random_weights"] is False and manifest["checkpoint"]["step"] == 3
    assert not any(n.startswith("random weights") for n in manifest["notices"])
    rows = (tmp_path / "run/val.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,task,psnr,ssim,images" and len(rows) == 1 + 2 * 2
    final = run_protocol(RunConfig(protocol="5deg", model=str(tmp_path / "run/model-card.yaml"),
                                   checkpoint=tmp_path / "run/final.safetensors", sample=True, limit=1,
                                   tasks=["derain", "denoise-25"], run_dir=tmp_path / "eval"))
    assert final.summary["psnr"].to_dict() == pytest.approx(
        {t: v["psnr"] for t, v in outcome.validations[-1].tasks.items()}, abs=1e-9)


class NanAfter:
    """The standard objective, but the loss becomes NaN at optimizer step ``bad_step`` (0-based)."""

    def __init__(self, bad_step: int) -> None:
        from bench_ir.train.objectives import RestorationObjective

        self.bad_step, self.base = bad_step, RestorationObjective()

    def __call__(self, model, lq, gt, step):
        terms = self.base(model, lq, gt, step)
        if step == self.bad_step:
            terms["l1"] = terms["l1"] * float("nan")
            terms["total"] = terms["total"] + terms["l1"]
        return terms


def test_a_training_run_another_process_writes_is_refused(tmp_path):
    """One writer per training run, as for `bench-ir run`: a second --resume on a run in progress would interleave
    checkpoints and logs."""
    from bench_ir.resume import RunLock

    train("sample", "mirage-t", run_dir=tmp_path / "run", max_steps=1, **FAST)
    with RunLock(tmp_path / "run"), pytest.raises(RuntimeError, match=f"being written by another bench-ir process "
                                                                     f".* then continue it with --resume --run-dir "
                                                                     f"{tmp_path / 'run'}"):
        train("sample", "mirage-t", run_dir=tmp_path / "run", max_steps=2, resume=True, **FAST)


def test_list_runs_shows_training_runs_with_status_steps_and_loss(tmp_path):
    from bench_ir.cli import app

    runs = tmp_path / "runs"
    train("sample", "mirage-t", run_dir=runs / "train" / "done", max_steps=1, **FAST)
    killed = runs / "train" / "killed"  # a run whose process died: its manifest still says running, no lock is held
    killed.mkdir()
    manifest = json.loads((runs / "train" / "done" / "train_manifest.json").read_text())
    (killed / "train_manifest.json").write_text(json.dumps({**manifest, "status": "running", "steps_done": None}))
    listed = CliRunner().invoke(app, ["list", "runs", "--runs-root", str(runs)], terminal_width=120)
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:5]]
            for line in listed.stdout.splitlines() if line.count("│") == 5}
    assert rows["train/done"][:2] == ["complete", "1/1"] and float(rows["train/done"][2]) > 0
    assert rows["train/killed"] == ["stopped", "–/1", rows["train/done"][2]]
    assert "mirage-t · sample" in rows


def test_a_nan_loss_stops_with_the_step_and_terms_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*l1=nan.*last good checkpoint is .*last.pt \(step 2\)"):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=5, checkpoint_every=2, objective=NanAfter(2),
              **FAST)
    checkpoint = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert checkpoint["step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
    assert not (tmp_path / "run/final.safetensors").exists()
    assert json.loads((tmp_path / "run/train_manifest.json").read_text())["status"] == "failed"


def test_a_batch_larger_than_the_training_set_is_an_error():
    with pytest.raises(ValueError, match=r"batch size 2000 is larger than the training set .*812 items"):
        train("sample", "mirage-t", **{**FAST, "batch_size": 2000})


def test_missing_validation_test_sets_fail_before_training(tmp_path):
    recipe = dataclasses.replace(load_recipe("sample"), validation=ValidationSpec(protocol="derain"))
    with pytest.raises(DatasetNotFoundError, match=r"validation on protocol 'derain'.*Rain100L(.|\n)*--no-val") as err:
        train(recipe, "mirage-t", None, tmp_path / "run", max_steps=1, val_data_root=tmp_path,
              **{**FAST, "validate": True})
    assert not (tmp_path / "run").exists()
    assert "--sample" not in str(err.value)  # the evaluation's advice is not a training option


def test_resume_refuses_a_run_with_another_seed_and_reuse_needs_resume(tmp_path):
    train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, **FAST)
    with pytest.raises(TrainResumeError, match="seed was 0, now 1"):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, resume=True, seed=1, **FAST)
    with pytest.raises(FileExistsError, match="pass --resume"):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, **FAST)


def test_resume_refuses_a_max_steps_below_the_steps_done_and_leaves_the_run_as_it_was(tmp_path):
    train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, **FAST)
    before = (tmp_path / "run" / "train_manifest.json").read_text()
    with pytest.raises(TrainResumeError, match="--max-steps 1: the run has done 2 steps already; give a larger "
                                               "--max-steps, or none"):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, resume=True, **FAST)
    assert (tmp_path / "run" / "train_manifest.json").read_text() == before


def test_a_refused_resume_leaves_no_tensorboard_events_file(tmp_path):
    pytest.importorskip("tensorboard")
    options = {**FAST, "tensorboard": True}
    train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, **options)
    before = sorted(p.name for p in (tmp_path / "run" / "tensorboard").iterdir())
    with pytest.raises(TrainResumeError, match="seed was 0, now 1"):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, resume=True, seed=1, **options)
    assert sorted(p.name for p in (tmp_path / "run" / "tensorboard").iterdir()) == before and len(before) == 1


def test_a_recipe_objective_hook_and_gradient_clip_are_used(tmp_path, monkeypatch):
    (tmp_path / "my_objective.py").write_text(
        "import torch\n"
        "CALLS = []\n"
        "class PlainL1:\n"
        "    def __init__(self, scale):\n"
        "        self.scale = scale\n"
        "    def __call__(self, model, lq, gt, step):\n"
        "        restored = model(lq)[0]\n"
        "        CALLS.append(step)\n"
        "        l1 = (restored - gt).abs().mean()\n"
        "        return {'total': self.scale * l1, 'l1': l1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = load_recipe("sample")
    loss = dataclasses.replace(recipe.loss, objective="my_objective:PlainL1", objective_args={"scale": 2.0},
                               grad_clip=1e-3)
    outcome = train(dataclasses.replace(recipe, loss=loss), "mirage-t", None, tmp_path / "run", max_steps=2, **FAST)
    import my_objective

    assert my_objective.CALLS == [0, 1]
    assert set(outcome.final_losses) == {"total", "l1"}
    assert outcome.final_losses["total"] == pytest.approx(2 * outcome.final_losses["l1"])


def test_bf16_autocast_trains_with_finite_losses(tmp_path):
    outcome = train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, dtype="bf16", **FAST)
    assert all(math.isfinite(v) for v in outcome.final_losses.values())


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)  # a second command keeps "train" as a sub-command
    return app


def test_cli_trains_prints_progress_and_points_at_the_weights(tmp_path):
    result = CliRunner().invoke(_cli(), [
        "train", "--recipe", "sample", "--max-steps", "2", "--device", "cpu", "--batch-size", "2",
        "--patch-size", "16", "--workers", "0", "--no-val", "--no-tensorboard", "--run-dir", str(tmp_path / "run"),
        "--model-arg", "dim=6", "--model-arg", "num_blocks=[1,1,1,1]", "--model-arg", "num_refinement_blocks=1"])
    assert result.exit_code == 0, result.output
    assert "done: 2 steps" in result.output and "final.safetensors" in result.output
    assert "model-card.yaml" in result.output
    assert (tmp_path / "run/final.safetensors").is_file()
    evaluate = next(line for line in result.stdout.splitlines() if line.startswith("evaluate: "))
    assert evaluate == (f"evaluate: bench-ir run --protocol 5deg --sample --model {tmp_path / 'run/model-card.yaml'} "
                        f"--checkpoint {tmp_path / 'run/final.safetensors'}")  # the recipe validates on 5deg sample


def test_the_suggested_evaluation_of_a_card_file_names_the_file_as_given_and_runs(tmp_path):
    """A card outside the registry (the BYO example) is named by its path: its name alone is an unknown model."""
    from bench_ir.cli import app

    card = str(Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml")
    result = CliRunner().invoke(app, [
        "train", "--recipe", "sample", "--model", card, "--max-steps", "1", "--device", "cpu", "--batch-size", "2",
        "--patch-size", "16", "--no-val", "--no-tensorboard", "--run-dir", str(tmp_path / "run")], terminal_width=400)
    assert result.exit_code == 0, result.output
    evaluate = next(line for line in result.stdout.splitlines() if line.startswith("evaluate: "))
    assert f"--model {card} --checkpoint" in evaluate
    run = CliRunner().invoke(app, [*shlex.split(evaluate.removeprefix("evaluate: bench-ir ")), "--limit", "1",
                                   "--device", "cpu", "--run-dir", str(tmp_path / "eval")])
    assert run.exit_code == 0, run.output


def test_the_suggested_evaluation_names_the_registry_a_card_came_from():
    command = evaluation_command({"protocol": "5deg", "sample": True}, "my-net", "w.safetensors", registry="my cards")
    assert command.endswith("--model my-net --checkpoint w.safetensors --registry 'my cards'")


def test_the_suggested_evaluation_of_a_real_data_recipe_names_its_protocol_and_test_sets():
    validation = {"protocol": "5deg", "sample": False, "limit": 10}
    assert evaluation_command(validation, "mirage-t", "run/final.safetensors", "/data/my sets") == (
        "bench-ir run --protocol 5deg --data-root '/data/my sets' --model mirage-t --checkpoint run/final.safetensors")
    assert "--data-root DATA_ROOT" in evaluation_command(validation, "mirage-t", "w.safetensors")


def test_the_suggested_evaluation_of_a_recipe_without_validation_leaves_the_protocol_to_fill_in():
    command = evaluation_command({"protocol": None, "sample": False}, "mirage-t", "w.safetensors")
    assert command.startswith("bench-ir run --protocol PROTOCOL --data-root DATA_ROOT --model mirage-t")


@pytest.mark.parametrize("option, value, message", [
    ("--max-steps", "0", "--max-steps must be at least 1, got 0"),
    ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
    ("--patch-size", "0", "--patch-size must be at least 1, got 0"),
    ("--workers", "-1", "--workers must be 0 or more, got -1"),
    ("--val-limit", "0", "--val-limit must be at least 1, got 0"),
    ("--checkpoint-every", "0", "--checkpoint-every must be at least 1, got 0"),
    ("--log-every", "0", "--log-every must be at least 1, got 0"),
])
def test_cli_refuses_an_impossible_count_before_training(tmp_path, option, value, message):
    """Not replaced by the recipe's value (0 used to mean 'the default' for most of these)."""
    result = CliRunner().invoke(_cli(), ["train", "--recipe", "sample", "--device", "cpu", "--run-dir",
                                         str(tmp_path / "run"), option, value])
    assert result.exit_code == 2 and f"error: {message}" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, message", [
    (["--exact", "--dtype", "bf16"], "--exact is the float32 reference computation; it cannot run with --dtype bf16"),
    (["--init-weights", "missing.safetensors"], "missing.safetensors"),
    (["--resume"], "--resume continues a training run: give its folder with --run-dir"),
])
def test_a_training_refused_before_its_first_step_leaves_no_run_directory(tmp_path, options, message):
    """A default run directory is claimed only once the model and optimizer are built (an empty timestamped folder
    was left under runs/train by every such refusal)."""
    result = CliRunner().invoke(_cli(), ["train", "--recipe", "sample", "--device", "cpu", "--runs-root",
                                         str(tmp_path / "runs"), *options], terminal_width=400)
    assert result.exit_code == 2 and "error:" in result.output and message in result.output
    assert not (tmp_path / "runs" / "train").exists() or not any((tmp_path / "runs" / "train").iterdir())


def test_an_interrupted_training_names_its_run_directory_for_resume(tmp_path, monkeypatch):
    from bench_ir.train import command

    def interrupt(self, row):
        raise KeyboardInterrupt

    monkeypatch.setattr(command.RichTrainProgress, "step", interrupt)
    run_dir = tmp_path / "run"
    args = ["train", "--recipe", "sample", "--device", "cpu", "--run-dir", str(run_dir), "--max-steps", "2",
            "--batch-size", "2", "--patch-size", "16", "--no-val", "--no-tensorboard", "--log-every", "1",
            "--checkpoint-every", "1", *[f"--model-arg={k}={v}" for k, v in TINY.items()]]
    monkeypatch.setattr(sys, "argv", ["bench-ir", *args])
    result = CliRunner(env={"COLUMNS": "400"}).invoke(_cli(), args)
    assert result.exit_code == 130, result.output
    # the step hook runs before the checkpoint of step 1 is written
    assert f"interrupted: {run_dir} holds no checkpoint yet; continuing starts it again from step 0" in result.output
    assert f"continue: {shlex.join(['bench-ir', *args, '--resume'])}" in result.output
    assert json.loads((run_dir / "train_manifest.json").read_text())["status"] == "interrupted"


def test_cli_reports_missing_training_data_as_an_error(tmp_path):
    result = CliRunner().invoke(_cli(), ["train", "--recipe", "5deg", "--data-root", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2
    assert "error:" in result.output and "task 'denoise'" in result.output


def test_missing_training_data_names_the_data_check_that_lists_every_missing_set(tmp_path):
    result = CliRunner(env={"COLUMNS": "400"}).invoke(_cli(), ["train", "--recipe", "5deg", "--data-root",
                                                               str(tmp_path), "--device", "cpu"])
    assert f"`bench-ir data check --recipe 5deg --data-root {tmp_path}` checks every training set of the recipe in " \
           "one go" in result.output



def test_compiled_training_follows_the_eager_loss_curve(tmp_path):
    """torch.compile (forced on the CPU) reproduces the eager loss curve; a small convolutional card keeps the
    cold compile short."""
    card = "examples/tiny-unet.yaml"
    options = {**FAST, "model_args": {}}
    eager = train("sample", card, None, tmp_path / "eager", max_steps=3, log_every=1, **options)
    compiled = train("sample", card, None, tmp_path / "compiled", max_steps=3, log_every=1, compile="on", **options)
    manifest = json.loads((tmp_path / "compiled/train_manifest.json").read_text())
    assert manifest["execution"]["compile_mode"] == "default"
    for a, b in zip((tmp_path / "eager/train_log.csv").read_text().splitlines()[1:],
                    (tmp_path / "compiled/train_log.csv").read_text().splitlines()[1:], strict=True):
        total_a, total_b = float(a.split(",")[4]), float(b.split(",")[4])
        assert total_b == pytest.approx(total_a, rel=1e-4)
    for key, value in eager.model.state_dict().items():
        torch.testing.assert_close(compiled.model.state_dict()[key], value, rtol=1e-3, atol=1e-5)


def test_training_can_start_from_given_weights_and_records_them(tmp_path):
    first = train("sample", "mirage-t", None, tmp_path / "first", max_steps=1, **FAST)
    weights = tmp_path / "first/final.safetensors"
    from bench_ir.train.session import TrainOptions, open_session

    session = open_session("sample", "mirage-t", TrainOptions(run_dir=tmp_path / "second", init_weights=weights,
                                                              **FAST))
    assert _states_equal(session.model.state_dict(), first.model.state_dict())
    assert session.manifest["init_weights"]["sha256"] == sha256_file(weights)


def test_resume_refuses_a_run_started_from_other_weights(tmp_path):
    train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, **FAST)
    with pytest.raises(TrainResumeError, match="init_weights"):
        train("sample", "mirage-t", None, tmp_path / "run", max_steps=2, resume=True,
              init_weights=tmp_path / "run/final.safetensors", **FAST)


@pytest.mark.parametrize(("requested", "recipe", "cpus", "processes", "workers", "lowered"), [
    (None, 16, 8, 1, 8, True),     # the 3deg recipe's 16 workers on an 8-CPU machine
    (None, 16, 32, 4, 8, True),    # 4 processes of torchrun share 32 CPUs
    (None, 2, 8, 1, 2, False),     # the recipe's number fits
    (None, 8, 1, 1, 1, True),      # at least one worker
    (12, 16, 2, 1, 12, False),     # --workers is taken as given
])
def test_dataloader_workers_are_the_recipes_at_most_the_cpus_of_the_machine(requested, recipe, cpus, processes,
                                                                            workers, lowered):
    from bench_ir.train.session import loader_workers

    chosen, notice = loader_workers(requested, recipe, cpus, processes)
    assert chosen == workers and (notice is not None) == lowered
    if lowered:
        assert f"the recipe's {recipe} per process lowered to {workers}" in notice


def test_a_training_records_its_dataloader_workers_and_says_when_it_lowered_the_recipes(tmp_path, monkeypatch):
    from bench_ir.train import session as session_module

    monkeypatch.setattr(session_module, "available_cpus", lambda: 1)
    options = {key: value for key, value in FAST.items() if key != "num_workers"}  # the recipe's 2 workers
    outcome = train("sample", "mirage-t", None, tmp_path / "run", max_steps=1, **options)
    assert outcome.manifest["data"]["workers_per_process"] == 1
    assert any("the recipe's 2 per process lowered to 1" in notice for notice in outcome.manifest["notices"])


def _compile_that_fails(monkeypatch) -> None:
    """torch.compile replaced by one whose compiled module raises Inductor's kind of error when called (as on a
    machine without a C++ compiler) before it runs anything."""
    inductor_error = type("InvalidCxxCompiler", (RuntimeError,), {"__module__": "torch._inductor.exc"})

    def compile_that_fails(model, **kwargs):
        def compiled(*args, **kw):
            raise inductor_error("No working C++ compiler found in torch._inductor.config.cpp.cxx")
        return compiled

    monkeypatch.setattr(torch, "compile", compile_that_fails)


def test_a_failing_compile_trains_eagerly_from_that_step_and_says_so(tmp_path, monkeypatch):
    eager = train("sample", "mirage-t", None, tmp_path / "eager", max_steps=2, compile="off", **FAST)
    _compile_that_fails(monkeypatch)
    with pytest.warns(UserWarning, match="torch.compile failed at step 1"):
        fallback = train("sample", "mirage-t", None, tmp_path / "fallback", max_steps=2, compile="on", **FAST)
    assert fallback.manifest["status"] == "complete"
    assert fallback.manifest["execution"]["compile_failed"].startswith("InvalidCxxCompiler: No working C++ compiler")
    assert any("training goes on eagerly" in notice for notice in fallback.manifest["notices"])
    weights = load_file(fallback.final_weights), load_file(eager.final_weights)
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[1])
