"""Sharded evaluation: `torchrun --nproc-per-node 2 -m bench_ir run ...` splits images over ranks (gloo, CPU)
and merges the records into one run with no duplicates and none lost."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from bench_ir.results import load_run
from bench_ir.runner import RunConfig, run_protocol


def _torchrun(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "bench_ir", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def sharded_and_single(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    done = _torchrun(["run", "--protocol", "3deg", "--sample", "--model", "input", "--run-dir", str(root / "sharded"),
                      "--device", "cpu"], cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    single = run_protocol(RunConfig(protocol="3deg", model="input", sample=True, run_dir=root / "single",
                                    device="cpu"))
    return load_run(root / "sharded"), load_run(single.run_dir), done


def test_sharded_run_scores_every_image_exactly_once(sharded_and_single):
    sharded, single, _ = sharded_and_single
    keys = list(zip(sharded.records["task"], sharded.records["image"], strict=True))
    assert len(keys) == len(set(keys)) == len(single.records)


def test_sharded_run_records_are_merged_in_task_order_with_values_identical_to_one_process(sharded_and_single):
    sharded, single, _ = sharded_and_single
    columns = ["task", "image", "psnr", "ssim"]
    assert list(dict.fromkeys(sharded.records["task"])) == list(dict.fromkeys(single.records["task"]))
    by_key = ["task", "image"]
    merged = sharded.records[columns].sort_values(by_key).reset_index(drop=True)
    straight = single.records[columns].sort_values(by_key).reset_index(drop=True)
    # same images, same scores (float64 metric sums may differ in the last bits with the thread count)
    pd.testing.assert_frame_equal(merged, straight, check_exact=False, rtol=1e-12, atol=0)


def test_sharded_run_leaves_no_rank_shards_and_a_complete_manifest(sharded_and_single):
    sharded, _, _ = sharded_and_single
    assert not list(sharded.run_dir.glob("records.rank*.jsonl"))
    assert sharded.manifest["status"] == "complete" and sharded.manifest["world_size"] == 2


def test_rank_zero_held_the_run_lock_and_released_it(sharded_and_single):
    from bench_ir.resume import RunLock, lock_holder

    sharded, _, _ = sharded_and_single
    assert lock_holder(sharded.run_dir) is not None and not RunLock.is_held(sharded.run_dir)


def test_only_rank_zero_prints_the_results_table(sharded_and_single):
    _, _, done = sharded_and_single
    assert done.stdout.count("Average") == 1
