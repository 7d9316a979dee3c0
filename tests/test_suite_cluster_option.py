"""`suite run`'s --cluster and the other Slurm-only options are checked before the suite is planned: an unknown
cluster, Slurm asked for where there is none, and Slurm options given to another launcher are refused with one
line, and nothing is written to the suite directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_sample_suite
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.suite import make_launcher

runner = CliRunner()


def _suite_run(tmp_path: Path, *options: str):
    """`suite run` of a one-cell sample suite into tmp_path/out with ``options``."""
    path = write_sample_suite(tmp_path, "options", ["5deg"])
    return runner.invoke(app, ["suite", "run", str(path), "--out", str(tmp_path / "out"), *options],
                         terminal_width=400)


def test_an_unknown_cluster_is_refused_with_the_accepted_values_before_anything_is_planned(tmp_path):
    result = _suite_run(tmp_path, "--launcher", "slurm", "--cluster", "foo")
    assert result.exit_code == 2
    assert ("--cluster foo: unknown cluster; use slurm (the default: Slurm jobs) or local (the same jobs as local "
            "processes, to try the Slurm path without Slurm).") in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_cluster_slurm_on_a_machine_without_slurm_is_refused_as_the_default_is(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "local"))
    result = _suite_run(tmp_path, "--launcher", "slurm", "--cluster", "slurm")
    assert result.exit_code == 2
    assert "--launcher slurm: no Slurm on this machine" in result.output
    assert not (tmp_path / "out").exists()


def test_cluster_local_is_accepted_without_slurm(monkeypatch):
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "local"))
    assert make_launcher("slurm", cluster="local").cluster == "local"


@pytest.mark.parametrize("launcher, options, named", [
    ("local", ["--cluster", "local"], "--cluster only applies to --launcher slurm, not --launcher local; leave it out"),
    ("node", ["--partition", "gpu", "--no-array", "--time", "30"],
     "--partition, --time, --no-array only apply to --launcher slurm, not --launcher node; leave them out"),
    ("local", ["--account", "lab", "--cpus", "4", "--no-wait"], "--account, --cpus, --no-wait only apply"),
])
def test_slurm_options_with_another_launcher_are_refused_before_anything_is_planned(tmp_path, launcher, options,
                                                                                   named):
    result = _suite_run(tmp_path, "--launcher", launcher, *options)
    assert result.exit_code == 2
    assert named in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_make_launcher_refuses_slurm_options_for_another_launcher():
    with pytest.raises(ValueError, match=r"^--partition only applies to --launcher slurm, not --launcher node"):
        make_launcher("node", gpus=2, partition="gpu")
