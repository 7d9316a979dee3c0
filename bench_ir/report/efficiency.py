"""The efficiency table (the paper's "Tab. 6" efficiency part): 3deg Average PSNR, memory, params and
FLOPs of the published models (table6_efficiency.csv) beside profiled runs (``<run_dir>/profile.json``).

Units as the paper prints them: PSNR in dB (3deg Average), memory in M (MiB for measured rows: peak
memory of the profile), params in M (millions), FLOPs in G (fvcore count / 1e9, a multiply-add
counted once, as the MIRAGE scripts). A measured run has a PSNR only when it is a 3deg run.
"""

from __future__ import annotations

from bench_ir.leaderboard import AVERAGE, EFFICIENCY_TABLE, PublishedRow, protocol_rows, published_rows
from bench_ir.report.measured import MeasuredRun, profile_figures
from bench_ir.report.model import NumericColumn, RowBlock, TableModel, mark_best
from bench_ir.report.tables import measured_table_row, published_table_row, unique_name

__all__ = ["EFFICIENCY_COLUMNS", "build_efficiency_table", "PSNR_PROTOCOL"]

PSNR_PROTOCOL = "3deg"
EFFICIENCY_COLUMNS = [
    NumericColumn(("", "PSNR_3deg_average"), "", "PSNR", higher_is_better=True, decimals=2),
    NumericColumn(("", "memory"), "", "Memory", higher_is_better=False, decimals=0, unit="M"),
    NumericColumn(("", "params"), "", "Params", higher_is_better=False, decimals=2, unit="M"),
    NumericColumn(("", "FLOPs"), "", "FLOPs", higher_is_better=False, decimals=0, unit="G"),
]
_FIGURE_KEYS = {"memory": "memory_m", "params": "params_m", "FLOPs": "flops_g"}


def _measured_lookup(run: MeasuredRun, figures: dict[str, float | None]):
    def lookup(column: NumericColumn) -> float | None:
        if column.key[1] == "PSNR_3deg_average":
            return run.value((AVERAGE, ""), "PSNR") if run.protocol == PSNR_PROTOCOL else None
        return figures.get(_FIGURE_KEYS[column.key[1]])

    return lookup


def _published_lookup(row: PublishedRow):
    # The CSV keys efficiency cells by metric name alone (dataset and subset empty).
    return lambda column: row.value("", "", column.key[1])


def _profile_note(run: MeasuredRun) -> str | None:
    profile = run.run.profile or {}
    settings = [f"{name} {profile[name]}" for name in ("device", "input_shape", "size", "dtype") if name in profile]
    return f"{run.run_id}: profiled with {', '.join(settings)}." if settings else None


def build_efficiency_table(measured: list[MeasuredRun], leaderboard: bool = True) -> TableModel:
    """Efficiency table: published rows (when ``leaderboard``) and every run that has a profile."""
    table = TableModel(protocol="efficiency", title="Efficiency",
                       caption="MIRAGE ICLR 2026 Table 6 (efficiency): PSNR = 3deg Average",
                       columns=list(EFFICIENCY_COLUMNS), blocks=[], show_params=False)
    published = published_rows(protocol_rows("efficiency", EFFICIENCY_TABLE)) if leaderboard else []
    profiled = [(run, figures) for run in measured if (figures := profile_figures(run.run)) is not None]
    taken = {p.display_name for p in published}
    runs = [measured_table_row(run, unique_name(run.label, run.run_id, taken), table.columns, table,
                               _measured_lookup(run, figures)) for run, figures in profiled]
    if published:
        table.blocks.append(RowBlock("", [published_table_row(p, table.columns, table, _published_lookup(p))
                                          for p in published]))
    if runs:
        table.blocks.append(RowBlock("Measured with bench-ir", runs))
    if published:
        table.notes.append(f"Published rows: {published[0].source}, numbers as printed; the paper does not "
                           "state the setting of its Memory column.")
    if profiled:
        table.notes.append("Measured rows: profile.json of each run; memory = peak memory in MiB, FLOPs = fvcore "
                           "count / 1e9; PSNR only for 3deg runs (3deg Average from the result store).")
        table.notes += [note for run, _ in profiled if (note := _profile_note(run))]
    table.notes.append("Best in bold, second underlined, per column, among published rows and comparable runs.")
    mark_best(table)
    return table
