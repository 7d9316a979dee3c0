"""Runs named by the folder that holds them: ``bench-ir report --protocol 5deg runs/`` places every run in ``runs/``
made with that protocol, so a table of all of a researcher's runs needs no list of run directories. A suite
directory stands for the runs of its cells (its ``runs/``); a suite's ``runs/`` (given as the suite directory or as
``SUITE_DIR/runs``) stands for its complete cells only, as `bench-ir suite report` reads it: a cell that failed, is
unfinished, running or outdated (made with other settings than the suite's plan now), and a run that is no cell of
the plan, is left out and named with its state and why (bench_ir.suite.plan.cell_status_reason)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_ir.folder_names import SUITE_PLAN_NAME
from bench_ir.results import MANIFEST, ManifestError, is_run_folder_parent, read_manifest_file
from bench_ir.shortlist import shortlist
from bench_ir.suite.plan import Cell, SuitePlan, cell_status_reason

__all__ = ["FolderRuns", "expand_run_folders"]

_EFFICIENCY_SOURCES = ("3deg",)  # the efficiency table's PSNR is the 3deg Average; profile runs give the rest
_SHOWN_CELLS = 3  # suite cells named in a note before "... and N more"


@dataclass
class FolderRuns:
    """What one folder of runs stood for: the run directories ``taken`` (in name order) and how many runs it holds
    that were left out (``other_protocols``: made with another protocol; ``unreadable``: a manifest that does not
    read). For a suite's ``runs/``: ``not_complete`` names each run on the protocol that is not a complete cell of
    the suite's plan ("cell state (why)"), left out; ``plan_problem`` says why the plan could not be read (then
    every run on the protocol is taken, unchecked)."""

    folder: Path
    taken: list[Path] = field(default_factory=list)
    other_protocols: int = 0
    unreadable: int = 0
    not_complete: list[str] = field(default_factory=list)
    plan_problem: str | None = None

    def describe(self, protocol: str) -> str:
        """One sentence: ``runs: 3 runs on 5deg (2 on other protocols left out)``, followed by the suite cells left
        out or why the suite's plan was not read."""
        left = [f"{count} {what}" for count, what in ((self.other_protocols, "on other protocols"),
                                                       (self.unreadable, "unreadable")) if count]
        text = f"{self.folder}: {len(self.taken)} run(s) on {protocol}" + (f" ({', '.join(left)} left out)"
                                                                          if left else "")
        if self.not_complete:
            text += (f"; {len(self.not_complete)} run(s) that are no complete cell of the suite left out, as "
                     f"`bench-ir suite report` does: {self.cells_left_out()}")
        if self.plan_problem:
            text += (f"; the suite's plan cannot be read ({self.plan_problem}), so its cells' states were not "
                     "checked: failed or outdated cells may be among the runs")
        return text

    def cells_left_out(self) -> str:
        """The suite runs left out (``not_complete``), and where to see and complete them."""
        suite_dir = self.folder.parent
        return (f"{shortlist(self.not_complete, _SHOWN_CELLS, '; ')} (`bench-ir suite status {suite_dir}` shows "
                f"each cell's state; `bench-ir suite run SUITE_FILE --out {suite_dir}` completes them)")


def _wanted(manifest: dict, protocol: str) -> bool:
    name = (manifest.get("protocol") or {}).get("name")
    profile = manifest.get("kind") == "profile" or name == "efficiency"
    if protocol == "efficiency":
        return profile or name in _EFFICIENCY_SOURCES
    return name == protocol and not profile


def _suite_runs_folder(path: Path) -> Path:
    """``path``, or the ``runs/`` of the suite directory ``path``."""
    if (path / SUITE_PLAN_NAME).is_file() and is_run_folder_parent(path / "runs"):
        return path / "runs"
    return path


def _suite_cells(folder: FolderRuns) -> dict[Path, tuple[SuitePlan, Cell]] | None:
    """The run cells of the suite whose ``runs/`` is ``folder.folder``, by resolved run directory; None for a folder
    that is no suite's ``runs/``, or whose plan cannot be read (then ``folder.plan_problem`` says why)."""
    suite_dir = folder.folder.parent
    if folder.folder.name != "runs" or not (suite_dir / SUITE_PLAN_NAME).is_file():
        return None
    try:
        plan = SuitePlan.load(suite_dir)
        return {plan.run_dir(cell).resolve(): (plan, cell) for cell in plan.cells if cell.kind == "run"}
    except (OSError, ValueError) as err:
        folder.plan_problem = str(err)
        return None


def _not_complete(run_dir: Path, cells: dict[Path, tuple[SuitePlan, Cell]]) -> str | None:
    """Why the suite run ``run_dir`` is no complete cell of its suite's plan ("cell state (why)"), None when it is."""
    if run_dir.resolve() not in cells:
        return f"{run_dir.name}: no cell of the suite's plan now"
    plan, cell = cells[run_dir.resolve()]
    status, reason = cell_status_reason(plan, cell)
    if status == "complete":
        return None
    return f"{cell.name} {status}" + (f" ({reason})" if reason else "")


def _folder_runs(path: Path, protocol: str) -> FolderRuns:
    """The runs of the folder of runs ``path`` made with ``protocol``, and what it left out."""
    found = FolderRuns(path)
    cells = _suite_cells(found)
    for child in sorted(child for child in path.iterdir() if (child / MANIFEST).is_file()):
        try:
            manifest = read_manifest_file(child / MANIFEST)
        except (OSError, ManifestError):
            found.unreadable += 1
            continue
        if not _wanted(manifest, protocol):
            found.other_protocols += 1
        elif cells is not None and (why := _not_complete(child, cells)):
            found.not_complete.append(why)
        else:
            found.taken.append(child)
    if found.taken:
        return found
    if found.not_complete:
        raise ValueError(f"{path} holds no complete cell of its suite made with protocol '{protocol}', and "
                         f"`bench-ir suite report` reports none of the others: {found.cells_left_out()}")
    raise ValueError(f"{path} holds {found.other_protocols + found.unreadable} run(s), none made with protocol "
                     f"'{protocol}' (`bench-ir list runs --runs-root {path}` lists them)")


def expand_run_folders(paths: Sequence[str | Path], protocol: str) -> tuple[list[Path], list[FolderRuns]]:
    """``paths`` with each folder of runs (see :func:`is_run_folder_parent`; a suite directory: its ``runs/``)
    replaced by its runs made with ``protocol`` (a protocol name; for "efficiency": its 3deg runs and profile
    runs), in name order; a suite's ``runs/`` gives its complete cells only (see the module docstring). Every other
    path is kept as given, for the report to accept or refuse. A run named twice is placed once. A folder of runs
    with none on ``protocol`` (or, a suite's, no complete cell on it) is a ValueError that says what it holds."""
    expanded: list[Path] = []
    folders: list[FolderRuns] = []
    for given in paths:
        path = _suite_runs_folder(Path(given))
        if not is_run_folder_parent(path):
            expanded.append(path)
            continue
        found = _folder_runs(path, protocol)
        expanded += found.taken
        folders.append(found)
    unique: dict[Path, Path] = {}
    for path in expanded:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), folders
