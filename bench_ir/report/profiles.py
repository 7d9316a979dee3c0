"""Join protocol runs with the profile of the same model, so that a user's model reaches the efficiency table
and chart beside the published points.

A protocol run holds PSNR but no profile; ``bench-ir profile`` writes a separate run (protocol
"efficiency") with params, FLOPs, memory and speed but no PSNR. Two runs join when their manifests agree on
the model card content (``model.card``, or the card name when a manifest has no copy), the card argument
overrides and the checkpoint sha256 (:func:`join_key`). Profiles are looked up among the runs given and
the run directories directly under a runs root; the newest matching profile wins. ``ensure_profiles``
computes the missing ones (params and FLOPs on the CPU, :func:`bench_ir.profile_run.static_profile_and_store`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from bench_ir.report.measured import MeasuredRun, is_profile_run
from bench_ir.results import MANIFEST, PROFILE, Run, load_run

__all__ = ["join_key", "find_profile_runs", "attach_profiles", "ensure_profiles"]


def join_key(manifest: dict) -> tuple[str, str, str]:
    """(model card content, card argument overrides, checkpoint sha256) of a run, as comparable strings."""
    model = manifest.get("model") or {}
    card = model.get("card")
    card_text = json.dumps(card, sort_keys=True, default=str) if card else f"name:{model.get('name', '')}"
    args = json.dumps(model.get("args_overrides") or {}, sort_keys=True, default=str)
    sha = str((manifest.get("checkpoint") or {}).get("sha256") or "")
    return (card_text, args, sha)


def find_profile_runs(runs: Iterable[Run], runs_root: str | Path | None = None) -> list[Run]:
    """Profile runs among ``runs`` and directly under ``runs_root`` (folders with a manifest and a
    profile.json), each once."""
    found: dict[Path, Run] = {run.run_dir.resolve(): run for run in runs if run.profile and is_profile_run(run)}
    root = Path(runs_root) if runs_root is not None else None
    if root is not None and root.is_dir():
        for folder in sorted(root.iterdir()):
            if (folder / PROFILE).is_file() and (folder / MANIFEST).is_file() and folder.resolve() not in found:
                run = load_run(folder)
                if is_profile_run(run):
                    found[folder.resolve()] = run
    return list(found.values())


def attach_profiles(measured: list[MeasuredRun], profiles: list[Run]) -> None:
    """Set ``profile_run`` of each protocol run without a profile of its own to the newest matching profile."""
    by_key: dict[tuple[str, str, str], Run] = {}
    for run in sorted(profiles, key=lambda r: str(r.manifest.get("created") or "")):
        by_key[join_key(run.manifest)] = run
    for run in measured:
        if run.run.profile or is_profile_run(run.run):
            continue
        run.profile_run = by_key.get(join_key(run.manifest))


def ensure_profiles(measured: list[MeasuredRun], runs_root: str | Path, size: int = 224) -> list[Path]:
    """Compute and store (under ``runs_root``) the params/FLOPs profile of every protocol run that has none,
    and attach it. The card is the manifest's copy (with its argument overrides applied) or the registered
    card of that name. Returns the new profile run directories."""
    from bench_ir.cards import ModelCard, get_card
    from bench_ir.profile_run import static_profile_and_store
    from bench_ir.yamlio import build_dataclass

    created = []
    for run in measured:
        if run.profile is not None or is_profile_run(run.run):
            continue
        model = run.manifest.get("model") or {}
        card = (build_dataclass(ModelCard, dict(model["card"]), f"manifest of {run.run_id}") if model.get("card")
                else get_card(str(model.get("name") or "")))
        digest = hashlib.sha256("|".join(join_key(run.manifest)).encode()).hexdigest()[:8]
        folder = static_profile_and_store(
            card, checkpoint=run.manifest.get("checkpoint"), args_overrides=model.get("args_overrides"), size=size,
            runs_root=runs_root, run_dir=Path(runs_root) / f"{card.name}-params-flops-{size}-{digest}",
            command=["bench-ir", "report", "--profile", run.run_id])
        run.profile_run = load_run(folder)
        created.append(folder)
    return created
