"""What makes a run directory safe to continue: its resume identity, and one writer at a time.

The **resume identity** of a run is everything that can change one of its records. It is read from the manifest
through one table, :data:`IDENTITY_FIELDS` (name, what it is in words, how to read it from a manifest, how to
say a value in words); adding a run option that changes records means adding one row. ``--limit`` and
``--task`` are not part of it: on resume they choose what is scored now, never what the run is.

The **lock** (:class:`RunLock`) is an exclusive ``fcntl.flock`` on ``run.lock`` inside the run directory,
held by the process that writes the run for as long as it writes; the file holds that process's PID. The
kernel drops the lock when the process dies, even by SIGKILL, so a stale lock never blocks a resume. A process
forked while a lock is held (a DataLoader worker) closes its inherited copy of the descriptor at once
(:func:`_close_locks_in_child`): a flock lives as long as any descriptor of it, so an orphaned worker would otherwise
keep a killed run locked. `--resume` without a run directory passes over runs whose lock is held
(:func:`find_resumable`), and a ``running`` run whose lock is free is ``stopped`` (:func:`run_status`).
"""

from __future__ import annotations

import fcntl
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_ir.file_hashes import HashCache
from bench_ir.protocol import legacy_content, measurement_changes, restricted_to
from bench_ir.results import ManifestError, RunStore, read_manifest_file
from bench_ir.shortlist import shortlist

__all__ = [
    "IDENTITY_FIELDS",
    "IdentityField",
    "LOCK_FILE",
    "ResumeError",
    "RunLock",
    "RunLockedError",
    "content_changes",
    "data_identity",
    "find_resumable",
    "identity_differences",
    "lock_holder",
    "mapping_changes",
    "resume_identity",
    "run_status",
]

LOCK_FILE = "run.lock"
PROBE_WAIT_S = 0.5  # how long acquire waits out a lock held for an instant (a status probe) before refusing
_VERSIONS = ("torch", "numpy", "scikit-image", "bench-ir")  # libraries whose version can change a record


class ResumeError(ValueError):
    """--resume was asked for a run directory that belongs to a different run (or there is no run to resume)."""


class RunLockedError(RuntimeError):
    """Another live process holds the run directory's lock."""


# ------------------------------------------------------------------------------------------------- the lock
def lock_holder(run_dir: str | Path, file_name: str = LOCK_FILE) -> int | None:
    """The PID written in ``run_dir``'s lock file (whether or not the lock is held now), or None."""
    try:
        text = (Path(run_dir) / file_name).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


_HELD_LOCKS: weakref.WeakSet[RunLock] = weakref.WeakSet()  # the locks this process holds now


def _close_locks_in_child() -> None:
    """In a process just forked, close the inherited descriptors of the parent's locks (the parent keeps its
    locks; the child never held them)."""
    for lock in list(_HELD_LOCKS):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


class RunLock:
    """Exclusive lock on a run directory for the life of the writing process (see the module docstring).

    Use as a context manager or call :meth:`acquire`/:meth:`release`. Acquiring a lock that another open file
    (another process, or another RunLock in this process) holds raises :class:`RunLockedError` naming its PID and
    ending with ``then`` (what to do once the holder is gone; a suite directory says "run the same command
    again")."""

    def __init__(self, run_dir: str | Path, then: str = "--resume", file_name: str = LOCK_FILE) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / file_name
        self.then = then
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise RunLockedError naming the holder. A lock held for an instant (:meth:`is_held`'s
        probe, as `suite status` makes it) is waited for, up to PROBE_WAIT_S."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + PROBE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                os.close(fd)
                holder = lock_holder(self.run_dir, self.path.name)
                raise RunLockedError(f"{self.run_dir} is being written by another bench-ir process "
                                     f"(PID {holder if holder is not None else 'unknown'}); wait for it to finish or "
                                     f"stop it, then {self.then}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        _HELD_LOCKS.add(self)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
            _HELD_LOCKS.discard(self)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def is_held(run_dir: str | Path) -> bool:
        """True when a live process holds ``run_dir``'s lock now (probes with a non-blocking shared lock)."""
        path = Path(run_dir) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def run_status(run_dir: str | Path, manifest: dict[str, Any]) -> str:
    """The manifest's status (``?`` when it has none); a ``running`` run that no process holds (killed, or its final
    manifest write failed) is ``stopped`` (it can be resumed). What `list runs` and `report` say of a run."""
    status = str(manifest.get("status", "?"))
    if status == "running" and not RunLock.is_held(run_dir):
        return "stopped"
    return status


# --------------------------------------------------------------------------------------------- the identity
def _sub(manifest: dict[str, Any], *keys: str) -> Any:
    value: Any = manifest
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _protocol(manifest: dict[str, Any]) -> Any:
    """The protocol's name, content sha256 and content: the resolved content the manifest keeps, else (a manifest
    written before it was kept) the part its protocol record kept (bench_ir.protocol.legacy_content, ``partial``)."""
    record = _sub(manifest, "protocol")
    record = record if isinstance(record, dict) else {}
    resolved = record.get("resolved")
    complete = isinstance(resolved, dict)
    return {"name": record.get("name"), "sha256": record.get("sha256"),
            "content": resolved if complete else legacy_content(record), "partial": not complete}


def _protocol_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str] | None:
    """The measurement fields the protocol changed in (bench_ir.protocol.measurement_changes). A manifest written
    before bench-ir kept the resolved protocol is compared in the fields its record kept: the other side's content
    is cut to them (bench_ir.protocol.restricted_to), so a field it lacks (a task's layouts or crop, the convention)
    cannot count as changed. None when a manifest keeps no content at all (only its content sha256)."""
    old, new = before.get("content"), after.get("content")
    if old is None or new is None:
        return None
    return measurement_changes(restricted_to(old, new) if after.get("partial") else old,
                               restricted_to(new, old) if before.get("partial") else new)


def _same_protocol(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Same name, and the same measurement: a file whose descriptive fields alone were edited (its description,
    notes, labels) defines the same run (a manifest without the resolved protocol: in the fields it recorded, see
    :func:`_protocol_changes`). Without any content on one side, the content sha256 decides."""
    if before.get("name") != after.get("name"):
        return False
    changes = _protocol_changes(before, after)
    return before.get("sha256") == after.get("sha256") if changes is None else not changes


def _say_protocol(value: dict[str, Any]) -> str:
    sha = (value.get("sha256") or "")[:12]
    return f"'{value.get('name')}'" + (f" (content sha256 {sha}…)" if sha else "")


def _say_protocol_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    changes = _protocol_changes(before, after)
    if before.get("name") != after.get("name") or not changes:
        return f"{_say_protocol(before)} → {_say_protocol(after)}"
    return f"the file of '{after.get('name')}' now defines another measurement ({'; '.join(changes)} changed)"


def _card(manifest: dict[str, Any]) -> Any:
    card = _sub(manifest, "model", "card") or {}
    return {"name": _sub(manifest, "model", "name"), "factory": card.get("factory"), "args": card.get("args"),
            "overrides": _sub(manifest, "model", "args_overrides"), "input_multiple": card.get("input_multiple"),
            "pad_mode": card.get("pad_mode"), "factory_sha256": _sub(manifest, "model", "factory_sha256")}


def _without_unknown_source(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both cards without ``factory_sha256`` when one side does not know it (a manifest from before it was
    recorded, a factory of bench-ir's own, a file not found): then it is not compared."""
    if before.get("factory_sha256") is None or after.get("factory_sha256") is None:
        return {**before, "factory_sha256": None}, {**after, "factory_sha256": None}
    return before, after


def _same_card(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """The same card content and, where both manifests know it, the same source file of its factory: a run of a
    researcher's own model whose code was edited is another model."""
    before, after = _without_unknown_source(before, after)
    return before == after


def _say_card(value: dict[str, Any]) -> str:
    text = f"card '{value.get('name')}' (factory {value.get('factory')}, args {value.get('args')}"
    if value.get("overrides"):
        text += f", overrides {value['overrides']}"
    return text + f", input multiple {value.get('input_multiple')}, pad {value.get('pad_mode')})"


def _say_card_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    known_before, known_after = _without_unknown_source(before, after)
    if {**known_before, "factory_sha256": None} == {**known_after, "factory_sha256": None}:
        return (f"the source file of factory {after.get('factory')} of card '{after.get('name')}' changed (sha256 "
                f"{str(before['factory_sha256'])[:12]}… → {str(after['factory_sha256'])[:12]}…): the model's code is "
                "not the one the run was made with")
    return f"{_say_card(before)} → {_say_card(after)}"


def _weights(manifest: dict[str, Any]) -> Any:
    if _sub(manifest, "checkpoint", "sha256"):
        return f"checkpoint sha256 {manifest['checkpoint']['sha256']}"
    if manifest.get("random_weights"):
        return f"random-init seed {manifest.get('init_seed')}"
    return "no weights (a model without parameters)"


def _tile(manifest: dict[str, Any]) -> Any:
    tile = manifest.get("tile")
    return {"tile": tile, "overlap": manifest.get("tile_overlap") if tile else None}


def _say_tile(value: dict[str, Any]) -> str:
    return f"tiles of {value['tile']} px, overlap {value['overlap']}" if value.get("tile") else "whole images"


def _execution(manifest: dict[str, Any]) -> Any:
    plan = manifest.get("execution") or {}
    return {"device": _sub(manifest, "device", "type"), "mode": plan.get("mode"),
            "compile_mode": plan.get("compile_mode"), "channels_last": plan.get("channels_last")}


def _say_execution(value: dict[str, Any]) -> str:
    return (f"{value.get('mode')} mode on {value.get('device')} (compile {value.get('compile_mode')}, "
            f"channels-last {value.get('channels_last')})")


def _versions(manifest: dict[str, Any]) -> Any:
    versions = manifest.get("versions") or {}
    names = [*_VERSIONS, *(["pyiqa"] if manifest.get("lpips") else [])]
    return {name: versions.get(name) for name in names}


def _say_versions(value: dict[str, Any]) -> str:
    return ", ".join(f"{name} {version}" for name, version in value.items())


def _say(value: Any) -> str:
    return "not set" if value is None else str(value)


@dataclass(frozen=True)
class IdentityField:
    """One part of the resume identity: ``read`` takes it from a manifest, ``say`` puts a value in words; ``same``
    (default: equality) decides whether two values are one identity and ``say_change`` (default: "old → new" with
    ``say``) words a difference."""

    name: str
    read: Callable[[dict[str, Any]], Any]
    say: Callable[[Any], str] = _say
    same: Callable[[Any, Any], bool] | None = None
    say_change: Callable[[Any, Any], str] | None = None

    def differs(self, before: Any, after: Any) -> bool:
        return not self.same(before, after) if self.same is not None else before != after

    def change(self, before: Any, after: Any) -> str:
        if self.say_change is not None:
            return self.say_change(before, after)
        return f"{self.say(before)} → {self.say(after)}"


IDENTITY_FIELDS: list[IdentityField] = [
    IdentityField("protocol", _protocol, _say_protocol, same=_same_protocol, say_change=_say_protocol_change),
    IdentityField("sample data", lambda m: bool(m.get("sample")),
                  lambda v: "built-in sample data" if v else "real data"),
    IdentityField("model", _card, _say_card, same=_same_card, say_change=_say_card_change),
    IdentityField("weights", _weights),
    IdentityField("convention", lambda m: {"id": _sub(m, "convention", "id"), "name": _sub(m, "convention", "name")},
                  lambda v: f"{v['id']} ({v['name']})"),
    IdentityField("dtype", lambda m: m.get("dtype")),
    IdentityField("execution", _execution, _say_execution),
    IdentityField("tiling", _tile, _say_tile),
    IdentityField("padding override", lambda m: m.get("pad")),
    IdentityField("LPIPS", lambda m: m.get("lpips"), lambda v: "off" if v is None else f"on ({v})"),
    IdentityField("library versions", _versions, _say_versions),
    IdentityField("noise order", lambda m: m.get("noise_order") or "sorted", _say),  # runs before it: sorted
]
"""The resume identity, one row per field (``data`` is compared per task by :func:`identity_differences`)."""


def resume_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The resume identity of a run as plain data: every :data:`IDENTITY_FIELDS` value plus ``data`` (per task:
    the folders and the paired files with their sizes and content hashes, see :func:`data_identity`)."""
    identity = {f.name: f.read(manifest) for f in IDENTITY_FIELDS}
    identity["data"] = manifest.get("data") or {}
    return identity


def data_identity(dataset: Any, data_root: str | Path | None) -> dict[str, Any]:
    """The data a task resolved to, before any --limit: its input and target folders (relative to ``data_root``
    when inside it, else absolute; None for built-in sample data), every pair as
    ``[name, input file, input bytes, target file, target bytes]`` and, apart so that the rows keep the shape older
    manifests have, each pair's content as ``sha256: {name: [input sha256, target sha256]}`` (file fields and
    hashes None where an image is synthesised or built in; hashes through the stat cache of
    :mod:`bench_ir.file_hashes`)."""
    root = Path(data_root).expanduser().resolve() if data_root is not None else None

    def where(folder: Path | None) -> str | None:
        if folder is None:
            return None
        folder = Path(folder).resolve()
        if root is not None and folder.is_relative_to(root):
            return folder.relative_to(root).as_posix()
        return str(folder)

    layout = getattr(dataset, "layout", None)
    pairs, hashes = [], {}
    with HashCache() as cache:
        for index, name in enumerate(dataset.names):
            paths = dataset.source_paths(index)
            row: list[Any] = [name]
            for path in paths:
                row += [path.name, path.stat().st_size] if path is not None else [None, None]
            pairs.append(row)
            hashes[name] = [cache.sha256(path) if path is not None else None for path in paths]
    return {"input_dir": where(layout.input_dir) if layout else None,
            "target_dir": where(layout.target_dir) if layout else None, "pairs": pairs, "sha256": hashes}


def content_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The pairs, in ``before``'s order, that two data identities of a task (:func:`data_identity`) both list with
    content hashes and whose hashes differ: a file replaced by another of the same name and size. Empty when
    either identity has no hashes (a manifest from before they were recorded: compared by names and sizes alone)."""
    old, new = before.get("sha256"), after.get("sha256")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    return [name for name in old if name in new and old[name] != new[name]]


def mapping_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(keys whose value differs, keys only ``before`` has, keys only ``after`` has), each in its mapping's order:
    how a run's files changed, by name."""
    changed = [key for key in before if key in after and before[key] != after[key]]
    return changed, [key for key in before if key not in after], [key for key in after if key not in before]


def _data_differences(old: dict[str, Any], new: dict[str, Any],
                      scored: set[tuple[str, str]] | None = None) -> list[str]:
    """The data changes between two manifests' ``data`` (task -> :func:`data_identity`), in words: folders, pairs
    missing or new, and pairs whose files changed (name, size, or content where both manifests hash it). With
    ``scored`` (the run's (task, image) records), a changed file of a pair without a record is no difference:
    nothing of the run came from it (a corrupt image replaced after the run failed on it)."""
    lines = []
    for task in old:
        before, after = old[task], new[task]
        if before == after:
            continue
        for side in ("input_dir", "target_dir"):
            if before.get(side) != after.get(side):
                lines.append(f"{side.replace('_dir', '')} folder of task '{task}': {before.get(side)} → "
                             f"{after.get(side)}")
        old_pairs = {row[0]: row for row in before.get("pairs") or []}
        new_pairs = {row[0]: row for row in after.get("pairs") or []}
        changed, removed, added = mapping_changes(old_pairs, new_pairs)
        differ = {*changed, *content_changes(before, after)}
        changed = [n for n in old_pairs if n in differ and (scored is None or (task, n) in scored)]
        if removed or added or changed:
            parts = [f"{label} {shortlist(names, 5, more=' …')}"
                     for label, names in (("missing now:", removed), ("new:", added), ("changed files:", changed))
                     if names]
            lines.append(f"data of task '{task}': {len(old_pairs)} pairs → {len(new_pairs)} pairs ({'; '.join(parts)})")
    return lines


def identity_differences(old: dict[str, Any], new: dict[str, Any], fields: Sequence[str] | None = None,
                         scored: set[tuple[str, str]] | None = None) -> list[str]:
    """Each field in which two manifests' resume identities differ, as ``"field: old → new"`` in words; the data
    is compared for the tasks that both manifests resolved. ``fields`` limits the comparison to those
    :data:`IDENTITY_FIELDS` names (a restore folder has no protocol or data). ``scored``: the (task, image) pairs
    the old run has records of; a file that changed under a pair without one is allowed (see
    :func:`_data_differences`)."""
    lines = []
    for spec in IDENTITY_FIELDS if fields is None else [f for f in IDENTITY_FIELDS if f.name in fields]:
        before, after = spec.read(old), spec.read(new)
        if spec.differs(before, after):
            lines.append(f"{spec.name}: {spec.change(before, after)}")
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    shared = [task for task in old_data if task in new_data]
    return lines + _data_differences({t: old_data[t] for t in shared}, {t: new_data[t] for t in shared}, scored)


def _unfinished_runs(runs_root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run directories under ``runs_root`` whose readable manifest's status is not ``complete``, with their
    manifests, newest first (by ``created``, then folder name)."""
    candidates = []
    for path in runs_root.glob("*/manifest.json") if runs_root.is_dir() else []:
        try:
            manifest = read_manifest_file(path)
        except (OSError, ManifestError):
            continue
        if manifest.get("status") != "complete":
            candidates.append((str(manifest.get("created") or ""), path.parent.name, path.parent, manifest))
    return [(run_dir, manifest) for _, _, run_dir, manifest in sorted(candidates, key=lambda c: (c[0], c[1]),
                                                                      reverse=True)]


def _same_setup(run_dir: Path, manifest: dict[str, Any],
                manifest_for: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
    """Whether the run in ``run_dir`` has the identity of ``manifest_for(manifest)`` (its records' data included)."""
    try:
        new = manifest_for(manifest)
    except (KeyError, TypeError, ValueError, FileNotFoundError):
        return False  # the old run's tasks cannot be resolved with this setup: not the same run
    if identity_differences({**manifest, "data": None}, {**new, "data": None}):
        return False  # another setup: its records are not read
    return not identity_differences(manifest, new, scored=RunStore(run_dir).scored_keys(warn=False))


def _being_written(runs_root: Path, live: Sequence[Path]) -> RunLockedError:
    """The refusal of a --resume whose only runs of this setup under ``runs_root`` are held by live processes."""
    held = shortlist([f"{run_dir} (PID {lock_holder(run_dir) or 'unknown'})" for run_dir in live], 3)
    if len(live) == 1:
        state, then = "is being written by another bench-ir process", "once it stops to continue it"
    else:
        state, then = "are being written by other bench-ir processes", "once one of them stops to continue that one"
    return RunLockedError(f"--resume: no unfinished run of this setup under {runs_root} is free to continue: {held} "
                          f"{state}; run with --resume again {then}, or run without --resume to start a new run")


def find_resumable(runs_root: str | Path, manifest_for: Callable[[dict[str, Any]], dict[str, Any]]) -> Path | None:
    """The newest unfinished run (status other than ``complete``) under ``runs_root`` whose identity equals that
    of ``manifest_for(old_manifest)`` (the new run's manifest, built for the old run's tasks) and that no live
    process is writing (:meth:`RunLock.is_held`), or None when there is no run of this setup. Unreadable manifests
    are passed over. Raises :class:`RunLockedError` naming them when every unfinished run of this setup is being
    written."""
    root = Path(runs_root)
    live = []
    for run_dir, manifest in _unfinished_runs(root):
        if not _same_setup(run_dir, manifest, manifest_for):
            continue
        if not RunLock.is_held(run_dir):
            return run_dir
        live.append(run_dir)
    if live:
        raise _being_written(root, live)
    return None
