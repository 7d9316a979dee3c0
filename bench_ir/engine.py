"""Evaluate one model on one task: batching of same-size images, size fitting, tiling, dtype, metrics.

``evaluate_task`` yields one record per image (see bench_ir.results.RECORD_COLUMNS); an image that did not fit in
GPU memory whole and was restored in tiles also carries ``tile`` (its tile size in pixels, see :func:`auto_tiled`).
It never prints; progress goes to an optional callback.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_ir.acceleration import is_out_of_memory
from bench_ir.geometry import FitPolicy, run_padded, run_tiled
from bench_ir.shortlist import shortlist

__all__ = ["EvalOptions", "resolve_device", "resolve_dtype", "same_size_batches", "evaluate_task", "TORCH_DTYPES",
           "restored_image", "OutputShapeError", "output_shape_error", "check_model_precision", "saved_image_name",
           "saved_name_clash", "auto_tiled", "auto_tiled_notice", "fitted_sizes", "check_task_data",
           "convention_size_problem", "warn_orientation_mismatches", "autocast_context"]

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AUTO_TILES = (512, 256)


@dataclass
class EvalOptions:
    """How images go through the model.

    batch_size: images per forward pass (only images of the same size share a batch; a card with
    batch_size_one forces 1). tile: tile size in pixels for tiled inference (None = whole image; on a CUDA
    out-of-memory error the engine halves the batch, and tiles a single image that still does not fit in tiles of
    512, else 256, pixels). dtype: fp32 (default, reference),
    bf16 or fp16 autocast. num_workers: DataLoader worker processes. forward: the callable run on batches
    instead of the model (e.g. an :class:`bench_ir.acceleration.AcceleratedForward` of it).
    """

    device: torch.device
    dtype: str = "fp32"
    batch_size: int = 1
    num_workers: int = 0
    tile: int | None = None
    tile_overlap: int = 32
    save_images: Path | None = None
    forward: Callable[[torch.Tensor], Any] | None = None


def restored_image(output: Any) -> torch.Tensor:
    """The restored image of a model's forward: the output itself, or the first element when the model returns a
    tuple or list (training heads, auxiliary outputs: ``(image, ...)``). Anything else than a tensor there (a dict,
    None) is a TypeError that says what the forward returned."""
    image = output[0] if isinstance(output, (tuple, list)) and output else output
    if isinstance(image, torch.Tensor):
        return image
    what = f"a dict with keys {sorted(map(str, output))}" if isinstance(output, Mapping) else (
        f"a {type(output).__name__} whose first element is a {type(image).__name__}" if image is not output
        else f"a {type(output).__name__}")
    raise TypeError(f"the model's forward returned {what}; bench-ir takes the restored image as a tensor "
                    "(B,3,H,W), or as the first element of a tuple or list: make forward return it so")


def check_model_precision(model: nn.Module, dtype: str, who: str) -> None:
    """Refuse a model whose floating-point parameters are not float32 when images go in as float32 (``dtype``
    fp32, no autocast): its first layer would fail on the dtype mismatch with torch's bare message. ``who`` names
    the model in the error."""
    kinds = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
                   - {"float32"})
    if kinds and dtype == "fp32":
        suggested = "bf16" if kinds == ["bfloat16"] else "fp16"
        raise ValueError(f"{who} has {' and '.join(kinds)} parameters, but images go in as float32 (--dtype fp32): "
                         f"run with --dtype {suggested} (autocast), or make the card's factory return a float32 model")


class OutputShapeError(RuntimeError):
    """A model returned an image of another shape than the input it was given."""


def output_shape_error(where: str, model: nn.Module, detail: str) -> RuntimeError:
    """The error for a model whose output is not the size of its input, naming the image (``where``) and the card."""
    card = getattr(model, "bench_ir_card", None)
    who = f"model '{card.name}' ({card.source or 'registry'})" if card else "the model"
    return RuntimeError(f"{where}: {who} returned output shape {detail} (a restoration model must return an image "
                        "of its input's size)")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:  # torch lists its twenty device types
        raise ValueError(f"unknown device '{name}'; give auto, cpu, cuda or cuda:N (any torch device string)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} requested but CUDA is not available on this machine")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return TORCH_DTYPES[name]
    except KeyError as err:
        raise ValueError(f"unknown dtype '{name}'; choose one of {sorted(TORCH_DTYPES)}") from err


def same_size_batches(sizes: list[tuple[int, int]], batch_size: int, order: list[int] | None = None) -> list[list[int]]:
    """Group dataset indices into batches of at most ``batch_size`` images of identical size, keeping the
    dataset order within each size (and sizes in order of first appearance)."""
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index in order if order is not None else range(len(sizes)):
        buckets[tuple(sizes[index])].append(index)
    batches = []
    for indices in buckets.values():
        batches.extend(indices[i:i + batch_size] for i in range(0, len(indices), batch_size))
    return batches


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch; a single item becomes a batch view of its tensors (no copy of a large image)."""
    def batch(key: str) -> torch.Tensor:
        return items[0][key].unsqueeze(0) if len(items) == 1 else torch.stack([item[key] for item in items])

    return {"name": [item["name"] for item in items], "input": batch("input"), "target": batch("target")}


def autocast_context(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """The precision ``bench-ir run --dtype`` runs forwards in: nothing for fp32 (the float32 reference), else
    ``torch.autocast`` to bf16 or fp16 on ``device``'s type, with the weights and inputs left in float32."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=resolve_dtype(dtype))


def restore(
    model: nn.Module, x: torch.Tensor, policy: FitPolicy, options: EvalOptions
) -> tuple[torch.Tensor, int | list[int | None] | None]:
    """Run the model on a batch (B,3,H,W) in [0,1]; returns the float32 output and the automatic tiling: None when
    every image ran whole or in the tiles ``options.tile`` asked for, the tile size in pixels when every image was
    tiled after an out-of-memory error at that size, else each image's tile size (None for one that ran whole).

    On a CUDA out-of-memory error the batch is split in halves first (per-image outputs do not change), and
    only a single image that still does not fit is tiled, on its own, in the largest of :data:`AUTO_TILES` that fits
    (which does change the output near tile seams).
    """
    model_forward = options.forward or model

    def forward(inp: torch.Tensor) -> torch.Tensor:
        with autocast_context(options.device, options.dtype):
            # a copy: a model that changes its input in place must not reach the batch (saved as _input) or the
            # neighbouring tiles (views of one image)
            out = model_forward(inp.clone())
        out = restored_image(out).float()
        if out.shape != inp.shape:  # here, before padding or tiling would crop a larger output to size
            fitted = "" if inp.shape == x.shape else " (the image as padded or tiled for the model)"
            raise OutputShapeError(f"{tuple(out.shape)} for input {tuple(inp.shape)}{fitted}")
        return out

    if options.tile:
        return run_tiled(forward, x, policy, options.tile, options.tile_overlap), None
    auto_tiles = AUTO_TILES if options.device.type == "cuda" else ()
    out, tiles = _run_splitting_batch(forward, x, policy, auto_tiles, options.tile_overlap)
    return out, _batch_tiling(tiles)


def _batch_tiling(tiles: list[int | None]) -> int | list[int | None] | None:
    """Each image's automatic tile size as :func:`restore` returns it: None or the one size when all are alike."""
    return tiles[0] if len(set(tiles)) == 1 else tiles


def _image_tiles(tiling: int | list[int | None] | None, count: int) -> list[int | None]:
    """The automatic tile size of each of ``count`` images from what :func:`restore` returned for their batch."""
    return list(tiling) if isinstance(tiling, list) else [tiling] * count


def _run_splitting_batch(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, policy: FitPolicy,
                         tiles: tuple[int, ...], overlap: int) -> tuple[torch.Tensor, list[int | None]]:
    """The whole batch at once; halves of it (recursively) when it runs out of memory; a single image that still
    does not fit is tiled on its own (:func:`_run_tiling_image`; raised when ``tiles`` is empty). Returns the output
    and each image's tile size (None: it ran whole)."""
    try:
        return run_padded(forward, x, policy), [None] * x.shape[0]
    except RuntimeError as err:
        if not is_out_of_memory(err) or (x.shape[0] == 1 and not tiles):
            raise
    torch.cuda.empty_cache()
    if x.shape[0] == 1:
        return _run_tiling_image(forward, x, policy, tiles, overlap)
    half = x.shape[0] // 2
    first, first_tiles = _run_splitting_batch(forward, x[:half], policy, tiles, overlap)
    second, second_tiles = _run_splitting_batch(forward, x[half:], policy, tiles, overlap)
    return torch.cat([first, second]), first_tiles + second_tiles


def _run_tiling_image(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, policy: FitPolicy,
                      tiles: tuple[int, ...], overlap: int) -> tuple[torch.Tensor, list[int | None]]:
    """One image (1,3,H,W) in overlapping tiles of the first size of ``tiles`` that fits in memory; returns the
    output and ``[that size]``. Out of memory at the last size is raised."""
    for tile in tiles[:-1]:
        try:
            return run_tiled(forward, x, policy, tile, overlap), [tile]
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
        torch.cuda.empty_cache()
    return run_tiled(forward, x, policy, tiles[-1], overlap), [tiles[-1]]


def fitted_sizes(dataset: Dataset, policy: FitPolicy, task_name: str) -> list[tuple[int, int]]:
    """The post-crop (H, W) of every item of ``dataset`` (from the file headers), each checked against ``policy``:
    a size mismatch, an image too small for the crop rule or a size the model cannot take raises, naming the
    image."""
    sizes = dataset.item_sizes()
    for (height, width), name in zip(sizes, dataset.names, strict=True):
        policy.check(height, width, f"{task_name}/{name}")
    return sizes


def convention_size_problem(convention: Any, images: list[str]) -> str:
    """The refusal of ``images`` ('NAME HxW' each, sizes as scored: after the crop rule) whose shorter side is below
    ``convention.min_image_side``, naming the convention's SSIM window, with what to do."""
    shown = shortlist(images, 10, separator="; ")
    many = len(images) > 1
    window = convention.ssim_window
    need = (f"the {window} px SSIM window" if window == convention.min_image_side else
            f"the {convention.min_image_side} px (SSIM window and border crops)")
    return (f"{len(images)} image{'s are' if many else ' is'} smaller than {need} of convention {convention.id} "
            f"({convention.name}) after the crop rule (HxW as scored): {shown}; too small for this convention's SSIM, "
            f"remove {'them' if many else 'it'} from the test set or use another convention (run --convention)")


def warn_orientation_mismatches(dataset: Dataset, task_name: str, shown: int = 10) -> int:
    """One :class:`~bench_ir.data.io.InputWarning` per pair of ``dataset`` whose input and target EXIF orientations
    differ (:func:`~bench_ir.data.io.orientation_mismatch_note`, from the headers), the first ``shown`` of a task
    by name and one line counting the others; returns the number of such pairs."""
    import warnings

    from bench_ir.data.io import InputWarning, orientation_mismatch_note

    if not hasattr(dataset, "source_paths"):
        return 0
    count = 0
    for index, name in enumerate(dataset.names):
        paths = dataset.source_paths(index)
        if any(path is None for path in paths) or not (note := orientation_mismatch_note(paths)):
            continue
        count += 1
        if count <= shown:
            warnings.warn(f"{task_name}/{name}: {note}", InputWarning, stacklevel=2)
    if count > shown:
        warnings.warn(f"task {task_name}: {count - shown} more pairs whose input and target EXIF orientations differ "
                      "(bench-ir data check lists them)", InputWarning, stacklevel=2)
    return count


def check_task_data(dataset: Dataset, policy: FitPolicy, task_name: str, convention: Any) -> list[tuple[int, int]]:
    """What a run checks of a task's data before its run folder is made, from the file headers alone: the sizes
    (:func:`fitted_sizes`), every image against the smallest side ``convention`` (a
    :class:`~bench_ir.metrics.conventions.MetricConvention`) can score (a ValueError naming every such image, see
    :func:`convention_size_problem`), and a warning for each pair whose EXIF orientations differ
    (:func:`warn_orientation_mismatches`). Returns the post-crop (H, W) of every item."""
    sizes = fitted_sizes(dataset, policy, task_name)
    small = [index for index, size in enumerate(sizes) if min(size) < convention.min_image_side]
    if small:
        names = dataset.names
        described = [f"{_describe_items(dataset, task_name, [names[i]])} {sizes[i][0]}x{sizes[i][1]}"
                     for i in small[:10]]  # the others are only counted
        raise ValueError(convention_size_problem(convention, described + [names[i] for i in small[10:]]))
    warn_orientation_mismatches(dataset, task_name)
    return sizes


def evaluate_task(
    model: nn.Module,
    task_name: str,
    dataset: Dataset,
    policy: FitPolicy,
    scorer: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    options: EvalOptions,
    skip: set[str] | frozenset[str] = frozenset(),
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Score every image of ``dataset`` not named in ``skip``; yields one record per image.

    ``scorer(pred, target)`` returns per-image tensors (psnr, ssim and optionally lpips) computed on the
    device with the protocol's convention. ``seconds`` is the model time of the batch divided by its size
    (without the compilation of a new input shape under an accelerated forward).
    """
    sizes = fitted_sizes(dataset, policy, task_name)
    todo = [i for i, name in enumerate(dataset.names) if name not in skip]
    position = {name: i for i, name in enumerate(dataset.names)} if options.save_images is not None else {}
    batch_size = 1 if getattr(getattr(model, "bench_ir_card", None), "batch_size_one", False) else options.batch_size
    batches = same_size_batches(sizes, max(1, batch_size), order=todo)
    if options.num_workers and hasattr(dataset, "prepare"):
        dataset.prepare()  # replay synthesis streams once here rather than in every worker
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=_collate, num_workers=options.num_workers,
                        pin_memory=options.device.type == "cuda")
    device = options.device
    for batch in loader:
        x = batch["input"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        warmup_before = getattr(options.forward, "warmup_seconds", 0.0)
        start = time.perf_counter()
        with torch.inference_mode():
            try:
                out, tiling = restore(model, x, policy, options)
            except OutputShapeError as err:
                raise output_shape_error(f"{task_name}/{batch['name'][0]}", model, str(err)) from None
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            warmup = getattr(options.forward, "warmup_seconds", 0.0) - warmup_before  # compilation, not model time
            seconds = max(0.0, time.perf_counter() - start - warmup) / x.shape[0]
            finite = torch.isfinite(out).flatten(1).all(dim=1)
            try:
                scores = scorer(out, target)
            except ValueError as err:  # e.g. an image smaller than the SSIM window: name its files
                raise ValueError(f"{_describe_items(dataset, task_name, batch['name'])}: {err}") from err
        if options.save_images is not None:
            _save_batch(options.save_images, task_name, batch, out,
                        _orientations(dataset, [position[name] for name in batch["name"]]))
        values = {key: value.double().cpu().tolist() for key, value in scores.items()}
        finite_list = finite.cpu().tolist()
        tiles = _image_tiles(tiling, x.shape[0])
        for i, name in enumerate(batch["name"]):
            record = {
                "task": task_name,
                "image": name,
                "psnr": values["psnr"][i] if finite_list[i] else float("nan"),
                "ssim": values["ssim"][i] if finite_list[i] else float("nan"),
                "lpips": values["lpips"][i] if "lpips" in values and finite_list[i] else None,
                "height": int(target.shape[-2]),
                "width": int(target.shape[-1]),
                "seconds": seconds,
                "nonfinite": not finite_list[i],
            }
            if tiles[i] is not None:  # tiled after an out-of-memory error, not by request
                record["tile"] = tiles[i]
            if on_record is not None:
                on_record(record)
            yield record


def auto_tiled(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The images restored in tiles because they did not fit in GPU memory whole (records with a ``tile``), per
    task in order of appearance: ``{task: {"images": count, "tile": smallest tile size in pixels}}``."""
    tiled: dict[str, dict[str, int]] = {}
    for record in records:
        tile = record.get("tile")
        if isinstance(tile, int) and not isinstance(tile, bool):
            entry = tiled.setdefault(str(record["task"]), {"images": 0, "tile": tile})
            entry["images"] += 1
            entry["tile"] = min(entry["tile"], tile)
    return tiled


def auto_tiled_notice(tiled: Mapping[str, Mapping[str, int]], overlap: int) -> str:
    """The sentence that says which images were tiled after an out-of-memory error (see :func:`auto_tiled`)."""
    count = sum(entry["images"] for entry in tiled.values())
    where = ", ".join(f"{task} {entry['images']} at {entry['tile']} px" for task, entry in tiled.items())
    return (f"{count} image(s) did not fit in GPU memory whole and were restored in overlapping tiles ({where}; "
            f"overlap {overlap} px): near tile seams their outputs differ from whole-image inference. Pass --tile to "
            "tile every image alike, or use a GPU with more memory")


def _describe_items(dataset: Dataset, task_name: str, names: list[str]) -> str:
    """'task/image (target file)' for the images of a batch, for error messages."""
    parts = []
    for name in names:
        paths = dataset.source_paths(dataset.names.index(name)) if hasattr(dataset, "source_paths") else ()
        files = ", ".join(str(p) for p in paths if p is not None)
        parts.append(f"{task_name}/{name}" + (f" ({files})" if files else ""))
    return "; ".join(parts)


def saved_image_name(name: str) -> str:
    """File name of a saved image: the image name with its image extension (if any) replaced by .png."""
    from bench_ir.data.io import IMAGE_EXTENSIONS

    path = Path(name)
    base = str(path.with_suffix("")) if path.suffix.lower() in IMAGE_EXTENSIONS else name
    return base + ".png"


def saved_name_clash(names: list[str]) -> tuple[str, str, str] | None:
    """The first two image names that :func:`saved_image_name` maps to one file (``a.jpg`` and ``a.png`` ->
    ``a.png``) as (first, second, file name), or None when every name gets its own file."""
    seen: dict[str, str] = {}
    for name in names:
        saved = saved_image_name(name)
        if saved in seen:
            return seen[saved], name, saved
        seen[saved] = name
    return None


def _orientations(dataset: Dataset, indices: list[int]) -> list[tuple[int, int]]:
    """(input, target) EXIF orientation of the dataset's items ``indices`` (1 where there is no file or no tag)."""
    from bench_ir.data.io import exif_orientation

    if not hasattr(dataset, "source_paths"):
        return [(1, 1)] * len(indices)
    return [tuple(exif_orientation(p) if p is not None else 1 for p in dataset.source_paths(i))  # type: ignore[misc]
            for i in indices]


def _save_batch(root: Path, task_name: str, batch: dict[str, Any], out: torch.Tensor,
                orientations: list[tuple[int, int]] | None = None) -> None:
    """Write output, input and target PNGs of a batch under ``root/<task>/`` (each path checked to stay in ``root``).
    ``orientations``: (input, target) EXIF orientation per image; the output and the input carry the input's, the
    target its own, so that viewers turn them as they turn the source photos (the pixels are written as stored)."""
    from bench_ir.data.io import write_png_uint8
    from bench_ir.safety import inside

    for i, name in enumerate(batch["name"]):
        stem = saved_image_name(name)
        of_input, of_target = orientations[i] if orientations is not None else (1, 1)
        for sub, image, orientation in (("", out[i].clamp(0, 1).cpu(), of_input),
                                        ("_input", batch["input"][i], of_input),
                                        ("_target", batch["target"][i], of_target)):
            write_png_uint8(inside(root, Path(task_name, sub, stem), "saved image"), image, orientation=orientation)
