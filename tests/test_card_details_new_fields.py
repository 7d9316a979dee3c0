"""Today's model-card data reaches every place that shows it: the protocol tables' Params is the count the published
figure gives (NDR-Restore's published_params: inference), `list models --details` shows checkpoint.arg_dims, the
bring-your-own-model guide documents arg_dims and the options reports and training read, and AirNet's card notes
name both routes to its single-task checkpoints."""

from __future__ import annotations

from pathlib import Path

from conftest import write_scored_run

from bench_ir.card_docs import card_markdown
from bench_ir.cards import card_record, get_card, with_model_args
from bench_ir.report import build_table

ROOT = Path(__file__).resolve().parents[1]
NDR_TOTAL, NDR_INFERENCE = 36962484, 27330315


def _run(run_dir: Path, name: str, display_name: str, params: int, **model) -> Path:
    """A stored 3deg run of card ``name`` with ``params`` parameters (one image of one task) and extra ``model``
    manifest fields (a card copy, --model-arg overrides)."""
    tasks = [{"name": "dehaze", "label": "SOTS", "leaderboard": {"dataset": "SOTS", "subset": "Outdoor"}}]
    return write_scored_run(run_dir, tasks, [("dehaze", "0001.png", 30.0, 0.97)],
                            model={"name": name, "display_name": display_name, "params": params, **model})


def _measured_row(table):
    (row,) = [row for row in table.rows if row.kind == "measured"]
    return row


# --------------------------------------------------------------------------------- protocol tables' Params
def test_ndr_restore_protocol_row_params_are_the_inference_count_its_published_figure_gives(tmp_path):
    table = build_table("3deg", [_run(tmp_path / "ndr", "ndr-restore", "NDR-Restore", NDR_TOTAL)], leaderboard=False)
    assert _measured_row(table).params == "27.33M"


def test_the_protocol_table_notes_which_count_the_params_column_shows(tmp_path):
    table = build_table("3deg", [_run(tmp_path / "ndr", "ndr-restore", "NDR-Restore", NDR_TOTAL)], leaderboard=False)
    assert ("NDR-Restore: Params counts the 27.33M parameters used at inference, the count its published figure "
            "gives (model card option published_params); all 36.96M with its training-only modules.") in table.notes


def test_the_inference_count_comes_from_the_manifests_copy_of_the_card(tmp_path):
    card = get_card("ndr-restore")
    run = _run(tmp_path / "ndr", "ndr-restore", "NDR-Restore", NDR_TOTAL, card=card_record(card))
    assert _measured_row(build_table("3deg", [run], leaderboard=False)).params == f"{NDR_INFERENCE / 1e6:.2f}M"


def test_a_run_with_model_arg_overrides_shows_all_its_parameters_without_a_note(tmp_path):
    overrides = {"dim": 32}
    card = with_model_args(get_card("ndr-restore"), overrides)
    run = _run(tmp_path / "ndr", "ndr-restore", card.display_name, 20000000, card=card_record(card),
               args_overrides=overrides)
    table = build_table("3deg", [run], leaderboard=False)
    assert _measured_row(table).params == "20.00M"
    assert not [note for note in table.notes if "Params counts" in note]


def test_a_model_whose_published_figure_counts_all_parameters_keeps_its_total(tmp_path):
    table = build_table("3deg", [_run(tmp_path / "mirage", "mirage-t", "MIRAGE-T", 6207412)], leaderboard=False)
    assert _measured_row(table).params == "6.21M"
    assert not [note for note in table.notes if "Params counts" in note]


# ------------------------------------------------------------------------------ list models --details
def test_details_show_which_checkpoint_dimension_a_factory_argument_sets():
    text = card_markdown(get_card("airnet"))
    assert "| checkpoint dimensions set by arguments | `E.E.queue` dimension 1 = 256 x `train_batch_size` (" in text
    assert "load error naming the `--model-arg` that loads it" in text


def test_details_of_a_card_without_arg_dims_have_no_such_row():
    assert "checkpoint dimensions set by arguments" not in card_markdown(get_card("mirage-t"))


# ------------------------------------------------------------------------------------------------ docs
def test_the_byo_model_guide_documents_arg_dims_and_the_options_reports_and_training_read():
    guide = (ROOT / "docs" / "byo-model.md").read_text(encoding="utf-8")
    card_section = guide.split("## 1. Describe the model in a card")[1].split("## 2.")[0]
    for name in ("arg_dims", "published_convention", "published_params", "train_outputs"):
        assert f"`{name}" in card_section, name


# ---------------------------------------------------------------------------------------- AirNet notes
def test_airnet_notes_name_both_routes_to_the_single_task_checkpoints_and_which_gets_a_delta_block():
    notes = " ".join(get_card("airnet").notes.split())
    assert "--model-arg train_batch_size=N" in notes
    assert "a copy of this card with that value in args, passed as --model FILE.yaml" in notes
    assert "Only the card copy (which keeps leaderboard_key) gets a reproduction (Δ) block" in notes
