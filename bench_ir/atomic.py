"""Atomic file writes: write a temporary file beside the target, then rename it over the target, so a reader
(or an interrupted run) never sees half a file. And new run directories claimed atomically, so that two runs
started in the same second never share one."""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_target", "atomic_write", "write_text_atomic", "write_bytes_atomic", "append_line", "naming_path",
           "claim_new_dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (created if needed); on success rename it over ``path``,
    on any error remove it. For writers that take a file name (e.g. safetensors)."""
    path = Path(path)
    with naming_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    try:
        with naming_path(path):
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; the result gets a normal file's mode
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def naming_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an OSError without a file name (e.g. ENOSPC from ``write``/``fsync``) or with only a temporary file's
    name as the same error naming ``path``, so the user learns which file could not be written."""
    try:
        yield
    except OSError as err:
        if err.filename is not None and not Path(str(err.filename)).name.startswith("."):
            raise
        raise type(err)(err.errno, err.strerror or str(err), os.fspath(path)) from err


def folder_slug(text: str) -> str:
    """``text`` as a folder name: every run of characters other than letters, digits and ``._-`` (a path
    separator, a space) becomes one ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def claim_new_dir(parent: str | os.PathLike[str], name: str) -> Path:
    """Create and return ``parent/<YYYYmmdd-HHMMSS>-<name>`` (local time; ``name`` through :func:`folder_slug`, so a
    card named ``my/net`` makes one folder), or the first free ``...-2``, ``...-3`` when another run started in the
    same second holds it: ``mkdir`` either creates the folder or fails, so concurrent callers never get the same
    one. ``parent`` is created if needed."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{folder_slug(name)}"
    for number in itertools.count(1):
        folder = parent / (base if number == 1 else f"{base}-{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one text line to ``path`` and flush and fsync it (an interrupted writer loses at most this line);
    an OSError names ``path``."""
    with naming_path(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Yield an open temporary file beside ``path``; on success flush, fsync and rename it over ``path``."""
    with atomic_target(path) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """``Path.write_text`` (UTF-8) that never leaves half a file: the old version stays until the new one is whole."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """``Path.write_bytes`` that never leaves half a file."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
