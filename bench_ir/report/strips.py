"""Visual comparison strips: for one image per task, the input, each run's restored output and the target,
cut to the same window, as base64 PNGs for an HTML page.

Reads what ``run --save-images`` wrote: ``<run_dir>/images/<task>/<name>.png`` (restored) and
``_input/<name>.png``, ``_target/<name>.png``, where ``<name>`` is the record's image name with its
suffix replaced by ``.png``. Captions quote the stored per-image PSNR/SSIM; nothing is recomputed.
The image shown per task is the one shared by all runs with the largest PSNR spread between them
(ties: first by name), so differences are visible.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench_ir.report.measured import MeasuredRun
from bench_ir.report.model import metric_column

__all__ = ["StripTile", "Strip", "saved_image_path", "build_strips"]

_PSNR = metric_column(("", ""), "", "PSNR")
_SSIM = metric_column(("", ""), "", "SSIM")


@dataclass(frozen=True)
class StripTile:
    label: str
    caption: str
    png_base64: str
    kind: str  # input | output | target


@dataclass(frozen=True)
class Strip:
    task: str
    label: str
    image: str
    window: tuple[int, int, int, int]  # top, left, height, width in pixels of the saved images
    tiles: list[StripTile]


def saved_image_path(folder: Path, image: str) -> Path | None:
    """The PNG saved for record ``image`` in ``folder`` (named by :func:`bench_ir.engine.saved_image_name`, the
    rule `run --save-images` writes by), or None when there is none."""
    from bench_ir.engine import saved_image_name

    candidate = folder / saved_image_name(image)
    return candidate if candidate.is_file() else None


def _window(size: tuple[int, int], crop: int) -> tuple[int, int, int, int]:
    width, height = size
    crop_h, crop_w = min(crop, height), min(crop, width)
    return ((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)


def _encode(path: Path, window: tuple[int, int, int, int]) -> str:
    top, left, height, width = window
    with Image.open(path) as image:
        tile = image.convert("RGB").crop((left, top, left + width, top + height))
        buffer = io.BytesIO()
        tile.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _metric_caption(run: MeasuredRun, task: str, image: str) -> str:
    records = run.run.records
    match = records[(records["task"] == task) & (records["image"] == image)]
    if match.empty:
        return "no record"
    psnr, ssim = match.iloc[-1]["psnr"], match.iloc[-1]["ssim"]
    return f"{_PSNR.format(_as_float(psnr))} dB / {_SSIM.format(_as_float(ssim))}"


def _as_float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _choose_image(runs: list[MeasuredRun], task: str, names: list[str]) -> str:
    def spread(name: str) -> float:
        values = []
        for run in runs:
            records = run.run.records
            rows = records[(records["task"] == task) & (records["image"] == name)]
            value = _as_float(rows.iloc[-1]["psnr"]) if not rows.empty else None
            if value is not None and math.isfinite(value):
                values.append(value)
        return max(values) - min(values) if len(values) > 1 else 0.0

    return sorted(names, key=lambda name: (-spread(name), name))[0]


def build_strips(runs: list[MeasuredRun], crop: int = 128) -> list[Strip]:
    """One strip per task for which every run given saved the same image (runs without saved images
    for that task are left out of its strip; a task needs at least one)."""
    strips = []
    tasks = list(dict.fromkeys(column.task for run in runs for column in run.task_columns))
    for task in tasks:
        with_images = [run for run in runs if (run.run.run_dir / "images" / task).is_dir()]
        if not with_images:
            continue
        shared = None
        for run in with_images:
            names = {str(name) for name in run.run.records.loc[run.run.records["task"] == task, "image"]
                     if saved_image_path(run.run.run_dir / "images" / task, str(name))}
            shared = names if shared is None else shared & names
        if not shared:
            continue
        image = _choose_image(with_images, task, sorted(shared))
        folder = with_images[0].run.run_dir / "images" / task
        input_path = saved_image_path(folder / "_input", image)
        target_path = saved_image_path(folder / "_target", image)
        outputs = [(run, saved_image_path(run.run.run_dir / "images" / task, image)) for run in with_images]
        with Image.open(outputs[0][1]) as first:
            window = _window(first.size, crop)
        tiles = []
        if input_path:
            tiles.append(StripTile("Input", "degraded", _encode(input_path, window), "input"))
        for run, path in outputs:
            tiles.append(StripTile(run.label, _metric_caption(run, task, image), _encode(path, window), "output"))
        if target_path:
            tiles.append(StripTile("Target", "ground truth", _encode(target_path, window), "target"))
        label = next(c.label for c in with_images[0].task_columns if c.task == task)
        strips.append(Strip(task=task, label=label, image=image, window=window, tiles=tiles))
    return strips
