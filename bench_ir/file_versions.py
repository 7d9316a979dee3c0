"""What tells one version of a file from another, for what is remembered of a file while it is unchanged (the hash
cache of bench_ir.file_hashes, protocols, registry cards, checkpoint hashes of a suite's status).

A file is taken as unchanged while its size, mtime, ctime and inode are (a rewrite gives another mtime; a copy put in
place with its old mtime, another ctime and inode), except within :data:`RACY_S` of its last write: filesystem times
are coarse (a clock tick, 2 s on FAT), so a second write in the same tick could leave size and mtime as they were.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["RACY_S", "memoised_per_file_version", "read_may_be_kept", "stat_key", "written_recently"]

RACY_S = 2.0  # a file written this recently may be written again without a new mtime: what was read is not kept

_Read = TypeVar("_Read")


def written_recently(mtime_ns: int) -> bool:
    """Whether a file last modified at ``mtime_ns`` may still be rewritten without a new mtime (within
    :data:`RACY_S` of now), so that what was read of it must not be kept as that file's."""
    return time.time_ns() - mtime_ns <= RACY_S * 1e9


def stat_key(stat: os.stat_result) -> tuple[int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode): what must be unchanged for something read of a file to hold."""
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def read_may_be_kept(before: tuple[int, int, int, int], after: os.stat_result) -> bool:
    """Whether what was read of a file between a stat whose :func:`stat_key` is ``before`` and the stat ``after``
    may be kept as that version's: the file did not change meanwhile and was not :func:`written_recently`."""
    return stat_key(after) == before and not written_recently(after.st_mtime_ns)


def memoised_per_file_version(maxsize: int = 256) -> Callable[[Callable[[str], _Read]], Callable[[str], _Read]]:
    """Decorator: remember ``read(path)`` in this process per version of the file (:func:`stat_key`), not when the
    file was written within :data:`RACY_S` of now or changed while it was read. At most ``maxsize`` results are kept
    (the oldest go first). A file that cannot be stat'ed raises OSError."""

    def decorate(read: Callable[[str], _Read]) -> Callable[[str], _Read]:
        kept: dict[tuple[str, tuple[int, int, int, int]], _Read] = {}

        @functools.wraps(read)
        def remembered(path: str) -> _Read:
            key = (path, stat_key(os.stat(path)))
            if key in kept:
                return kept[key]
            value = read(path)
            if read_may_be_kept(key[1], os.stat(path)):
                while len(kept) >= maxsize:
                    del kept[next(iter(kept))]
                kept[key] = value
            return value

        remembered.cache_clear = kept.clear  # type: ignore[attr-defined]
        return remembered

    return decorate
