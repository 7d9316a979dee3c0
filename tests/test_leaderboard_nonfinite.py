"""A run whose task mean is not a finite number (PSNR inf from an output identical to its target, NaN from an
output with NaN/Inf values) is not ranked against the published rows, and its run says why its mean is inf."""

from __future__ import annotations

import json

import numpy as np
from conftest import write_scored_run
from PIL import Image

from bench_ir.compare import rank_against_leaderboard
from bench_ir.compare_output import compare_text, rank_explanation
from bench_ir.runner import RunConfig, folder_protocol, run_protocol

TASKS = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}},
         {"name": "derain", "label": "Rain100L", "leaderboard": {"dataset": "Rain100L", "subset": None}}]
INF, NAN = float("inf"), float("nan")


def _ranks(tmp_path, derain_psnr: float, derain_ssim: float):
    """The ranks of a run scoring one dehaze image finitely and one derain image with these values."""
    run = write_scored_run(tmp_path / "run", TASKS, [("dehaze", "a.png", 30.0, 0.98),
                                                     ("derain", "a.png", derain_psnr, derain_ssim)])
    return rank_against_leaderboard(run)


def test_a_run_with_an_infinite_psnr_mean_is_ranked_nowhere(tmp_path):
    ranks = _ranks(tmp_path, INF, 1.0)
    assert ranks["rank"].isna().all() and not ranks["comparable"].any()


def test_the_json_of_an_infinite_psnr_mean_has_no_rank(tmp_path):
    rows = json.loads(compare_text("json", ranked=_ranks(tmp_path, INF, 1.0)))["leaderboard"]["rows"]
    (average,) = [row for row in rows if row["column"] == "Average" and row["metric"] == "PSNR"]
    assert (average["value"], average["rank"], average["comparable"]) == (None, None, False)


def test_the_explanation_names_the_infinite_mean_and_where_it_comes_from(tmp_path):
    ranks = _ranks(tmp_path, INF, 1.0)
    assert ranks.attrs["reasons"] == [
        "its Rain100L PSNR mean of inf (an output identical to its target, such as an input that is a copy of its "
        "target with --model input: the PSNR of identical images is inf)"]
    assert any(line.startswith("Toy is not ranked: its numbers are not comparable with the published ones because "
                               "of its Rain100L PSNR mean of inf") for line in rank_explanation(ranks))


def test_a_run_with_a_nan_mean_is_not_called_comparable(tmp_path):
    ranks = _ranks(tmp_path, NAN, NAN)
    explanation = " ".join(rank_explanation(ranks))
    assert "is comparable" not in explanation and not ranks["comparable"].any()
    assert ("because of its Rain100L PSNR and SSIM means of NaN (outputs with NaN/Inf values, the records marked "
            "nonfinite)") in explanation


def test_a_run_with_finite_means_is_still_ranked(tmp_path):
    ranks = _ranks(tmp_path, 35.0, 0.95)
    assert ranks["comparable"].all() and ranks.attrs["reasons"] == []
    assert ranks[ranks["column"] == "Rain100L"]["rank"].notna().all()


def _folders_with_a_copied_input(root):
    """Pairs a.png (input the negative of its target) and b.png (input a copy of its target)."""
    rng = np.random.default_rng(0)
    for folder in ("in", "gt"):
        (root / folder).mkdir()
    for name, copy in (("a.png", False), ("b.png", True)):
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "gt" / name)
        Image.fromarray(image if copy else 255 - image).save(root / "in" / name)
    return root / "in", root / "gt"


def test_a_run_with_an_input_identical_to_its_target_has_a_notice_naming_the_infinite_psnr(tmp_path):
    protocol = folder_protocol(*_folders_with_a_copied_input(tmp_path))
    outcome = run_protocol(RunConfig(protocol=protocol, model="input", run_dir=tmp_path / "run", device="cpu"))
    assert outcome.summary.loc["folder", "psnr"] == INF
    assert ("1 image(s) with an output identical to its target (folder/b.png): their PSNR is inf (the PSNR of "
            "identical images), so the PSNR mean of task(s) folder is inf, and so is an Average over them, and "
            "compare --leaderboard does not rank the run; with --model input, such an input is a copy of its target: "
            "check the data") in outcome.notices


def test_a_run_with_finite_psnrs_has_no_infinite_psnr_notice(tmp_path):
    protocol = folder_protocol(*_folders_with_a_copied_input(tmp_path))
    (tmp_path / "in" / "b.png").unlink()
    outcome = run_protocol(RunConfig(protocol=protocol, model="input", run_dir=tmp_path / "run", device="cpu"))
    assert not [notice for notice in outcome.notices if "PSNR is inf" in notice]
