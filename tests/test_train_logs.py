"""Training logs: the CSV is always written; TensorBoard events only when tensorboard is installed, and a warning
says so when it is not."""

from __future__ import annotations

import sys

import pytest

from bench_ir.train.logs import TrainLog


def test_without_tensorboard_a_warning_names_the_missing_package_and_the_csv_is_still_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.warns(UserWarning, match="tensorboard package is not installed .*train_log.csv holds every"):
        log = TrainLog(tmp_path / "train_log.csv", tmp_path / "tensorboard")
    log.write({"step": 1, "total": 0.5})
    log.close()
    assert (tmp_path / "train_log.csv").read_text().splitlines() == ["step,total", "1,0.5"]
    assert not (tmp_path / "tensorboard").exists()


def test_without_a_tensorboard_folder_nothing_is_said(tmp_path, monkeypatch, recwarn):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    TrainLog(tmp_path / "train_log.csv", None).close()
    assert not recwarn.list


def test_a_resume_whose_log_rewrite_fails_keeps_the_whole_log(tmp_path, monkeypatch):
    """truncate_csv (drop the steps after the last checkpoint) rewrites the log: a failure mid-way (here a full
    disk at fsync) leaves the old log whole, never half of it."""
    import errno
    import os

    from bench_ir.train.logs import truncate_csv

    path = tmp_path / "train_log.csv"
    log = TrainLog(path)
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step})
    before = path.read_text()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        truncate_csv(path, last_step=3)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["train_log.csv"]  # no temporary file left behind
