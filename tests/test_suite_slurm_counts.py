"""Suite cells run elsewhere (Slurm jobs, node workers): their images are what their run directory holds, across
every attempt; `suite run --launcher slurm` that followed its jobs to the end names the next step; submitit's
unexpanded ``%j`` log folder does not stay in SUITE_DIR/slurm."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_sample_suite
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.results import RunStore
from bench_ir.suite import CellResult, SuiteEvents, SuitePlan, SuiteProgress, execute_cell, plan_suite

runner = CliRunner()
CELL = "input__5deg"


def _write_suite(folder: Path) -> Path:
    """The `input` row on the 5deg sample data, 1 image per task: one cheap run cell of 7 images, no profile."""
    return write_sample_suite(folder, "counts", ["5deg"])


@pytest.fixture
def plan(tmp_path) -> SuitePlan:
    return plan_suite(_write_suite(tmp_path), tmp_path / "out")


def _keep_records(plan: SuitePlan, count: int, first: int = 0) -> None:
    """``count`` records in the cell's run directory, as the attempts of a job elsewhere leave them."""
    store = RunStore(plan.run_dir(plan.cell(CELL)))
    for number in range(first, first + count):
        store.append({"task": "denoise_15", "image": f"image-{number}.png", "psnr": 30.0, "ssim": 0.9})


def test_a_requeued_job_counts_the_images_of_every_attempt_not_only_its_last(plan):
    progress = SuiteProgress(plan, [CELL])
    progress.cell_started(CELL)
    _keep_records(plan, 5)  # the first attempt scored 3 before its preemption, the requeued one 2
    progress.cell_finished(CellResult(CELL, "complete", images=2))
    assert progress.scored[CELL] == 5


def test_a_killed_job_counts_the_records_it_kept(plan):
    progress = SuiteProgress(plan, [CELL])
    progress.cell_started(CELL)
    _keep_records(plan, 3)
    progress.cell_finished(CellResult(CELL, "failed", error="job 7: killed by SIGKILL", images=0))
    assert progress.scored[CELL] == 3


def test_the_eta_rate_counts_every_image_scored_during_the_call_and_none_from_before(plan):
    _keep_records(plan, 1)  # scored by an earlier call
    progress = SuiteProgress(plan, [CELL])
    progress.cell_started(CELL)
    _keep_records(plan, 3, first=1)  # two attempts of this call's job
    progress.cell_finished(CellResult(CELL, "complete", images=1))
    assert progress.session == 3


def test_a_cell_run_in_this_process_counts_each_image_once(plan):
    plan.save()
    progress = SuiteProgress(plan, [CELL])
    execute_cell(plan.suite_dir, CELL, progress)
    assert progress.scored[CELL] == progress.session == 7


class _DoneJob:
    """A submitit job whose cell ended complete."""

    def __init__(self, name: str) -> None:
        self.job_id, self.name = "1", name

    def done(self) -> bool:
        return True

    def result(self) -> dict:
        return CellResult(self.name, "complete").to_dict()


@pytest.fixture
def jobs_run_here(monkeypatch) -> None:
    """`--launcher slurm` on a machine with Slurm whose jobs end at once, complete."""
    submitit = pytest.importorskip("submitit")
    from bench_ir.suite.slurm import SlurmLauncher

    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "slurm"))
    monkeypatch.setattr(SlurmLauncher, "submit",
                        lambda self, plan, names: [_DoneJob(name) for name in names])


def test_suite_run_on_slurm_that_waited_for_complete_cells_names_the_report_command(tmp_path, jobs_run_here):
    out = tmp_path / "out"
    result = runner.invoke(app, ["suite", "run", str(_write_suite(tmp_path)), "--out", str(out),
                                 "--launcher", "slurm"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"Slurm job ids: {out / 'jobs.json'}\n" in result.output
    assert f"next: bench-ir suite report {out}" in result.output


def test_suite_run_on_slurm_without_waiting_says_to_follow_the_jobs_and_names_no_report(tmp_path, jobs_run_here):
    out = tmp_path / "out"
    result = runner.invoke(app, ["suite", "run", str(_write_suite(tmp_path)), "--out", str(out),
                                 "--launcher", "slurm", "--no-wait"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"Slurm job ids: {out / 'jobs.json'}; follow with `bench-ir suite status {out}`" in result.output
    assert "next:" not in result.output


def test_a_slurm_job_removes_the_empty_placeholder_folder_of_submitits_local_executor(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from bench_ir.suite import slurm

    placeholder = tmp_path / "slurm" / "%j"
    placeholder.mkdir(parents=True)  # what the local executor's controller makes before it starts the job
    monkeypatch.setattr(slurm, "execute_cell", lambda suite_dir, name: CellResult(name, "complete"))
    slurm.CellJob(str(tmp_path), CELL)()
    assert not placeholder.exists() and (tmp_path / "slurm").is_dir()


def test_the_slurm_launcher_leaves_no_placeholder_folder_once_it_followed_its_jobs(plan, jobs_run_here):
    from bench_ir.suite.slurm import SlurmLauncher

    plan.save()
    placeholder = plan.suite_dir / "slurm" / "%j"
    placeholder.mkdir(parents=True)  # a job killed before it started leaves it
    SlurmLauncher(cluster="local", poll_seconds=0).launch(plan, [CELL], SuiteEvents())
    assert not placeholder.exists()
