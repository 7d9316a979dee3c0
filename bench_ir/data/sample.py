"""Built-in sample data: photos bundled with scikit-image (no download), degraded synthetically.

``bench-ir run --sample`` evaluates on these instead of the benchmark test sets; the numbers only show that
the pipeline works and are always marked as sample data. Evaluation photos and training photos are disjoint.
Photos are downscaled (PIL Lanczos, aspect ratio kept, never enlarged) to a long side of ``max_side`` px,
which gives realistic odd sizes such as 128x192 (coffee) or 128x191 (chelsea).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from bench_ir.data.crops import center_crop_to_multiple
from bench_ir.data.datasets import ItemSource, TaskDataset
from bench_ir.data.io import InputWarning, read_rgb_uint8
from bench_ir.protocol import Protocol, TaskSpec

__all__ = ["SAMPLE_MAX_SIDE", "SAMPLE_EVAL_IMAGES", "SAMPLE_TRAIN_IMAGES", "SAMPLE_NONE_CROP_MULTIPLE",
           "sample_photo_path", "load_sample_photo", "build_sample_task_dataset"]

SAMPLE_MAX_SIDE = 192
"""Default long side (px) of sample photos: small enough for `bench-ir run --protocol 5deg --sample` to take
about a minute with MIRAGE-T on a 2-core CPU."""

SAMPLE_EVAL_IMAGES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
"""Colour photos used as clean test images (dataset order is sorted by name)."""

SAMPLE_TRAIN_IMAGES: tuple[str, ...] = (
    "motorcycle_left", "motorcycle_right", "immunohistochemistry", "retina", "colorwheel",
    "brick", "grass", "gravel", "camera", "coins", "moon", "cell", "page", "text",
)
"""Photos for sample training, disjoint from SAMPLE_EVAL_IMAGES (grayscale ones are replicated to RGB)."""

SAMPLE_NONE_CROP_MULTIPLE = 8
"""Protocols without a crop rule (CDD-11) assume test images already divisible by 8; sample photos for such
protocols are centre-cropped to that multiple so they look like the real data."""

_FILES = {
    "astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg", "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png", "immunohistochemistry": "ihc.png", "retina": "retina.jpg",
    "colorwheel": "color.png", "brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png",
    "camera": "camera.png", "coins": "coins.png", "moon": "moon.png", "cell": "cell.png", "page": "page.png",
    "text": "text.png",
}


def sample_photo_path(name: str) -> Path:
    """The scikit-image bundled file behind sample photo ``name``."""
    import skimage.data

    if name not in _FILES:
        raise KeyError(f"unknown sample photo '{name}'; known: {', '.join(sorted(_FILES))}")
    path = Path(skimage.data.data_dir) / _FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scikit-image's bundled sample file is missing; reinstall scikit-image")
    return path


@lru_cache(maxsize=64)
def _load_cached(name: str, max_side: int) -> np.ndarray:
    with warnings.catch_warnings():  # documented above: grayscale sample photos are replicated to RGB
        warnings.filterwarnings("ignore", message=".*grayscale image replicated", category=InputWarning)
        photo = read_rgb_uint8(sample_photo_path(name))
    height, width = photo.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))
    photo = np.ascontiguousarray(photo)
    photo.setflags(write=False)
    return photo


def load_sample_photo(name: str, max_side: int = SAMPLE_MAX_SIDE) -> np.ndarray:
    """Sample photo ``name`` as RGB uint8 (H, W, 3), long side at most ``max_side`` (Lanczos, deterministic)."""
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    return _load_cached(name, int(max_side)).copy()


def build_sample_task_dataset(protocol: Protocol, task: TaskSpec | str, max_side: int = SAMPLE_MAX_SIDE,
                              noise_order: str = "sorted") -> TaskDataset:
    """The sample variant of ``task``: clean = each SAMPLE_EVAL_IMAGES photo (sorted by name), under the
    protocol's crop rule; input = the task's NoiseSpec noise (same stream rules as the real data, over the
    sample list) for noise tasks, else ``apply_degradations(clean, task.sample.degradations, name, task.name,
    "sample")``. Protocols with crop rule ``none`` get photos centre-cropped to SAMPLE_NONE_CROP_MULTIPLE.
    Only the ``sorted`` noise order exists here (``listdir`` needs a dataset folder): any other raises ValueError."""
    if noise_order != "sorted":
        raise ValueError("--noise-order listdir follows the file order of a dataset folder; the built-in sample "
                         "data has no folder (use --data-root)")
    task = protocol.task(task) if isinstance(task, str) else task
    crop = protocol.crop_for(task)
    if not task.has_sample_variant:
        raise ValueError(f"task '{task.name}' of protocol '{protocol.name}' defines no sample degradations "
                         "(sample: {degradations: [...]}) and no noise")
    entries = []
    for name in sorted(SAMPLE_EVAL_IMAGES):
        photo = load_sample_photo(name, max_side)
        if crop.rule == "none":
            photo = np.ascontiguousarray(center_crop_to_multiple(photo, SAMPLE_NONE_CROP_MULTIPLE))
        entries.append(ItemSource(name, photo))
    degradations = () if task.noise is not None else tuple(task.sample.degradations)
    return TaskDataset(entries, crop, task.name, noise=task.noise, degradations=degradations,
                       seed_parts=(task.name, "sample"), is_sample=True, label=f"{task.label} (sample)")
