"""A suite cell whose run scored NaN for some images (outputs with NaN/Inf values) is complete, and `suite run` and
`suite status` say why its means are NaN, as `bench-ir run` and `bench-ir report` do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.suite import SuitePlan, cell_status_reason

NAN_REASON = "5 of 7 images non-finite (NaN/Inf outputs): the PSNR and SSIM means of t are NaN"


class _NanOnBright(torch.nn.Module):
    """The identity, except NaN for every image whose mean is above one half."""

    def forward(self, x):
        bright = x.mean(dim=(1, 2, 3), keepdim=True) > 0.5
        return torch.where(bright, x * float("nan"), x)


def _flat_pairs_protocol(root) -> str:
    """A one-task protocol ('t') over 7 flat 16x16 pairs: 5 bright inputs (a-e) and 2 dark ones (f, g), each target a
    little darker than its input."""
    for folder in ("flat/input", "flat/target"):
        (root / folder).mkdir(parents=True)
    for name, level in zip("abcdefg", (200, 210, 220, 230, 240, 40, 60), strict=True):
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(root / "flat" / "input" / f"{name}.png")
        Image.fromarray(np.full((16, 16, 3), level - 10, np.uint8)).save(root / "flat" / "target" / f"{name}.png")
    protocol = {"name": "flat", "title": "flat", "version": 1, "convention": "M1",
                "crop": {"rule": "center_multiple", "base": 16},
                "tasks": [{"name": "t", "label": "flat", "dataset": "flat",
                           "layouts": [{"input": "flat/input", "target": "flat/target"}]}]}
    path = root / "flat.yaml"
    path.write_text(yaml.safe_dump(protocol), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def nan_suite(tmp_path_factory):
    """`suite run` (CLI) of a NaN-on-bright entry and the input entry on the flat protocol: (result, suite dir)."""
    root = tmp_path_factory.mktemp("nan-suite")
    card = root / "nan-on-bright.yaml"
    card.write_text(f"name: nan-on-bright\ndisplay_name: NaN on bright\nfactory: {__name__}:_NanOnBright\n"
                    "expected_params: 0\n")
    suite = {"name": "nan", "protocols": [_flat_pairs_protocol(root)], "options": {"device": "cpu"},
             "entries": [{"model": str(card), "name": "nan"}, {"model": "input"}], "profile": {"enabled": False}}
    (root / "suite.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [  # a table row on one line
        "suite", "run", str(root / "suite.yaml"), "--out", str(root / "out"), "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    return result, root / "out"


def _row(table: str, cell: str) -> list[str]:
    """The columns of ``cell``'s row in a printed overview table."""
    line = next(line for line in table.splitlines() if f" {cell} " in line)
    return [column.strip() for column in line.strip().split("│")[1:-1]]


def test_a_cell_with_nan_scores_is_complete_with_the_non_finite_images_as_its_reason(nan_suite):
    plan = SuitePlan.load(nan_suite[1])
    assert cell_status_reason(plan, plan.cell("nan__flat")) == ("complete", NAN_REASON)


def test_a_cell_with_finite_scores_is_complete_without_a_reason(nan_suite):
    plan = SuitePlan.load(nan_suite[1])
    assert cell_status_reason(plan, plan.cell("input__flat")) == ("complete", None)


def test_suite_status_shows_a_cell_with_nan_scores_as_complete_with_the_non_finite_images(nan_suite):
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["suite", "status", str(nan_suite[1])])
    assert result.exit_code == 0, result.output
    assert _row(result.stdout, "nan__flat") == ["nan__flat", "complete", "7/7", NAN_REASON]
    assert _row(result.stdout, "input__flat") == ["input__flat", "complete", "7/7", ""]


def test_suite_runs_summary_shows_a_cell_with_nan_scores_as_complete_with_the_non_finite_images(nan_suite):
    summary = nan_suite[0].stderr  # the overview table, written once at the end where stderr is no terminal
    assert _row(summary, "nan__flat") == ["nan__flat", "complete", "7/7", NAN_REASON]
    assert _row(summary, "input__flat") == ["input__flat", "complete", "7/7", ""]
