"""CUDA correctness of every model and execution mode (``pytest -m cuda``; skipped without a CUDA device).

Run on a GPU by bench/gpu_check.sh (with ``-n`` workers of pytest-xdist: each test compiles its own graphs). Figures
worth keeping (differences, PSNR changes, graph counts, memory limits) are attached to the JUnit report with
``record_property``. Weights are the architectures' seeded random initialisation unless a test says otherwise.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from bench_ir.acceleration import AcceleratedForward, plan_execution, precision_settings
from bench_ir.cards import get_card, list_models
from bench_ir.checkpoints import create_model
from bench_ir.engine import EvalOptions, restore, restored_image
from bench_ir.geometry import fit_policy
from bench_ir.metrics.functional import psnr
from bench_ir.runner import RunConfig, run_protocol

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")
SIZES = [(64, 64), (48, 80)]  # (H, W): multiples of every card's input_multiple
TOLERANCE = 1e-4
EXAMPLE_CARD = Path(__file__).resolve().parents[1] / "examples" / "tiny-unet.yaml"
SAMPLE_WEIGHTS = Path(__file__).resolve().parents[1] / "registry" / "weights" / "mirage-t-sample.safetensors"


def _seeded_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)).to(CUDA)


@pytest.mark.parametrize("name", list_models())
def test_the_fast_path_matches_the_exact_path_at_two_sizes(name, record_property):
    card = get_card(name)
    torch.manual_seed(0)
    reference = create_model(card).to(CUDA).eval()
    fast_plan, exact_plan = plan_execution(CUDA), plan_execution(CUDA, exact=True)
    fast = AcceleratedForward(copy.deepcopy(reference), fast_plan)
    batch = 1 if card.batch_size_one else 2
    worst = worst_eager = 0.0
    for height, width in SIZES:
        x, other = _seeded_images(batch, height, width), _seeded_images(batch, height, width, seed=1)
        with torch.inference_mode():
            with precision_settings(exact_plan):
                expected, expected_other = restored_image(reference(x)).float(), restored_image(reference(other))
            with precision_settings(fast_plan):
                # under reduce-overhead: the first call warms the shape up, the second records its CUDA graph, the
                # third replays it on a new input, which must neither give the recorded input's output nor
                # overwrite the outputs already returned (they are copies)
                first = restored_image(fast(x)).float()
                recorded = restored_image(fast(x)).float()
                replay = restored_image(fast(other)).float()
                # the fast path's switches (TF32 convolutions) without compile
                eager = restored_image(reference(x)).float()
        assert first.is_contiguous() and first.shape == expected.shape
        worst = max(worst, (first - expected).abs().max().item(), (recorded - expected).abs().max().item(),
                    (replay - expected_other.float()).abs().max().item())
        worst_eager = max(worst_eager, (eager - expected).abs().max().item())
    record_property("max_abs_diff", worst)
    # Recorded in the same GPU window so that a failure says at once whether the precision switches (TF32 in
    # cuDNN, autotuned algorithms) rather than the compiler are its cause. Eager, since a replayed CUDA graph keeps
    # the kernels it was recorded with whatever the switches say later.
    record_property("max_abs_diff_eager_fast_switches", worst_eager)
    record_property("compile_mode", fast_plan.compile_mode)
    record_property("compile_failed", fast.compile_error)
    assert fast.compile_error is None, f"{name}: torch.compile failed, the fast path ran eagerly: {fast.compile_error}"
    assert worst <= TOLERANCE, (f"{name}: fast path differs from --exact by {worst:.3e} (> {TOLERANCE}); "
                                f"eager under the same switches: {worst_eager:.3e}")


def _sample_run(tmp_path: Path, label: str, **options) -> dict[str, float]:
    outcome = run_protocol(RunConfig(protocol="5deg", model="mirage-t", sample=True, device="cuda",
                                     run_dir=tmp_path / label, **options))
    return outcome.summary["psnr"].to_dict()


def test_bf16_changes_psnr_on_real_photos_by_less_than_a_tenth_of_a_db(tmp_path, record_property):
    """MIRAGE-T with the shipped sample checkpoint on the sample photos of 5deg (eager fast path: the precision,
    not the compiler, is under test)."""
    fp32 = _sample_run(tmp_path, "fp32", compile="off")
    bf16 = _sample_run(tmp_path, "bf16", compile="off", dtype="bf16")
    change = {task: bf16[task] - fp32[task] for task in fp32}
    record_property("psnr_change_db", change)
    assert max(abs(v) for v in change.values()) < 0.1, change


def test_automatic_dynamic_shapes_compile_fewer_graphs_than_the_protocol_has_input_shapes(tmp_path,
                                                                                          record_property):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    outcome = run_protocol(RunConfig(protocol="5deg", model="mirage-t", sample=True, device="cuda",
                                     run_dir=tmp_path / "run"))
    execution = outcome.manifest["execution"]
    graphs = counters["stats"]["unique_graphs"]
    record_property("input_shapes", execution["compiled_shapes"])
    record_property("graphs", graphs)
    record_property("compile_warmup_s", execution["warmup_seconds"])
    assert "compile_failed" not in execution, execution["compile_failed"]
    assert execution["compile_mode"] == "reduce-overhead" and execution["compiled_shapes"] >= 3
    assert graphs < execution["compiled_shapes"], execution


def _peak_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(CUDA)
    base = torch.cuda.memory_allocated(CUDA)
    with torch.inference_mode():
        restored_image(model(x))
    torch.cuda.synchronize(CUDA)
    return torch.cuda.max_memory_allocated(CUDA) - base


class _MemoryLimit:
    """Caps this process's CUDA memory at ``limit`` bytes beyond what it holds now; restored on exit."""

    def __init__(self, limit: int) -> None:
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(CUDA).total_memory
        self.fraction = min(1.0, (torch.cuda.memory_reserved(CUDA) + limit) / total)

    def __enter__(self) -> _MemoryLimit:
        torch.cuda.set_per_process_memory_fraction(self.fraction, CUDA)
        return self

    def __exit__(self, *exc) -> None:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
        torch.cuda.empty_cache()


def test_out_of_memory_halves_the_batch_and_keeps_every_image_output(record_property):
    torch.manual_seed(0)
    model = create_model("mirage-t").to(CUDA).eval()
    x = _seeded_images(8, 256, 256)
    one, eight = _peak_bytes(model, x[:1]), _peak_bytes(model, x)
    with torch.inference_mode():
        singles = torch.cat([restored_image(model(x[i:i + 1])).float() for i in range(8)])
    limit = (one + eight) // 2 if eight > 2 * one else 2 * one
    policy = fit_policy(8, "reflect", "none", 1, "none", None)
    with _MemoryLimit(limit), torch.inference_mode():
        out, tile = restore(model, x, policy, EvalOptions(device=CUDA, batch_size=8))
    record_property("peak_bytes_batch1", one)
    record_property("peak_bytes_batch8", eight)
    assert tile is None
    assert (out - singles).abs().max().item() <= 1e-5


def test_an_image_too_large_for_memory_is_tiled(record_property):
    model = create_model("mirage-t", checkpoint=SAMPLE_WEIGHTS).to(CUDA).eval()
    x = _seeded_images(1, 1024, 1024)
    whole_bytes, tile_bytes = _peak_bytes(model, x), _peak_bytes(model, x[..., :512, :512])
    with torch.inference_mode():
        whole = restored_image(model(x)).float()
    policy = fit_policy(8, "reflect", "none", 1, "none", None)
    with _MemoryLimit(min(2 * tile_bytes, (whole_bytes + tile_bytes) // 2)), torch.inference_mode():
        out, tile = restore(model, x, policy, EvalOptions(device=CUDA))
    record_property("tile", tile)
    record_property("psnr_tiled_vs_whole_db", psnr(out.clamp(0, 1), whole.clamp(0, 1)).item())
    assert tile in (512, 256) and out.shape == x.shape and torch.isfinite(out).all()


def test_lpips_on_the_gpu_equals_lpips_on_the_cpu(tmp_path, monkeypatch):
    pytest.importorskip("pyiqa")
    from test_lpips import image_pair, install_in_cache  # stand-in weights with the real keys and shapes

    from bench_ir.metrics.lpips import LPIPSScorer

    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    install_in_cache(tmp_path / "torch" / "hub")
    pred, target = image_pair(96)
    on_gpu = LPIPSScorer("alex", device="cuda")(pred, target)
    on_cpu = LPIPSScorer("alex", device="cpu")(pred, target)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model", ["mirage-t", str(EXAMPLE_CARD)], ids=["mirage-t", "tiny-unet"])
def test_a_training_step_on_the_gpu_follows_the_exact_step(tmp_path, model, record_property):
    from bench_ir.train.trainer import train

    common = {"max_steps": 2, "device": "cuda", "batch_size": 8, "patch_size": 64, "num_workers": 2,
              "validate": False, "tensorboard": False, "log_every": 1}
    fast = train("sample", model, None, tmp_path / "fast", **common)
    exact = train("sample", model, None, tmp_path / "exact", exact=True, **common)
    assert fast.manifest["execution"]["compile_mode"] == "default" and fast.manifest["device"]["type"] == "cuda"
    assert "compile_failed" not in fast.manifest["execution"], fast.manifest["execution"]["compile_failed"]
    losses = {}
    for label, outcome in (("fast", fast), ("exact", exact)):
        rows = (outcome.run_dir / "train_log.csv").read_text().splitlines()
        header = rows[0].split(",")
        losses[label] = [float(row.split(",")[header.index("total")]) for row in rows[1:]]
    record_property("losses", losses)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in losses.values())
    assert abs(losses["fast"][0] - losses["exact"][0]) <= 1e-3 * abs(losses["exact"][0]), losses


def test_a_folder_restored_on_the_gpu_equals_the_cpu_restore_within_one_grey_level(tmp_path, record_property):
    """bench-ir restore on CUDA (eager fast path, channels-last) against the CPU, sample checkpoint, two photo sizes
    that are not multiples of MIRAGE's 8 (padded and cropped back)."""
    import numpy as np
    from PIL import Image

    from bench_ir.data.io import read_rgb_uint8
    from bench_ir.data.sample import load_sample_photo
    from bench_ir.folder_restore import RestoreConfig, restore_folder

    (tmp_path / "in").mkdir()
    Image.fromarray(load_sample_photo("chelsea")[:101, :157] // 2).save(tmp_path / "in" / "cat.png")
    Image.fromarray(load_sample_photo("coffee")[:77, :90]).save(tmp_path / "in" / "cup.png")
    for device in ("cpu", "cuda"):
        restore_folder(RestoreConfig(tmp_path / "in", tmp_path / device, model="mirage-t", use_sample_checkpoint=True,
                                     device=device))
    worst = max(np.abs(read_rgb_uint8(tmp_path / "cuda" / name).astype(int)
                       - read_rgb_uint8(tmp_path / "cpu" / name).astype(int)).max() for name in ("cat.png", "cup.png"))
    record_property("max_grey_level_diff", int(worst))
    assert worst <= 1



def test_a_folder_image_too_large_for_memory_is_tiled_and_listed_in_restore_json(tmp_path, record_property):
    """The tiling fallback end to end: restore.json names the tiled output (tests/test_oom_tiling.py checks the
    bookkeeping on the CPU with a simulated fallback)."""
    import json

    import numpy as np
    from PIL import Image

    from bench_ir.folder_restore import RestoreConfig, restore_folder

    model = create_model("mirage-t", checkpoint=SAMPLE_WEIGHTS).to(CUDA).eval()
    x = _seeded_images(1, 1024, 1024)
    whole_bytes, tile_bytes = _peak_bytes(model, x), _peak_bytes(model, x[..., :512, :512])
    (tmp_path / "in").mkdir()
    pixels = (x[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in" / "big.png")
    del model, x
    with _MemoryLimit(min(2 * tile_bytes, (whole_bytes + tile_bytes) // 2)):
        outcome = restore_folder(RestoreConfig(tmp_path / "in", tmp_path / "out", model="mirage-t",
                                               use_sample_checkpoint=True, device="cuda"))
    record_property("tiled", outcome.tiled)
    assert outcome.tiled.get("big.png") in (512, 256)
    assert json.loads((tmp_path / "out" / "restore.json").read_text())["auto_tiled"] == outcome.tiled
