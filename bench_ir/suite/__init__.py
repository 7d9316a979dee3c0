"""Suites: the whole paper (every model, checkpoint and protocol) in one resumable command.

Public API::

    outcome = run_suite("sample", suite_dir="runs/suite-sample", launcher=NodeLauncher(gpus=4))
    report = write_suite_report("runs/suite-sample", out="tables/")

A suite file (suites/*.yaml, bench_ir.suite.spec) lists entries × protocols and the shared run options; the
plan (bench_ir.suite.plan) makes one cell per (entry, protocol), each an ordinary resumable run under
SUITE_DIR/runs/<cell>, plus one profile per distinct model; launchers (bench_ir.suite.launchers) decide only
where a cell runs: in this process, one worker per GPU of the node, or Slurm jobs through submitit.
"""

from __future__ import annotations

from bench_ir.lazy_exports import lazy_exports

_EXPORTS = {
    "CellResult": "bench_ir.suite.execute",
    "SuiteEvents": "bench_ir.suite.execute",
    "execute_cell": "bench_ir.suite.execute",
    "make_launcher": "bench_ir.suite.launch",
    "LAUNCHERS": "bench_ir.suite.launchers",
    "Launcher": "bench_ir.suite.launchers",
    "LocalLauncher": "bench_ir.suite.launchers",
    "NodeLauncher": "bench_ir.suite.launchers",
    "Cell": "bench_ir.suite.plan",
    "SuiteCheckError": "bench_ir.suite.plan",
    "SuitePlan": "bench_ir.suite.plan",
    "cell_status": "bench_ir.suite.plan",
    "cell_status_reason": "bench_ir.suite.plan",
    "check_cells": "bench_ir.suite.plan",
    "plan_suite": "bench_ir.suite.plan",
    "SuiteReport": "bench_ir.suite.report",
    "report_command": "bench_ir.suite.report",
    "write_suite_report": "bench_ir.suite.report",
    "OtherSuiteError": "bench_ir.suite.run",
    "SuiteOutcome": "bench_ir.suite.run",
    "SuiteProgress": "bench_ir.suite.run",
    "default_suite_dir": "bench_ir.suite.run",
    "run_suite": "bench_ir.suite.run",
    "Suite": "bench_ir.suite.spec",
    "SuiteEntry": "bench_ir.suite.spec",
    "list_suites": "bench_ir.suite.spec",
    "load_suite": "bench_ir.suite.spec",
    "suites_dir": "bench_ir.suite.spec",
}

__all__ = [
    "Suite", "SuiteEntry", "load_suite", "list_suites", "suites_dir",
    "Cell", "SuitePlan", "SuiteCheckError", "plan_suite", "check_cells", "cell_status", "cell_status_reason",
    "CellResult", "SuiteEvents", "execute_cell",
    "LAUNCHERS", "Launcher", "LocalLauncher", "NodeLauncher", "make_launcher",
    "SuiteOutcome", "SuiteProgress", "OtherSuiteError", "run_suite", "default_suite_dir",
    "SuiteReport", "write_suite_report", "report_command",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
