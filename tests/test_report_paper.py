"""Reports a researcher pastes into a paper (issue 14): standalone LaTeX that compiles, published vs reproduced
(Δ) blocks, the user's model on the efficiency table and chart, provenance in every format, a sortable HTML
page, and a `compare` that reads at 80 columns and speaks CSV / JSON / Markdown."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_scored_run
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.compare import compare_runs
from bench_ir.compare_output import compare_payload, paired_table
from bench_ir.report import Tolerance, build_report, build_table, render
from bench_ir.resources import reports_dir

STORE = Path(__file__).parent / "fixtures" / "store"
RUNS_5DEG = [STORE / "5deg-mirage-t", STORE / "5deg-mynet", STORE / "5deg-sample"]
RUNS_3DEG = [STORE / "3deg-mynet", STORE / "3deg-mirage-t-limit"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
runner = CliRunner()
TASKS_3DEG = [{"name": "dehaze", "label": "SOTS-outdoor", "leaderboard": {"dataset": "SOTS-outdoor", "subset": None}}]


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _write_run(run_dir: Path, records: list[tuple[str, str, float, float]], **manifest) -> Path:
    return write_scored_run(run_dir, TASKS_3DEG, records, average=[], **manifest)


# ------------------------------------------------------------------------------------------------ LaTeX
def test_latex_fragment_names_its_packages_on_the_first_line_and_takes_caption_and_label():
    text = _cli("report", "--protocol", "udc", "--format", "latex", "--caption", "My caption", "--label", "tab:mine")
    assert text.splitlines()[0].startswith(r"% bench-ir table: needs \usepackage{booktabs,graphicx}")
    assert r"\caption{My caption}" in text and r"\label{tab:mine}" in text
    assert r"\documentclass" not in text


def test_caption_carries_one_table_number_and_a_gap_under_it(tmp_path):
    text = render(build_table("5deg", RUNS_5DEG), "latex")
    caption = re.search(r"\\caption\{([^}]*)\}", text).group(1)
    assert caption.startswith("Results on protocol 5deg.") and "Table" not in caption and "Tab. 2" in caption
    assert "\\vspace" in text.split(r"\caption")[1].split(r"\begin{tabular}")[0]


def test_params_print_with_their_unit_and_a_parameterless_model_prints_a_dash(tmp_path):
    table = build_table("5deg")
    assert table.row("AdaIR").params == "29M"  # the CSV leaves the unit out in Table 2
    assert build_table("3deg").row("AdaIR").params == "29M"
    identity = _write_run(tmp_path / "input", [("dehaze", "a.png", 15.0, 0.7)],
                          model={"name": "input", "display_name": "Input (identity)", "params": 0})
    assert build_table("3deg", [identity]).row("Input (identity)").params == "–"


def test_footnotes_explain_the_asterisk_and_the_mirage_s_average_with_the_mean_of_its_values():
    table = build_table("5deg")
    assert any(note.startswith("∗ Mark of the source table, which does not define it;")
               for note in table.notes)
    mirage_s = [table.footnotes[m].text for m in table.row("MIRAGE-S").markers]
    assert mirage_s == ["MIRAGE-S, Average PSNR: printed 30.68 (off by more than rounding); the mean of the printed "
                        "values is 30.694"]
    assert render(table, "markdown").splitlines()[2].startswith("| Method | Venue | Params |")


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                    reason="pdflatex/pdftotext not installed (CI installs texlive and poppler-utils)")
def test_standalone_latex_compiles_with_pdflatex_and_the_pdf_says_what_the_table_holds(tmp_path):
    runs = [str(run) for run in RUNS_5DEG]
    _cli("report", "--protocol", "5deg", *runs, "--format", "latex", "--standalone", "--delta",
         "--out", str(tmp_path / "table.tex"))
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "table.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    text = subprocess.run(["pdftotext", "-layout", "table.pdf", "-"], cwd=tmp_path, capture_output=True, text=True,
                          check=True, timeout=60).stdout
    flat = " ".join(text.split())
    assert "Table 1: Results on protocol 5deg. Published rows: MIRAGE (ICLR 2026), Tab. 2, as printed." in flat
    assert flat.count("Table 1:") == 1 and "Table 2:" not in flat
    assert "MIRAGE-T (sample) [random weights, limit 2]" in flat  # says "sample" without its footnotes
    assert "Δ measured − published" in flat or "∆ measured − published" in flat
    assert "-0.06" in flat  # LOLv1 PSNR, beyond the 0.05 dB tolerance
    assert "beyond tolerance (|∆| > 0.05 dB PSNR or 0.002 SSIM)" in flat or "beyond tolerance (|Δ| > 0.05" in flat
    assert "∗ Mark of the source table, which does not define it" in flat
    assert "git 8c9a74a0c1d2; device NVIDIA H100 80GB HBM3 (cuda); fp32 exact; checkpoint" in flat  # provenance
    assert "checkpoint mynet-5deg.ckpt (sha256 56ef7f47da52)" in flat


# -------------------------------------------------------------------------------------------- reproduction
@pytest.mark.parametrize("options, message", [
    (["--delta", "--tol-psnr", "-1"], "--tol-psnr must be 0 or more, got -1.0"),
    (["--profile", "--profile-size", "100", "--runs-root", "PROFILES"],
     "MIRAGE-T needs H and W divisible by 8 (card input_multiple); --profile-size 100 is not. Use 96 or 104."),
])
def test_report_refuses_an_impossible_tolerance_or_profile_size_naming_the_option(tmp_path, options, message):
    options = [str(tmp_path / "profiles") if option == "PROFILES" else option for option in options]
    result = CliRunner().invoke(app, ["report", "--protocol", "5deg", str(STORE / "5deg-mirage-t"), *options])
    assert result.exit_code == 2 and f"error: {message}" in result.output
    assert not (tmp_path / "profiles").exists()


@pytest.mark.parametrize("fmt, options, message", [
    ("latex", {"raw": True}, "--raw applies to --format csv, not latex"),
    ("markdown", {"standalone": True}, "--standalone applies to --format latex or html, not markdown"),
    ("html", {"label": "tab:mine"}, "--label applies to --format latex, not html"),
])
def test_an_option_of_another_format_is_an_error_not_ignored(fmt, options, message):
    with pytest.raises(ValueError) as err:
        build_report("5deg", [STORE / "5deg-mirage-t"], fmt, **options)
    assert str(err.value) == message


def test_a_run_with_overridden_card_arguments_gets_no_reproduction_block(tmp_path):
    run = tmp_path / "5deg-mirage-t-dim16"
    shutil.copytree(STORE / "5deg-mirage-t", run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"]["args_overrides"] = {"dim": 16}
    (run / "manifest.json").write_text(json.dumps(manifest))
    table = build_table("5deg", [run], delta=Tolerance())
    assert not [block for block in table.blocks if block.title.startswith("Reproduction")]
    assert ("No reproduction block for MIRAGE-T (5deg-mirage-t): its model card's arguments were overridden "
            "(--model-arg), so it is not the published network.") in table.notes, table.notes


def test_delta_blocks_show_published_measured_and_delta_and_flag_cells_beyond_tolerance():
    table = build_table("5deg", [STORE / "5deg-mirage-t"], delta=Tolerance())
    block = next(b for b in table.blocks if b.title.startswith("Reproduction: MIRAGE-T (5deg-mirage-t)"))
    published, measured, delta = block.rows
    assert (published.name, measured.name, delta.name) == (
        "MIRAGE-T published", "MIRAGE-T (5deg-mirage-t) measured", "Δ measured − published")
    lowlight = table.column_index("LOLv1", "PSNR")
    assert delta.cells[lowlight].text == "-0.06" and delta.cells[lowlight].value == pytest.approx(23.05 - 23.11)
    flagged = {table.columns[i].group + " " + table.columns[i].metric
               for i, cell in enumerate(delta.cells) if cell.marker is not None}
    assert flagged == {"LOLv1 PSNR"}  # |Δ| of every other cell is within 0.05 dB / 0.002
    assert not any(row.ranked for row in block.rows)
    loose = build_table("5deg", [STORE / "5deg-mirage-t"], delta=Tolerance(psnr=0.1))
    assert not [c for b in loose.blocks for r in b.rows if r.kind == "delta" for c in r.cells if c.marker is not None]


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv", "html"])
def test_delta_rows_reach_every_format(fmt):
    text = build_report("5deg", [STORE / "5deg-mirage-t"], fmt, delta=Tolerance())
    assert "MIRAGE-T (5deg-mirage-t) measured" in text
    assert ("-0.06" in text) if fmt != "csv" else ("-0.06" in text and ",delta," in text)


def test_runs_of_models_without_a_published_row_get_no_delta_block():
    table = build_table("5deg", [STORE / "5deg-mynet"], delta=Tolerance())
    assert not [b for b in table.blocks if b.title.startswith("Reproduction")]
    assert "No reproduction block for MyNet (ours): no published row is of its model." in table.notes


def test_delta_without_published_rows_says_there_is_nothing_to_compare_with():
    table = build_table("5deg", [STORE / "5deg-mirage-t"], delta=Tolerance(), leaderboard=False)
    assert [n for n in table.notes if n.startswith("No reproduction block")] == [
        "No reproduction block for MIRAGE-T: this table shows no published rows."]


@pytest.mark.parametrize("change", [{"limit": 2}, {"planned": {"dehaze": 500}}], ids=["limit", "unfinished"])
def test_a_run_on_part_of_the_test_sets_gets_a_note_not_a_delta_block(tmp_path, change):
    run = tmp_path / "mirage"
    shutil.copytree(STORE / "5deg-mirage-t", run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, **change}))
    table = build_table("5deg", [run], delta=Tolerance())
    assert not [b for b in table.blocks if b.title.startswith("Reproduction")]
    (note,) = [n for n in table.notes if n.startswith("No reproduction block")]
    assert note.endswith(": a Δ to the printed values needs every image of the test sets, not --limit, an "
                         "unfinished run or a test set with images missing.")


@pytest.mark.parametrize(("flag", "tag"), [("sample", "sample"), ("random_weights", "random weights")])
def test_a_run_on_sample_data_or_random_weights_gets_a_note_not_a_delta_block(tmp_path, flag, tag):
    run = tmp_path / "mirage"
    shutil.copytree(STORE / "5deg-mirage-t", run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, flag: True}))
    table = build_table("5deg", [run], delta=Tolerance())
    assert not [b for b in table.blocks if b.title.startswith("Reproduction")]
    (note,) = [n for n in table.notes if n.startswith("No reproduction block")]
    assert note == (f"No reproduction block for MIRAGE-T [{tag}]: a Δ to the printed values needs the benchmark's "
                    "test sets and trained weights, not sample data, random weights or a sample checkpoint.")


# ------------------------------------------------------------------------------------------- provenance
def test_provenance_reaches_markdown_latex_and_csv():
    table = build_table("5deg", RUNS_5DEG)
    assert ("MIRAGE-T (5deg-mirage-t): run 5deg-mirage-t; git 8c9a74a0c1d2; device NVIDIA H100 80GB HBM3 (cuda); "
            "fp32 exact; checkpoint mirage-t-5deg.ckpt (sha256 037581051725); torch 2.5.1, bench-ir 0.1.0; images "
            "per task: dehaze 4, derain 4") in render(table, "markdown")
    assert r"checkpoint mirage-t-5deg.ckpt (sha256 037581051725)" in render(table, "latex")
    rows = {row["method"]: row for row in csv.DictReader(io.StringIO(render(table, "csv")))}
    mirage = rows["MIRAGE-T (5deg-mirage-t)"]
    assert (mirage["git"], mirage["device"], mirage["dtype"], mirage["execution"], mirage["checkpoint"]) == (
        "8c9a74a0c1d2", "NVIDIA H100 80GB HBM3 (cuda)", "fp32", "exact", "mirage-t-5deg.ckpt")
    assert mirage["images"].startswith("dehaze 4, derain 4")
    assert rows["NAFNet∗"]["git"] == ""  # published rows have no run


def test_csv_rounds_to_display_precision_unless_raw(tmp_path):
    run = _write_run(tmp_path / "r", [("dehaze", "a.png", 24.2047, 0.91234)], label="Mine")
    rounded = next(r for r in csv.DictReader(io.StringIO(build_report("3deg", [run], "csv"))) if r["method"] == "Mine")
    raw = next(r for r in csv.DictReader(io.StringIO(build_report("3deg", [run], "csv", raw=True)))
               if r["method"] == "Mine")
    assert (rounded["SOTS-outdoor PSNR"], raw["SOTS-outdoor PSNR"]) == ("24.20", "24.2047")
    assert (rounded["SOTS-outdoor SSIM"], raw["SOTS-outdoor SSIM"]) == ("0.912", "0.91234")


# ------------------------------------------------------------------------------------------------ HTML
@pytest.fixture(scope="module")
def page_3deg():
    return build_report("3deg", RUNS_3DEG, "html")


def test_html_footnote_symbols_are_unique_on_the_page():
    page = build_report("5deg", RUNS_5DEG, "html")
    symbols = re.findall(r'<p class="footnote"><sup class="marker">([^<]+)</sup>', page)
    assert len(symbols) > 6 and len(symbols) == len(set(symbols))


def test_html_measured_rows_link_to_their_run_records_and_strips():
    page = build_report("5deg", RUNS_5DEG, "html")
    assert '<a href="#run-5deg-mirage-t"' in page and '<tr id="run-5deg-mirage-t">' in page
    assert '<a href="#run-5deg-mirage-t-records">records</a> <a href="#strip-dehaze">strip dehaze</a>' in page
    assert '<details class="records" id="run-5deg-mirage-t-records">' in page and 'id="strip-dehaze"' in page
    runs = page[page.index('<section id="runs">'):]
    for column in ("git revision", "device", "dtype / execution", "versions", "images per task", "checkpoint"):
        assert f"<th>{column}</th>" in runs
    assert "mirage-t-5deg.ckpt" in runs and "NVIDIA H100 80GB HBM3 (cuda)" in runs and "fp32 / exact" in runs


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)")
def test_html_columns_sort_in_headless_chromium_with_the_users_model_on_the_chart(tmp_path, page_3deg):
    click = ('<script>document.querySelector(\'#table-3deg th[data-sort-col="{col}"]\').click();</script>'
             '</body>')
    average_psnr = 3 + build_table("3deg").column_index("Average", "PSNR")  # after Method, Venue, Params
    (tmp_path / "page.html").write_text(page_3deg, encoding="utf-8")
    (tmp_path / "sorted.html").write_text(page_3deg.replace("</body>", click.format(col=average_psnr)),
                                          encoding="utf-8")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
        subprocess.run([*flags, "--window-size=1400,2600", f"--screenshot={shot}", (tmp_path / "page.html").as_uri()],
                       capture_output=True, timeout=120, check=True)
        dom = subprocess.run([*flags, "--dump-dom", (tmp_path / "sorted.html").as_uri()], capture_output=True,
                             text=True, timeout=120, check=True).stdout
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2600, 1400) and pixels.std() > 20
    table = dom[dom.index('id="table-3deg"'):dom.index("</table>", dom.index('id="table-3deg"'))]
    first_block = table.split("<tbody")[1]
    cells = [re.findall(r'<td class="num[^"]*">(?:<strong>|<u>)?([^<]*)', row) for row in first_block.split("<tr")[1:]]
    averages = [float(row[average_psnr - 3]) for row in cells]
    assert len(averages) > 10 and averages == sorted(averages, reverse=True)  # PSNR↑ sorts best first
    assert 'aria-sort="descending"' in table
    chart = dom[dom.index('<svg id="efficiency-chart"'):dom.index("</svg>", dom.index('<svg id="efficiency-chart"'))]
    assert "MyNet (ours)" in chart  # the user's profiled 3deg run is a point on the chart


# ----------------------------------------------------------------------------------- efficiency join
@pytest.fixture(scope="module")
def profiled_user_model(tmp_path_factory):
    """A 3deg sample run of the example model and a `bench-ir profile` run of the same card and checkpoint."""
    root = tmp_path_factory.mktemp("efficiency")
    model, checkpoint = str(EXAMPLES / "tiny-unet.yaml"), str(EXAMPLES / "tiny-unet.safetensors")
    _cli("run", "--protocol", "3deg", "--model", model, "--checkpoint", checkpoint, "--sample", "--run-dir",
         str(root / "run"))
    _cli("profile", "--model", model, "--checkpoint", checkpoint, "--size", "32", "--repeats", "1", "--warmup", "0",
         "--runs-root", str(root / "profiles"))
    return root


def test_a_profiled_user_model_appears_in_the_efficiency_table_of_the_3deg_report(profiled_user_model):
    root = profiled_user_model
    page = _cli("report", "--protocol", "3deg", str(root / "run"), "--runs-root", str(root / "profiles"),
                "--format", "html")
    efficiency = page[page.index('id="table-efficiency"'):page.index("</table>", page.index('id="table-efficiency"'))]
    row = efficiency[efficiency.index("TinyUNet (example) [sample]"):].split("</tr>")[0]
    cells = re.findall(r'<td class="num[^"]*">([^<]+)', row)
    psnr = json.loads(_cli("export", str(root / "run"), "--format", "json"))
    tasks = {}
    for record in psnr:
        tasks.setdefault(record["task"], []).append(record["psnr"])
    assert cells[0] == f"{np.mean([np.mean(v) for v in tasks.values()]):.2f}"  # the 3deg Average of the run
    assert cells[2] == "0.033M"  # 33,379 parameters
    assert "TinyUNet (example) [sample]" in page[page.index('<svg id="efficiency-chart"'):]
    markdown = _cli("report", "--protocol", "efficiency", str(root / "run"), "--runs-root", str(root / "profiles"))
    assert re.search(r"\| TinyUNet \(example\) \[sample\]\S* \| measured \| " + re.escape(cells[0]), markdown)
    assert "profiled at 32 px, not the 224 px of the published FLOPs: not comparable; not ranked" in markdown
    assert "profile run" in markdown  # the note names the joined profile run


def test_a_profile_of_another_checkpoint_does_not_join(profiled_user_model, tmp_path):
    root = profiled_user_model
    shutil.copytree(root / "run", tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    manifest["checkpoint"]["sha256"] = "0" * 64
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    table = build_table("efficiency", [tmp_path / "run"], runs_root=root / "profiles")
    assert not [row for row in table.rows if row.kind == "measured"]
    assert any(note.startswith("Left out, without a profile of the same model card, arguments and checkpoint among "
                               "the runs given or under --runs-root: run.") for note in table.notes), table.notes


def test_report_profile_computes_params_and_flops_on_the_cpu_and_writes_the_chart(profiled_user_model, tmp_path):
    root = profiled_user_model
    _cli("report", "--protocol", "3deg", str(root / "run"), "--profile", "--profile-size", "32", "--runs-root",
         str(tmp_path / "runs"), "--format", "markdown", "--chart-out", str(tmp_path / "fig" / "efficiency"))
    (profile_dir,) = list((tmp_path / "runs").iterdir())
    profile = json.loads((profile_dir / "profile.json").read_text())
    manifest = json.loads((profile_dir / "manifest.json").read_text())
    assert profile["params"] == 33379 and profile["flops"] > 0 and profile["peak_memory_bytes"] is None
    run_manifest = json.loads((root / "run" / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] == run_manifest["checkpoint"]["sha256"]
    assert (tmp_path / "fig" / "efficiency.pdf").read_bytes().startswith(b"%PDF")
    assert "TinyUNet (example) [sample]" in (tmp_path / "fig" / "efficiency.svg").read_text()
    table = build_table("efficiency", [root / "run"], runs_root=tmp_path / "runs")
    (flops,) = [row.cells[3] for row in table.rows if row.kind == "measured"]
    assert flops.value == pytest.approx(profile["flops"] / 1e9) and flops.text != "0G"  # two significant digits
    assert float(flops.text.rstrip("G")) == pytest.approx(profile["flops"] / 1e9, rel=0.05)


# ---------------------------------------------------------------------------------------------- compare
def _check_schema(value, schema: dict, path: str = "$") -> None:
    """A small JSON-Schema checker for the keywords compare.schema.json uses."""
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                _check_schema(value, option, path)
                return
            except AssertionError as err:
                errors.append(str(err))
        raise AssertionError(f"{path}: matches no option: {errors}")
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        checks = {"null": value is None, "boolean": isinstance(value, bool), "string": isinstance(value, str),
                  "integer": isinstance(value, int) and not isinstance(value, bool),
                  "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                  "array": isinstance(value, list), "object": isinstance(value, dict)}
        assert any(checks[name] for name in names), f"{path}: {value!r} is not {names}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert value >= schema.get("minimum", value) and value <= schema.get("maximum", value), f"{path}: {value}"
        assert value > schema.get("exclusiveMinimum", value - 1) and value < schema.get("exclusiveMaximum", value + 1)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), f"{path}: unexpected {set(value) - set(properties)}"
        for key, item in value.items():
            if key in properties:
                _check_schema(item, properties[key], f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check_schema(item, schema["items"], f"{path}[{index}]")


SCHEMA = json.loads((reports_dir() / "compare.schema.json").read_text(encoding="utf-8"))


def test_compare_json_follows_its_schema():
    document = json.loads(_cli("compare", str(STORE / "5deg-mirage-t"), str(STORE / "5deg-mynet"), "--leaderboard",
                               "--n-boot", "200", "--format", "json"))
    _check_schema(document, SCHEMA)
    assert document["schema"] == "bench-ir/compare/1"
    assert {row["task"] for row in document["paired"]["rows"]} >= {"dehaze", "Average"}
    alone = json.loads(_cli("compare", str(STORE / "5deg-sample"), "--format", "json"))
    _check_schema(alone, SCHEMA)
    assert alone["paired"] is None and alone["leaderboard"]["rows"][0]["rank"] is None
    with pytest.raises(AssertionError):
        _check_schema({**document, "paired": {**document["paired"], "rows": [{"task": 1}]}}, SCHEMA)


def test_compare_adds_the_protocols_average_and_warns_when_few_images_are_paired():
    frame = compare_runs(STORE / "5deg-mirage-t", STORE / "5deg-mynet", n_boot=300)
    average = frame[(frame["task"] == "Average") & (frame["metric"] == "PSNR")].iloc[0]
    tasks = frame[(frame["metric"] == "PSNR") & frame["task"].isin(["dehaze", "derain", "denoise-25", "deblur",
                                                                     "lowlight"])]
    assert average["delta"] == pytest.approx(tasks["delta"].mean())
    assert average["ci_low"] <= average["delta"] <= average["ci_high"] and average["n_paired"] == 19
    assert "few paired images in dehaze (n=3)" in frame.attrs["warnings"][0]
    assert compare_payload(paired=frame)["paired"]["warnings"] == frame.attrs["warnings"]


def test_compare_is_readable_at_80_columns_when_piped():
    output = _cli("compare", str(STORE / "5deg-mirage-t"), str(STORE / "5deg-mynet"), "--leaderboard",
                  "--n-boot", "200")
    lines = output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    lowlight = r"^ lowlight\s+PSNR\s+23\.05\s+24\.10\s+\+1\.05\s+\[\+\d\.\d\d, \+\d\.\d\d\]\s+100%\s+4$"
    assert any(re.match(lowlight, line.rstrip()) for line in lines), output
    assert any(line.startswith(" Average ") for line in lines) and "…" not in output
    assert "n_ranked counts the published main-section rows with a value in that column plus this run " \
           "(Average PSNR: 17 published + 1 = 18)" in " ".join(output.split())
    assert paired_table(compare_runs(STORE / "5deg-mirage-t", STORE / "5deg-mynet", n_boot=50)).columns[0].header \
        == "task"


def test_compare_leaderboard_says_why_a_run_is_not_ranked():
    output = " ".join(_cli("compare", str(STORE / "5deg-sample"), "--leaderboard").split())
    assert ("MIRAGE-T (sample) is not ranked: its numbers are not comparable with the published ones because of "
            "sample (synthetic) data; --limit 2 (at most 2 images per task); random weights.") in output


def test_a_run_scored_with_another_convention_is_not_ranked_and_says_so(tmp_path):
    run = _write_run(tmp_path / "m3", [("dehaze", "a.png", 30.0, 0.97)], label="Mine",
                     convention={"id": "M3", "name": "onerestore-cdd11", "description": "other"})
    output = " ".join(_cli("compare", str(run), "--leaderboard").split())
    assert "Mine is not ranked" in output and "metric convention M3, not the protocol's M1" in output


@pytest.mark.parametrize("fmt", ["csv", "markdown"])
def test_compare_writes_csv_and_markdown_for_machines(fmt):
    result = runner.invoke(app, ["compare", str(STORE / "5deg-mirage-t"), str(STORE / "5deg-mynet"), "--n-boot", "100",
                                 "--format", fmt])
    assert result.exit_code == 0, result.output
    text = result.stdout  # the warnings go to stderr
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["task"] == "dehaze" and rows[-1]["task"] == "Average" and "ci_low" in rows[0]
    else:
        assert text.startswith("**B - A: MyNet (ours) vs MIRAGE-T**") and "| Average | PSNR |" in text


# ------------------------------------------------------------------------------------------------ small
def test_profile_throughput_keeps_significant_digits():
    from bench_ir.profiling import _throughput

    assert (_throughput(0.0412), _throughput(3.456), _throughput(1234.5)) == ("0.0412", "3.46", "1234.5")


def test_a_run_limited_to_one_image_says_image_not_images(tmp_path):
    from bench_ir.runner import RunConfig, run_protocol

    outcome = run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "r", limit=1))
    assert "--limit 1: at most 1 image per task, not the full test sets" in outcome.notices
