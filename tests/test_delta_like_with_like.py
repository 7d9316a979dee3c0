"""Reproduction (Δ) blocks and efficiency figures compare like with like: no block for a run on part of a test set,
no tolerance check between two SSIM estimators (a card's published_convention), Table 3's 11M "MoCE-IR" row is
MoCE-IR-S, and the Params figure is the count the published one gives (a card's published_params)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scored_run

from bench_ir.cards import get_card, list_cards
from bench_ir.leaderboard import AVERAGE, protocol_rows, published_rows
from bench_ir.metrics.conventions import get_convention
from bench_ir.protocol import load_protocol
from bench_ir.report import Tolerance, build_table

TABLES = {"3deg": "table1_3deg.csv", "cdd11": "table3_cdd11.csv"}
MODELS = {"mirage-t": ("MIRAGE-T", 6207412), "moce-ir": ("MoCE-IR", 25353796),
          "moce-ir-s": ("MoCE-IR-S", 11477752), "ndr-restore": ("NDR-Restore", 36962484)}


def _option(card, name: str):
    """A card option's value ({default: V, note: ...} has the value V)."""
    value = card.options.get(name)
    return value.get("default") if isinstance(value, dict) else value


def _printed(protocol: str, model_key: str):
    return next(row for row in published_rows(protocol_rows(protocol)) if row.model_key == model_key)


def _reproduction(run_dir: Path, protocol: str, model: str, model_key: str, psnr_shift: float = 0.0,
                  ssim_shift: float = 0.0, convention: str = "M1", expected_count: int | None = None) -> Path:
    """A run of ``model`` with one image per task that scores the printed values of ``model_key``'s row plus the
    shifts (no Average column); ``expected_count`` is the protocol's image count of every task."""
    printed = _printed(protocol, model_key)
    columns = sorted({(dataset, subset) for dataset, subset, _ in printed.values if dataset != AVERAGE})
    tasks = [{"name": f"{dataset}-{subset}", "label": dataset, "leaderboard": {"dataset": dataset, "subset": subset},
              **({"expected_count": expected_count} if expected_count else {})} for dataset, subset in columns]
    records = [(f"{dataset}-{subset}", "0001.png", printed.value(dataset, subset, "PSNR") + psnr_shift,
                printed.value(dataset, subset, "SSIM") + ssim_shift) for dataset, subset in columns]
    display_name, params = MODELS[model]
    return write_scored_run(
        run_dir, tasks, records, average=[],
        protocol={"name": protocol, "tasks": tasks, "average": [], "leaderboard_table": TABLES[protocol]},
        model={"name": model, "display_name": display_name, "params": params},
        convention={"id": convention, "name": get_convention(convention).name, "description": ""})


def _blocks(table) -> list:
    return [block for block in table.blocks if block.title.startswith("Reproduction")]


def _flagged(table, row, text: str) -> set[str]:
    """The metrics of the Δ cells whose footnote starts with ``text``."""
    return {table.columns[i].metric for i, cell in enumerate(row.cells)
            if cell.marker is not None and table.footnotes[cell.marker].text.startswith(text)}


# ---------------------------------------------------------------------------------------- part of a test set
def test_a_full_run_on_a_test_set_with_images_missing_gets_the_partial_note_not_a_delta_block(tmp_path):
    run = _reproduction(tmp_path / "mirage", "3deg", "mirage-t", "MIRAGE-T", expected_count=500)
    table = build_table("3deg", [run], delta=Tolerance())
    assert not _blocks(table)
    (note,) = [n for n in table.notes if n.startswith("No reproduction block")]
    assert note.endswith(": a Δ to the printed values needs every image of the test sets, not --limit, an "
                         "unfinished run or a test set with images missing.")


# ------------------------------------------------------------------------------- published metric convention
def test_moce_ir_cards_say_their_published_numbers_were_measured_with_gaussian_ssim():
    for name in ("moce-ir", "moce-ir-s"):
        assert _option(get_card(name), "published_convention") == "M2"


def test_every_stated_published_convention_is_a_known_convention():
    for card in list_cards():
        if (option := _option(card, "published_convention")) is not None:
            get_convention(option)


def test_an_m1_run_of_moce_ir_is_not_flagged_on_ssim_that_m2_computes_differently(tmp_path):
    run = _reproduction(tmp_path / "moce", "3deg", "moce-ir", "MoCE-IR", ssim_shift=0.02)
    table = build_table("3deg", [run], delta=Tolerance())
    (block,) = _blocks(table)
    delta = block.rows[2]
    assert not _flagged(table, delta, "beyond tolerance")
    assert _flagged(table, delta, "measured with convention M1, published with M2: SSIM estimators differ") == {
        "SSIM"}


def test_psnr_which_m1_and_m2_compute_alike_is_still_checked_against_the_tolerance(tmp_path):
    run = _reproduction(tmp_path / "moce", "3deg", "moce-ir", "MoCE-IR", psnr_shift=0.1, ssim_shift=0.02)
    table = build_table("3deg", [run], delta=Tolerance())
    (block,) = _blocks(table)
    assert _flagged(table, block.rows[2], "beyond tolerance") == {"PSNR"}


def test_the_note_says_how_to_measure_with_the_published_convention(tmp_path):
    run = _reproduction(tmp_path / "moce", "3deg", "moce-ir", "MoCE-IR", ssim_shift=0.02)
    table = build_table("3deg", [run], delta=Tolerance())
    (note,) = [n for n in table.notes if "published_convention" in n]
    assert "scored with metric convention M1" in note and "measured with M2" in note
    assert "computes SSIM differently" in note  # the table has no LPIPS column, so LPIPS goes unmentioned
    assert note.endswith("Add `--convention M2` to `bench-ir run` to measure as published.")


def test_a_run_scored_with_the_published_convention_is_checked_on_every_metric(tmp_path):
    run = _reproduction(tmp_path / "moce", "3deg", "moce-ir", "MoCE-IR", ssim_shift=0.02, convention="M2")
    table = build_table("3deg", [run], delta=Tolerance())
    (block,) = _blocks(table)
    assert _flagged(table, block.rows[2], "beyond tolerance") == {"SSIM"}
    assert not [n for n in table.notes if "published_convention" in n]


# ------------------------------------------------------------------------------------ Table 3's MoCE-IR row
def test_table3s_11m_moce_ir_row_is_the_reproduction_target_of_moce_ir_s(tmp_path):
    run = _reproduction(tmp_path / "moce-s", "cdd11", "moce-ir-s", "MoCE-IR-S")
    (block,) = _blocks(build_table("cdd11", [run], delta=Tolerance()))
    assert block.title == "Reproduction: MoCE-IR-S vs published MoCE-IR"
    assert block.rows[0].params == "11M"


def test_a_moce_ir_run_on_cdd11_has_no_published_row_to_compare_with(tmp_path):
    run = _reproduction(tmp_path / "moce", "cdd11", "moce-ir-s", "MoCE-IR-S")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"] = {"name": "moce-ir", "display_name": "MoCE-IR", "params": 25353796}
    (run / "manifest.json").write_text(json.dumps(manifest))
    table = build_table("cdd11", [run], delta=Tolerance())
    assert not _blocks(table)
    assert "No reproduction block for MoCE-IR (moce): no published row is of its model." in table.notes


# --------------------------------------------------------------------------------------- efficiency Params
def _profiled(run_dir: Path, model: str, params_inference: int) -> Path:
    run = _reproduction(run_dir, "3deg", "mirage-t", "MIRAGE-T")
    manifest = json.loads((run / "manifest.json").read_text())
    display_name, params = MODELS[model]
    manifest["model"] = {"name": model, "display_name": display_name, "params": params}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "profile.json").write_text(json.dumps({
        "params": params, "params_total": params, "params_inference": params_inference, "flops": 1e11,
        "size": 224, "device": "cpu"}))
    return run


def _params_cell(run: Path):
    table = build_table("efficiency", [run], leaderboard=False)
    (row,) = table.rows
    return table, row.cells[table.column_index("", "Params")]


def test_ndr_restore_params_are_the_inference_count_its_published_figure_gives(tmp_path):
    table, cell = _params_cell(_profiled(tmp_path / "ndr", "ndr-restore", 27330315))
    assert cell.value == pytest.approx(27.330315)
    assert any("Params counts the 27.33M parameters used at inference" in note and "all 36.96M" in note
               for note in table.notes), table.notes


def test_mirage_params_keep_the_training_head_its_published_figure_counts(tmp_path):
    table, cell = _params_cell(_profiled(tmp_path / "mirage", "mirage-t", 6158576))
    assert cell.value == pytest.approx(6.207412)
    assert not [note for note in table.notes if "Params counts" in note]


def test_each_card_params_figure_is_the_count_nearest_its_published_one():
    for card in list_cards():
        published = card.published.get("params_m")
        if published is None or card.inference_params is None or card.expected_params is None:
            continue
        used = card.inference_params if _option(card, "published_params") == "inference" else card.expected_params
        other = card.expected_params + card.inference_params - used
        assert abs(used / 1e6 - published) < abs(other / 1e6 - published), card.name


# ------------------------------------------------------------------------------------------ padding text
@pytest.mark.parametrize("name", ["ndr-restore", "restormer", "restormer-biasfree"])
def test_reflect_padding_cards_say_a_protocol_crop_applies_first(name):
    card = get_card(name)
    crop = load_protocol("3deg").crop
    assert crop.rule == "center_multiple" and crop.base % card.input_multiple == 0  # a cropped image needs no pad
    notes = " ".join(card.notes.split())
    assert "the crop applies first, the cropped image is already a multiple of 8 and nothing is padded" in notes
