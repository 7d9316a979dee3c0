"""`bench-ir data check --recipe R`: are a recipe's training sets ready, before a (long) training job is started?

Per data entry of the recipe: its folders found and paired as `train` finds them (layout, list file, pairing
rule), then every stored image's header read (no pixels are decoded). Every problem of every entry is listed in one
check: a pairing problem (inputs without a target, listed files missing) does not stop the check of the pairs found.
Problems (``ok`` is False; `data check` exits with 1, and `train` refuses the same data): folders or list-file
entries not found, inputs without a target, unreadable files, input / target size mismatches, images smaller than the
training patch after the entry's centre crop. Warnings (a training run goes ahead): a pair count other than the
recipe states, a missing list file (every image found is used), pairs whose input and target EXIF orientations differ
(in a square pair, pixels stored turned against each other show no size difference), grayscale targets paired with a
colour input (training would teach the model to remove colour), and the conversions reading the files makes
(grayscale, alpha, 16 bits ...; `train` states them once in its notices). Built-in sample photos (the ``sample``
layout) are always ready.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_ir.data.io import (
    QUARTER_TURN_ADVICE,
    ImageReadError,
    differing_orientations,
    image_size,
)
from bench_ir.shortlist import shortlist
from bench_ir.train.data import (
    TrainPart,
    build_part,
    conversion_notices,
    file_conversions,
    file_problems,
    relative_name,
    training_data_root,
)
from bench_ir.train.recipes import Recipe

__all__ = ["TrainDataCheck", "check_training_data", "pair_warnings", "validation_data_check"]

_SHOWN_PAIRS = 5  # pairs named per warning


@dataclass
class TrainDataCheck:
    """The findings for one data entry of a recipe. ``pairs``: images (or pairs) found; ``items``: training items
    per epoch (pairs x variants x repeat); ``expected``: the recipe's ``expected_count``, where it states one."""

    task: str
    layout: str
    location: str = ""
    pairs: int = 0
    items: int = 0
    expected: int | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check_training_data(recipe: Recipe, data_root: str | Path | None, patch_size: int | None = None,
                        tasks: list[str] | None = None) -> list[TrainDataCheck]:
    """One :class:`TrainDataCheck` per data entry of ``recipe`` (only those of ``tasks`` when given), with patches
    of ``patch_size`` pixels (default: the recipe's). A missing --data-root the recipe needs, or one that is not a
    folder, raises before any entry is looked at; so does a task name the recipe does not train."""
    root = training_data_root(recipe, data_root)
    patch = patch_size or recipe.patch_size
    known = [spec.task for spec in recipe.data]
    unknown = [task for task in tasks or [] if task not in known]
    if unknown:
        raise ValueError(f"recipe '{recipe.name}' trains no task {', '.join(map(repr, unknown))}; its tasks: "
                         f"{', '.join(dict.fromkeys(known))}")
    checks = []
    for spec in recipe.data:
        if tasks and spec.task not in tasks:
            continue
        check = TrainDataCheck(task=spec.task, layout=spec.layout, expected=spec.expected_count)
        checks.append(check)
        try:  # pairing problems are collected, and the pairs found are checked as well
            part = build_part(spec, root, recipe, problems=check.problems)
        except (FileNotFoundError, ValueError) as err:  # a missing folder, a bad list file: nothing more to check
            check.problems.append(str(err))
            continue
        check.location, check.pairs, check.items = part.location, len(part.pairs), part.size
        check.problems += file_problems(part, patch)
        conversions = file_conversions([part], root)  # every stored file's header, read once for both warnings
        check.warnings += part.notices + pair_warnings(part, root, conversions)
        check.warnings += [f"task '{spec.task}': {line}" for line in conversion_notices(conversions)]
    return checks


def pair_warnings(part: TrainPart, data_root: str | Path | None, conversions: dict[str, list[str]]) -> list[str]:
    """From the headers of a part's stored pairs (input and target of equal size; other pairs are problems): one
    warning naming the pairs whose input and target EXIF orientations differ, one naming the grayscale targets
    paired with a colour input (by the part's ``conversions``, :func:`~bench_ir.train.data.file_conversions`).
    Files are named relative to ``data_root``."""
    grayscale = set(conversions.get("grayscale", []))
    turned, gray = [], []
    for pair in part.pairs:
        if pair.input is None or pair.target is None:
            continue
        try:
            if image_size(pair.input) != image_size(pair.target):
                continue
        except ImageReadError:  # a problem of file_problems
            continue
        if orientations := differing_orientations((pair.input, pair.target)):
            turned.append(f"{relative_name(pair.input, data_root)} (input {orientations[0]}, target "
                          f"{orientations[1]})")
        target, source = relative_name(pair.target, data_root), relative_name(pair.input, data_root)
        if target in grayscale and source not in grayscale:
            gray.append(f"{target} (input {source})")
    task, warnings = part.spec.task, []
    if turned:
        warnings.append(f"task '{task}': {len(turned)} pair(s) whose input and target EXIF orientations differ: "
                        f"{shortlist(turned, _SHOWN_PAIRS)}. Viewers show such a pair turned differently, and pixels "
                        "stored turned against each other show no size difference in a square image: training would "
                        f"learn from patches that do not match; {QUARTER_TURN_ADVICE}")
    if gray:
        warnings.append(f"task '{task}': {len(gray)} grayscale target(s) paired with a colour input: "
                        f"{shortlist(gray, _SHOWN_PAIRS)}. A grayscale target is read as 3 equal RGB channels, so "
                        "training teaches the model to remove colour; give such pairs a colour target or leave them "
                        "out")
    return warnings


def validation_data_check(recipe: Recipe, data_root: str | Path | None) -> str | None:
    """The `bench-ir data check --protocol` command for the test sets ``recipe`` validates on during training, or
    None when it validates on built-in sample data or not at all (those test sets are not training sets: `train`
    looks for them under --val-data-root, else --data-root)."""
    spec = recipe.validation
    if spec.protocol is None or spec.sample:
        return None
    root = shlex.quote(str(data_root)) if data_root is not None else "DATA_ROOT"
    tasks = "".join(f" --task {shlex.quote(task)}" for task in spec.tasks)
    return f"bench-ir data check --protocol {shlex.quote(spec.protocol)} --data-root {root}{tasks}"
