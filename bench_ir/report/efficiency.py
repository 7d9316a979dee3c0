"""The efficiency table (the paper's "Tab. 6" efficiency part): 3deg Average PSNR, memory, params and
FLOPs of the published models (table6_efficiency.csv) beside profiled runs (``<run_dir>/profile.json``).

Units as the paper prints them: PSNR in dB (3deg Average), memory in M (MiB for measured rows: peak
memory of the profile), params in M (millions), FLOPs in G (fvcore count / 1e9, a multiply-add
counted once, as the MIRAGE scripts). A measured run has a PSNR only when it is a 3deg run; a protocol run
takes its figures from its own profile.json or from the profile run joined to it (report/profiles.py), and is
named as in the protocol table. A profile run that joins no protocol run given gets a row of its own.
"""

from __future__ import annotations

from bench_ir.leaderboard import AVERAGE, EFFICIENCY_TABLE, PublishedRow, protocol_rows, published_rows
from bench_ir.report.measured import MeasuredRun, inference_params_published, is_profile_run, profile_figures
from bench_ir.report.model import PARAMS_COLUMN, NumericColumn, RowBlock, TableModel, mark_best
from bench_ir.report.tables import (
    add_provenance,
    caption_text,
    inference_params_note,
    measured_name,
    measured_table_row,
    published_table_row,
    unique_name,
)
from bench_ir.shortlist import shortlist

__all__ = ["EFFICIENCY_COLUMNS", "build_efficiency_table", "unprofiled_note", "PSNR_PROTOCOL", "profile_size_of"]

PSNR_PROTOCOL = "3deg"
PUBLISHED_SIZE = 224  # the published FLOPs are fvcore counts on a 1x3x224x224 input (the paper's Table 6)
EFFICIENCY_COLUMNS = [
    NumericColumn(("", "PSNR_3deg_average"), "", "PSNR", higher_is_better=True, decimals=2),
    NumericColumn(("", "memory"), "", "Memory", higher_is_better=False, decimals=0, unit="M", min_significant=2),
    PARAMS_COLUMN,
    NumericColumn(("", "FLOPs"), "", "FLOPs", higher_is_better=False, decimals=0, unit="G", min_significant=2),
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


def _profile_note(name: str, run: MeasuredRun) -> str | None:
    profile = run.profile or {}
    settings = [f"{key} {profile[key]}" for key in ("device", "input_shape", "dtype") if profile.get(key)]
    if profile.get("size") and not profile.get("input_shape"):
        settings.append(f"input {profile.get('batch') or 1}x3x{profile['size']}x{profile['size']}")
    source = run.profile_run.run_dir.name if run.profile_run is not None and not run.run.profile else ""
    where = f" (profile run {source})" if source else ""
    static = "; params and FLOPs only" if profile.get("static") else ""
    failed = (profile.get("execution") or {}).get("compile_failed")
    eager = f"; measured eagerly: torch.compile failed ({failed})" if failed else ""
    return f"{name}: profiled with {', '.join(settings)}{static}{eager}{where}." if settings else None


def _params_note(name: str, run: MeasuredRun) -> str | None:
    """Which count a row's Params is when it is not all parameters: the inference-time one, where the model card
    says the published figure is (:func:`~bench_ir.report.measured.inference_params_published`)."""
    profile = run.profile or {}
    inference, total = profile.get("params_inference"), profile.get("params_total") or profile.get("params")
    if not inference_params_published(run.manifest) or inference is None or inference == total:
        return None
    return inference_params_note(name, inference, total)


def profile_size_of(profile: dict | None) -> int | None:
    """The input height and width (pixels) a profile was measured at, None where it does not say."""
    profile = profile or {}
    size = profile.get("size") or (profile.get("input_shape") or [None])[-1]
    return int(size) if size else None


def _row_names(profiled: list[MeasuredRun], taken: set[str]) -> list[str]:
    """Protocol runs are named as in their protocol table; a lone profile run as ``Label (profile S px)``."""
    names = []
    for run in profiled:
        if is_profile_run(run.run):
            names.append(unique_name(run.label, f"profile {profile_size_of(run.profile) or '?'} px", taken))
        else:
            names.append(measured_name(run, taken))
    return names


def unprofiled_note(measured: list[MeasuredRun]) -> str | None:
    """Why measured runs have no row in the efficiency table and no point on its chart: no profile of the same card,
    arguments and checkpoint was found (see bench_ir.report.profiles), and how to get one; None when every protocol
    run has a profile."""
    runs = [run for run in measured if not is_profile_run(run.run) and run.profile is None]
    if not runs:
        return None
    shown = shortlist([run.run_id for run in runs], 5, more=" and {} more")
    return (f"Left out, without a profile of the same model card, arguments and checkpoint among the runs given or "
            f"under --runs-root: {shown}. `bench-ir profile --model M --checkpoint C` measures one (give its folder "
            "to --runs-root), `report --profile` computes params and FLOPs, and `bench-ir suite report` joins a "
            "suite's own profiles.")


def build_efficiency_table(measured: list[MeasuredRun], leaderboard: bool | None = None) -> TableModel:
    """Efficiency table: published rows (unless ``leaderboard`` is False) and every run that has a profile."""
    table = TableModel(protocol="efficiency", title="Efficiency", caption="",
                       columns=list(EFFICIENCY_COLUMNS), blocks=[], show_params=False, source_header="Reference")
    published = published_rows(protocol_rows("efficiency", EFFICIENCY_TABLE)) if leaderboard is not False else []
    joined = {run.profile_run.run_dir.resolve() for run in measured if run.profile_run is not None}
    profiled = [(run, figures) for run in measured
                if not (is_profile_run(run.run) and run.run.run_dir.resolve() in joined)
                and (figures := profile_figures(run.run, run.profile)) is not None]
    table.caption = caption_text("Efficiency: PSNR (3deg Average), memory, params and FLOPs",
                                 published[0].source if published else "", [run for run, _ in profiled])
    taken = {p.display_name for p in published}
    names = _row_names([run for run, _ in profiled], taken)
    runs = [measured_table_row(run, name, table.columns, table, _measured_lookup(run, figures))
            for name, (run, figures) in zip(names, profiled, strict=True)]
    for row, (run, _) in zip(runs, profiled, strict=True):
        size = profile_size_of(run.profile)
        if size is not None and size != PUBLISHED_SIZE:  # FLOPs and memory grow with the input
            row.ranked = False
            row.markers.append(table.footnote(f"profiled at {size} px, not the {PUBLISHED_SIZE} px of the published "
                                              "FLOPs: not comparable; not ranked"))
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
        table.notes += [note for name, (run, _) in zip(names, profiled, strict=True)
                        for note in (_profile_note(name, run), _params_note(name, run)) if note]
    if unprofiled := unprofiled_note(measured):
        table.notes.append(unprofiled)
    table.notes.append("Best in bold, second underlined, per column, among published rows and comparable runs.")
    add_provenance(table, [(name, run) for name, (run, _) in zip(names, profiled, strict=True)])
    mark_best(table)
    return table
