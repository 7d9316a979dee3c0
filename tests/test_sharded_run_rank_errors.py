"""A sharded run whose rank other than 0 fails: every rank stops with that rank's error, and rank 0's manifest
records it (the file named), not the broken connection that rank's exit leaves behind."""

from __future__ import annotations

import os

import pytest
import torch.distributed
from test_resume import _pairs
from test_sharded_run import _torchrun

from bench_ir.distributed import DistContext, RankError, StoppedForAnotherRank
from bench_ir.results import RunStore, load_run


def test_every_rank_raises_the_errors_of_the_ranks_that_failed_in_rank_order(monkeypatch):
    def gather(outcomes: list, mine: str | None) -> None:  # this rank (0) succeeded, ranks 1 and 2 failed
        outcomes[:] = [mine, (False, "ValueError: a.png is broken"), (False, "OSError: disk full")]

    monkeypatch.setattr(torch.distributed, "all_gather_object", gather)
    expected = r"^ValueError: a.png is broken \(on rank 1 of 3\); OSError: disk full \(on rank 2 of 3\)$"
    with pytest.raises(RankError, match=expected):
        DistContext(rank=0, world_size=3, active=True).on_every_rank(lambda: "scored")


def test_a_rank_that_stopped_because_another_failed_is_not_named_among_the_failures(monkeypatch):
    def gather(outcomes: list, mine) -> None:  # rank 0 stopped early for rank 1, which failed
        outcomes[:] = [mine, (False, "ValueError: a.png is broken")]

    def stop():
        raise StoppedForAnotherRank("stopped after 0.png: another rank failed")

    monkeypatch.setattr(torch.distributed, "all_gather_object", gather)
    with pytest.raises(RankError, match=r"^ValueError: a.png is broken \(on rank 1 of 2\)$"):
        DistContext(rank=0, world_size=2, active=True).on_every_rank(stop)


def _site_packages_with(tmp_path, code: str) -> str:
    """A PYTHONPATH for subprocesses: a folder whose sitecustomize.py runs ``code`` at start, then the current one."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    return os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


def test_an_error_on_rank_one_stops_rank_zero_at_once_and_is_recorded_in_its_manifest_naming_the_file(tmp_path,
                                                                                                        monkeypatch):
    """Rank 1 fails on its first image; rank 0 (slowed to 0.5 s per image) stops after its current image instead of
    scoring its whole share while rank 1 waits in the exchange (which NCCL's 10-minute timeout would end first)."""
    monkeypatch.setenv("PYTHONPATH", _site_packages_with(tmp_path, (
        "import os, time\n"
        "if os.environ.get('RANK') == '0':\n"
        "    import bench_ir.results\n"
        "    append = bench_ir.results.RunStore.append\n"
        "    def slow_append(self, record):\n"
        "        time.sleep(0.5)\n"
        "        append(self, record)\n"
        "    bench_ir.results.RunStore.append = slow_append\n")))
    _pairs(tmp_path / "data", n=40)
    target = tmp_path / "data" / "gt" / "1.png"  # rank 1's first image (ranks take every other image)
    target.write_bytes(target.read_bytes()[:60])  # truncated, header intact: it fails when scored, not when checked
    run_dir = tmp_path / "run"
    done = _torchrun(["run", "--model", "input", "--input-dir", "data/in", "--target-dir", "data/gt", "--device", "cpu",
                      "--run-dir", str(run_dir)], cwd=tmp_path)
    manifest = load_run(run_dir).manifest
    assert done.returncode != 0 and manifest["status"] == "failed"
    assert manifest["error"].startswith(f"ImageReadError: {target}: corrupt or truncated image")
    assert manifest["error"].endswith("(on rank 1 of 2)")  # rank 0's early stop is not named as a failure
    said = " ".join(done.stderr.split())
    scored = len(RunStore(run_dir).scored_keys(warn=False))  # rank 0's images, in its shard: resumable
    assert 1 <= scored < 10  # of its share of 20
    assert f"the run is kept in {run_dir} with the {scored} image(s) scored so far" in said


def test_a_final_manifest_rank_zero_cannot_write_stops_every_rank_with_that_error(tmp_path, monkeypatch):
    """Rank 0 merges the shards and writes the final manifest while the others wait for it: they stop with its error
    too, not with the broken connection its exit leaves behind (gloo) or at a barrier until a timeout (NCCL)."""
    monkeypatch.setenv("PYTHONPATH", _site_packages_with(tmp_path, (  # on rank 0, the disk is full at the merge
        "import os\n"
        "if os.environ.get('RANK') == '0':\n"
        "    import bench_ir.results\n"
        "    def full_disk(*args, **kwargs):\n"
        "        raise OSError(28, 'No space left on device')\n"
        "    bench_ir.results.RunStore.merge_shards = full_disk\n")))
    _pairs(tmp_path / "data", n=4)
    done = _torchrun(["run", "--model", "input", "--input-dir", "data/in", "--target-dir", "data/gt", "--device", "cpu",
                      "--run-dir", str(tmp_path / "run")], cwd=tmp_path)
    said = " ".join(done.stderr.split())
    assert done.returncode != 0
    assert said.count("but the final manifest could not be written ([Errno 28] No space left on device)") == 2
    assert "Connection closed by peer" not in said
