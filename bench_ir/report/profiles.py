"""Join protocol runs with the profile of the same model, so that a user's model reaches the efficiency table
and chart beside the published points.

A protocol run holds PSNR but no profile; ``bench-ir profile`` writes a separate run (protocol
"efficiency") with params, FLOPs, memory and speed but no PSNR. Two runs join when their manifests agree on
the model card content (``model.card``, or the card name when a manifest has no copy), the card argument
overrides and the checkpoint sha256 (:func:`join_key`); a profile made by ``report --profile`` also joins the run
it was made for (its manifest's ``profiled_for``), whose manifest may have no card copy. Profiles are looked up among
the runs given and the run directories directly under a runs root (a folder whose profile.json or manifest.json is
unreadable is skipped with a :class:`ReportWarning` naming the file); of the matching profiles, one of the run's own
dtype wins over one of another, and the newest of those wins. ``ensure_profiles`` gives every run a profile at the
asked size: a stored one of that size, else it computes one (params and FLOPs on the CPU,
:func:`bench_ir.profile_run.static_profile_and_store`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bench_ir.report.efficiency import profile_size_of
from bench_ir.report.measured import MeasuredRun, is_profile_run
from bench_ir.report.render import ReportWarning
from bench_ir.results import MANIFEST, PROFILE, ManifestError, Run, load_run

if TYPE_CHECKING:
    from bench_ir.cards import ModelCard

__all__ = ["join_key", "find_profile_runs", "attach_profiles", "ensure_profiles"]


def join_key(manifest: dict) -> tuple[str, str, str]:
    """(model card content, card argument overrides, checkpoint sha256) of a run, as comparable strings. The card's
    content is every field but its ``source`` (the same card file run from another folder is recorded by another
    relative path), with its factory's source sha256 where the manifest has it."""
    model = manifest.get("model") or {}
    card = model.get("card")
    content = ({**{k: v for k, v in card.items() if k != "source"}, "factory_sha256": model.get("factory_sha256")}
               if isinstance(card, dict) else None)
    card_text = json.dumps(content, sort_keys=True, default=str) if content else f"name:{model.get('name', '')}"
    args = json.dumps(model.get("args_overrides") or {}, sort_keys=True, default=str)
    sha = str((manifest.get("checkpoint") or {}).get("sha256") or "")
    return (card_text, args, sha)


def _stored_profile_runs(runs: Iterable[Run], runs_root: str | Path | None) -> tuple[list[Run], list[ManifestError]]:
    """Profile runs among ``runs`` and directly under ``runs_root`` (folders with a manifest and a profile.json), each
    once, and the errors of the folders under ``runs_root`` whose profile.json or manifest.json is unreadable."""
    found: dict[Path, Run] = {run.run_dir.resolve(): run for run in runs if run.profile and is_profile_run(run)}
    damaged: list[ManifestError] = []
    root = Path(runs_root) if runs_root is not None else None
    if root is not None and root.is_dir():
        for folder in sorted(root.iterdir()):
            if (folder / PROFILE).is_file() and (folder / MANIFEST).is_file() and folder.resolve() not in found:
                try:
                    run = load_run(folder)
                except ManifestError as err:
                    damaged.append(err)
                    continue
                if is_profile_run(run):
                    found[folder.resolve()] = run
    return list(found.values()), damaged


def find_profile_runs(runs: Iterable[Run], runs_root: str | Path | None = None) -> list[Run]:
    """Profile runs among ``runs`` and directly under ``runs_root`` (folders with a manifest and a
    profile.json), each once. A folder under ``runs_root`` whose profile.json or manifest.json is unreadable is
    left out with one :class:`ReportWarning` naming the file, so that it never blocks a table that does not need
    it (a damaged run given in ``runs`` is an error when it is loaded)."""
    found, damaged = _stored_profile_runs(runs, runs_root)
    for err in damaged:
        warnings.warn(f"{err}; no report joins this profile: repair or remove the file, or profile the model again "
                      "(`bench-ir profile`, or `bench-ir report --profile`)", ReportWarning, stacklevel=2)
    return found


def _profile_join_keys(profile: Run) -> set[tuple[str, str, str]]:
    """The join keys of the runs ``profile`` serves: its own, and that of the run it was made for (manifest
    ``profiled_for``, written by :func:`ensure_profiles`), which differs when that run's manifest has no card copy."""
    keys = {join_key(profile.manifest)}
    made_for = profile.manifest.get("profiled_for")
    if isinstance(made_for, dict):
        keys.add(join_key(made_for))
    return keys


def _matching_profiles(manifest: dict, profiles: Iterable[Run]) -> list[Run]:
    """The ``profiles`` that serve the run of ``manifest`` (:func:`_profile_join_keys`)."""
    key = join_key(manifest)
    return [profile for profile in profiles if key in _profile_join_keys(profile)]


def _preferred_profile(manifest: dict, matching: list[Run]) -> Run | None:
    """Of ``matching`` (profiles of one run's model), the newest of the run's own dtype (manifest ``dtype``: memory
    and speed depend on it), else the newest of any dtype; None when there is none. Of equally new profiles, the last
    given wins."""
    dtype = manifest.get("dtype")
    own_dtype = [profile for profile in matching if dtype and profile.manifest.get("dtype") == dtype]
    by_age = sorted(own_dtype or matching, key=lambda r: str(r.manifest.get("created") or ""))
    return by_age[-1] if by_age else None


def attach_profiles(measured: list[MeasuredRun], profiles: list[Run]) -> None:
    """Set ``profile_run`` of each protocol run without a profile of its own to its preferred matching profile: one
    of the run's own dtype before one of another, the newest of those (:func:`_preferred_profile`)."""
    for run in measured:
        if run.run.profile or is_profile_run(run.run):
            continue
        run.profile_run = _preferred_profile(run.manifest, _matching_profiles(run.manifest, profiles))


def _profiled_card(run: MeasuredRun) -> ModelCard:
    """The card a run was made with, to build its model for a profile: the manifest's copy, whose factory is looked
    up from its recorded ``source`` (relative to the folder the run was started from: the current folder, or a
    folder above the run directory, such as the one holding ``runs/``), else the registered card of the same name
    and content. A factory found by none of them is a ValueError saying how to get the profile."""
    from dataclasses import replace

    from bench_ir.cards import ModelCard, get_card, resolve_factory
    from bench_ir.yamlio import SpecError, build_dataclass

    model = run.manifest.get("model") or {}
    if not model.get("card"):
        return get_card(str(model.get("name") or ""))
    card = build_dataclass(ModelCard, dict(model["card"]), f"manifest of {run.run_id}")
    places = [Path(card.source)] if card.source else []
    if card.source and not Path(card.source).is_absolute():
        places += [folder / card.source for folder in list(run.run.run_dir.resolve().parents)[:4]]
    problem: Exception | None = None
    for place in [p for p in places if p.is_file()] or places[:1] or [None]:
        candidate = card if place is None else replace(card, source=str(place))
        try:
            resolve_factory(candidate)
            return candidate
        except SpecError as err:
            problem = problem or err
    try:
        registered = get_card(card.name)
    except KeyError:
        registered = None
    if registered is not None and {**vars(registered), "source": ""} == {**vars(card), "source": ""}:
        return registered
    raise ValueError(f"--profile: run {run.run_id} was made with model card {card.source or card.name}, whose factory "
                     f"cannot be imported from here ({problem}); the card's path is recorded relative to the folder "
                     f"the run was started from: run `bench-ir report` there, or profile the model with `bench-ir "
                     f"profile --model CARD --checkpoint FILE` and give that run's folder to --runs-root")


def _made_for(run: MeasuredRun) -> dict:
    """What a profile made for ``run`` records of it (manifest ``profiled_for``): the entries its join key reads."""
    return {"run_id": run.run_id, "model": run.manifest.get("model"), "checkpoint": run.manifest.get("checkpoint")}


def _preferred_profile_at(size: int, manifest: dict, profiles: list[Run]) -> Run | None:
    """The preferred of ``profiles`` that serve the run of ``manifest`` and were measured at ``size`` px
    (:func:`_preferred_profile`), None when there is none."""
    fitting = [run for run in _matching_profiles(manifest, profiles) if profile_size_of(run.profile) == size]
    return _preferred_profile(manifest, fitting)


def ensure_profiles(measured: list[MeasuredRun], runs_root: str | Path, size: int = 224) -> list[Path]:
    """Give every protocol run a profile at ``size`` px (what ``--profile-size`` asks for): its joined profile when it
    was measured at that size, else the preferred stored profile serving it at that size (among the runs and under
    ``runs_root``; :func:`_preferred_profile`), else a params/FLOPs profile computed now and stored under
    ``runs_root``, recording the run it was made for (``profiled_for``) so that later reports join it to that run; a
    profile of another size is never the one asked for. A run with a profile.json of its own keeps it. The card is
    the manifest's copy (with its argument overrides applied) or the registered card of that name. Returns the new
    profile run directories."""
    from bench_ir.profile_run import static_profile_and_store

    created = []
    stored: list[Run] | None = None  # read once, and only when a joined profile is of another size
    for run in measured:
        if run.run.profile or is_profile_run(run.run) or profile_size_of(run.profile) == size:
            continue
        if run.profile_run is not None:
            if stored is None:
                stored = _stored_profile_runs([m.run for m in measured], runs_root)[0]
            run.profile_run = _preferred_profile_at(size, run.manifest, stored)
            if run.profile_run is not None:
                continue
        card = _profiled_card(run)
        overrides = (run.manifest.get("model") or {}).get("args_overrides")
        digest = hashlib.sha256("|".join(join_key(run.manifest)).encode()).hexdigest()[:8]
        folder = static_profile_and_store(
            card, checkpoint=run.manifest.get("checkpoint"), args_overrides=overrides, size=size,
            runs_root=runs_root, run_dir=Path(runs_root) / f"{card.name}-params-flops-{size}-{digest}",
            command=["bench-ir", "report", "--profile", run.run_id], profiled_for=_made_for(run))
        run.profile_run = load_run(folder)
        created.append(folder)
    return created
