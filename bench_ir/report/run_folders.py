"""Runs named by the folder that holds them: ``bench-ir report --protocol 5deg runs/`` places every run in ``runs/``
made with that protocol, so a table of all of a researcher's runs needs no list of run directories. A suite
directory stands for the runs of its cells (its ``runs/``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_ir.folder_names import SUITE_PLAN_NAME
from bench_ir.results import MANIFEST, ManifestError, is_run_folder_parent, read_manifest_file

__all__ = ["FolderRuns", "expand_run_folders"]

_EFFICIENCY_SOURCES = ("3deg",)  # the efficiency table's PSNR is the 3deg Average; profile runs give the rest


@dataclass
class FolderRuns:
    """What one folder of runs stood for: the run directories ``taken`` (in name order) and how many runs it holds
    that were left out (``other_protocols``: made with another protocol; ``unreadable``: a manifest that does not
    read)."""

    folder: Path
    taken: list[Path] = field(default_factory=list)
    other_protocols: int = 0
    unreadable: int = 0

    def describe(self, protocol: str) -> str:
        """One sentence: ``runs: 3 runs on 5deg (2 on other protocols left out)``."""
        left = [f"{count} {what}" for count, what in ((self.other_protocols, "on other protocols"),
                                                       (self.unreadable, "unreadable")) if count]
        return f"{self.folder}: {len(self.taken)} run(s) on {protocol}" + (f" ({', '.join(left)} left out)"
                                                                          if left else "")


def _wanted(manifest: dict, protocol: str) -> bool:
    name = (manifest.get("protocol") or {}).get("name")
    profile = manifest.get("kind") == "profile" or name == "efficiency"
    if protocol == "efficiency":
        return profile or name in _EFFICIENCY_SOURCES
    return name == protocol and not profile


def expand_run_folders(paths: Sequence[str | Path], protocol: str) -> tuple[list[Path], list[FolderRuns]]:
    """``paths`` with each folder of runs (see :func:`is_run_folder_parent`; a suite directory: its ``runs/``)
    replaced by its runs made with ``protocol`` (a protocol name; for "efficiency": its 3deg runs and profile
    runs), in name order; every other path is kept as given, for the report to accept or refuse. A run named twice
    is placed once. A folder of runs with none on ``protocol`` is a ValueError that says what it holds."""
    expanded: list[Path] = []
    folders: list[FolderRuns] = []
    for given in paths:
        path = Path(given)
        if (path / SUITE_PLAN_NAME).is_file() and is_run_folder_parent(path / "runs"):  # a suite directory
            path = path / "runs"
        if not is_run_folder_parent(path):
            expanded.append(path)
            continue
        found = FolderRuns(path)
        for child in sorted(child for child in path.iterdir() if (child / MANIFEST).is_file()):
            try:
                manifest = read_manifest_file(child / MANIFEST)
            except (OSError, ManifestError):
                found.unreadable += 1
                continue
            if _wanted(manifest, protocol):
                found.taken.append(child)
            else:
                found.other_protocols += 1
        if not found.taken:
            raise ValueError(f"{path} holds {found.other_protocols + found.unreadable} run(s), none made with protocol "
                             f"'{protocol}' (`bench-ir list runs --runs-root {path}` lists them)")
        expanded += found.taken
        folders.append(found)
    unique: dict[Path, Path] = {}
    for path in expanded:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), folders
