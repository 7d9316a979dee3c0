"""Rich renderables for `bench-ir list ...` and `bench-ir data check` (presentation only)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from bench_ir.resume import run_status

__all__ = ["frame_table", "models_table", "models_renderables", "protocols_renderables", "recipes_table",
           "conventions_table", "runs_table", "training_runs_table", "suite_dirs_table", "suites_table", "run_status",
           "data_check_renderables"]


def models_table(registry: str | Path | None = None) -> Table:
    """One row per model card: its name (what --model takes) with the display name under it, parameter count,
    paper, checkpoint format and input size rule. Fits 80 columns."""
    from bench_ir.cards import list_cards

    table = Table(title="Registered models", caption="`bench-ir list models --details`: every card in full")
    for column in ("name", "params", "paper", "checkpoint", "input"):
        table.add_column(column, justify="right" if column == "params" else "left", no_wrap=column != "input")
    for card in list_cards(registry):
        params = f"{card.expected_params:,}" if card.expected_params is not None else "?"
        paper = f"{card.paper.venue} {card.paper.year or ''}".strip() if card.paper else "—"
        fit = f"×{card.input_multiple}" + (f" ({card.pad_mode} pad)" if card.pad_mode != "none" else "")
        table.add_row(f"{escape(card.name)}\n[dim]{escape(card.display_name)}[/]", params, escape(paper),
                      escape(card.checkpoint.format), escape(fit))
    return table


def models_renderables(registry: str | Path | None = None, details: bool = False) -> list:
    """The models table, or with ``details`` every card in full (the Markdown of :mod:`bench_ir.card_docs`)."""
    if not details:
        return [models_table(registry)]
    from rich.markdown import Markdown

    from bench_ir.card_docs import card_markdown
    from bench_ir.cards import list_cards

    return [Markdown(card_markdown(card)) for card in list_cards(registry)]


def protocol_details(name: str):
    """A protocol described in full (the same Markdown as docs/protocols/<name>.md)."""
    from rich.markdown import Markdown

    from bench_ir.protocol_docs import protocol_markdown

    return Markdown(protocol_markdown(name))


def protocols_renderables(details: bool = False) -> list:
    from bench_ir.protocol import list_protocols, load_protocol

    if details:
        return [protocol_details(name) for name in list_protocols()]
    table = Table(title="Protocols", caption="tasks: * counted in the protocol's Average; metric: `bench-ir list "
                  "conventions`; crop: centre crop or padding to a multiple (`--details`)")
    protocols = [load_protocol(name) for name in list_protocols()]
    # the task list is kept narrow (as wide as "dehaze*, derain*," or its longest name) so that at 80 columns a
    # title breaks between words only ("Three-degradation", "under-display-camera" stay whole)
    tasks_width = max(len("dehaze*, derain*,"), *(len(t.name) + 2 for p in protocols for t in p.tasks))
    for column in ("name", "title", "tasks", "metric", "crop"):
        table.add_column(column, no_wrap=column in ("name", "metric", "crop"), overflow="fold",
                         max_width=tasks_width if column == "tasks" else None)
    for protocol in protocols:
        tasks = ", ".join(t.name + ("*" if t.name in protocol.average else "") for t in protocol.tasks)
        table.add_row(escape(protocol.name), escape(protocol.title), escape(tasks), protocol.convention,
                      protocol.crop.brief())
    return [table]


def recipes_table() -> Table:
    """The shipped training recipes (what `train --recipe` takes): name with its length under it (optimizer steps
    where the recipe counts steps, else the official code's epochs), title, and what they train (one entry per data
    entry: its task, or for the built-in sample photos ``sample(...)`` with its synthetic degradations). Fits 80
    columns."""
    from bench_ir.train.recipes import list_recipes, load_recipe

    table = Table(title="Training recipes (registry/recipes/*.yaml)",
                  caption="trains: the data entries; `bench-ir data check --recipe R` checks their folders")
    recipes = [load_recipe(name) for name in list_recipes()]
    for column in ("name", "title", "trains"):  # trains kept narrow, so that a title breaks between words only
        table.add_column(column, no_wrap=column == "name", overflow="fold",
                         max_width=len("denoise, derain, dehaze,") if column == "trains" else None)
    for recipe in recipes:
        length = f"{recipe.steps:,} steps" if recipe.steps is not None else f"{recipe.epochs.code:g} epochs"
        table.add_row(f"{escape(recipe.name)}\n[dim]{length}[/]", escape(recipe.title),
                      escape(", ".join(map(_trained, recipe.data))))
    return table


def _trained(spec) -> str:
    """What one data entry of a recipe trains: its task; ``sample(haze, rain, noise)`` for the sample photos."""
    if spec.layout != "sample":
        return spec.task
    return f"{spec.task}({', '.join([*spec.degradations, *(['noise'] if spec.sigmas else [])])})"


def conventions_table() -> Table:
    from bench_ir.metrics.conventions import get_convention, list_conventions

    table = Table(title="Metric conventions")
    table.add_column("name")
    table.add_column("description")
    for name in list_conventions():
        table.add_row(name, get_convention(name).describe())
    return table


def suites_table() -> Table:
    """The shipped suite files: name, title, entries and cells (entry × protocol runs, plus one profile per distinct
    model when the suite profiles, as `suite run` plans them)."""
    from bench_ir.suite.plan import profiled_models
    from bench_ir.suite.spec import list_suites, load_suite

    table = Table(title="Suites (suites/*.yaml)", caption="cells: entry × protocol runs + profiles of the models")
    for column in ("name", "title", "entries", "cells"):
        table.add_column(column, justify="right" if column in ("entries", "cells") else "left")
    for name in list_suites():
        suite = load_suite(name)
        runs = sum(len(suite.entry_protocols(entry)) for entry in suite.entries)
        profiles = len(profiled_models(suite))
        table.add_row(name, suite.title, str(len(suite.entries)),
                      f"{runs + profiles} ({runs} + {profiles})" if profiles else str(runs))
    return table


def _model_names(model: str | None) -> set[str] | None:
    """The case-folded names that ``--model`` stands for: its card's name when it names one (any letter case, a
    display name or a card file, as ``run`` takes it), else itself (a card that is not registered here)."""
    if model is None:
        return None
    from bench_ir.cards import find_card

    card = find_card(model)
    return {(card.name if card is not None else model).casefold()}


def _protocol_names(protocol: str | None) -> set[str] | None:
    """The case-folded names that ``--protocol`` stands for: a protocol file's ``name``, else itself."""
    if protocol is None:
        return None
    if protocol.endswith((".yaml", ".yml")) and Path(protocol).is_file():
        from bench_ir.protocol import load_protocol

        return {load_protocol(protocol).name.casefold()}
    return {protocol.casefold()}


def _recorded_names(entry: dict[str, Any]) -> set[str]:
    """A manifest's model or protocol entry: its name and display name, case-folded."""
    return {str(entry[key]).casefold() for key in ("name", "display_name") if entry.get(key)}


def _records_without_manifest(root: Path) -> list[Path]:
    """The folders directly under ``root`` that hold per-image records (records.jsonl) but no manifest.json."""
    from bench_ir.results import MANIFEST, RECORDS

    if not root.is_dir():
        return []
    return sorted(folder for folder in root.glob("*") if (folder / RECORDS).is_file()
                  and not (folder / MANIFEST).is_file())


def _records_without_manifest_note(root: Path) -> str:
    """A sentence naming the folders under ``root`` that hold records without a manifest (not runs bench-ir can read)
    and what to do; '' when there is none."""
    from bench_ir.shortlist import shortlist

    folders = _records_without_manifest(root)
    if not folders:
        return ""
    names = shortlist([folder.name for folder in folders], 5, more=" and {} more")
    return (f"{len(folders)} folder(s) hold records.jsonl without a manifest.json ({names}): not runs bench-ir can "
            "read, since the manifest says what was run; copy each run folder whole, with its manifest.json, or run "
            "it again")


def _no_runs(root: Path) -> str:
    """Why ``root`` lists no run: no such folder, a file, a suite directory (its runs are under its own ``runs/``),
    folders holding records without a manifest, or none."""
    import shlex

    from bench_ir.folder_names import SUITE_PLAN_NAME

    if root.is_file():
        return (f"no runs in {escape(str(root))}: it is a file, not a folder; --runs-root names the folder runs are "
                "stored in")
    if not root.is_dir():
        return f"no runs in {escape(str(root))} (no such folder; --runs-root names the folder runs are stored in)"
    if (root / SUITE_PLAN_NAME).is_file():
        quoted = shlex.quote(str(root))
        return escape(f"no runs in {root}: it is a suite directory (it holds {SUITE_PLAN_NAME}), whose runs are in "
                      f"{root / 'runs'}; `bench-ir suite status {quoted}` shows its cells and `bench-ir list runs "
                      f"--runs-root {shlex.quote(str(root / 'runs'))}` its runs")
    note = _records_without_manifest_note(root)
    return f"no runs in {escape(str(root))}" + (f"; {escape(note)}" if note else "")


def runs_table(runs_root: str | Path, model: str | None = None, protocol: str | None = None) -> Table | str:
    """One row per run directory under ``runs_root``: its name in full (what `report --runs` and `compare` take),
    with the model, protocol, flags (sample, random weights, limit, incomplete, images tiled after a GPU
    out-of-memory error) and the ``--label`` in quotes on a second line (a failed run's error on a third), then
    status, images scored and the protocol's Average PSNR (dB) / SSIM (a protocol of one task and no Average, such
    as a folder pair: that task's mean). Fits 80 columns for the default run names. ``model`` / ``protocol``: only
    the runs of that model / protocol, named as ``run`` takes them (any letter case, a display name, a file; an
    unreadable run is shown whatever they say, so that it never hides). A sentence instead of an empty table when
    there is no run (saying so when the folder does not exist or is a file, or what the filters left out); folders
    holding records without a manifest, which are no runs bench-ir can read, are named in that sentence or in the
    table's caption. A model's ``--model-arg`` overrides are shown beside its name (``mirage-t (dim=6)``)."""
    from bench_ir.results import MANIFEST, load_run, read_manifest_file

    root = Path(runs_root)
    run_dirs = sorted(p for p in root.glob("*") if (p / "manifest.json").is_file()) if root.is_dir() else []
    if not run_dirs:
        return _no_runs(root)
    wanted = {"model": model, "protocol": protocol}
    chosen = " and ".join(f"{key} {value}" for key, value in wanted.items() if value is not None)
    names = {"model": _model_names(model), "protocol": _protocol_names(protocol)}
    rows = []
    for run_dir in run_dirs:
        try:
            if chosen:  # the manifest alone decides; records are read only for the runs shown
                manifest = read_manifest_file(run_dir / MANIFEST)
                if any(accepted is not None and not accepted & _recorded_names(manifest[key])
                       for key, accepted in names.items()):
                    continue
            rows.append((run_dir, _run_row(load_run(run_dir))))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # one bad run never hides the others
            reason = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
            reason = reason.removeprefix(f"{run_dir / 'manifest.json'}: ")
            rows.append((run_dir, [f"{escape(run_dir.name)}\n[red]{escape(reason)}[/]", "[red]unreadable[/]", "–", "–",
                                   "–"]))
    if not rows:
        return f"no runs of {escape(chosen)} in {escape(str(runs_root))}; it holds {len(run_dirs)} other run(s)"
    note = _records_without_manifest_note(root)
    table = Table(title=f"Runs in {runs_root}" + (f" ({escape(chosen)})" if chosen else ""),
                  caption="PSNR, SSIM: the protocol's Average (one task: its mean)" + (f"\n{escape(note)}" if note
                                                                                         else ""))
    table.add_column("run", overflow="fold", min_width=max(len(run_dir.name) for run_dir, _ in rows))
    for column in ("status", "images", "PSNR", "SSIM"):
        table.add_column(column, no_wrap=True, justify="left" if column == "status" else "right")
    for _, cells in rows:
        table.add_row(*cells)
    return table


def training_runs_table(runs_root: str | Path, model: str | None = None) -> Table | None:
    """One row per training run (a folder holding ``train_manifest.json``) under ``runs_root/train``, where `train`
    puts them, or directly under ``runs_root`` (a ``--run-dir`` there): its folder relative to ``runs_root`` (with
    ``runs_root``, what ``train --resume --run-dir`` takes), model and recipe, status (``stopped`` for a
    ``running`` run that no process holds), the optimizer steps it keeps (its checkpoint's, what ``--resume`` continues
    from) of the target, with the steps done after them and lost, and the total loss of the last step kept.
    ``model``: only the runs of that model card name (an unreadable one is shown). None when there is none."""
    import json

    from bench_ir.folder_names import TRAIN_MANIFEST_NAME as MANIFEST_NAME  # not bench_ir.train: torch, scipy

    root = Path(runs_root)
    run_dirs = sorted(p for folder in (root / "train", root) if folder.is_dir() for p in folder.glob("*")
                      if (p / MANIFEST_NAME).is_file())
    if not run_dirs:
        return None
    names = {run_dir: run_dir.relative_to(root).as_posix() for run_dir in run_dirs}
    wanted = _model_names(model)  # resolved once: a card lookup, not one per run
    table = Table(title=f"Training runs in {root}", caption="steps: optimizer steps kept (what --resume continues "
                                                              "from) / this run's target, 'N lost': steps done after "
                                                              "the last checkpoint; loss: the total loss of the last "
                                                              "step kept")
    table.add_column("run", overflow="fold", min_width=max(len(name) for name in names.values()))
    for column in ("status", "steps", "loss"):
        table.add_column(column, no_wrap=True, justify="left" if column == "status" else "right")
    for run_dir in run_dirs:
        try:
            manifest = json.loads((run_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
            if wanted is not None and not wanted & _recorded_names(manifest.get("model") or {}):
                continue
            about = " · ".join(str(part) for part in ((manifest.get("model") or {}).get("name"),
                                                      (manifest.get("recipe") or {}).get("name")) if part)
            done, target = manifest.get("steps_done"), manifest.get("steps_target")
            loss = (manifest.get("final_losses") or manifest.get("last_losses") or {}).get("total")  # or stopped
            table.add_row(f"{escape(names[run_dir])}\n[dim]{escape(about)}[/]{_failure_line(manifest, 'failure')}",
                          run_status(run_dir, manifest),
                          f"{done if done is not None else '–'}/{target if target is not None else '?'}"
                          + _steps_lost_line(manifest),
                          f"{loss:.4g}" if isinstance(loss, (int, float)) else "–")
        except (OSError, ValueError, AttributeError) as err:  # one bad run never hides the others
            table.add_row(f"{escape(names[run_dir])}\n[red]{escape(str(err))}[/]", "[red]unreadable[/]", "–", "–")
    return table if table.row_count else None


def _steps_lost_line(manifest: dict) -> str:
    """A second line for a training run's steps cell: how many steps done after its checkpoint were lost (a second
    Ctrl-C, an error), or nothing."""
    lost = manifest.get("steps_lost")
    return f"\n[dim]{lost} lost[/]" if isinstance(lost, int) and lost > 0 else ""


def suite_dirs_table(runs_root: str | Path) -> Table | None:
    """One row per suite directory directly under ``runs_root`` (a folder holding ``plan.json``, which `suite run`
    writes; its runs are under its own ``runs/``, so the runs table does not show them): the folder, the suite, how
    many of its cells are complete and how many failed. None when there is none."""
    from bench_ir.folder_names import SUITE_PLAN_NAME

    root = Path(runs_root)
    suite_dirs = sorted(p for p in root.glob("*") if (p / SUITE_PLAN_NAME).is_file()) if root.is_dir() else []
    if not suite_dirs:
        return None
    from bench_ir.suite.plan import SuitePlan, cell_status

    table = Table(title=f"Suites in {root}", caption="`suite status DIR`: its cells; `suite report DIR`: its tables")
    table.add_column("suite directory", overflow="fold", min_width=max(len(p.name) for p in suite_dirs))
    for column in ("complete", "failed"):
        table.add_column(column, no_wrap=True, justify="right")
    for suite_dir in suite_dirs:
        try:
            plan = SuitePlan.load(suite_dir)
            states = [cell_status(plan, cell) for cell in plan.cells]
            table.add_row(f"{escape(suite_dir.name)}\n[dim]suite {escape(plan.suite)}[/]",
                          f"{states.count('complete')}/{len(states)}", str(states.count("failed")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # never hides the others
            table.add_row(f"{escape(suite_dir.name)}\n[red]{escape(str(err))}[/]", "[red]unreadable[/]", "–")
    return table


def _scope_flags(manifest: dict, summary: pd.DataFrame) -> list[str]:
    """'2 of 5 tasks' for a run of part of its protocol's tasks (`run --task`; known from the resolved protocol
    newer manifests keep), and 'short test sets (Rain100L 51/100)' for a full real-data run of a test set smaller
    than the protocol expects (as a report footnotes it)."""
    from bench_ir.report.measured import short_test_sets

    protocol = manifest.get("protocol") or {}
    flags = []
    resolved = protocol.get("resolved")
    every = (resolved.get("tasks") or []) if isinstance(resolved, dict) else []
    scope = protocol.get("tasks") or []
    if every and len(scope) < len(every):
        flags.append(f"{len(scope)} of {len(every)} tasks")
    if not manifest.get("sample") and manifest.get("limit") is None and "images" in summary:
        short = short_test_sets(protocol, {str(task): int(n) for task, n in summary["images"].items()})
        if short:
            flags.append(f"short test sets ({', '.join(short)})")
    return flags


def _run_row(run) -> list[str]:
    from bench_ir.report.measured import average_tasks, demonstration_weights
    from bench_ir.results import coverage_totals, protocol_average

    manifest = run.manifest
    summary = run.summary()
    tasks = [task.get("name") for task in manifest["protocol"].get("tasks") or [] if isinstance(task, dict)]
    average = protocol_average(summary, average_tasks(manifest["protocol"]) or (tasks if len(tasks) == 1 else []))
    scored, planned = coverage_totals(run.coverage())  # incomplete (Run.incomplete) when fewer scored than planned
    flags = [f for f, on in (("sample", manifest.get("sample")), ("random weights", manifest.get("random_weights")),
                             ("sample checkpoint", demonstration_weights(manifest)),
                             (f"limit {manifest.get('limit')}", manifest.get("limit") is not None),
                             (f"incomplete {scored}/{planned}", scored < planned),
                             (f"{run.auto_tiled_images()} tiled", run.auto_tiled_images())) if on]
    flags += _scope_flags(manifest, summary)
    label = manifest.get("label")  # `run --label`: the row name in reports, so also here
    about = " · ".join([_model_with_overrides(manifest["model"]), manifest["protocol"]["name"], *flags,
                        *([f'"{label}"'] if isinstance(label, str) and label else [])])
    return [f"{escape(run.run_dir.name)}\n[dim]{escape(about)}[/]{_failure_line(manifest, 'error')}",
            run_status(run.run_dir, manifest),
            str(len(run.records)), _mean_cell(average, "psnr", 2), _mean_cell(average, "ssim", 3)]


def _model_with_overrides(model: dict[str, Any]) -> str:
    """A manifest's model as `list runs` names it: the card's name, with its ``--model-arg`` overrides (the
    manifest's ``args_overrides``, values as JSON) in brackets, e.g. ``mirage-t (dim=6)``: another network than the
    card's own."""
    import json

    overrides = model.get("args_overrides")
    if not isinstance(overrides, dict) or not overrides:
        return str(model["name"])
    shown = ", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in overrides.items())
    return f"{model['name']} ({shown})"


def _mean_cell(average, metric: str, decimals: int) -> str:
    """A protocol average's ``metric`` with ``decimals``, or – where there is none (a task missing, or a NaN task
    mean: an output with NaN/Inf, as the run's table shows it)."""
    if average is None or math.isnan(value := float(average[metric])):
        return "–"
    return f"{value:.{decimals}f}"


def _failure_line(manifest: dict, key: str) -> str:
    """For a failed run, a third line of its cell with the error its manifest records under ``key`` (its first line,
    at most 100 characters), so that `list runs` says why without opening the manifest; else ''."""
    error = manifest.get(key)
    if manifest.get("status") != "failed" or not isinstance(error, str) or not error.strip():
        return ""
    first = error.strip().splitlines()[0]
    return f"\n[red]{escape(first if len(first) <= 100 else first[:99] + '…')}[/]"


def data_check_renderables(checks) -> list:
    """The findings of `data check` as text: one table row per task (status = the worst finding), then every
    problem (red) and warning (yellow) of every task, then one summary line. Shows all that ``--json`` holds."""
    table = Table(title="Dataset check")
    for column in ("task", "layout", "pairs", "expected", "status", "sizes"):  # paths fold, never cut
        table.add_column(column, no_wrap=column in ("task", "pairs", "expected"), overflow="fold",
                         justify="right" if column in ("pairs", "expected") else "left")
    details = []
    for check in checks:
        problems, warnings = check.problems, check.warnings
        if problems:
            status = f"[red]{len(problems)} problem(s)[/]"
        elif check.incomplete:
            status = f"[yellow]incomplete ({check.pairs} of {check.expected})[/]"
        elif warnings:
            status = f"[yellow]ok, {len(warnings)} warning(s)[/]"
        else:
            status = "[green]ok[/]"
        table.add_row(escape(check.task), escape(check.layout.describe()) if check.layout else "[red]not found[/]",
                      str(check.pairs), str(check.expected) if check.expected is not None else "—", status,
                      check.size_summary())
        details += [f"[red]{escape(check.task)}: error:[/] {escape(problem)}" for problem in problems]
        details += [f"[yellow]{escape(check.task)}: warning:[/] {escape(warning)}" for warning in warnings]
    return [table, *details, data_check_verdict(checks)]


_SHOWN_FINDINGS = 10  # per training set and kind in `data check --recipe`; --json has them all


def train_data_check_renderables(checks, validation_check: str | None = None) -> list:
    """The findings of `data check --recipe` as text: one table row per data entry of the recipe, then every
    problem (red) and warning (yellow), then one summary line, then ``validation_check`` (the `data check` command
    of the test sets the recipe validates on during training, where it validates on real data)."""
    table = Table(title="Training data check")
    for column in ("task", "layout", "location", "pairs", "items", "status"):
        table.add_column(column, no_wrap=column in ("task", "pairs", "items"), overflow="fold",
                         justify="right" if column in ("pairs", "items") else "left")
    details = []
    for check in checks:
        if check.problems:
            status = f"[red]{len(check.problems)} problem(s)[/]"
        elif check.warnings:
            status = f"[yellow]ok, {len(check.warnings)} warning(s)[/]"
        else:
            status = "[green]ok[/]"
        table.add_row(escape(check.task), escape(check.layout), escape(check.location) or "[red]not found[/]",
                      str(check.pairs), str(check.items), status)
        prefix = f"task '{check.task}': "  # the row names the task already
        for kind, colour, findings in (("error", "red", check.problems), ("warning", "yellow", check.warnings)):
            details += [f"[{colour}]{escape(check.task)}: {kind}:[/] {escape(finding.removeprefix(prefix))}"
                        for finding in findings[:_SHOWN_FINDINGS]]
            if len(findings) > _SHOWN_FINDINGS:
                details.append(f"[{colour}]{escape(check.task)}: ... and {len(findings) - _SHOWN_FINDINGS} more "
                               f"{kind}s[/] (--json lists them all)")
    failed = sum(1 for check in checks if check.problems)
    if failed:
        verdict = f"[red]not ready:[/] {failed} of {len(checks)} training set(s) with problems (exit code 1)"
    else:
        verdict = f"[green]ready:[/] all {len(checks)} training set(s) ok"
    after = [f"validation during training scores test sets (found under --val-data-root, else --data-root); check "
             f"them with: {escape(validation_check)} (or train with --no-val)"] if validation_check else []
    return [table, *details, verdict, *after]


def data_check_verdict(checks) -> str:
    """One line: how many tasks have problems (exit code 1), are incomplete or have warnings (exit code 0)."""
    failed = sum(1 for c in checks if c.problems)
    incomplete = sum(1 for c in checks if not c.problems and c.incomplete)
    warned = sum(1 for c in checks if c.status == "warnings")
    if failed:
        parts = [f"{failed} of {len(checks)} task(s) with problems"]
        parts += [f"{incomplete} incomplete"] if incomplete else []
        return "[red]not ready:[/] " + ", ".join(parts) + " (exit code 1)"
    if incomplete or warned:
        parts = ([f"{incomplete} incomplete"] if incomplete else []) + ([f"{warned} with warnings"] if warned else [])
        return f"[yellow]usable:[/] {len(checks)} task(s) without problems; " + ", ".join(parts)
    return f"[green]ready:[/] all {len(checks)} task(s) ok"


def frame_table(frame, title: str = "") -> Table:
    """A DataFrame as a rich table: floats with 4 significant decimals, NA as '–'."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column))
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            if value is None or value is pd.NA or (isinstance(value, float) and value != value):
                cells.append("–")
            elif isinstance(value, float):
                cells.append(f"{value:.4f}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    return table
