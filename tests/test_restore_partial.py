"""`bench-ir restore` into a folder that already holds outputs: a restore of part of the input folder keeps the records
of the outputs it does not cover (restore.json describes the whole folder), another input folder is refused while
its outputs would stay, `--recursive` passes over other restores' output folders, and a restore.json that records no
image yet does not hold the folder to its setup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.folder_restore import RestoreConfig, RestoreOutcome, restore_folder

runner = CliRunner()


def _images(folder: Path, names: list[str]) -> Path:
    """Small random PNGs under ``folder`` (names may hold a sub-folder)."""
    rng = np.random.default_rng(len(names))
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _restore(inputs: Path, out: Path, **options) -> RestoreOutcome:
    return restore_folder(RestoreConfig(inputs, out, model="input", device="cpu", **options))


def _manifest(out: Path) -> dict:
    return json.loads((out / "restore.json").read_text())


def test_restoring_one_image_keeps_the_records_of_the_folders_other_outputs(tmp_path):
    inputs, out = _images(tmp_path / "in", ["a.png", "odd.png", "sub/c.png"]), tmp_path / "out"
    _restore(inputs, out, recursive=True)
    _restore(inputs / "odd.png", out)
    manifest = _manifest(out)
    assert manifest["images"] == {"a.png": "a.png", "odd.png": "odd.png", "sub/c.png": "sub/c.png"}
    assert sorted(manifest["input_sha256"]) == ["a.png", "odd.png", "sub/c.png"]


def test_the_full_command_after_a_one_image_restore_restores_nothing_again(tmp_path):
    inputs, out = _images(tmp_path / "in", ["a.png", "odd.png", "sub/c.png"]), tmp_path / "out"
    full = ["restore", "-i", str(inputs), "-o", str(out), "--model", "input", "--device", "cpu", "--recursive"]
    assert runner.invoke(app, full).exit_code == 0
    one = ["restore", "-i", str(inputs / "odd.png"), "-o", str(out), "--model", "input", "--device", "cpu"]
    assert runner.invoke(app, one).exit_code == 0
    again = runner.invoke(app, full)
    assert again.exit_code == 0 and "restored 0 image(s)" in again.output
    assert "does not record it" not in again.output


def test_a_restore_without_recursive_keeps_the_records_of_the_sub_folders_outputs(tmp_path):
    inputs, out = _images(tmp_path / "in", ["a.png", "sub/c.png", "sub/deeper/d.png"]), tmp_path / "out"
    _restore(inputs, out, recursive=True)
    _restore(inputs, out)
    assert sorted(_manifest(out)["images"]) == ["a.png", "sub/c.png", "sub/deeper/d.png"]
    assert _manifest(out)["status"] == "complete"


def test_the_output_of_a_deleted_input_stays_recorded_while_its_file_is_there(tmp_path):
    inputs, out = _images(tmp_path / "in", ["a.png", "b.png"]), tmp_path / "out"
    _restore(inputs, out)
    (inputs / "b.png").unlink()
    _restore(inputs, out)
    assert _manifest(out)["images"] == {"a.png": "a.png", "b.png": "b.png"}
    (out / "b.png").unlink()
    _restore(inputs, out)
    assert _manifest(out)["images"] == {"a.png": "a.png"}


def test_an_unreadable_input_outside_a_partial_restore_keeps_the_folder_incomplete(tmp_path):
    inputs, out = _images(tmp_path / "in", ["a.png"]), tmp_path / "out"
    (inputs / "bad.png").write_bytes(b"not a png")
    assert set(_restore(inputs, out).unreadable) == {"bad.png"}
    _restore(inputs / "a.png", out)
    manifest = _manifest(out)
    assert manifest["status"] == "incomplete" and set(manifest["unreadable"]) == {"bad.png"}


def test_another_input_folder_is_refused_while_the_outputs_of_the_first_would_stay(tmp_path):
    first, out = _images(tmp_path / "first", ["a.png", "b.png"]), tmp_path / "out"
    other = _images(tmp_path / "other", ["z.png"])
    _restore(first, out)
    with pytest.raises(ValueError, match=r"holds 2 output\(s\) restored from another input folder, .*first, that "
                                         r"this --input-dir does not restore \(a.png, b.png\).*Choose another --out "
                                         r"for this --input-dir, or pass --overwrite"):
        _restore(other, out)
    assert not (out / "z.png").exists() and _manifest(out)["images"] == {"a.png": "a.png", "b.png": "b.png"}


def test_overwrite_restores_another_input_folder_and_names_the_outputs_no_longer_recorded(tmp_path):
    first, out = _images(tmp_path / "first", ["a.png", "b.png"]), tmp_path / "out"
    other = _images(tmp_path / "other", ["z.png"])
    _restore(first, out)
    outcome = _restore(other, out, overwrite=True)
    assert _manifest(out)["images"] == {"z.png": "z.png"}
    assert any(f"from {first.resolve()}" in notice and "a.png, b.png" in notice and "no longer records them" in notice
               for notice in outcome.notices), outcome.notices


def test_recursive_skips_a_sub_folder_holding_another_restores_outputs_and_names_it(tmp_path):
    inputs = _images(tmp_path / "in", ["x.png", "y.png"])
    _restore(inputs, inputs / "restored")
    outcome = _restore(inputs, inputs / "r2", recursive=True)
    assert _manifest(inputs / "r2")["images"] == {"x.png": "x.png", "y.png": "y.png"}
    assert not (inputs / "r2" / "restored").exists()
    skipped = [notice for notice in outcome.notices if "restore.json" in notice]
    assert len(skipped) == 1 and str(inputs / "restored") in skipped[0]


def test_a_folder_whose_restore_json_records_no_image_continues_with_another_setup(tmp_path):
    inputs, out = _images(tmp_path / "in", ["a.png", "b.png"]), tmp_path / "out"

    def stop_before_the_first(name: str, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_folder(RestoreConfig(inputs, out, model="input", device="cpu", tile=64),
                       on_image=stop_before_the_first)
    assert _manifest(out)["status"] == "interrupted" and _manifest(out)["images"] == {}
    outcome = _restore(inputs, out)  # whole images: another tiling
    assert len(outcome.restored) == 2 and _manifest(out)["tile"] is None
    assert any("records no restored image (status: interrupted)" in notice and "tiling" in notice
               for notice in outcome.notices), outcome.notices
