"""`profile --dtype bf16/fp16` measures the computation `run --dtype` makes: float32 weights and float32 inputs under
torch.autocast, not a model cast to half precision; the stored conventions say so, and a profile of another dtype
than the run it fills names its dtype in the efficiency table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from bench_ir.profile_run import profile_and_store
from bench_ir.profiling import profile_model
from bench_ir.report import build_table
from bench_ir.results import RunStore, write_json_atomic

STORE = Path(__file__).parent / "fixtures" / "store"

pytestmark = pytest.mark.usefixtures("one_thread")


class MeanShiftNet(nn.Module):
    """Subtracts a float32 mean built in forward (as many models normalise their input), then a 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor([0.4, 0.5, 0.6], device=x.device).view(1, 3, 1, 1)
        return self.conv(x - mean) + mean


class PrecisionRecorder(nn.Module):
    """A 1x1 conv that records, for every forward, its input dtype and the CPU autocast dtype (None: autocast off)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.seen: list[tuple[torch.dtype, torch.dtype | None]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        autocast = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        self.seen.append((x.dtype, autocast))
        return self.conv(x)


def _card(tmp_path: Path) -> Path:
    path = tmp_path / "mean-shift.yaml"
    path.write_text(yaml.safe_dump({"name": "mean-shift", "display_name": "MeanShift",
                                    "factory": f"{__name__}:MeanShiftNet", "expected_params": 12}))
    return path


def test_bf16_profile_runs_a_model_that_builds_a_float32_constant_as_run_does(tmp_path):
    result, folder = profile_and_store(_card(tmp_path), size=8, device="cpu", dtype="bf16", repeats=1, warmup=0,
                                       runs_root=tmp_path / "runs", compile="off")
    assert result.dtype == "bfloat16" and result.latency_ms_median > 0
    assert json.loads((folder / "manifest.json").read_text())["dtype"] == "bf16"


def test_bf16_forwards_take_float32_inputs_under_bf16_autocast_and_leave_the_weights_float32():
    net = PrecisionRecorder()
    profile_model(net, size=8, dtype=torch.bfloat16, repeats=2, warmup=1, flops=False)
    assert net.seen and set(net.seen) == {(torch.float32, torch.bfloat16)}
    assert {p.dtype for p in net.parameters()} == {torch.float32}


def test_the_bf16_training_step_runs_under_autocast_on_float32_weights():
    net = PrecisionRecorder()
    result = profile_model(net, size=8, dtype=torch.bfloat16, repeats=1, warmup=0, flops=False, train=True,
                           train_batch=2, train_size=8, train_steps=1)
    assert result.train is not None
    assert set(net.seen) == {(torch.float32, torch.bfloat16)}
    assert {p.dtype for p in net.parameters()} == {torch.float32}


def test_flops_are_counted_in_float32_whatever_the_dtype():
    fp32 = profile_model(PrecisionRecorder(), size=8, repeats=1, warmup=0)
    bf16 = profile_model(PrecisionRecorder(), size=8, dtype=torch.bfloat16, repeats=1, warmup=0)
    assert bf16.flops == fp32.flops == 3 * 8 * 8 * 3


def test_the_stored_conventions_say_how_each_dtype_is_run(tmp_path):
    _, folder = profile_and_store(_card(tmp_path), size=8, device="cpu", dtype="bf16", repeats=1, warmup=0,
                                  runs_root=tmp_path / "runs", compile="off")
    precision = json.loads((folder / "profile.json").read_text())["conventions"]["precision"]
    assert "bench-ir run --dtype" in precision and "torch.autocast" in precision and "FLOPs counted in float32" in (
        precision)


def test_a_bf16_profile_filling_an_fp32_run_names_its_dtype_in_the_efficiency_table(tmp_path):
    """Profiles join runs by card, arguments and checkpoint (params and FLOPs do not depend on the dtype); memory and
    speed do, so the table names the profile's dtype beside the run's own (its provenance)."""
    run = tmp_path / "3deg-mynet"
    shutil.copytree(STORE / "3deg-mynet", run)
    figures = json.loads((run / "profile.json").read_text())
    (run / "profile.json").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dtype"] == "fp32"
    profile = tmp_path / "mynet-profile-224"
    RunStore(profile).write_manifest({**manifest, "run_id": profile.name, "kind": "profile", "dtype": "bf16",
                                      "created": "2026-01-16T10:00:00+00:00",
                                      "protocol": {"name": "efficiency", "tasks": [], "average": []}})
    write_json_atomic(profile / "profile.json", {**figures, "dtype": "bfloat16"})
    notes = build_table("efficiency", [run, profile]).notes
    assert any(note.startswith("MyNet (ours): profiled with") and "dtype bfloat16" in note
               and f"(profile run {profile.name})" in note for note in notes), notes
