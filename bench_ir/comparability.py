"""Whether two runs measured the same thing per (task, image): the setup differences that make a paired delta
B - A compare more than the two models.

Read from the run manifests only. A pair is the same measurement when both runs score with the same metric
convention, on the same kind of data (sample or real), with the same task synthesis (dataset, noise, sample
degradations), the same crop rule and, for a noisy task, the same noise order, and when each paired image comes
from the same files (names and byte sizes as the manifest's ``data`` records them, and their content sha256 where
both manifests record it). Model, checkpoint, precision,
tiling and batch size are what a comparison is for, and are not reported here.
"""

from __future__ import annotations

from typing import Any

from bench_ir.resume import content_changes

__all__ = ["setup_differences", "synthesis_changes", "task_crop"]

# the parts of a task's protocol entry that decide its degraded inputs (not its labels or leaderboard columns)
_TASK_SYNTHESIS = ("dataset", "noise", "sample_degradations")


def setup_differences(manifest_a: dict[str, Any], manifest_b: dict[str, Any]) -> list[str]:
    """Sentences naming each difference between the runs' setups that makes their paired images different
    measurements (empty when they are comparable image by image). Keys an older manifest lacks are not compared."""
    differences = []
    convention_a, convention_b = manifest_a.get("convention") or {}, manifest_b.get("convention") or {}
    if convention_a.get("id") and convention_b.get("id") and convention_a["id"] != convention_b["id"]:
        differences.append(f"the runs score with different metric conventions (A {_convention(convention_a)}, "
                           f"B {_convention(convention_b)}): their deltas mix two metric definitions")
    if bool(manifest_a.get("sample")) != bool(manifest_b.get("sample")):
        which = "A" if manifest_a.get("sample") else "B"
        differences.append(f"only {which} is on sample (synthetic) data: images of the same name are not the "
                           "same images")
        return differences
    tasks_a, tasks_b = _tasks(manifest_a), _tasks(manifest_b)
    protocol_a, protocol_b = manifest_a.get("protocol") or {}, manifest_b.get("protocol") or {}
    for name in (task for task in tasks_a if task in tasks_b):
        task_a, task_b = tasks_a[name], tasks_b[name]
        changed = synthesis_changes(task_a, task_b)
        crop_a, crop_b = task_crop(protocol_a, name), task_crop(protocol_b, name)
        if crop_a is not None and crop_b is not None and crop_a != crop_b:
            changed.append("crop")
        if task_a.get("noise") and manifest_a.get("noise_order") != manifest_b.get("noise_order"):
            changed.append("noise order")
        if changed:
            differences.append(f"task {name}: the runs make its inputs differently ({', '.join(changed)} differ)")
        files, contents = _differing_files(manifest_a, manifest_b, name)
        if files:
            differences.append(f"task {name}: {files} paired image(s) come from different files (name or size "
                               "differs)")
        if contents:
            differences.append(f"task {name}: {contents} paired image(s) come from files of the same name and size "
                               "with other content (sha256 differs)")
    return differences


def task_crop(protocol: dict[str, Any], task: str) -> Any:
    """The crop rule task ``task`` of a run is scored with, given its manifest's ``protocol``: the task's own
    (``crop`` of the task in the resolved content a manifest keeps) else the protocol's; the protocol's alone in a
    manifest that keeps no resolved content; None when neither is recorded."""
    resolved = protocol.get("resolved") if isinstance(protocol.get("resolved"), dict) else {}
    for entry in resolved.get("tasks") or []:
        if isinstance(entry, dict) and entry.get("name") == task and entry.get("crop") is not None:
            return entry["crop"]
    return protocol.get("crop", resolved.get("crop"))


def synthesis_changes(task_a: dict[str, Any], task_b: dict[str, Any]) -> list[str]:
    """The fields that make a task's degraded inputs (dataset, noise, sample degradations) in which two tasks differ,
    each task as a manifest's ``protocol.tasks`` records it (a field either lacks is not compared)."""
    return [key for key in _TASK_SYNTHESIS if key in task_a and key in task_b and task_a[key] != task_b[key]]


def _convention(convention: dict[str, Any]) -> str:
    return f"{convention['id']} {convention['name']}" if convention.get("name") else str(convention["id"])


def _tasks(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(task["name"]): task for task in (manifest.get("protocol") or {}).get("tasks") or []
            if isinstance(task, dict) and "name" in task}


def _differing_files(manifest_a: dict[str, Any], manifest_b: dict[str, Any], task: str) -> tuple[int, int]:
    """How many images both runs list for ``task`` come from other files: (those whose pair row differs, those
    whose rows agree but whose content hashes differ, where both manifests have them). A pair row is
    [image, input name, input bytes, target name, target bytes] (see bench_ir.resume.data_identity)."""
    data_a, data_b = _task_data(manifest_a, task), _task_data(manifest_b, task)
    pairs_a = {row[0]: row[1:] for row in data_a.get("pairs") or []}
    pairs_b = {row[0]: row[1:] for row in data_b.get("pairs") or []}
    other_files = {image for image in pairs_a.keys() & pairs_b.keys() if pairs_a[image] != pairs_b[image]}
    other_content = set(content_changes(data_a, data_b)) - other_files
    return len(other_files), len(other_content)


def _task_data(manifest: dict[str, Any], task: str) -> dict[str, Any]:
    return (manifest.get("data") or {}).get(task) or {}
