"""Report numbers are judged on the digits they are printed with: best marks and CSV follow a column's
``min_significant`` digits, and a reproduction Δ is flagged only when its printed value exceeds the tolerance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench_ir.compare_output import _num
from bench_ir.report import Tolerance, build_table, render
from bench_ir.report.delta import _signed
from bench_ir.report.model import PARAMS_COLUMN, Cell, NumericColumn, Row, RowBlock, TableModel, mark_best
from bench_ir.report.tables import measured_table_row

STORE = Path(__file__).parent / "fixtures" / "store"
FLOPS = NumericColumn(("", "FLOPs"), "", "FLOPs", higher_is_better=False, decimals=0, unit="G", min_significant=2)
PARAMS = PARAMS_COLUMN
PSNR = NumericColumn(("Average", ""), "Average", "PSNR", higher_is_better=True, decimals=2)


def _table(column: NumericColumn, values: list[float]) -> TableModel:
    rows = [Row(f"r{i}", "measured", "measured", [Cell(value, column.format(value))], ranked=True)
            for i, value in enumerate(values)]
    return TableModel("efficiency", "x", "x", [column], [RowBlock("", rows)])


@pytest.mark.parametrize(("column", "values", "printed"), [
    (FLOPS, [1.6, 2.4, 3.1], ["1.6G", "2.4G", "3.1G"]),
    (PARAMS, [0.004, 0.001, 0.006], ["0.0040M", "0.0010M", "0.0060M"]),
], ids=["flops", "small-params"])
def test_best_marks_compare_the_digits_a_column_prints(column, values, printed):
    table = _table(column, values)
    mark_best(table)
    cells = [row.cells[0] for row in table.rows]
    assert [cell.text for cell in cells] == printed
    assert sorted(cell.rank or 0 for cell in cells) == [0, 1, 2]  # three different printed values: one best


@pytest.mark.parametrize(("column", "values", "written"), [
    (FLOPS, [1.6, 0.021], ["1.6", "0.021"]),
    (PARAMS, [0.004, 6.21], ["0.0040", "6.21"]),
], ids=["flops", "params"])
def test_csv_writes_the_digits_the_other_formats_print(column, values, written):
    lines = render(_table(column, values), "csv").splitlines()[1:]
    assert [line.rsplit(",", 1)[1] for line in lines] == written


def test_a_delta_that_prints_as_the_tolerance_is_not_flagged(tmp_path):
    run = tmp_path / "mirage"
    shutil.copytree(STORE / "5deg-mirage-t", run)
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    for record in records:
        if record["task"] == "lowlight":
            record["psnr"] = 23.11 - 0.0504  # published LOLv1 PSNR 23.11: Δ = -0.0504 prints -0.05
    (run / "records.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    table = build_table("5deg", [run], delta=Tolerance())
    delta = next(row for row in table.rows if row.kind == "delta")
    cell = delta.cells[table.column_index("LOLv1", "PSNR")]
    assert cell.value == pytest.approx(-0.0504)
    assert (cell.text, cell.marker) == ("-0.05", None)


def test_a_delta_that_rounds_to_zero_prints_without_a_minus_sign():
    assert (_signed(PSNR, -0.001), _signed(PSNR, -0.006), _signed(PSNR, 0.0)) == ("+0.00", "-0.01", "+0.00")
    assert (_num(-0.00001, 2, signed=True), _num(-0.00001, 4), _num(-0.126, 2)) == ("+0.00", "0.0000", "-0.13")


def test_a_small_measured_model_shows_its_params_with_two_significant_digits(tmp_path):
    from types import SimpleNamespace

    run = SimpleNamespace(manifest={"model": {"name": "tiny", "params": 4012}}, params=4012, run_id="r", convention={},
                          comparable=True, value=lambda key, metric: None, nonfinite=0, incomplete=False,
                          short_sets=[], reasons=[], label="tiny")
    row = measured_table_row(run, "tiny", [PSNR], TableModel("t", "x", "x", [PSNR], []))
    assert row.params == "0.0040M"
