"""The bench/ scripts' bookkeeping: where figures go (rehearsals are never results) and the CUDA-default rule."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_rehearsal_is_labelled_and_written_only_to_its_output_folder(tmp_path):
    output = _load("_output")
    results_md = tmp_path / "RESULTS.md"
    path = output.write_results("speed", torch.device("cpu"), "cmd", {"x": 1}, "| a |", results_md,
                                out_dir=tmp_path / "out", rehearsal=True)
    assert path.parent == tmp_path / "out" and path.name.startswith("rehearsal-speed-")
    assert json.loads(path.read_text())["rehearsal"] is True
    assert path.with_suffix(".md").read_text().startswith("## REHEARSAL (not a measurement)")
    assert not results_md.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([path.name, path.with_suffix(".md").name])


def test_a_rehearsal_without_an_output_folder_is_refused(tmp_path):
    output = _load("_output")
    with pytest.raises(ValueError, match="rehearsal is not a measurement"):
        output.write_results("speed", torch.device("cpu"), "cmd", {}, "", tmp_path / "RESULTS.md", rehearsal=True)
    assert not (tmp_path / "RESULTS.md").exists()


def _path(seconds: float, warmup: float, compiled: bool = True, forward: float | None = None) -> dict:
    """A protocol run's row: ``forward`` (the sum of its per-image forward seconds) defaults to all but the warm-up."""
    return {"seconds": seconds, "forward_seconds": seconds - warmup if forward is None else forward,
            "execution": {"warmup_seconds": warmup, "compile_mode": "reduce-overhead" if compiled else None}}


@pytest.mark.parametrize(("cold", "eager", "default"), [
    (_path(60.0, 50.0), _path(20.0, 0.0, compiled=False), "eager"),    # whole protocol: 50 + 10 / 0.5 = 70 s vs 40 s
    (_path(30.0, 25.0), _path(20.0, 0.0, compiled=False), "compile"),  # 25 + 5 / 0.5 = 35 s vs 40 s
])
def test_the_cuda_default_follows_the_projected_first_full_run(cold, eager, default):
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": cold, "bench-ir fast, eager": eager}, scale=0.5)
    assert decision["decided"] and decision["default"] == default


def test_the_projection_scales_the_per_image_forward_seconds_and_counts_the_rest_of_the_run_once():
    cold = _path(30.0, 15.0, forward=10.0)  # 20 s once (compile warm-up 15 s, start-up 5 s) + 10 s of forwards
    eager = _path(14.0, 0.0, compiled=False, forward=12.0)  # 2 s once (start-up) + 12 s of forwards
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": cold, "bench-ir fast, eager": eager}, scale=0.1)
    assert decision["runs"]["compiled_cold"] == pytest.approx(
        {"subset_s": 30.0, "forward_s": 10.0, "one_off_s": 20.0, "compile_warmup_s": 15.0, "projected_s": 120.0})
    assert decision["projected_full_protocol_s"] == pytest.approx({"compiled_cold": 120.0, "eager": 122.0})


def test_a_one_off_start_up_cost_is_not_multiplied_by_the_inverse_scale():
    # scaling everything but the compile warm-up would project 15 + 15 / 0.1 = 165 s against 14 / 0.1 = 140 s
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": _path(30.0, 15.0, forward=10.0),
         "bench-ir fast, eager": _path(14.0, 0.0, compiled=False, forward=12.0)}, scale=0.1)
    assert decision["default"] == "compile"


def test_the_first_calls_of_a_shape_above_its_median_count_once_not_per_image():
    """cuDNN autotuning of a new shape (eager) and CUDA-graph capture (compiled) make a shape's first calls slow;
    they are paid once per shape in the whole protocol too."""
    import pandas as pd

    records = pd.DataFrame({"task": ["a"] * 4 + ["b"] * 2, "height": [64, 64, 64, 32, 64, 64],
                            "width": [64] * 6, "seconds": [3.0, 1.0, 1.2, 5.0, 2.0, 2.0]})
    # a 64x64: 3.0 capped at its median 1.2; a 32x64: one image, its own median; b: unchanged
    assert _load("speed_mirage").steady_forward_seconds(records) == pytest.approx(1.2 + 1.0 + 1.2 + 5.0 + 2.0 + 2.0)


def test_the_results_section_states_the_parts_of_each_projection():
    speed = _load("speed_mirage")
    paths = {"bench-ir fast, compiled, cold cache": _path(30.0, 15.0, forward=10.0),
             "bench-ir fast, eager": _path(14.0, 0.0, compiled=False, forward=12.0)}
    for row in paths.values():
        row.update(process_seconds=40.0, speedup_vs_official=1.0, max_abs_psnr_diff_db=0.0, max_abs_ssim_diff=0.0)
    protocol = {"groups": [{"name": "bsd68", "images": 7, "size": [321, 481]}], "scale": 0.1, "official_s": 50.0,
                "paths": paths, "decision": speed.protocol_decision(paths, scale=0.1)}
    text = speed.to_markdown({"protocol": protocol})
    assert ("compiled from a cold cache 120 s = 20 s once (compile warm-up 15 s in it) + 10.0 s of forwards / 0.1, "
            "vs eager fast path 122 s = 2 s once + 12.0 s of forwards / 0.1") in text


def test_no_default_is_decided_when_nothing_compiled():
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": _path(10.0, 0.0, compiled=False),
         "bench-ir fast, eager": _path(10.0, 0.0, compiled=False)}, scale=0.1)
    assert not decision["decided"] and decision["default"] is None


def test_no_default_is_decided_when_the_compile_failed_and_the_run_went_on_eagerly():
    cold = _path(10.0, 0.0)
    cold["execution"]["compile_failed"] = "RuntimeError: InvalidCxxCompiler: No working C++ compiler found"
    decision = _load("speed_mirage").protocol_decision(
        {"bench-ir fast, compiled, cold cache": cold, "bench-ir fast, eager": _path(10.0, 0.0, compiled=False)},
        scale=0.1)
    assert not decision["decided"] and decision["default"] is None
    assert "InvalidCxxCompiler" in decision["note"]


def test_params_and_flops_are_checked_against_the_committed_cpu_figures():
    from types import SimpleNamespace

    profile = _load("profile_models")
    reference = json.loads((BENCH / "results" / "cpu-params-flops.json").read_text())
    cpu = reference["models"]["mirage-t"]["224"]
    same = SimpleNamespace(model="mirage-t", size=224, **cpu)
    off = SimpleNamespace(model="mirage-t", size=224, **{**cpu, "flops": cpu["flops"] + 1})
    elsewhere = SimpleNamespace(model="mirage-t", size=96, **cpu)
    checks = profile.compare_with_reference([same], reference)
    assert checks["mirage-t"]["status"] == "equal"
    assert profile.compare_with_reference([off], reference)["mirage-t"]["differing"] == {
        "flops": {"reference": cpu["flops"], "measured": cpu["flops"] + 1}}
    assert profile.compare_with_reference([elsewhere], reference)["mirage-t"]["status"] == "no reference"


def test_the_committed_cpu_figures_cover_every_registered_model():
    from bench_ir.cards import list_models

    reference = json.loads((BENCH / "results" / "cpu-params-flops.json").read_text())
    assert set(reference["models"]) == set(list_models()) - {"input"}
    assert reference["models"]["mirage-t"]["224"]["params_total"] == 6_207_412


# ------------------------------------------------------------------------------------ the speed targets
def _speed_results(latency_ms: float = 8.0, size: int = 224, default: str = "compile") -> dict:
    """speed_mirage.py figures at the targets' sizes: every measured target met, MIRAGE-S training not measured."""
    fast = {"speedup_vs_official_fp32": 6.0, "max_abs_diff_vs_official_fp32": 5e-5}
    inference = [{"variant": v, "batch": 16, "size": 256, "paths": {"bench-ir fast fp32": fast}}
                 for v in ("tiny", "small")]
    latency = [{"variant": "tiny", "size": size, "paths": {"official fp32": {"ms_median": 40.0},
                                                           "bench-ir fast fp32": {"ms_median": latency_ms}}}]
    train = [{"variant": "tiny", "batch": 32, "size": 128, "paths": {"bench-ir fast": {
        "speedup_vs_official": 3.0, "peak_memory_gib": 10.0, "loss_smoothed_max_rel_diff": 0.01}}}]
    row = {"seconds": 10.0, "execution": {"warmup_seconds": 5.0}, "speedup_vs_official": 10.0,
           "max_abs_psnr_diff_db": 1e-5, "max_abs_ssim_diff": 1e-7}
    slow = {**row, "seconds": 40.0, "execution": {"warmup_seconds": 0.0}}
    decision = {"decided": True, "default": default,  # speed_mirage.protocol_decision's projection of the rows
                "projected_full_protocol_s": {"compiled_cold": 5.0 + 5.0 / 0.1, "eager": 40.0 / 0.1}}
    protocol = {"scale": 0.1, "official_s": 100.0, "decision": decision,
                "paths": {"bench-ir fast, compiled, cold cache": row, "bench-ir fast, eager": slow}}
    return {"inference": inference, "latency": latency, "train": train, "protocol": protocol}


def test_targets_measured_at_their_sizes_are_judged_and_missing_ones_are_not():
    rows = _load("_targets").evaluate_targets(_speed_results())
    assert [r["met"] for r in rows] == [True, True, True, True, None, True]
    assert rows[4]["why"] == "not measured"  # MIRAGE-S training
    assert "18.2x projected" in rows[5]["measured"]  # 1000 s official / (5 s warm-up + 5 s / 0.1)


def test_a_target_missed_is_not_met():
    rows = _load("_targets").evaluate_targets(_speed_results(latency_ms=12.0))
    assert rows[2]["met"] is False and "**NOT MET**" in _load("_targets").targets_markdown(rows)


def test_a_figure_measured_at_another_size_is_never_a_pass():
    rows = _load("_targets").evaluate_targets(_speed_results(latency_ms=1.0, size=64))
    assert rows[2]["met"] is None and "not 1 x 224^2" in rows[2]["why"]


def test_the_protocol_target_is_judged_on_the_measured_cuda_default():
    row = _load("_targets").evaluate_targets(_speed_results(default="eager"))[5]
    assert row["measured"].startswith("bench-ir fast, eager") and row["met"] is False  # 1000 / 400 s = 2.5x


# -------------------------------------------------------------------------------- collecting a GPU window
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="2">
<testcase classname="tests.test_cuda" name="test_bf16[x]" time="1.5"><properties>
<property name="psnr_change_db" value="-0.0123" /><property name="losses" value="{'fast': [1.0, 0.5]}" />
</properties></testcase>
<testcase classname="tests.test_cuda" name="test_oom" time="0.2"><failure message="assert 8 == 4">x</failure>
</testcase></testsuite></testsuites>"""


def _window(folder: Path, rehearsal: bool = False) -> Path:
    """A folder as gpu_check.sh leaves it: summary, JUnit report, speed JSON and Markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "rehearsal-" if rehearsal else ""
    (folder / f"{prefix}summary.json").write_text(json.dumps({"rehearsal": rehearsal, "parts": {
        "tests": {"exit_status": 1, "seconds": 120, "cap_s": 170, "note": ""}}}))
    (folder / f"{prefix}cuda-tests.xml").write_text(JUNIT)
    speed = folder / f"{prefix}speed-nvidia-h200-2026-12-01.json"
    speed.write_text(json.dumps({"device": {"name": "NVIDIA H200"}, "rehearsal": rehearsal,
                                 "results": _speed_results()}))
    speed.with_suffix(".md").write_text("## speed on NVIDIA H200 (2026-12-01)\n\n### Targets\n")
    return folder


def test_a_gpu_window_becomes_one_results_section_and_its_json(tmp_path):
    collect = _load("gpu_collect")
    files = collect.find_window_files(_window(tmp_path / "returned"))
    results_md, results_dir = tmp_path / "RESULTS.md", tmp_path / "results"
    collect.collect(files, results_md, results_dir)
    text = results_md.read_text()
    assert text.startswith("## GPU window on NVIDIA H200 (2026-12-01)")
    assert "1 passed, 1 failed" in text and "| test_oom | **FAILED** | 0.2 | assert 8 == 4 |" in text
    assert "psnr_change_db -0.0123; losses {fast: [1, 0.5]}" in text
    assert "## speed on NVIDIA H200 (2026-12-01)" in text
    assert sorted(p.name for p in results_dir.iterdir()) == ["cuda-tests-nvidia-h200-2026-12-01.json",
                                                             "speed-nvidia-h200-2026-12-01.json"]


def test_a_gpu_window_is_collected_once(tmp_path):
    collect = _load("gpu_collect")
    files = collect.find_window_files(_window(tmp_path / "returned"))
    collect.collect(files, tmp_path / "RESULTS.md", tmp_path / "results")
    with pytest.raises(collect.CollectError, match="already collected"):
        collect.collect(files, tmp_path / "RESULTS.md", tmp_path / "results")


def test_a_rehearsals_files_are_refused_as_measurements(tmp_path):
    collect = _load("gpu_collect")
    folder = _window(tmp_path / "returned", rehearsal=True)
    with pytest.raises(collect.CollectError, match="rehearsal"):
        collect.find_window_files(folder)
    files = collect.find_window_files(folder, rehearsal=True)
    with pytest.raises(collect.CollectError, match="give --out-dir"):
        collect.collect(files, tmp_path / "RESULTS.md", tmp_path / "results")
    collect.collect(files, tmp_path / "RESULTS.md", tmp_path / "results", out_dir=tmp_path / "out")
    assert not (tmp_path / "RESULTS.md").exists() and not (tmp_path / "results").exists()
    assert (tmp_path / "out" / "rehearsal-RESULTS.md").read_text().startswith("## REHEARSAL (not a measurement)")


def test_collecting_exits_with_1_when_a_cuda_test_failed(tmp_path, capsys):
    collect = _load("gpu_collect")
    status = collect.main([str(_window(tmp_path / "returned")), "--out-dir", str(tmp_path / "out")])
    assert status == 1 and "CUDA tests not passed: test_oom" in capsys.readouterr().out
    assert (tmp_path / "out" / "RESULTS.md").is_file()


def test_a_sample_checkpoint_ships_only_complete_better_than_the_input_everywhere_and_than_the_shipped_one():
    collect = _load("gpu_collect")
    tasks = ["dehaze", "derain", "denoise-15", "denoise-25", "denoise-50", "deblur", "lowlight"]
    inputs = {**dict.fromkeys(tasks, 20.0), "Average": 20.0}
    shipped = {**dict.fromkeys(tasks, 21.0), "Average": 21.0}
    better = {**dict.fromkeys(tasks, 22.0), "Average": 22.0}
    assert collect.sample_verdict(better, inputs, shipped, "complete") == (True, [])
    ships, reasons = collect.sample_verdict({**better, "deblur": 19.9}, inputs, shipped, "stopped")
    assert not ships and reasons[0] == "the training is stopped, not complete" and reasons[1].startswith("deblur")
    assert collect.sample_verdict({**better, "Average": 21.0}, inputs, shipped, "complete")[0] is False


# ------------------------------------------------------------------------------------ tracing every model
def test_a_model_compiled_with_aot_eager_gives_the_eager_output():
    example = str(BENCH.parent / "examples" / "tiny-unet.yaml")
    assert _load("trace_models").trace_model(example, "aot_eager") <= 1e-6


def test_a_model_that_fails_to_build_is_reported_and_the_exit_status_is_1(capsys):
    assert _load("trace_models").main(["no-such-model"]) == 1
    assert "no-such-model        FAILED" in capsys.readouterr().out


def test_a_failed_speed_part_is_named_with_its_error_in_the_results():
    failed = {"part": "train", "variant": "tiny", "error": "InvalidCxxCompiler: No working C++ compiler"}
    text = _load("speed_mirage").to_markdown({"failed_parts": [failed]})
    assert "### MIRAGE-tiny train: failed" in text and "`InvalidCxxCompiler: No working C++ compiler`" in text


def test_a_file_torn_when_its_part_was_cut_is_named_and_left_out_not_a_traceback(tmp_path, capsys):
    collect = _load("gpu_collect")
    folder = _window(tmp_path / "returned")
    (folder / "cuda-tests.xml").write_text(JUNIT[:200])  # the tests part killed while pytest wrote its report
    (folder / "summary.json").write_text("")
    status = collect.main([str(folder), "--out-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 1
    assert "damaged, left out: cuda-tests.xml: ParseError" in out and "damaged, left out: summary.json: " in out
    text = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "Came back damaged, left out: `summary.json: JSONDecodeError" in text
    assert "`cuda-tests.xml: ParseError" in text
    assert "## speed on NVIDIA H200 (2026-12-01)" in text  # what did come back whole is collected


def test_a_sample_training_archive_cut_short_is_damaged(tmp_path):
    import io
    import tarfile

    collect = _load("gpu_collect")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = bytes(range(256)) * 64
        info = tarfile.TarInfo("mirage-t-sample.safetensors")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    folder = _window(tmp_path / "returned")
    (folder / "sample-train.tar").write_bytes(buffer.getvalue()[:5000])
    files = collect.find_window_files(folder)
    assert files.train is None and files.damaged[0].startswith("sample-train.tar: ")


def test_a_window_cut_before_its_profile_and_speed_parts_ended_is_named_after_the_device_in_its_log(tmp_path):
    collect = _load("gpu_collect")
    folder = _window(tmp_path / "returned")
    for path in folder.glob("speed-*"):
        path.unlink()
    (folder / "gpu_check.log").write_text("gpu_check: mode full, device cuda, budget 540s, parts: tests, out /o, "
                                          "2026-12-03T10:00:00Z\n== setup\ntorch 2.11.0+cu130 cuda True NVIDIA H200\n")
    written = collect.collect(collect.find_window_files(folder), tmp_path / "RESULTS.md", tmp_path / "results")
    assert (tmp_path / "RESULTS.md").read_text().startswith("## GPU window on NVIDIA H200 (2026-12-03)")
    assert tmp_path / "results" / "cuda-tests-nvidia-h200-2026-12-03.json" in written
