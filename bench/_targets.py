"""The speed targets of bench-ir's fast path against the official MIRAGE code (issue 16), judged on the figures of
``speed_mirage.py`` (its ``results`` dict): each target as a row with what was measured and a verdict.

A target is judged only at the size it names (inference 16 x 256^2, latency 1 x 224^2, training 32 x 128^2);
a figure measured at another size (``--quick``) or not at all gets the verdict ``None`` ("not measured"), never a
pass. Ratios are against the official implementation in the same run, on the same device and weights."""

from __future__ import annotations

from typing import Any

INFERENCE_SPEEDUP = 5.0          # images/s of bench-ir's fast fp32 path over the official eager fp32 model
INFERENCE_MAX_ABS_DIFF = 1e-4    # max |fast fp32 output - official fp32 output|, images in [0, 1]
LATENCY_MS = 10.0                # MIRAGE-T, batch 1, 224^2, fast fp32, median
TRAIN_SPEEDUP = 2.5              # ms/step of the official step over bench-ir's fast step
TRAIN_PEAK_GB = 20.0             # peak CUDA memory of the fast step, GB (1e9 bytes)
TRAIN_LOSS_REL = 0.05            # the 20-step moving average of the loss within 5% of the official one, every step
PROTOCOL_SPEEDUP = 15.0          # the whole 5deg protocol, official test loop over bench-ir's default path
PROTOCOL_PSNR_DB = 1e-3          # per image, |bench-ir - official|: bench-ir's PSNR/SSIM parity with scikit-image
PROTOCOL_SSIM = 1e-5

SIZES = {"inference": (16, 256), "latency": (1, 224), "train": (32, 128)}
NAMES = {"tiny": "MIRAGE-T", "small": "MIRAGE-S"}


def _row(target: str, measured: str, met: bool | None, why: str = "") -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met, "why": why}


def _measured(results: dict[str, Any], kind: str, variant: str, path: str) -> tuple[dict, dict] | None:
    """(the part, the figures of ``path`` in it) for one ``kind`` of part and ``variant``; None if not measured."""
    part = next((p for p in results.get(kind, []) if p.get("variant") == variant), None)
    return (part, part["paths"][path]) if part is not None and path in part["paths"] else None


def _off_size(part: dict[str, Any], kind: str) -> str:
    batch, size = SIZES[kind]
    measured = (part.get("batch", 1), part["size"])
    return "" if measured == (batch, size) else f"measured at {measured[0]} x {measured[1]}^2, not {batch} x {size}^2"


def _inference(results: dict[str, Any], variant: str) -> dict[str, Any]:
    target = (f"inference {NAMES[variant]} (16 x 256^2): fast fp32 >= {INFERENCE_SPEEDUP:g}x the official fp32 "
              f"throughput, outputs within {INFERENCE_MAX_ABS_DIFF:g}")
    found = _measured(results, "inference", variant, "bench-ir fast fp32")
    if found is None:
        return _row(target, "", None, "not measured")
    part, fast = found
    ratio, diff = fast["speedup_vs_official_fp32"], fast["max_abs_diff_vs_official_fp32"]
    measured = f"{ratio:.2f}x, max abs diff {diff:.1e}"
    off = _off_size(part, "inference")
    return _row(target, measured, None if off else (ratio >= INFERENCE_SPEEDUP and diff <= INFERENCE_MAX_ABS_DIFF),
                off)


def _latency(results: dict[str, Any]) -> dict[str, Any]:
    target = f"latency MIRAGE-T, batch 1 at 224^2: fast fp32 median <= {LATENCY_MS:g} ms"
    found = _measured(results, "latency", "tiny", "bench-ir fast fp32")
    if found is None:
        return _row(target, "", None, "not measured")
    part, fast = found
    ms = fast["ms_median"]
    ratio = part["paths"]["official fp32"]["ms_median"] / ms
    off = _off_size(part, "latency")
    return _row(target, f"{ms:.2f} ms ({ratio:.2f}x the official)", None if off else ms <= LATENCY_MS, off)


def _train(results: dict[str, Any], variant: str) -> dict[str, Any]:
    target = (f"training {NAMES[variant]} (32 x 128^2): fast step >= {TRAIN_SPEEDUP:g}x the official, peak <= "
              f"{TRAIN_PEAK_GB:g} GB, 20-step mean loss within {TRAIN_LOSS_REL:.0%} of the official at every step")
    found = _measured(results, "train", variant, "bench-ir fast")
    if found is None:
        return _row(target, "", None, "not measured")
    part, fast = found
    ratio, peak_gib = fast.get("speedup_vs_official"), fast.get("peak_memory_gib")
    loss = fast.get("loss_smoothed_max_rel_diff")
    if ratio is None or peak_gib is None or loss is None:
        return _row(target, "", None, "no step time, peak memory or loss curve (not on CUDA)")
    peak_gb = peak_gib * 2**30 / 1e9
    measured = f"{ratio:.2f}x, {peak_gb:.1f} GB, loss within {loss:.1%}"
    off = _off_size(part, "train")
    met = ratio >= TRAIN_SPEEDUP and peak_gb <= TRAIN_PEAK_GB and loss <= TRAIN_LOSS_REL
    return _row(target, measured, None if off else met, off)


def _protocol(results: dict[str, Any]) -> dict[str, Any]:
    target = (f"5deg end to end: bench-ir's CUDA default >= {PROTOCOL_SPEEDUP:g}x the official test loop (the "
              f"whole protocol, projected from the subset), per-image PSNR within {PROTOCOL_PSNR_DB:g} dB and SSIM "
              f"within {PROTOCOL_SSIM:g} of the official values")
    part = results.get("protocol")
    if not part or not part.get("paths"):
        return _row(target, "", None, "not measured")
    decision = part.get("decision") or {}
    eager = decision.get("default") == "eager"
    label = "bench-ir fast, eager" if eager else "bench-ir fast, compiled, cold cache"
    row = part["paths"].get(label)
    if row is None:
        return _row(target, "", None, f"no '{label}' run")
    psnr, ssim = row["max_abs_psnr_diff_db"], row["max_abs_ssim_diff"]
    subset = (f"{row['speedup_vs_official']:.1f}x on the x{part['scale']:g} subset, max PSNR diff {psnr:.1e} dB, "
              f"max SSIM diff {ssim:.1e}")
    if not decision.get("decided"):
        return _row(target, f"{label}: {subset}", None, "no CUDA default decided (nothing compiled)")
    # the whole protocol: the official loop scales with the image count; bench-ir as speed_mirage's decision projects
    projected = (part["official_s"] / part["scale"]) / decision["projected_full_protocol_s"][
        "eager" if eager else "compiled_cold"]
    return _row(target, f"{label}: {projected:.1f}x projected ({subset})",
                projected >= PROTOCOL_SPEEDUP and psnr <= PROTOCOL_PSNR_DB and ssim <= PROTOCOL_SSIM)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target as ``{"target", "measured", "met", "why"}``; ``met`` is True, False, or None (not measured, or
    not at the target's size: ``why`` says which)."""
    return [_inference(results, "tiny"), _inference(results, "small"), _latency(results), _train(results, "tiny"),
            _train(results, "small"), _protocol(results)]


def targets_markdown(rows: list[dict[str, Any]]) -> str:
    """The targets as a Markdown table (met / NOT MET / not judged, with the reason)."""
    lines = ["### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for row in rows:
        verdict = {True: "met", False: "**NOT MET**", None: f"not judged: {row['why']}"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured']} | {verdict} |")
    return "\n".join(lines) + "\n"
