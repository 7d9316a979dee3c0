"""The CPUs a process may use and the DataLoader workers an evaluation on CUDA starts from them."""

from __future__ import annotations

import os

import pytest

from bench_ir import cpus


def test_the_cpus_are_the_affinity_mask_not_the_whole_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 7}, raising=False)
    assert cpus.available_cpus() == 2


def test_an_evaluation_leaves_one_of_its_cpus_to_the_process_itself():
    assert cpus.default_eval_workers(cpus=4, local_processes=1) == 3


def test_an_evaluation_starts_at_most_eight_workers():
    assert cpus.default_eval_workers(cpus=64, local_processes=1) == 8


def test_torchruns_processes_on_one_machine_share_its_cpus():
    assert cpus.default_eval_workers(cpus=16, local_processes=8) == 1


def test_one_cpu_means_no_worker_process():
    assert cpus.default_eval_workers(cpus=1, local_processes=1) == 0


def test_a_slurm_share_of_a_large_node_bounds_the_workers(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpus.default_eval_workers() == 3


@pytest.mark.parametrize(("value", "expected"), [("4", 4), ("", 1), ("x", 1), ("0", 1)])
def test_the_local_process_count_is_torchruns_local_world_size(monkeypatch, value, expected):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", value)
    assert cpus.local_process_count() == expected
