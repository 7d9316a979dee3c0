"""A report whose rows were scored with more than one metric convention says, in each convention's note, which rows
it applies to."""

from __future__ import annotations

from pathlib import Path

from conftest import write_scored_run

from bench_ir.report import build_table, render

TASKS = [{"name": "folder", "label": "mine"}]
PROTOCOL = {"name": "folders", "tasks": TASKS, "average": []}
NOTE = "per-image means read from the bench-ir result store, metric convention"


def _runs(root: Path, conventions: dict[str, str]) -> list[Path]:
    """One run of the 'folders' protocol per (label, convention id)."""
    return [write_scored_run(root / label, TASKS, [("folder", "x.png", 30.0, 0.9)], label=label, protocol=PROTOCOL,
                             convention={"name": convention, "description": f"{convention} rules"})
            for label, convention in conventions.items()]


def _convention_notes(table) -> list[str]:
    return [note for note in table.notes if NOTE in note]


def test_each_conventions_note_names_the_rows_it_applies_to(tmp_path):
    table = build_table("folders", _runs(tmp_path, {"a": "M1", "b": "M2", "c": "M2"}))
    assert _convention_notes(table) == [f"Measured rows a: {NOTE} M1 (M1 rules).",
                                        f"Measured rows b, c: {NOTE} M2 (M2 rules)."]


def test_a_long_list_of_rows_names_the_first_five_and_counts_the_rest(tmp_path):
    table = build_table("folders", _runs(tmp_path, {"a": "M1", **{f"r{i}": "M2" for i in range(7)}}))
    assert f"Measured rows r0, r1, r2, r3, r4 and 2 more: {NOTE} M2 (M2 rules)." in _convention_notes(table)


def test_the_rendered_table_shows_which_rows_each_convention_applies_to(tmp_path):
    text = render(build_table("folders", _runs(tmp_path, {"a": "M1", "b": "M2"})), "markdown")
    assert f"Measured rows a: {NOTE} M1" in text and f"Measured rows b: {NOTE} M2" in text


def test_a_table_of_one_convention_keeps_its_one_note_for_all_measured_rows(tmp_path):
    table = build_table("folders", _runs(tmp_path, {"a": "M2", "b": "M2"}))
    assert _convention_notes(table) == [f"Measured rows: {NOTE} M2 (M2 rules)."]
