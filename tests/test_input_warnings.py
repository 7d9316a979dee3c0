"""Loud inputs: changed images are stated as CLI warning lines, errors name the file, large images fit in memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench_ir.cli import app
from bench_ir.data.io import InputWarning, read_rgb_uint8
from bench_ir.metrics import functional
from bench_ir.metrics.scoring import score_pair_batch

runner = CliRunner()


def _folders(tmp_path, input_image: np.ndarray, target_image: np.ndarray):
    for folder, image in (("in", input_image), ("gt", target_image)):
        (tmp_path / folder).mkdir()
        Image.fromarray(image).save(tmp_path / folder / "a.png")
    return ["run", "--model", "input", "--input-dir", str(tmp_path / "in"), "--target-dir", str(tmp_path / "gt"),
            "--run-dir", str(tmp_path / "run")]


@pytest.mark.parametrize("mode", ["L", "LA", "I;16"])
def test_a_grayscale_file_is_replicated_to_rgb_with_a_warning_naming_it(tmp_path, mode):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    image = Image.fromarray(gray.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(gray).convert(mode)
    image.save(tmp_path / "g.png")
    with pytest.warns(InputWarning) as caught:
        rgb = read_rgb_uint8(tmp_path / "g.png")
    assert f"{tmp_path / 'g.png'}: grayscale image replicated to 3 RGB channels" in [str(w.message).split(",")[0]
                                                                                      for w in caught]
    assert rgb.shape == (8, 8, 3) and (rgb == gray[..., None]).all()


def test_an_rgb_file_reads_without_any_warning(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "c.png")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_rgb_uint8(tmp_path / "c.png")


def test_the_cli_shows_input_warnings_as_its_own_warning_lines(tmp_path):
    rgb = np.full((32, 32, 3), 90, np.uint8)
    args = _folders(tmp_path, np.full((32, 32), 100, np.uint8), rgb)
    Image.fromarray(np.full((32, 32, 4), 90, np.uint8)).save(tmp_path / "gt" / "a.png")  # RGBA target
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning")]
    assert warnings == [f"warning: {tmp_path / 'gt' / 'a.png'}: alpha channel dropped (not composited), as PIL "
                        "convert('RGB')",
                        f"warning: {tmp_path / 'in' / 'a.png'}: grayscale image replicated to 3 RGB channels, as PIL "
                        "convert('RGB')"]
    assert "UserWarning" not in result.output and "InputWarning" not in result.output
    assert "warnings.warn" not in result.output


def test_an_image_smaller_than_the_crop_multiple_is_an_error_naming_the_file(tmp_path):
    args = _folders(tmp_path, np.zeros((8, 12, 3), np.uint8), np.zeros((8, 12, 3), np.uint8))
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'gt' / 'a.png'} (task 'folder', image 'a.png'): image of 8x12 (HxW) is "
                      "smaller than the crop multiple 16"]


@pytest.mark.parametrize("convention", ["M1", "M2", "M4", "M5"])
def test_the_ssim_strip_size_never_changes_a_score(monkeypatch, convention):
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 61, 47, generator=generator)
    pred = (target + 0.1 * torch.randn(2, 3, 61, 47, generator=generator)).clamp(0, 1)
    whole = score_pair_batch(pred, target, convention)
    for strip in (1, 47 * 2 * 5, 10_000):
        monkeypatch.setattr(functional, "SSIM_STRIP_PIXELS", strip)
        strips = score_pair_batch(pred, target, convention)
        assert torch.equal(strips["ssim"], whole["ssim"]) and torch.equal(strips["psnr"], whole["psnr"])


def test_scoring_a_large_image_holds_no_whole_image_float64_temporaries():
    """Scoring one 2000x3000 pair (M1: clamp, PSNR, SSIM) peaks at under 64 bytes per pixel above its two float32
    inputs; widening the images to float64 and filtering all channels at once took about 400."""
    code = textwrap.dedent("""
        import torch
        from bench_ir.metrics.scoring import score_pair_batch

        def peak_kib():
            for line in open('/proc/self/status'):
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])

        target = torch.rand(1, 3, 2000, 3000, generator=torch.Generator().manual_seed(0))
        pred = (target * 0.9).clamp(0, 1)
        score_pair_batch(pred[..., :64, :64], target[..., :64, :64], 'M1')  # warm up the allocator and kernels
        open('/proc/self/clear_refs', 'w').write('5')
        before = peak_kib()
        score_pair_batch(pred, target, 'M1')
        print((peak_kib() - before) * 1024 / (2000 * 3000))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "clear_refs" in done.stderr:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak memory counter")
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip()) < 64


def _protocol_run(tmp_path, convention: str = "M1", crop: dict | None = None) -> list[str]:
    """`run --model input` of a one-task protocol on tmp_path/in -> tmp_path/gt, with ``convention``; no crop rule
    (the images reach the metric whole) unless ``crop`` is given."""
    import yaml

    spec = {"name": "p", "title": "t", "version": 1, "convention": convention, "tasks": [
        {"name": "t", "label": "T", "dataset": "d", "layouts": [{"input": "in", "target": "gt"}]}]}
    protocol = tmp_path / "p.yaml"
    protocol.write_text(yaml.safe_dump({**spec, **({"crop": crop} if crop else {})}))
    return ["run", "--protocol", str(protocol), "--data-root", str(tmp_path), "--model", "input", "--run-dir",
            str(tmp_path / "run")]


@pytest.mark.parametrize(("convention", "crop", "size", "window", "named"), [
    ("M1", None, (5, 6), 7, "M1 (skimage-uniform)"),
    ("M4", {"rule": "pad_multiple", "base": 8}, (5, 5), 11, "M4 (histoformer-allweather)"),  # AllWeather's rule
    ("M2", None, (8, 1000), 11, "M2 (skimage-gaussian)"),
], ids=["M1-5x6", "M4-5x5", "M2-8x1000"])
def test_an_image_smaller_than_the_ssim_window_is_refused_before_a_run_folder_is_made(tmp_path, convention, crop,
                                                                                        size, window, named):
    for folder in ("in", "gt"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / folder / "a.png")  # scored first, before
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(tmp_path / folder / "b.png")
    result = runner.invoke(app, _protocol_run(tmp_path, convention, crop))
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 1 image is smaller than the {window} px SSIM window of convention {named} after the "
                      f"crop rule (HxW as scored): t/b.png ({tmp_path / 'in' / 'b.png'}, {tmp_path / 'gt' / 'b.png'}) "
                      f"{size[0]}x{size[1]}; too small for this convention's SSIM, remove it from the test set or use "
                      "another convention (run --convention)"]
    assert not (tmp_path / "run").exists()  # no failed run with a.png scored: nothing was started


def test_a_float_tiff_is_refused_before_a_run_folder_is_made(tmp_path):
    for folder in ("in", "gt"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / folder / "a.tif")
    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(tmp_path / "in" / "b.tif")  # PIL mode F
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "gt" / "b.tif")
    result = runner.invoke(app, _protocol_run(tmp_path))
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'in' / 'b.tif'}: floating-point images (PIL mode F) are not supported; save as 8 or 16 "
        "bit"]
    assert not (tmp_path / "run").exists()


def test_a_run_warns_once_per_pair_whose_exif_orientations_differ_and_scores_the_pixels_as_stored(tmp_path):
    from bench_ir.data.io import write_png_uint8
    from bench_ir.results import load_run

    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    noisy = np.clip(target.astype(int) + rng.integers(-9, 10, target.shape), 0, 255).astype(np.uint8)
    for name, orientation in (("a.png", 6), ("b.png", 3), ("c.png", 1)):  # square: the sizes cannot tell
        write_png_uint8(tmp_path / "in" / name, noisy, orientation=orientation)
        write_png_uint8(tmp_path / "gt" / name, target)
    result = runner.invoke(app, [*_protocol_run(tmp_path), "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    advice = ("viewers show the pair turned differently, but pixels are read as stored, as the reference scripts "
              "read them: save such images upright (e.g. with PIL.ImageOps.exif_transpose)")
    assert warned == [
        f"warning: t/a.png: input {tmp_path / 'in' / 'a.png'} has EXIF orientation 6 (turned 90 degrees clockwise in "
        f"viewers) and target {tmp_path / 'gt' / 'a.png'} has 1 (upright): {advice}",
        f"warning: t/b.png: input {tmp_path / 'in' / 'b.png'} has EXIF orientation 3 (turned 180 degrees in viewers) "
        f"and target {tmp_path / 'gt' / 'b.png'} has 1 (upright): {advice}"]
    expected = score_pair_batch(torch.from_numpy(noisy).permute(2, 0, 1)[None] / 255.0,
                                torch.from_numpy(target).permute(2, 0, 1)[None] / 255.0, "M1")["psnr"].item()
    psnr = load_run(tmp_path / "run").records["psnr"].tolist()
    assert [round(value, 9) for value in psnr] == [round(expected, 9)] * 3  # the pixels as stored, all alike


def test_a_real_process_prints_each_input_warning_once_without_a_python_source_line(tmp_path):
    args = _folders(tmp_path, np.full((32, 32), 100, np.uint8), np.full((32, 32, 3), 90, np.uint8))
    done = subprocess.run([sys.executable, "-m", "bench_ir", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if "grayscale" in line] == [
        f"warning: {tmp_path / 'in' / 'a.png'}: grayscale image replicated to 3 RGB channels, as PIL convert('RGB')"]
    assert "Warning:" not in done.stderr and "warnings.warn" not in done.stderr
