"""What a run tells its user beside the scores: outputs with NaN/Inf values (a notice of the run's outcome, the one
wording the CLI prints), and the missing-data advice, which offers --sample only where --sample can run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_one_pair_protocol
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.data.datasets import DatasetNotFoundError
from bench_ir.runner import RunConfig, folder_protocol, run_protocol


class _NanModel(torch.nn.Module):
    def forward(self, x):
        return torch.full_like(x, float("nan"))


def _nan_card(tmp_path):
    card = tmp_path / "nan.yaml"
    card.write_text(f"name: nan\ndisplay_name: NaN\nfactory: {__name__}:_NanModel\nexpected_params: 0\n")
    return card


def _pair_folders(root, names):
    rng = np.random.default_rng(0)
    for folder in ("in", "gt"):
        (root / folder).mkdir()
    for name in names:
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "gt" / name)
        Image.fromarray(255 - image).save(root / "in" / name)
    return root / "in", root / "gt"


def test_outputs_with_nan_values_are_a_notice_naming_the_first_images_and_what_it_does_to_the_means(tmp_path):
    names = [f"{letter}.png" for letter in "abcdefg"]
    protocol = folder_protocol(*_pair_folders(tmp_path, names))
    outcome = run_protocol(RunConfig(protocol=protocol, model=str(_nan_card(tmp_path)), run_dir=tmp_path / "run",
                                     device="cpu"))
    assert ("7 image(s) with NaN/Inf outputs (folder/a.png, folder/b.png, folder/c.png, folder/d.png, folder/e.png "
            "and 2 more): their PSNR and SSIM are NaN (the records mark them nonfinite), so the PSNR and SSIM means "
            "of task(s) folder are NaN, and so is an Average over them") in outcome.notices


def test_a_run_with_finite_outputs_has_no_nan_notice(tmp_path):
    protocol = folder_protocol(*_pair_folders(tmp_path, ["a.png"]))
    outcome = run_protocol(RunConfig(protocol=protocol, model="input", run_dir=tmp_path / "run", device="cpu"))
    assert not [notice for notice in outcome.notices if "NaN/Inf" in notice]


def test_the_cli_prints_the_runs_nan_notice_as_its_only_word_on_nan_outputs(tmp_path):
    inputs, targets = _pair_folders(tmp_path, ["a.png", "b.png"])
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [  # one line per message
        "run", "--model", str(_nan_card(tmp_path)), "--input-dir", str(inputs), "--target-dir", str(targets),
        "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.output.count("NaN/Inf") == 1
    assert ("note: 2 image(s) with NaN/Inf outputs (folder/a.png, folder/b.png): their PSNR and SSIM are NaN (the "
            "records mark them nonfinite)") in result.output


def test_without_a_data_root_a_protocol_whose_tasks_have_no_sample_variant_is_not_advised_sample(tmp_path):
    protocol = write_one_pair_protocol(tmp_path)  # task 't': folders only, no sample degradations, no noise
    with pytest.raises(FileNotFoundError) as missing:
        run_protocol(RunConfig(protocol=protocol, model="input", device="cpu"))
    assert str(missing.value) == ("protocol 'toy' needs the folder holding its test sets (pass --data-root or set "
                                  "BENCH_IR_DATA_ROOT)")


@pytest.mark.parametrize(("noise_order", "advised"), [("sorted", True), ("listdir", False)])
def test_without_a_data_root_a_shipped_protocol_is_advised_sample_unless_its_noise_order_needs_folders(
        noise_order, advised):
    with pytest.raises(FileNotFoundError) as missing:
        run_protocol(RunConfig(protocol="denoise", model="input", device="cpu", noise_order=noise_order))
    assert str(missing.value).endswith(" or --sample for the built-in sample data") is advised


def test_a_missing_test_set_of_a_task_without_sample_variant_is_advised_data_check_only(tmp_path):
    protocol = write_one_pair_protocol(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as missing:
        run_protocol(RunConfig(protocol=protocol, model="input", data_root=tmp_path / "empty", device="cpu"))
    assert missing.value.advice == (f"Run `bench-ir data check --protocol {protocol} --data-root {tmp_path / 'empty'}` "
                                    "to see what is missing.")


def test_a_missing_test_set_of_a_shipped_task_is_still_advised_sample(tmp_path):
    with pytest.raises(DatasetNotFoundError) as missing:
        run_protocol(RunConfig(protocol="derain", model="input", data_root=tmp_path, device="cpu"))
    assert missing.value.advice.startswith("Use --sample for the built-in sample data, or run `bench-ir data check")


def test_a_limit_that_leaves_out_no_image_records_a_run_of_the_full_test_sets(tmp_path):
    protocol = write_one_pair_protocol(tmp_path, "toy")
    outcome = run_protocol(RunConfig(protocol=str(protocol), model="input", data_root=tmp_path, limit=5,
                                     run_dir=tmp_path / "run", device="cpu"))
    assert outcome.manifest["limit"] is None
    assert "--limit 5 leaves out no image (the largest task has 1): the run covers the full test sets" in (
        outcome.notices)


def test_a_limit_that_leaves_out_images_is_kept(tmp_path):
    outcome = run_protocol(RunConfig(protocol="derain", model="input", sample=True, limit=1, run_dir=tmp_path / "r"))
    assert outcome.manifest["limit"] == 1
