"""Content hashes of data files through a stat cache (bench_ir.file_hashes): a file is read once while it is
unchanged, read again once it changes, and a cache that cannot be used never fails the caller."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from bench_ir import checkpoints
from bench_ir.file_hashes import CACHE_FILE, HashCache, cache_dir, file_sha256
from bench_ir.file_versions import memoised_per_file_version

AN_HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """The files whose content is read to hash them (bench_ir.checkpoints.sha256_file), in call order."""
    calls: list[Path] = []
    real = checkpoints.sha256_file

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "sha256_file", counting)
    return calls


def _settled_file(path: Path, content: bytes) -> Path:
    """``path`` holding ``content``, last modified an hour ago (old enough for its hash to be kept)."""
    path.write_bytes(content)
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    return path


def test_the_hash_is_the_sha256_of_the_files_content(tmp_path):
    path = _settled_file(tmp_path / "a.bmp", b"pixels")
    assert file_sha256(path) == hashlib.sha256(b"pixels").hexdigest()


def test_an_unchanged_file_is_read_once_across_commands(tmp_path, reads):
    path = _settled_file(tmp_path / "a.bmp", b"pixels")
    first = file_sha256(path)
    assert file_sha256(path) == first  # a second command: a new connection to the same cache
    with HashCache() as cache:
        assert cache.sha256(tmp_path / "." / "a.bmp") == first  # the same file by another path spelling
    assert reads == [path.resolve()]


def test_a_file_rewritten_with_the_same_size_and_mtime_is_read_again(tmp_path, reads):
    path = _settled_file(tmp_path / "a.bmp", b"pixels")
    file_sha256(path)
    replacement = _settled_file(tmp_path / "b.bmp", b"PIXELS")
    replacement.replace(path)  # as a copy that keeps its mtime (cp -p, rsync -t) puts it in place
    assert path.stat().st_mtime_ns == AN_HOUR_AGO_NS
    assert file_sha256(path) == hashlib.sha256(b"PIXELS").hexdigest()
    assert len(reads) == 2


def test_a_file_written_just_now_is_not_kept(tmp_path, reads):
    """A write within the same clock tick could leave its size and mtime as they were (git's racy files)."""
    path = tmp_path / "a.bmp"
    path.write_bytes(b"pixels")
    file_sha256(path)
    file_sha256(path)
    assert len(reads) == 2


def test_a_cache_folder_that_cannot_be_made_still_hashes(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("BENCH_IR_CACHE_DIR", str(blocker))
    path = _settled_file(tmp_path / "a.bmp", b"pixels")
    assert file_sha256(path) == hashlib.sha256(b"pixels").hexdigest()


def test_a_corrupt_cache_file_still_hashes(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / CACHE_FILE).write_bytes(b"not an sqlite database" * 100)
    path = _settled_file(tmp_path / "a.bmp", b"pixels")
    assert file_sha256(path) == hashlib.sha256(b"pixels").hexdigest()


def test_a_cache_held_by_another_writer_still_hashes(tmp_path, monkeypatch):
    """A write that waits out its timeout is dropped, not raised (a suite's parallel workers)."""
    monkeypatch.setattr("bench_ir.file_hashes.BUSY_TIMEOUT_S", 0.01)
    path = _settled_file(tmp_path / "a.bmp", b"pixels")
    with HashCache(tmp_path / "cache") as holder:
        holder.sha256(_settled_file(tmp_path / "b.bmp", b"other"))
        holder.flush()
        holder._connection.execute("BEGIN EXCLUSIVE")  # another process in the middle of its write
        with HashCache(tmp_path / "cache") as waiting:
            assert waiting.sha256(path) == hashlib.sha256(b"pixels").hexdigest()
        holder._connection.rollback()


def test_the_cache_folder_is_bench_ir_cache_dir_else_under_xdg_cache_home_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IR_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("BENCH_IR_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "bench-ir"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "bench-ir"


def _memoised_reader(reads: list[str], maxsize: int = 256):
    """A file reader remembered by memoised_per_file_version that appends each path it really reads to ``reads``."""

    @memoised_per_file_version(maxsize)
    def read(path: str) -> bytes:
        reads.append(path)
        return Path(path).read_bytes()

    return read


def test_a_memoised_read_of_an_unchanged_file_happens_once_and_a_rewrite_is_read_again(tmp_path):
    read_paths: list[str] = []
    read = _memoised_reader(read_paths)
    path = str(_settled_file(tmp_path / "card.yaml", b"first"))
    assert [read(path), read(path)] == [b"first", b"first"]
    _settled_file(tmp_path / "card.yaml", b"other")  # same size, same mtime: only its ctime tells
    assert read(path) == b"other"
    assert read_paths == [path, path]


def test_a_memoised_read_of_a_file_written_just_now_is_not_kept(tmp_path):
    read_paths: list[str] = []
    read = _memoised_reader(read_paths)
    path = tmp_path / "card.yaml"
    path.write_bytes(b"first")
    read(str(path))
    read(str(path))
    assert len(read_paths) == 2


def test_a_memoised_reader_keeps_at_most_maxsize_files_dropping_the_oldest(tmp_path):
    read_paths: list[str] = []
    read = _memoised_reader(read_paths, maxsize=2)
    paths = [str(_settled_file(tmp_path / f"{name}.yaml", name.encode())) for name in "abc"]
    for path in paths:
        read(path)
    read(paths[2])
    read(paths[0])
    assert read_paths == [*paths, paths[0]]
