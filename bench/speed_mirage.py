"""Speed of bench-ir's MIRAGE against the official implementation, side by side in one process, same weights.

    python bench/speed_mirage.py --official /path/to/MIRAGE [--parts inference latency protocol train]
                                 [--variants tiny small] [--checkpoint F] [--device cuda] [--quick]
                                 [--protocol-scale 0.1] [--out-dir D [--rehearsal]]

--official is a checkout of github.com/Amazingren/MIRAGE (the network files need einops, timm and fvcore). Its
``net/mirage_{tiny,small}.py``, ``utils/val_utils.compute_psnr_ssim``, ``utils/loss_utils.FFTLoss`` and
``utils/image_utils.crop_img`` are imported from there at run time; nothing of it is stored in this project
(``skvideo``, which val_utils imports for NIQE only, is replaced by a stub when it is not installed).

Parts (figures of the issue "Speed", measured on one device in one run):
  inference  images/s at 16 x 3 x 256^2: official eager fp32 (and bf16 autocast), bench-ir exact (eager) and fast
             (compiled, CUDA graphs) in fp32 and bf16; max |output - official fp32| and the PSNR effect of bf16 on
             real photos (built-in sample photos with Gaussian noise sigma 25).
  latency    one 224^2 image (batch 1): median / p90 ms of the same paths.
  train      training steps at 32 x 128^2 (L1 + 0.1 Fourier + SPD, AdamW 2e-4) on identical batches from identical
             weights: ms/step (median after warm-up), peak CUDA memory, and the loss curves of 200 steps.
  protocol   the 5deg protocol on a shape-equivalent synthetic set (68 + 100 images at 481x321, 500 at 620x460,
             1,111 at 1280x720, 15 at 600x400; --protocol-scale keeps that fraction of each count, same shapes): the
             official test loop (batch 1, scikit-image metrics on the CPU) against bench-ir runs of all five sets
             as one protocol, each in a fresh process: the compiled fast path with an empty inductor cache (a
             user's first run: cold) and again with that cache (warm), the eager fast path (--compile off) and
             --exact; end to end, compile warm-up counted and reported, per-image metric deltas. From the cold
             compiled and the eager run, projected to the whole protocol (the per-image forward seconds / scale,
             the rest of the run once, compile warm-up included), the JSON's ``decision`` states which path a
             user's first 5deg run is faster on: the CUDA default.

Order (JOB_ORDER, most wanted first): inference and latency of MIRAGE-T, inference of MIRAGE-S, the protocol,
training of MIRAGE-T, then latency and training of MIRAGE-S. Writes
bench/results/speed-<device>-<date>.json and appends a section to bench/RESULTS.md; with --out-dir, both go to that
folder only, rewritten after every part (a run cut short keeps what it measured). --quick shrinks every part
(smaller sizes, few repeats and images) to check the script itself, e.g. on a CPU; --rehearsal labels the output.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import statistics
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import HERE, write_results  # noqa: E402
from _targets import evaluate_targets, targets_markdown  # noqa: E402

from bench_ir.acceleration import (  # noqa: E402
    AcceleratedForward,
    compile_for_training,
    one_line_error,
    plan_execution,
    precision_settings,
)
from bench_ir.cards import get_card  # noqa: E402
from bench_ir.checkpoints import create_model  # noqa: E402
from bench_ir.engine import resolve_device, restored_image  # noqa: E402
from bench_ir.metrics.functional import psnr as psnr_db  # noqa: E402
from bench_ir.profiling import latency_summary, time_calls  # noqa: E402

CARDS = {"tiny": "mirage-t", "small": "mirage-s"}
PROTOCOL_GROUPS = [  # name, images, (height, width): the 5deg protocol's test sets by shape
    ("bsd68", 68, (321, 481)), ("rain100l", 100, (321, 481)), ("sots-outdoor", 500, (460, 620)),
    ("gopro", 1111, (720, 1280)), ("lol", 15, (400, 600)),
]


# ------------------------------------------------------------------------------------------------ official code
class Official:
    """The official network classes and test/loss helpers, imported from a checkout."""

    def __init__(self, root: Path) -> None:
        root = root.resolve()
        if not (root / "net" / "mirage_tiny.py").is_file():
            raise SystemExit(f"--official {root}: no net/mirage_tiny.py; give a checkout of "
                             "github.com/Amazingren/MIRAGE")
        sys.path.insert(0, str(root))
        try:
            importlib.import_module("skvideo.measure")
        except ImportError:  # val_utils imports NIQE from scikit-video; the PSNR/SSIM function does not use it
            stub = types.ModuleType("skvideo.measure")
            stub.niqe = None  # type: ignore[attr-defined]
            sys.modules["skvideo"] = types.ModuleType("skvideo")
            sys.modules["skvideo.measure"] = stub
        self.root = root
        self.nets = {variant: importlib.import_module(f"net.mirage_{variant}").MIRAGE for variant in CARDS}
        self.compute_psnr_ssim = importlib.import_module("utils.val_utils").compute_psnr_ssim
        self.fft_loss = importlib.import_module("utils.loss_utils").FFTLoss
        self.crop_img = importlib.import_module("utils.image_utils").crop_img


def paired_models(official: Official, variant: str, device: torch.device,
                  checkpoint: Path | None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """bench-ir's model (checkpoint or seeded random weights) and the official class holding the same weights."""
    torch.manual_seed(0)
    ours = create_model(get_card(CARDS[variant]), checkpoint=checkpoint).to(device).eval()
    theirs = official.nets[variant]().to(device).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


def _autocast(device: torch.device, dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def precision_settings_of(plan):
    """A zero-argument context-manager factory applying ``plan``'s precision settings."""
    return lambda: precision_settings(plan)


def switches_of(forward: Any) -> contextlib.AbstractContextManager:
    """The cuDNN/TF32 switches a path is timed under: a bench-ir path (an :class:`AcceleratedForward`) under
    ``precision_settings`` of its own plan, as `bench-ir run` scores; the official model under the process
    defaults, as the official scripts run."""
    if isinstance(forward, AcceleratedForward):
        return precision_settings(forward.plan)
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------------------------ real images
def noisy_photo_batch(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random size x size crops of the built-in sample photos (clean) and the same with Gaussian noise of
    sigma 25 (uint8, clipped), both in [0, 1]."""
    from bench_ir.data.sample import SAMPLE_EVAL_IMAGES, load_sample_photo

    photos = [torch.from_numpy(load_sample_photo(name, max_side=512)).permute(2, 0, 1).float() / 255
              for name in SAMPLE_EVAL_IMAGES]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(batch):
        photo = photos[i % len(photos)]
        if min(photo.shape[1:]) < size:
            photo = F.interpolate(photo[None], scale_factor=size / min(photo.shape[1:]) + 0.01, mode="bicubic",
                                  align_corners=False)[0].clamp(0, 1)
        top = int(rng.integers(0, photo.shape[1] - size + 1))
        left = int(rng.integers(0, photo.shape[2] - size + 1))
        crops.append(photo[:, top:top + size, left:left + size])
    clean = (torch.stack(crops) * 255).round() / 255
    noise = torch.from_numpy(rng.standard_normal(clean.shape)).float() * 25
    noisy = (clean * 255 + noise).clamp(0, 255).round() / 255
    return noisy, clean


# ------------------------------------------------------------------------------------------------ parts
def bench_inference(official: Official, variant: str, device: torch.device, batch: int, size: int,
                    repeats: int, warmup: int, checkpoint: Path | None) -> dict[str, Any]:
    ours, theirs = paired_models(official, variant, device, checkpoint)
    noisy, clean = (t.to(device) for t in noisy_photo_batch(batch, size))
    fast = AcceleratedForward(copy.deepcopy(ours), plan_execution(device))
    exact = AcceleratedForward(ours, plan_execution(device, exact=True))
    paths: dict[str, Any] = {}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for name, forward, dtype in [
            ("official fp32", theirs, "fp32"),
            ("official bf16", theirs, "bf16"),
            ("bench-ir exact fp32", exact, "fp32"),
            ("bench-ir fast fp32", fast, "fp32"),
            ("bench-ir fast bf16", fast, "bf16"),
        ]:
            with switches_of(forward), _autocast(device, dtype):
                outputs[name] = restored_image(forward(noisy)).float().clone()
                times = time_calls(lambda f=forward: f(noisy), device, repeats, warmup)
            paths[name] = latency_summary(times, batch)
    reference = outputs["official fp32"]
    base = paths["official fp32"]["images_per_s"]
    clean_psnr = {name: psnr_db(out.clamp(0, 1), clean).mean().item() for name, out in outputs.items()}
    for name, out in outputs.items():
        paths[name]["max_abs_diff_vs_official_fp32"] = (out - reference).abs().max().item()
        paths[name]["speedup_vs_official_fp32"] = paths[name]["images_per_s"] / base
        paths[name]["psnr_vs_clean_db"] = clean_psnr[name]
        paths[name]["psnr_change_vs_official_fp32_db"] = clean_psnr[name] - clean_psnr["official fp32"]
    return {"variant": variant, "batch": batch, "size": size, "repeats": repeats, "warmup": warmup,
            "checkpoint": str(checkpoint) if checkpoint else None, "compile_warmup_s": fast.warmup_seconds,
            "compile_failed": fast.compile_error, "paths": paths}


def bench_latency(official: Official, variant: str, device: torch.device, size: int, repeats: int,
                  warmup: int) -> dict[str, Any]:
    ours, theirs = paired_models(official, variant, device, None)
    x = noisy_photo_batch(1, size)[0].to(device)
    fast = AcceleratedForward(copy.deepcopy(ours), plan_execution(device))
    exact = AcceleratedForward(ours, plan_execution(device, exact=True))
    paths = {}
    with torch.inference_mode():
        for name, forward in [("official fp32", theirs), ("bench-ir exact fp32", exact), ("bench-ir fast fp32", fast)]:
            with switches_of(forward):
                paths[name] = latency_summary(time_calls(lambda f=forward: f(x), device, repeats, warmup), 1)
    return {"variant": variant, "size": size, "repeats": repeats, "warmup": warmup,
            "compile_failed": fast.compile_error, "paths": paths}


def _training_batches(count: int, batch: int, size: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` (degraded, clean) batches of the sample recipe's data (built-in photos, synthetic degradations)."""
    import os

    from torch.utils.data import DataLoader

    from bench_ir.train.data import EpochBatchSampler, build_training_set
    from bench_ir.train.recipes import load_recipe

    dataset = build_training_set(load_recipe("sample"), None, size, seed)
    sampler = EpochBatchSampler(len(dataset), batch, seed)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=min(8, os.cpu_count() or 1))
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    while len(batches) < count:
        for item in loader:
            batches.append((item["input"], item["target"]))
            if len(batches) == count:
                break
        sampler.set_epoch(sampler.epoch + 1)
    return batches


def bench_train(official: Official, variant: str, device: torch.device, batch: int, size: int, steps: int,
                warmup: int, dtype: str) -> dict[str, Any]:
    from bench_ir.train.objectives import build_objective, build_optimizer
    from bench_ir.train.recipes import load_recipe, resolve_plan

    batches = _training_batches(steps, batch, size)
    card = get_card(CARDS[variant])
    recipe = load_recipe("5deg")
    plan = resolve_plan(recipe, card, batch_size=batch, patch_size=size)
    results: dict[str, Any] = {}
    for name in ("official", "bench-ir exact", "bench-ir fast"):
        ours, theirs = paired_models(official, variant, device, None)
        if name == "official":
            model = theirs.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.optimizer.lr)
            l1, fourier = torch.nn.L1Loss(), official.fft_loss(loss_weight=plan.fft_weight)

            def step_fn(lq, gt, model=model, l1=l1, fourier=fourier):
                restored, spd = model(lq)
                return l1(restored, gt) + fourier(restored, gt) + spd
            settings = contextlib.nullcontext
            step_dtype = "fp32"
        else:
            execution = plan_execution(device, exact=name.endswith("exact"), training=True)
            model = execution.place_module(ours.train())
            optimizer = build_optimizer(plan, recipe.optimizer, model, fused=execution.fused_optimizer)
            trained, objective = compile_for_training(model, execution), build_objective(plan)

            def step_fn(lq, gt, trained=trained, objective=objective, execution=execution):
                return objective(trained, execution.place_input(lq), execution.place_input(gt), 0)["total"]
            settings = precision_settings_of(execution)
            step_dtype = "fp32" if name.endswith("exact") else dtype
        losses, times = [], []
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        with settings():
            for index, (lq, gt) in enumerate(batches):
                lq, gt = lq.to(device, non_blocking=True), gt.to(device, non_blocking=True)
                torch.manual_seed(index)  # the same stochastic-depth draws in eager paths
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                with _autocast(device, step_dtype):
                    loss = step_fn(lq, gt)
                loss.backward()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
                losses.append(loss.item())
        results[name] = {
            "ms_per_step_median": statistics.median(times[warmup:]) * 1e3 if len(times) > warmup else None,
            "first_steps_s": sum(times[:warmup]),
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "dtype": step_dtype, "losses": losses,
        }
        del model, optimizer, ours, theirs
    reference = np.asarray(results["official"]["losses"])
    window = max(1, min(20, len(reference) // 5))
    smooth = np.convolve(reference, np.ones(window) / window, mode="valid")
    for name in ("bench-ir exact", "bench-ir fast"):
        curve = np.asarray(results[name]["losses"])
        results[name]["loss_max_rel_diff"] = float(np.max(np.abs(curve - reference) / np.abs(reference)))
        curve_smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        results[name]["loss_smoothed_max_rel_diff"] = float(np.max(np.abs(curve_smooth - smooth) / smooth))
        if results[name]["ms_per_step_median"] and results["official"]["ms_per_step_median"]:
            results[name]["speedup_vs_official"] = (results["official"]["ms_per_step_median"]
                                                    / results[name]["ms_per_step_median"])
    return {"variant": variant, "batch": batch, "size": size, "steps": steps, "warmup_steps": warmup,
            "smoothing_window": window, "paths": results}


def _write_protocol_pair(job: tuple[Path, int, int, int, int]) -> None:
    """One clean image (a smooth random field, seeded by its group and index) and its noisy copy (sigma 25)."""
    from PIL import Image

    folder, group, index, height, width = job
    rng = np.random.default_rng((group, index))
    coarse = torch.from_numpy(rng.random((1, 3, height // 16 + 1, width // 16 + 1))).float()
    clean = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    clean = (clean.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    noisy = np.clip(clean + rng.standard_normal(clean.shape) * 25, 0, 255).round().astype(np.uint8)
    Image.fromarray(clean).save(folder / "target" / f"{index:04d}.png")
    Image.fromarray(noisy).save(folder / "input" / f"{index:04d}.png")


def _write_protocol_set(root: Path, groups: list[tuple[str, int, tuple[int, int]]]) -> None:
    """Clean/degraded uint8 PNG pairs for every group, written by one process per core."""
    import multiprocessing
    import os

    jobs = []
    for group, (name, count, (height, width)) in enumerate(groups):
        (root / name / "input").mkdir(parents=True, exist_ok=True)
        (root / name / "target").mkdir(parents=True, exist_ok=True)
        jobs += [(root / name, group, i, height, width) for i in range(count)]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_protocol_pair, jobs, chunksize=8)


def _official_protocol_loop(official: Official, model: torch.nn.Module, folder: Path,
                            device: torch.device) -> dict[str, tuple[float, float]]:
    """The official test loop of test_tiny.py: PIL -> crop_img(base 16) -> ToTensor, batch 1, no workers, the
    official forward, utils.val_utils.compute_psnr_ssim (scikit-image on the CPU) per image."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import ToTensor

    crop_img, to_tensor = official.crop_img, ToTensor()
    names = sorted(p.name for p in (folder / "input").iterdir())

    class Pairs(Dataset):
        def __len__(self) -> int:
            return len(names)

        def __getitem__(self, i: int):
            degraded = crop_img(np.array(Image.open(folder / "input" / names[i]).convert("RGB")), base=16)
            clean = crop_img(np.array(Image.open(folder / "target" / names[i]).convert("RGB")), base=16)
            return names[i], to_tensor(degraded), to_tensor(clean)

    values = {}
    with torch.no_grad():
        for (name,), degraded, clean in DataLoader(Pairs(), batch_size=1, pin_memory=True, num_workers=0):
            restored, _ = model(degraded.to(device))
            psnr, ssim, _ = official.compute_psnr_ssim(restored, clean.to(device))
            values[name] = (float(psnr), float(ssim))
    return values


def synthetic_protocol(root: Path, groups: list[tuple[str, int, tuple[int, int]]]):
    """One protocol with a task per group (folders ``root/<group>/{input,target}``), with the 5deg geometry and
    metric convention (centre crop to a multiple of 16, M1), so a run scores them all in one process as a user's
    5deg run does."""
    import dataclasses

    from bench_ir.runner import folder_protocol

    tasks = [dataclasses.replace(folder_protocol(root / name / "input", root / name / "target").tasks[0],
                                 name=name, label=name) for name, _, _ in groups]
    base = folder_protocol(root / groups[0][0] / "input", root / groups[0][0] / "target")
    return dataclasses.replace(base, name="5deg-shaped", title="5deg-shaped synthetic set", tasks=tasks)


def protocol_worker(spec_file: Path) -> None:
    """``speed_mirage.py --protocol-worker SPEC.json``: one bench-ir run of the synthetic protocol in this (fresh)
    process, timed from before the run to after its last record; writes seconds, the per-image forward seconds in
    their steady state (``forward_seconds``, :func:`steady_forward_seconds`), the execution plan (compile warm-up
    included) and per-image metrics to ``spec["out"]``."""
    import json

    from bench_ir.results import load_run
    from bench_ir.runner import RunConfig, run_protocol

    spec = json.loads(spec_file.read_text())
    groups = [(name, count, tuple(size)) for name, count, size in spec["groups"]]
    start = time.perf_counter()
    config = RunConfig(protocol=synthetic_protocol(Path(spec["data"]), groups), model="mirage-t",
                       data_root=spec["data"],  # the layouts are absolute paths under it
                       checkpoint=spec["checkpoint"], device=spec["device"], exact=spec["exact"],
                       compile=spec["compile"], batch_size=spec["batch_size"], run_dir=spec["run_dir"])
    outcome = run_protocol(config)
    seconds = time.perf_counter() - start
    records = load_run(outcome.run_dir).records
    values = {f"{row.task}/{row.image}": [row.psnr, row.ssim] for row in records.itertuples()}
    Path(spec["out"]).write_text(json.dumps({"seconds": seconds, "forward_seconds": steady_forward_seconds(records),
                                             "execution": outcome.manifest["execution"],
                                             "batch_size": outcome.manifest["batch_size"], "values": values}))


PROTOCOL_PATHS = [  # label, bench-ir options, inductor cache ("fresh": a new empty one, "reuse": the previous one)
    ("bench-ir fast, compiled, cold cache", {"exact": False, "compile": "auto"}, "fresh"),
    ("bench-ir fast, compiled, warm cache", {"exact": False, "compile": "auto"}, "reuse"),
    ("bench-ir fast, eager", {"exact": False, "compile": "off"}, "fresh"),
    ("bench-ir exact", {"exact": True, "compile": "auto"}, "fresh"),
]


def _run_protocol_process(root: Path, label: str, options: dict[str, Any], cache: Path, groups, device,
                          checkpoint: Path, batch_size: int | None) -> dict[str, Any]:
    import json
    import os
    import subprocess

    slug = label.replace(" ", "-").replace(",", "")
    spec = {"data": str(root / "data"), "groups": groups, "checkpoint": str(checkpoint), "device": str(device),
            "batch_size": batch_size, "run_dir": str(root / "runs" / slug), "out": str(root / f"{slug}.json"),
            **options}
    (root / f"{slug}.spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "TRITON_CACHE_DIR": str(cache / "triton")}
    start = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--protocol-worker",
                    str(root / f"{slug}.spec.json")], env=env, check=True)
    result = json.loads((root / f"{slug}.json").read_text())
    result["process_seconds"] = time.perf_counter() - start
    return result


def steady_forward_seconds(records: Any) -> float:
    """The sum of a run's per-image forward seconds (records with ``task``, ``height``, ``width``, ``seconds``),
    each capped at the median of its task and size: what lies above it, the first calls of a shape (cuDNN
    autotuning of a new shape on the eager path, CUDA-graph capture on the compiled one), is paid once per shape,
    not per image, so it is left to the run's one-off part."""
    medians = records.groupby(["task", "height", "width"])["seconds"].transform("median")
    return float(records["seconds"].clip(upper=medians).sum())


def projected_run(row: dict[str, Any], scale: float) -> dict[str, float]:
    """One bench-ir run of the subset in parts, and projected to the whole protocol. ``forward_s``, the per-image
    forward seconds in their steady state (:func:`steady_forward_seconds`), scales with 1 / ``scale``; ``one_off_s``,
    the rest of the run (CUDA context, model and checkpoint load, header checks, DataLoader start-up per task,
    compile warm-up, the first calls of each shape), is paid once whatever the number of images.
    ``projected_s`` = ``one_off_s + forward_s / scale``."""
    forward = row["forward_seconds"]
    one_off = row["seconds"] - forward
    return {"subset_s": row["seconds"], "forward_s": forward, "one_off_s": one_off,
            "compile_warmup_s": row["execution"].get("warmup_seconds", 0.0), "projected_s": one_off + forward / scale}


def protocol_decision(paths: dict[str, Any], scale: float) -> dict[str, Any]:
    """Compiled or eager fast path as the CUDA default, from the cold compiled run and the eager run of the
    subset, each projected to the whole protocol by :func:`projected_run` (its parts are kept in ``runs``, so the
    figure can be checked). The default becomes eager when a user's first (cold) full run is slower compiled than
    eager."""
    cold = paths.get("bench-ir fast, compiled, cold cache")
    eager = paths.get("bench-ir fast, eager")
    if not cold or not eager:
        return {"decided": False, "why": "the cold compiled and the eager runs are both needed"}
    runs = {"compiled_cold": projected_run(cold, scale), "eager": projected_run(eager, scale)}
    first_compiled, first_eager = runs["compiled_cold"]["projected_s"], runs["eager"]["projected_s"]
    compile_failed = cold["execution"].get("compile_failed")
    compiled_ran = cold["execution"].get("compile_mode") is not None and not compile_failed
    return {"decided": compiled_ran, "scale": scale, "runs": runs,
            "compile_warmup_s": runs["compiled_cold"]["compile_warmup_s"],
            "projected_full_protocol_s": {"compiled_cold": first_compiled, "eager": first_eager},
            "projection": "one_off_s + forward_s / scale: forward_s is the sum of the records' per-image forward "
                          "seconds, each capped at the median of its task and size; one_off_s the rest of the subset "
                          "run (compile warm-up and the first calls of each shape included)",
            "default": ("compile" if first_compiled <= first_eager else "eager") if compiled_ran else None,
            "rule": "eager when the projected first (cold) full-protocol run is slower compiled than eager",
            "note": None if compiled_ran else (f"torch.compile failed, the run went on eagerly: {compile_failed}"
                                               if compile_failed else
                                               "the compiled path did not compile on this device (CPU rehearsal)")}


def bench_protocol(official: Official, device: torch.device, checkpoint: Path | None, scale: float,
                   batch_size: int | None, quick: bool = False) -> dict[str, Any]:
    """The official test loop against bench-ir runs in fresh processes (compiled with a cold and a warm inductor
    cache, eager fast path, exact), on the 5deg-shaped set with every group's count x ``scale`` (same shapes)."""
    groups = [(name, max(1, round(count * scale)), ((height // 4, width // 4) if quick else (height, width)))
              for name, count, (height, width) in PROTOCOL_GROUPS]
    results: dict[str, Any] = {"groups": [{"name": n, "images": c, "size": [h, w]} for n, c, (h, w) in groups],
                               "scale": scale, "checkpoint": str(checkpoint) if checkpoint else None}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        _write_protocol_set(root / "data", groups)
        results["data_generation_s"] = time.perf_counter() - start
        ours, theirs = paired_models(official, "tiny", device, checkpoint)
        if checkpoint is None:  # bench-ir's runs must use the very weights the official model holds
            from safetensors.torch import save_file

            checkpoint = root / "weights.safetensors"
            save_file({k: v.detach().cpu().contiguous() for k, v in ours.state_dict().items()}, str(checkpoint))
        del ours

        start = time.perf_counter()
        official_values = {f"{name}/{image}": value for name, _, _ in groups
                           for image, value in _official_protocol_loop(official, theirs, root / "data" / name,
                                                                       device).items()}
        results["official_s"] = time.perf_counter() - start
        del theirs
        if device.type == "cuda":
            torch.cuda.empty_cache()

        paths: dict[str, Any] = {}
        cache = root / "inductor-cache-0"
        for index, (label, options, cache_use) in enumerate(PROTOCOL_PATHS):
            if cache_use == "fresh":
                cache = root / f"inductor-cache-{index}"
            row = _run_protocol_process(root, label, options, cache, groups, device, checkpoint, batch_size)
            deltas = [(abs(row["values"][key][0] - psnr), abs(row["values"][key][1] - ssim))
                      for key, (psnr, ssim) in official_values.items()]
            paths[label] = {"seconds": row["seconds"], "forward_seconds": row["forward_seconds"],
                            "process_seconds": row["process_seconds"],
                            "execution": row["execution"], "batch_size": row["batch_size"], "images": len(deltas),
                            "max_abs_psnr_diff_db": max(d[0] for d in deltas),
                            "max_abs_ssim_diff": max(d[1] for d in deltas),
                            "speedup_vs_official": results["official_s"] / row["seconds"]}
        results["paths"] = paths
        results["decision"] = protocol_decision(paths, scale)
    return results


# ------------------------------------------------------------------------------------------------ report
def to_markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    for part in results.get("inference", []) + results.get("latency", []):
        kind = "inference" if "batch" in part else "latency"
        shape = (f"{part['batch']} x 3 x {part['size']}^2" if kind == "inference" else f"1 x 3 x {part['size']}^2")
        lines += [f"### MIRAGE-{part['variant']} {kind}, {shape}", "",
                  "| path | images/s | median ms | p90 ms | speed-up | max abs diff | PSNR change (dB) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        base = part["paths"]["official fp32"]["images_per_s"]
        for name, row in part["paths"].items():
            diff = row.get("max_abs_diff_vs_official_fp32")
            change = row.get("psnr_change_vs_official_fp32_db")
            lines.append(f"| {name} | {row['images_per_s']:.1f} | {row['ms_median']:.2f} | {row['ms_p90']:.2f} | "
                         f"{row['images_per_s'] / base:.2f}x | {'' if diff is None else f'{diff:.2e}'} | "
                         f"{'' if change is None else f'{change:+.4f}'} |")
        lines.append("")
    for part in results.get("train", []):
        lines += [f"### MIRAGE-{part['variant']} training, batch {part['batch']} x {part['size']}^2, "
                  f"{part['steps']} steps", "",
                  "| path | dtype | ms/step | peak GiB | speed-up | loss max rel diff | smoothed |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for name, row in part["paths"].items():
            peak = row["peak_memory_gib"]
            ms = row["ms_per_step_median"]
            lines.append(f"| {name} | {row['dtype']} | {'' if ms is None else f'{ms:.1f}'} | "
                         f"{'' if peak is None else f'{peak:.1f}'} | {row.get('speedup_vs_official', 1.0):.2f}x | "
                         f"{row.get('loss_max_rel_diff', 0.0):.2e} | "
                         f"{row.get('loss_smoothed_max_rel_diff', 0.0):.2e} |")
        lines.append("")
    if "protocol" in results:
        part = results["protocol"]
        images = sum(g["images"] for g in part["groups"])
        lines += [f"### 5deg-shaped protocol end to end ({images} images, x{part['scale']:g} of the 5deg counts, "
                  "same shapes; bench-ir in a fresh process each)", "",
                  "| path | seconds | compile warm-up s | process s | speed-up | max abs PSNR diff (dB) | "
                  "max abs SSIM diff |", "|---|---:|---:|---:|---:|---:|---:|",
                  f"| official test loop | {part['official_s']:.1f} | | | 1.00x | | |"]
        for name, row in part["paths"].items():
            lines.append(f"| {name} | {row['seconds']:.1f} | {row['execution'].get('warmup_seconds', 0.0):.1f} | "
                         f"{row['process_seconds']:.1f} | {row['speedup_vs_official']:.2f}x | "
                         f"{row['max_abs_psnr_diff_db']:.2e} | {row['max_abs_ssim_diff']:.2e} |")
        decision = part["decision"]
        if decision.get("decided"):
            cold, eager, scale = decision["runs"]["compiled_cold"], decision["runs"]["eager"], decision["scale"]
            lines += ["", f"CUDA default by this measurement: **{decision['default']}** (projected first full 5deg "
                      f"run: compiled from a cold cache {cold['projected_s']:.0f} s = {cold['one_off_s']:.0f} s "
                      f"once (compile warm-up {cold['compile_warmup_s']:.0f} s in it) + {cold['forward_s']:.1f} s "
                      f"of forwards / {scale:g}, vs eager fast path {eager['projected_s']:.0f} s = "
                      f"{eager['one_off_s']:.0f} s once + {eager['forward_s']:.1f} s of forwards / {scale:g}; rule: "
                      f"{decision['rule']})."]
        else:
            lines += ["", f"No decision on the CUDA default: {decision.get('note') or decision.get('why')}."]
        lines.append("")
    for failed in results.get("failed_parts", []):
        lines += [f"### MIRAGE-{failed['variant']} {failed['part']}: failed", "", f"`{failed['error']}`", ""]
    lines.append(targets_markdown(evaluate_targets(results)))
    return "\n".join(lines)


JOB_ORDER = [  # most wanted first: a run cut short by its time cap loses the end of the list
    ("inference", "tiny"), ("latency", "tiny"), ("inference", "small"), ("protocol", "tiny"), ("train", "tiny"),
    ("latency", "small"), ("train", "small"),
]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--protocol-worker":
        protocol_worker(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of github.com/Amazingren/MIRAGE")
    parser.add_argument("--parts", nargs="+", default=["inference", "latency", "protocol", "train"],
                        choices=["inference", "latency", "train", "protocol"],
                        help="parts to run, in the order of JOB_ORDER (the protocol part uses MIRAGE-T)")
    parser.add_argument("--variants", nargs="+", default=["tiny", "small"], choices=sorted(CARDS))
    parser.add_argument("--checkpoint", type=Path, help="MIRAGE-T weights for inference PSNR and the protocol "
                        "(default: seeded random weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--protocol-batch", type=int, help="bench-ir --batch-size in the protocol part")
    parser.add_argument("--protocol-scale", type=float, default=1.0,
                        help="fraction of every 5deg test set's image count (same shapes), e.g. 0.1")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts: checks the script only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--out-dir", type=Path, help="write the JSON and Markdown here only (bench/ untouched), "
                        "rewritten after every part so a run cut short keeps what it measured")
    parser.add_argument("--rehearsal", action="store_true", help="label the output as a rehearsal (needs --out-dir)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    official = Official(args.official)
    q = args.quick
    kind = "speed-quick" if q else "speed"
    command = "python bench/speed_mirage.py " + " ".join(sys.argv[1:]).replace(str(args.official), "<official>")
    if args.out_dir is not None:
        command = command.replace(str(args.out_dir), "<out-dir>")
    results: dict[str, Any] = {}

    def with_targets() -> dict[str, Any]:
        return {**results, "targets": evaluate_targets(results)}

    def save() -> None:
        if args.out_dir is not None:
            write_results(kind, device, command, with_targets(), to_markdown(results), args.out, args.out_dir,
                          args.rehearsal)

    def run_part(part: str, variant: str, checkpoint: Path | None) -> None:
        if part == "inference":
            results.setdefault("inference", []).append(bench_inference(
                official, variant, device, batch=2 if q else 16, size=64 if q else 256, repeats=2 if q else 30,
                warmup=1 if q else 10, checkpoint=checkpoint))
        elif part == "latency":
            results.setdefault("latency", []).append(bench_latency(
                official, variant, device, size=64 if q else 224, repeats=2 if q else 100, warmup=1 if q else 20))
        elif part == "protocol":
            results["protocol"] = bench_protocol(official, device, args.checkpoint,
                                                 scale=0.002 if q else args.protocol_scale,
                                                 batch_size=args.protocol_batch, quick=q)
        else:
            results.setdefault("train", []).append(bench_train(
                official, variant, device, batch=2 if q else 32, size=32 if q else 128,
                steps=4 if q else args.train_steps, warmup=1 if q else 20, dtype=args.train_dtype))

    for part, variant in JOB_ORDER:
        if part not in args.parts or variant not in args.variants:
            continue
        checkpoint = args.checkpoint if variant == "tiny" else None
        start = time.perf_counter()
        print(f"[speed_mirage] {part} MIRAGE-{variant} ...", flush=True)
        try:
            run_part(part, variant, checkpoint)
        except Exception as err:  # one failing part (a compile error, out of memory) does not cost the others
            failure = one_line_error(err)
            results.setdefault("failed_parts", []).append({"part": part, "variant": variant, "error": failure})
            print(f"[speed_mirage] {part} MIRAGE-{variant} failed: {failure}", flush=True)
            traceback.print_exc()
        print(f"[speed_mirage] {part} MIRAGE-{variant}: {time.perf_counter() - start:.1f} s", flush=True)
        save()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.out_dir is None:
        write_results(kind, device, command, with_targets(), to_markdown(results), args.out)


if __name__ == "__main__":
    main()
