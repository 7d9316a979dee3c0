"""Suites: the whole paper (every model, checkpoint and protocol) in one resumable command.

Public API::

    outcome = run_suite("sample", suite_dir="runs/suite-sample", launcher=NodeLauncher(gpus=4))
    report = write_suite_report("runs/suite-sample", out="tables/")

A suite file (suites/*.yaml, bench_ir.suite.spec) lists entries × protocols and the shared run options; the
plan (bench_ir.suite.plan) makes one cell per (entry, protocol), each an ordinary resumable run under
SUITE_DIR/runs/<cell>, plus one profile per distinct model; launchers (bench_ir.suite.launchers) decide only
where a cell runs: in this process, one worker per GPU of the node, or Slurm jobs through submitit.
"""

from bench_ir.suite.execute import CellResult, SuiteEvents, execute_cell
from bench_ir.suite.launch import make_launcher
from bench_ir.suite.launchers import LAUNCHERS, Launcher, LocalLauncher, NodeLauncher
from bench_ir.suite.plan import Cell, SuiteCheckError, SuitePlan, cell_status, check_cells, plan_suite
from bench_ir.suite.report import SuiteReport, report_command, write_suite_report
from bench_ir.suite.run import SuiteOutcome, SuiteProgress, default_suite_dir, run_suite
from bench_ir.suite.spec import Suite, SuiteEntry, list_suites, load_suite, suites_dir

__all__ = [
    "Suite", "SuiteEntry", "load_suite", "list_suites", "suites_dir",
    "Cell", "SuitePlan", "SuiteCheckError", "plan_suite", "check_cells", "cell_status",
    "CellResult", "SuiteEvents", "execute_cell",
    "LAUNCHERS", "Launcher", "LocalLauncher", "NodeLauncher", "make_launcher",
    "SuiteOutcome", "SuiteProgress", "run_suite", "default_suite_dir",
    "SuiteReport", "write_suite_report", "report_command",
]
