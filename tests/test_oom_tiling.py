"""An image that does not fit in GPU memory whole is restored in tiles (engine.restore's fallback, exercised on a
GPU in tests/test_cuda.py); such an output differs from whole-image inference near tile seams, so it must never
pass unnoticed: its record carries the tile size, the run's manifest and notices say how many images were tiled,
report provenance names it, and restore.json lists the tiled outputs. Here the fallback is simulated on the CPU by
reporting a tile for the one 192x192 sample photo (astronaut)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_ir import engine, folder_restore
from bench_ir.cli import app
from bench_ir.compare import compare_runs
from bench_ir.data.sample import load_sample_photo
from bench_ir.folder_restore import RestoreConfig, restore_folder
from bench_ir.report.measured import provenance, provenance_line
from bench_ir.results import RunStore, load_run
from bench_ir.runner import RunConfig, run_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: a thread pool only costs time on a shared CPU

runner = CliRunner()


def _tiles_the_square_images(module, monkeypatch, tile: int = 256) -> None:
    """``module.restore`` reports ``tile`` for square inputs, as if they had run out of GPU memory whole."""
    real = engine.restore

    def restore(model, x, policy, options):
        out, _ = real(model, x, policy, options)
        return out, tile if x.shape[-1] == x.shape[-2] else None

    monkeypatch.setattr(module, "restore", restore)


def _derain(tmp_path: Path, **options) -> object:
    return run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "run", limit=2,
                                  **options))


def test_a_record_of_an_image_tiled_after_out_of_memory_carries_its_tile_size(tmp_path, monkeypatch):
    _tiles_the_square_images(engine, monkeypatch)
    _derain(tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [(r["image"], r.get("tile")) for r in lines] == [("astronaut", 256), ("chelsea", None)]
    assert "tile" not in lines[1]  # the stable columns only, where nothing was tiled


def test_the_manifest_and_the_notices_count_the_tiled_images(tmp_path, monkeypatch):
    _tiles_the_square_images(engine, monkeypatch)
    outcome = _derain(tmp_path)
    assert outcome.manifest["auto_tiled"] == {"derain": {"images": 1, "tile": 256}}
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["auto_tiled"] == {
        "derain": {"images": 1, "tile": 256}}
    assert any(n.startswith("1 image(s) did not fit in GPU memory whole and were restored in overlapping tiles "
                            "(derain 1 at 256 px; overlap 32 px)") for n in outcome.notices)


def test_a_run_where_every_image_went_through_whole_has_no_auto_tiled_entry(tmp_path):
    outcome = _derain(tmp_path)
    assert "auto_tiled" not in outcome.manifest and not any("GPU memory" in n for n in outcome.notices)
    assert provenance(load_run(tmp_path / "run"))["tiling"] == ""


def test_report_provenance_names_automatic_and_requested_tiling(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        _tiles_the_square_images(engine, patch)
        _derain(tmp_path)
    line = provenance_line("Input", provenance(load_run(tmp_path / "run")))
    assert "fp32 fast; 1 image(s) tiled at 256 px (overlap 32) after GPU out-of-memory; no checkpoint" in line
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "tiled", limit=1,
                           tile=64, tile_overlap=16))
    assert provenance(load_run(tmp_path / "tiled"))["tiling"] == "tiles of 64 px (overlap 16)"


def test_report_csv_has_a_tiling_column(tmp_path, monkeypatch):
    _tiles_the_square_images(engine, monkeypatch)
    _derain(tmp_path)
    result = runner.invoke(app, ["report", "--protocol", "derain", "--runs", str(tmp_path / "run"), "--format",
                                 "csv"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    measured = [row for row in rows if ",measured," in row]
    assert ",execution,tiling,checkpoint," in header
    assert len(measured) == 1 and "1 image(s) tiled at 256 px (overlap 32) after GPU out-of-memory" in measured[0]


def test_compare_warns_about_a_run_with_images_tiled_after_out_of_memory(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        _tiles_the_square_images(engine, patch)
        _derain(tmp_path)
    run_protocol(RunConfig(protocol="derain", model="input", sample=True, run_dir=tmp_path / "whole", limit=2))
    warnings = compare_runs(tmp_path / "whole", tmp_path / "run", n_boot=10).attrs["warnings"]
    tiled = [w for w in warnings if "after GPU out-of-memory" in w]
    assert tiled == [f"{tmp_path / 'run'}: 1 image(s) tiled at 256 px (overlap 32) after GPU out-of-memory: near tile "
                     "seams these outputs differ from whole-image inference, and their deltas include that"]


def test_merging_rank_shards_keeps_the_tile_of_a_record(tmp_path):
    store = RunStore(tmp_path)
    common = {"psnr": 30.0, "ssim": 0.9, "lpips": None, "height": 8, "width": 8, "seconds": 0.1, "nonfinite": False}
    RunStore(tmp_path, shard=0).append({"task": "t", "image": "a", **common, "tile": 512})
    RunStore(tmp_path, shard=1).append({"task": "t", "image": "b", **common})
    store.merge_shards()
    lines = [json.loads(line) for line in store.records_path.read_text().splitlines()]
    assert [line.get("tile") for line in lines] == [512, None] and "tile" not in lines[1]


def _photos(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    photo = load_sample_photo("chelsea")
    Image.fromarray(photo[:64, :64]).save(folder / "square.png")
    Image.fromarray(photo[:48, :80]).save(folder / "wide.png")
    return folder


def test_restore_json_lists_the_outputs_tiled_after_out_of_memory(tmp_path, monkeypatch):
    _tiles_the_square_images(folder_restore, monkeypatch, tile=512)
    outcome = restore_folder(RestoreConfig(_photos(tmp_path / "in"), tmp_path / "out", model="input", device="cpu"))
    assert outcome.tiled == {"square.png": 512}
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["auto_tiled"] == {"square.png": 512}


def test_a_continued_restore_keeps_the_tiled_entries_of_kept_outputs_and_overwrite_drops_them(tmp_path, monkeypatch):
    inputs = _photos(tmp_path / "in")
    with monkeypatch.context() as patch:
        _tiles_the_square_images(folder_restore, patch)
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    (tmp_path / "out" / "wide.png").unlink()
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu"))
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["auto_tiled"] == {"square.png": 256}
    restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", overwrite=True))
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["auto_tiled"] == {}


@pytest.mark.parametrize("tiled", [True, False])
def test_cli_restore_warns_when_outputs_were_tiled(tmp_path, monkeypatch, tiled):
    if tiled:
        _tiles_the_square_images(folder_restore, monkeypatch)
    result = runner.invoke(app, ["restore", "--input-dir", str(_photos(tmp_path / "in")), "--out",
                                 str(tmp_path / "out"), "--model", "input", "--device", "cpu"], terminal_width=300)
    assert result.exit_code == 0, result.output
    warned = ("warning: 1 image(s) did not fit in GPU memory whole and were restored in overlapping tiles of 256 px "
              "(restore.json lists them under auto_tiled)")
    assert (warned in result.stderr) is tiled


def test_list_runs_flags_a_run_with_images_tiled_after_out_of_memory(tmp_path, monkeypatch):
    from rich.console import Console

    from bench_ir.listing import runs_table

    with monkeypatch.context() as patch:
        _tiles_the_square_images(engine, patch)
        _derain(tmp_path)
    console = Console(width=200, record=True)
    console.print(runs_table(tmp_path))
    assert "input · derain · sample · limit 2 · 1 tiled" in console.export_text()


def test_export_csv_adds_a_tile_column_for_a_run_with_tiled_images(tmp_path, monkeypatch):
    _tiles_the_square_images(engine, monkeypatch)
    _derain(tmp_path)
    result = runner.invoke(app, ["export", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    header, astronaut, chelsea = result.stdout.splitlines()
    assert header.endswith(",nonfinite,tile")
    assert astronaut.endswith(",False,256") and chelsea.endswith(",False,")


def test_export_json_gives_the_tile_of_the_tiled_images_only(tmp_path, monkeypatch):
    _tiles_the_square_images(engine, monkeypatch)
    _derain(tmp_path)
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "json"])
    assert result.exit_code == 0, result.output
    astronaut, chelsea = json.loads(result.stdout)
    assert astronaut["tile"] == 256 and "tile" not in chelsea


def test_export_of_a_run_without_tiling_keeps_the_stable_columns_only(tmp_path):
    _derain(tmp_path)
    header = runner.invoke(app, ["export", str(tmp_path / "run")]).stdout.splitlines()[0]
    assert header == "task,image,psnr,ssim,lpips,height,width,seconds,nonfinite"
