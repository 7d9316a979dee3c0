"""Content sha256 of data files, remembered across runs in a stat cache (the idea of git's index).

Hashing a test set (GoPro's is 2.5 GB) at every run start, resume and `suite status` would cost seconds to minutes,
so a file's hash is kept in an SQLite file and used again while the file's resolved path, size, mtime, ctime and
inode are all unchanged: a rewritten file has another mtime (or, copied with its old mtime, another ctime and inode)
and is hashed again. A hash is not kept when the file's mtime is within RACY_S of now (a write in the same clock tick
would leave size and mtime as they were), nor when the file changed while it was read (bench_ir.file_versions).

The cache is ``file-hashes-v1.sqlite3`` in :func:`cache_dir`: ``$BENCH_IR_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/bench-ir``, else ``~/.cache/bench-ir``. Parallel writers (a suite's workers) wait for each other
up to :data:`BUSY_TIMEOUT_S`. A cache that cannot be created, read or written (a read-only home, a corrupt file, a
lock held too long) is passed over: the file is hashed, and no run fails for it. Deleting the file is always safe.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import TracebackType

from bench_ir.file_versions import read_may_be_kept, stat_key

__all__ = ["CACHE_DIR_ENV", "CACHE_FILE", "HashCache", "cache_dir", "file_sha256"]

CACHE_DIR_ENV = "BENCH_IR_CACHE_DIR"
CACHE_FILE = "file-hashes-v1.sqlite3"
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another process's write to the cache before passing it over
_FLUSH_EVERY = 512  # new hashes written to the cache in one transaction
_SCHEMA = ("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
           "ctime_ns INTEGER, inode INTEGER, sha256 TEXT)")
_CACHE_ERRORS = (sqlite3.Error, OSError)


def cache_dir() -> Path:
    """The folder of bench-ir's caches: ``$BENCH_IR_CACHE_DIR``, else ``$XDG_CACHE_HOME/bench-ir``, else
    ``~/.cache/bench-ir``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "bench-ir"
    return Path.home() / ".cache" / "bench-ir"


def _read_sha256(path: Path) -> str:
    """Hex sha256 of the file's content, read now."""
    from bench_ir.checkpoints import sha256_file

    return sha256_file(path)


class HashCache:
    """The hash cache of one command: :meth:`sha256` of many files with one connection; new hashes are written in
    batches and on :meth:`close` (use as a context manager). ``folder`` defaults to :func:`cache_dir`."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.path = Path(folder if folder is not None else cache_dir()) / CACHE_FILE
        self._connection: sqlite3.Connection | None = None
        self._usable = True
        self._pending: list[tuple[str, int, int, int, int, str]] = []

    def sha256(self, path: str | Path) -> str:
        """Hex sha256 of the content of the file at ``path``: the cached one while the file is unchanged, else
        read now (and kept, unless the file is too recent or changed while read)."""
        resolved = Path(path).resolve()
        before = os.stat(resolved)
        cached = self._lookup(str(resolved), stat_key(before))
        if cached is not None:
            return cached
        digest = _read_sha256(resolved)
        if read_may_be_kept(stat_key(before), os.stat(resolved)):
            self._pending.append((str(resolved), *stat_key(before), digest))
            if len(self._pending) >= _FLUSH_EVERY:
                self.flush()
        return digest

    def flush(self) -> None:
        """Write the hashes found since the last flush into the cache (skipped when the cache is unusable)."""
        rows, self._pending = self._pending, []
        connection = self._connect() if rows else None
        if connection is None:
            return
        try:
            with connection:
                connection.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
        except _CACHE_ERRORS:
            self._give_up()

    def close(self) -> None:
        """Flush and close the connection."""
        self.flush()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _lookup(self, path: str, key: tuple[int, int, int, int]) -> str | None:
        connection = self._connect()
        if connection is None:
            return None
        try:
            row = connection.execute("SELECT sha256 FROM files WHERE path = ? AND size = ? AND mtime_ns = ? AND "
                                     "ctime_ns = ? AND inode = ?", (path, *key)).fetchone()
        except _CACHE_ERRORS:
            self._give_up()
            return None
        return row[0] if row else None

    def _connect(self) -> sqlite3.Connection | None:
        """The open connection, opened (and the table made) on first use; None once the cache proved unusable."""
        if self._connection is None and self._usable:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
                with self._connection:
                    self._connection.execute(_SCHEMA)
            except _CACHE_ERRORS:
                self._give_up()
        return self._connection

    def _give_up(self) -> None:
        """Stop using the cache for the rest of this command: every file is hashed from here on."""
        self._usable = False
        self._pending = []
        if self._connection is not None:
            try:
                self._connection.close()
            except sqlite3.Error:
                pass
            self._connection = None


def file_sha256(path: str | Path, cache: HashCache | None = None) -> str:
    """Hex sha256 of the content of the file at ``path``, through ``cache`` (default: the user's hash cache, opened
    for this one file; pass a :class:`HashCache` to hash many files)."""
    if cache is not None:
        return cache.sha256(path)
    with HashCache() as own:
        return own.sha256(path)
