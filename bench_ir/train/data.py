"""Training data: the recipe's degradation mix as one dataset of random patches, deterministic per draw.

Every draw is a pure function of (seed, epoch, index): the random crop, the augmentation, the noise and the
synthetic degradations all come from ``per_image_rng("train", seed, epoch, index)``, so a resumed run, a run
with DataLoader workers and a run split over G processes see exactly the same patches. Items are addressed
by ``(epoch, index)`` keys, which :class:`EpochBatchSampler` yields.

Per draw, as the official ``AnyIRTrainDataset``: images are read as RGB uint8, centre-cropped to a multiple
of ``crop_multiple`` (16; the official ``crop_img``), a ``patch_size`` window is cut at a uniform random
offset (the same for input and target), and one of the 7 non-identity dihedral transforms is applied
(``dihedral_nonidentity``; ``dihedral`` also allows the identity, i.e. independent random flips and
transpose as NDR-Restore's ``augment``). Denoising inputs are made on the augmented clean patch:
clip(x + N(0,1)·sigma, 0, 255) -> uint8 (``noise: uint8``) or clip(x/255 + N(0,1)·sigma/255, 0, 1) in float64
(``noise: float``), sigma fixed per item or drawn per draw (``sigma_draw``). A part with ``brightness`` darkens
some pairs by one tone curve (see :func:`draw_darkening`; its own stream ``per_image_rng("brightness", seed,
epoch, index)``, so the patches, noise and degradation draws are the same with and without it): the clean image
before a synthetic degradation or the noise (a darker scene, degraded as the sample test data is), the input and
the target of a stored pair. A part with ``contrast`` puts the input and the target of some pairs through one
line x -> offset + scale * x after the degradation (see :func:`draw_contrast`; its own stream ``per_image_rng(
"contrast", seed, epoch, index)``). Items are float32 (3, P, P) in [0, 1] (uint8 / 255).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bench_ir.data.crops import center_crop_to_multiple
from bench_ir.data.datasets import (
    DatasetNotFoundError,
    PairingAdvice,
    PairingError,
    TargetIndex,
    list_images,
    pair_files,
    relative_name,
)
from bench_ir.data.io import (
    ImageReadError,
    InputWarning,
    header_conversions,
    image_size,
    quarter_turn_note,
    read_rgb_uint8,
)
from bench_ir.data.roots import DATA_ROOT_HINT, data_root_or_env
from bench_ir.data.synthesis import apply_degradations, gaussian_noise_uint8, per_image_rng
from bench_ir.protocol import PAIRING_RULES, LayoutSpec, load_protocol
from bench_ir.safety import inside
from bench_ir.shortlist import shortlist
from bench_ir.train.recipes import BrightnessSpec, ContrastSpec, DataSpec, Recipe, is_shipped

__all__ = ["TrainPair", "TrainPart", "TrainingSet", "EpochBatchSampler", "build_training_set", "build_part",
           "file_problems", "file_conversions", "conversion_notices", "relative_name",
           "training_data_root", "dihedral",
           "Darkening", "draw_darkening", "darken", "ContrastChange", "draw_contrast", "reduce_contrast"]


@dataclass(frozen=True)
class TrainPair:
    """One clean image and (for paired data) its degraded version; sample photos have no paths."""

    name: str
    target: Path | None
    input: Path | None = None


@dataclass
class TrainPart:
    """One entry of the mix: its pairs, the variants of each pair (noise sigma, synthetic degradation or the
    stored input), the repeat factor, where it was found and any notices about it."""

    spec: DataSpec
    pairs: list[TrainPair]
    variants: list[tuple[str, Any]]
    location: str
    notices: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.pairs) * len(self.variants) * self.spec.repeat

    def item(self, local: int) -> tuple[TrainPair, tuple[str, Any]]:
        base = local % (len(self.pairs) * len(self.variants))
        return self.pairs[base % len(self.pairs)], self.variants[base // len(self.pairs)]


# ------------------------------------------------------------------------------------------ augmentation
def dihedral(img: np.ndarray, mode: int) -> np.ndarray:
    """Transform ``mode`` of the 8-element dihedral group of an (H, W, C) array: rotate by 90°·(mode // 2)
    counter-clockwise (``np.rot90``), then flip up-down when mode is odd. Mode 0 is the identity; modes 1-7
    are the official ``data_augmentation`` modes (1 flip, 2 rot90, 3 rot90+flip, ..., 7 rot270+flip)."""
    out = np.rot90(img, k=mode // 2)
    return np.flipud(out) if mode % 2 else out


class Darkening(NamedTuple):
    """The tone curve x -> factor * x^gamma (x in [0, 1]) of one darkened item."""

    factor: float
    gamma: float = 1.0


def draw_darkening(spec: BrightnessSpec | None, variant: tuple[str, Any], seed: int, epoch: int,
                   index: int) -> Darkening | None:
    """The darkening of item (epoch, index), or None when it is left as it is: never for a degradation in
    ``spec.skip`` (``noise`` there stands for every noise item); else with ``spec.probability``, a factor
    log-uniform in [min_factor, max_factor] and, drawn after it (so a recipe without a gamma range draws
    as before), a gamma log-uniform in [min_gamma, max_gamma]."""
    if spec is None or _variant_name(variant) in spec.skip:
        return None
    rng = _chosen("brightness", spec.probability, seed, epoch, index)
    if rng is None:
        return None
    factor = _log_uniform(rng, spec.min_factor, spec.max_factor)
    gamma = spec.min_gamma if spec.min_gamma == spec.max_gamma else _log_uniform(rng, spec.min_gamma, spec.max_gamma)
    return Darkening(factor, gamma)


def _variant_name(variant: tuple[str, Any]) -> str:
    """The name a recipe's ``skip`` / ``only`` use for a variant: the degradation, ``noise`` or ``pair``."""
    kind, value = variant
    return str(value) if kind == "degradation" else kind


def _chosen(stream: str, probability: float, seed: int, epoch: int, index: int) -> np.random.Generator | None:
    """The generator of item (epoch, index) on ``stream`` after its first draw chose the item (with
    ``probability``), for the draws that follow; None when the item is not chosen."""
    if probability <= 0:
        return None
    rng = per_image_rng(stream, seed, epoch, index)
    return rng if rng.random() < probability else None


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One draw log-uniform in [low, high] (0 < low <= high)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def darken(img: np.ndarray, factor: float, gamma: float = 1.0) -> np.ndarray:
    """``factor * x^gamma`` of ``img`` on the [0, 1] scale: a uint8 image through a 256-level lookup table
    rounded half to even back to uint8 (factor <= 1 cannot overflow; for a gamma of 1 each level is the plain
    float32 product ``level * factor``), a float image (float noise, in [0, 1]) kept as float."""
    if img.dtype != np.uint8:
        return factor * img**gamma
    levels = np.arange(256, dtype=np.float32)
    if gamma == 1:
        curve = levels * np.float32(factor)
    else:
        curve = np.float32(255 * factor) * (levels / np.float32(255)) ** np.float32(gamma)
    return np.rint(curve).astype(np.uint8)[img]


def _darken_if(img: np.ndarray, darkening: Darkening | None) -> np.ndarray:
    """``darken(img, *darkening)``, or ``img`` itself when the item is not darkened (None)."""
    return img if darkening is None else darken(img, *darkening)


class ContrastChange(NamedTuple):
    """The line x -> offset + scale * x (x in [0, 1]) through which one item's input and target go."""

    scale: float
    offset: float


def draw_contrast(spec: ContrastSpec | None, variant: tuple[str, Any], seed: int, epoch: int,
                  index: int) -> ContrastChange | None:
    """The contrast change of item (epoch, index), or None when it is left as it is: never for a variant in
    ``spec.skip`` or, when ``spec.only`` is given, outside it; else with ``spec.probability``, a scale uniform in
    [min_scale, max_scale], then an offset uniform in [min_offset, min(max_offset, 1 - scale)]."""
    name = _variant_name(variant)
    if spec is None or name in spec.skip or (spec.only and name not in spec.only):
        return None
    rng = _chosen("contrast", spec.probability, seed, epoch, index)
    if rng is None:
        return None
    scale = float(rng.uniform(spec.min_scale, spec.max_scale))
    return ContrastChange(scale, float(rng.uniform(spec.min_offset, min(spec.max_offset, 1.0 - scale))))


def reduce_contrast(img: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``offset + scale * x`` of ``img`` on the [0, 1] scale: a uint8 image through a 256-level lookup table,
    each level computed in float32 as (offset + scale * (level / 255)) * 255 and rounded half to even back to
    uint8 (offset + scale <= 1 cannot overflow), a float image (float noise, in [0, 1]) kept as float."""
    if img.dtype != np.uint8:
        return offset + scale * img
    levels = np.arange(256, dtype=np.float32) / np.float32(255)
    curve = (np.float32(offset) + np.float32(scale) * levels) * np.float32(255)
    return np.rint(curve).astype(np.uint8)[img]


def _patch_window(rng: np.random.Generator, height: int, width: int, size: int) -> tuple[int, int]:
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))


_SHOWN_PROBLEMS = 5  # problems named in the error of TrainingSet.check_files


# ------------------------------------------------------------------------------------------ the dataset
class TrainingSet(Dataset):
    """The concatenation of the recipe's parts, each repeated ``repeat`` times; ``dataset[(epoch, index)]``
    -> ``{"input", "target": (3, P, P) float32, "task": str, "index": int}``."""

    def __init__(self, parts: list[TrainPart], patch_size: int, augmentation: str, seed: int) -> None:
        self.parts, self.patch_size, self.augmentation, self.seed = parts, patch_size, augmentation, seed
        # True once the conversions its files need on reading were stated (see check_files): reads are then quiet,
        # in the DataLoader workers of every epoch too, instead of repeating an InputWarning per file and worker
        self.conversions_stated = False
        self._starts = []
        total = 0
        for part in parts:
            self._starts.append(total)
            total += part.size
        self._total = total

    def __len__(self) -> int:
        return self._total

    @property
    def notices(self) -> list[str]:
        return [n for part in self.parts for n in part.notices]

    def describe(self) -> list[dict[str, Any]]:
        """Per part: task, layout, location, pairs, variants, repeat, items (for the manifest)."""
        return [{"task": p.spec.task, "layout": p.spec.layout, "location": p.location, "pairs": len(p.pairs),
                 "variants": [f"{kind}:{value}" if value is not None else kind for kind, value in p.variants],
                 "repeat": p.spec.repeat, "items": p.size} for p in self.parts]

    def files(self, data_root: str | Path | None) -> dict[str, int | None]:
        """Every stored file the set reads, as ``{name: size in bytes}`` in the set's order (a pair's input before
        its target; a shared target once): the name relative to ``data_root`` (see :func:`relative_name`), the size
        None for a file that cannot be read. Built-in sample photos are no files. Names and sizes identify the data,
        as they do for evaluation's resume (bench_ir.resume.data_identity); the same files under another data root
        are the same data."""
        files: dict[str, int | None] = {}
        for part in self.parts:
            for pair in part.pairs:
                for path in (pair.input, pair.target):
                    if path is not None:
                        files.setdefault(relative_name(path, data_root), _file_size(path))
        return files

    def locate(self, index: int) -> tuple[TrainPart, TrainPair, tuple[str, Any]]:
        if not 0 <= index < self._total:
            raise IndexError(f"training item {index} out of range [0, {self._total})")
        position = bisect.bisect_right(self._starts, index) - 1
        part = self.parts[position]
        return (part, *part.item(index - self._starts[position]))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        part, pair, (kind, value) = self.locate(index)
        rng = per_image_rng("train", self.seed, epoch, index)
        darkening = draw_darkening(part.spec.brightness, (kind, value), self.seed, epoch, index)
        if kind == "noise":  # a darker scene, then the sensor noise at its full strength
            clean = _darken_if(self._patch(rng, self._load_clean(part, pair))[0], darkening)
            sigma = float(value[int(rng.integers(len(value)))]) if isinstance(value, tuple) else float(value)
            draws = rng.standard_normal(clean.shape)
            if part.spec.noise == "float":
                inp = np.clip(clean / 255.0 + draws * (sigma / 255.0), 0.0, 1.0)
            else:
                inp = gaussian_noise_uint8(clean, sigma, draws)
            target = clean
        elif kind == "degradation":  # a darker scene, then the degradation as the sample test data makes it
            clean = _darken_if(self._load_clean(part, pair), darkening)
            degraded = apply_degradations(clean, [value], "train", pair.name, self.seed, epoch, index)
            inp, target = self._patch(rng, degraded, clean)
        else:  # a stored pair: input and target through the same curve
            inp, target = (_darken_if(image, darkening) for image in self._patch(rng, *self._load_pair(part, pair)))
        change = draw_contrast(part.spec.contrast, (kind, value), self.seed, epoch, index)
        if change is not None:  # after the degradation: the same line through input and target
            inp, target = reduce_contrast(inp, *change), reduce_contrast(target, *change)
        return {"input": _to_tensor(inp), "target": _to_tensor(target), "task": part.spec.task, "index": index}

    # ---- helpers
    def _load_clean(self, part: TrainPart, pair: TrainPair) -> np.ndarray:
        if pair.target is None:
            from bench_ir.data.sample import load_sample_photo

            image, where = load_sample_photo(pair.name, part.spec.max_side), f"sample photo '{pair.name}'"
        else:
            image, where = self._read(pair.target), str(pair.target)
        return self._centre_crop(part, image, where)

    def _load_pair(self, part: TrainPart, pair: TrainPair) -> tuple[np.ndarray, np.ndarray]:
        assert pair.input is not None and pair.target is not None
        inp, target = self._read(pair.input), self._read(pair.target)
        problem = _pair_size_problem(part, pair, inp.shape[:2], target.shape[:2])
        if problem:
            raise ValueError(problem)
        return self._centre_crop(part, inp, str(pair.input)), self._centre_crop(part, target, str(pair.target))

    def _centre_crop(self, part: TrainPart, image: np.ndarray, where: str) -> np.ndarray:
        if part.spec.crop_multiple > 1:
            image = center_crop_to_multiple(image, part.spec.crop_multiple)
        problem = _patch_fit_problem(part, image.shape[:2], where, self.patch_size)
        if problem:
            raise ValueError(problem)
        return image

    def _read(self, path: Path) -> np.ndarray:
        """:func:`read_rgb_uint8` of ``path``, without its InputWarnings once ``conversions_stated``."""
        if not self.conversions_stated:
            return read_rgb_uint8(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)
            return read_rgb_uint8(path)

    def check_files(self, advice: str = "", data_root: str | Path | None = None) -> dict[str, list[str]]:
        """Read the header of every stored training image (no pixels are decoded) before training starts: unreadable
        files, inputs whose size differs from their target's and images smaller than a patch raise here (the first
        few named, then ``advice``), rather than when a draw reaches them, hours into training. Returns the
        conversions reading the files makes, found in the same headers (see :func:`file_conversions`; names
        relative to ``data_root``), to be stated once for the whole training (:func:`conversion_notices`)."""
        problems = [problem for part in self.parts for problem in file_problems(part, self.patch_size)]
        if problems:
            raise ValueError(f"{len(problems)} problem(s) in the training data: "
                             + shortlist(problems, _SHOWN_PROBLEMS, separator="; ", more="; ... and {} more")
                             + (f". {advice}" if advice else ""))
        return file_conversions(self.parts, data_root)

    def _patch(self, rng: np.random.Generator, *images: np.ndarray) -> list[np.ndarray]:
        size = self.patch_size
        top, left = _patch_window(rng, *images[0].shape[:2], size)
        if self.augmentation == "none":
            mode = 0
        else:
            mode = int(rng.integers(1 if self.augmentation == "dihedral_nonidentity" else 0, 8))
        return [np.ascontiguousarray(dihedral(img[top:top + size, left:left + size], mode)) for img in images]


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1], as torchvision ToTensor; a float image (already in
    [0, 1], float noise) is only cast to float32."""
    tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
    return tensor.div(255.0) if img.dtype == np.uint8 else tensor


# ------------------------------------------------------------------------------------------ sampling
def _epoch_seed(seed: int, epoch: int) -> int:
    digest = hashlib.sha256(json.dumps(["order", int(seed), int(epoch)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` keys for one process.

    Each epoch shuffles range(dataset_size) with a generator seeded from (seed, epoch) and keeps
    ``steps_per_epoch = size // global_batch`` full global batches (drop_last). Process ``rank`` of
    ``world_size`` takes every world_size-th index of each global batch (as DistributedSampler interleaves), so
    global batch k holds the same items whatever the number of processes (though what a model computes over one
    process's share, such as BatchNorm statistics, is not: session.batch_dependent_terms). ``start_step`` skips
    the first steps of the epoch (resume in the middle of an epoch).
    """

    def __init__(self, dataset_size: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by the {world_size} processes")
        self.dataset_size, self.global_batch, self.seed = dataset_size, global_batch, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = dataset_size // global_batch
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def global_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(self.dataset_size, generator=generator)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.global_order(self.epoch).tolist()
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * self.global_batch:(step + 1) * self.global_batch]
            yield [(self.epoch, index) for index in batch[self.rank::self.world_size]]

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step


# ------------------------------------------------------------------------------------------ layouts
@dataclass
class _EntrySearch:
    """The search for one data entry's pairs: the entry, the recipe it comes from (which messages name), its notices
    (training goes ahead) and its problems. A problem is raised at once when ``problems`` is None (training refuses
    the data at the first one); `data check` collects them in ``problems`` and the search goes on with the pairs
    found, so that one check lists them all."""

    spec: DataSpec
    recipe: Recipe | None
    notices: list[str] = field(default_factory=list)
    problems: list[str] | None = None
    found: int = 0  # problems collected

    def problem(self, error: Exception) -> None:
        """Raise ``error`` (training), or collect its message and go on (`data check`)."""
        if self.problems is None:
            raise error from None
        self.problems.append(str(error))
        self.found += 1


def _recipe_pairing_advice(search: _EntrySearch) -> PairingAdvice:
    """How a data entry sets a pairing rule: the ``pairing:`` of the recipe's data entry (of layout ``paired``, the
    only one that reads it), not the evaluation's ``--pairing`` option."""
    spec = search.spec
    if search.recipe is None:
        entry = f"the recipe's data entry of task '{spec.task}'"
    elif is_shipped(search.recipe):
        entry = f"the data entry of task '{spec.task}' of a copy of the official recipe '{search.recipe.name}'"
    else:
        entry = f"the data entry of task '{spec.task}' of the recipe '{search.recipe.name}'"

    def advise(rules: Sequence[str]) -> str:
        options = " or ".join(f"`pairing: {rule}`" for rule in rules)
        if spec.layout == "paired":
            return f"{options} in {entry}"
        return f"`layout: paired` and {options} in {entry} (layout '{spec.layout}' pairs by its own rule)"

    return advise


def _needed_folders(spec: DataSpec) -> list[str]:
    """The sub-folders a training folder of ``spec``'s layout must hold (none for ``denoise``)."""
    if spec.layout == "paired":
        return [str(spec.input), str(spec.target)]
    return {"derain": ["rainy", "gt"], "dehaze_ots": ["synthetic", "original"], "cdd11": ["clear"]}.get(spec.layout, [])


def _find_root(spec: DataSpec, data_root: Path | None) -> Path:
    """The first of ``spec.roots`` that is a folder holding the sub-folders its layout needs (PromptIR's ``train/``
    does not shadow ``CDD-11_train/``); else the first that is a folder (its layout then names what it lacks)."""
    tried, existing = [], []
    for rel in spec.roots:
        path = Path(rel).expanduser()
        if not path.is_absolute():
            if data_root is None:
                raise FileNotFoundError(f"task '{spec.task}': its training data '{rel}' is relative to --data-root; "
                                        "give --data-root")
            inside(data_root, path, f"task '{spec.task}': training folder '{rel}'")  # joined there, then checked
            path = data_root / path
        if path.is_dir():
            if all((path / folder).is_dir() for folder in _needed_folders(spec)):
                return path
            existing.append(path)
        tried.append(str(path))
    if existing:
        return existing[0]
    raise DatasetNotFoundError(f"task '{spec.task}' (layout '{spec.layout}'): training folder not found; tried "
                               + ", ".join(tried))


def _require_dir(spec: DataSpec, path: Path) -> Path:
    if not path.is_dir():
        raise DatasetNotFoundError(f"task '{spec.task}' (layout '{spec.layout}'): folder {path} not found")
    return path


def _recipe_words(recipe: Recipe | None) -> str:
    """How a notice names the recipe a data entry comes from: "the official recipe '5deg'" for a shipped one,
    "the recipe 'mine'" for a researcher's own, "the recipe" when it is not known."""
    if recipe is None:
        return "the recipe"
    return f"the {'official ' if is_shipped(recipe) else ''}recipe '{recipe.name}'"


def _count_words(recipe: Recipe | None, expected: int) -> str:
    """Whose image count a data entry's ``expected_count`` is: the official list's for a shipped recipe (worded as
    `data check` has always shown it), else what the researcher's recipe expects."""
    if recipe is not None and is_shipped(recipe):
        return f"the official recipe uses {expected} (recipe '{recipe.name}')"
    return f"{_recipe_words(recipe)} expects {expected}"


def _listed(spec: DataSpec, root: Path, notices: list[str], recipe: Recipe | None = None) -> set[str] | None:
    """Entries of the list file (relative paths, '/' separated) or None when there is none (a notice names the
    ``recipe`` that names the list)."""
    if spec.list_file is None:
        return None
    path = Path(spec.list_file).expanduser()
    if not path.is_absolute():
        inside(root, path, f"task '{spec.task}': list file")  # relative to the training folder, inside it
        path = root / path
    if not path.is_file():
        notices.append(f"task '{spec.task}': no list file {path}; using every image found ({_recipe_words(recipe)} "
                       f"names the list {Path(spec.list_file).name})")
        return None
    entries = {line.strip().replace("\\", "/") for line in path.read_text(encoding="utf-8-sig").splitlines()}
    return {e for e in entries if e}


def _filter_listed(search: _EntrySearch, root: Path, pairs: list[TrainPair], listed: set[str] | None,
                   key: str) -> list[TrainPair]:
    """The pairs the list file names (all without one); listed files that are missing are a problem."""
    if listed is None:
        return pairs
    by_rel = {getattr(p, key).relative_to(root).as_posix(): p for p in pairs}
    missing = sorted(listed - set(by_rel))
    if missing:
        search.problem(DatasetNotFoundError(f"task '{search.spec.task}': {len(missing)} file(s) of the list "
                                            f"{search.spec.list_file} are missing under {root}: "
                                            f"{shortlist(missing, 5)}"))
    return [by_rel[rel] for rel in sorted(listed) if rel in by_rel]


def _pairs_from_folders(search: _EntrySearch, input_dir: Path, target_dir: Path, pairing: str,
                        unused_targets_notice: bool = True, listed: Callable[[Path], bool] | None = None
                        ) -> list[TrainPair]:
    """The pairs of two folders by ``pairing``; targets without an input are left out, with a notice unless
    ``unused_targets_notice`` is False (the evaluation's data check warns about them too). Inputs without a target
    are a problem when ``listed`` names one of them (:func:`_listed_rule`; all without it), and the other inputs
    are still paired, for `data check`; folders that cannot be paired at all (position pairing of unequal counts, a
    stem several targets share) give no pairs."""
    spec = search.spec
    if pairing not in PAIRING_RULES:
        raise ValueError(f"task '{spec.task}': unknown pairing rule '{pairing}'; choose one of "
                         f"{', '.join(PAIRING_RULES)}")
    layout = LayoutSpec(target=str(target_dir), input=str(input_dir), pairing=pairing)  # type: ignore[arg-type]
    inputs, targets = _require_dir(spec, input_dir), _require_dir(spec, target_dir)
    try:
        result = pair_files(layout, inputs, targets, advise=_recipe_pairing_advice(search))
    except PairingError as err:
        with warnings.catch_warnings():  # the call above has stated its skipped files
            warnings.simplefilter("ignore", InputWarning)
            try:
                result = pair_files(layout, inputs, targets, allow_unpaired=True)
            except PairingError:
                search.problem(PairingError(f"task '{spec.task}': {err}"))
                return []
        if listed is None or any(listed(path) for path in result.unpaired_inputs):
            search.problem(PairingError(f"task '{spec.task}': {err}"))
    if result.unpaired_targets and unused_targets_notice:
        names = [p.name for p in result.unpaired_targets]
        search.notices.append(f"task '{spec.task}': {len(names)} target(s) in {target_dir} without an input in "
                              f"{input_dir} (pairing rule '{pairing}') are not used: {shortlist(names, 5)}")
    return [TrainPair(p.name, p.target_path, p.input_path) for p in result.pairs]


_SKIPPED_FOLDERS = ("__MACOSX",)  # folders of no dataset, besides hidden ones (.ipynb_checkpoints/, .git/ ...)


def _is_skipped_folder(name: str) -> bool:
    """A hidden folder or one an archiver or notebook leaves behind (``__MACOSX/``), whose files are no data."""
    return name.startswith(".") or name in _SKIPPED_FOLDERS


def _images_under(folder: Path) -> list[Path]:
    """The images in ``folder`` and its sub-folders, sorted by path, by :func:`list_images`' rule (a broken link with
    an image's name is an image, which reading then names). Folder links are followed, each real folder read once,
    under its first path in name order (a link loop ends there); skipped folders (:func:`_is_skipped_folder`) are
    not entered."""
    images, seen = [], set()
    for top, folders, _ in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = sorted(name for name in folders if not _is_skipped_folder(name))
        images += list_images(Path(top))[0]
    return sorted(images, key=lambda p: p.as_posix())


def _listed_rule(root: Path, listed: set[str] | None) -> Callable[[Path], bool]:
    """Whether the list file (entries relative to ``root``; None: no list) names a file: files it leaves out are
    never read, so they cannot block training."""
    return lambda path: listed is None or path.relative_to(root).as_posix() in listed


def _dehaze_ots_pairs(search: _EntrySearch, root: Path, listed: Callable[[Path], bool]) -> list[TrainPair]:
    """OTS: synthetic/**/<id>_<A>_<beta>.<ext> -> original/<id>.<ext> (another extension when unique); hazy images
    ``listed`` names (see :func:`_listed_rule`) without a clean image are a problem."""
    spec = search.spec
    hazy = [path for path in _images_under(_require_dir(spec, root / "synthetic")) if listed(path)]
    originals, _ = list_images(_require_dir(spec, root / "original"))
    index = TargetIndex(originals)
    pairs, unpaired = [], []
    for path in hazy:
        clean_id = path.name.split("_")[0] if "_" in path.name else path.stem
        target = index.find([clean_id + path.suffix])
        if target is None:
            unpaired.append(path.name)
        else:
            pairs.append(TrainPair(path.relative_to(root).as_posix(), target, path))
    if unpaired:
        search.problem(PairingError(f"task '{spec.task}': {len(unpaired)} hazy image(s) without a clean image in "
                                    f"{root / 'original'} (id = name up to the first '_'): "
                                    f"{', '.join(unpaired[:5])}"))
    return pairs


def _cdd11_subsets() -> list[str]:
    """The 11 degraded folders of OneRestore's CDD-11 release: the tasks of protocols/cdd11.yaml (each task is the
    subset folder of that name, in the test and the training split alike)."""
    return [task.name for task in load_protocol("cdd11").tasks]


def _cdd11_pairs(search: _EntrySearch, root: Path) -> list[TrainPair]:
    """Each subset folder paired by name with clear/ (which serves every subset). Subsets the entry names that are
    not there, and subset folders without an image (the official loader raises "No images found in <subset>"), are
    problems; the other subsets are still paired. With no ``subsets`` named, every subset folder found is used and
    a notice names those of :func:`_cdd11_subsets` that are missing (the official loader trains on what it finds)."""
    spec = search.spec
    clear = _require_dir(spec, root / "clear")
    found = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and p.name != "clear" and not _is_skipped_folder(p.name))
    subsets = list(spec.subsets) or found
    unknown = [s for s in subsets if s not in found]
    if unknown:
        search.problem(DatasetNotFoundError(f"task '{spec.task}': CDD-11 subset folder(s) {unknown} not found under "
                                            f"{root}; found: {', '.join(found) or 'none'}"))
    every = _cdd11_subsets()
    absent = [s for s in every if s not in found]
    if not spec.subsets and absent:
        search.notices.append(f"task '{spec.task}': {len(absent)} of the {len(every)} CDD-11 training subsets "
                              f"are not under {root} and are not trained on: {', '.join(absent)}")
    pairs = []
    for subset in (s for s in subsets if s in found):  # clear/ holds every subset's targets: unused ones are normal
        if not list_images(root / subset)[0]:
            search.problem(DatasetNotFoundError(f"task '{spec.task}': CDD-11 subset folder {root / subset} holds no "
                                                "images"))
            continue
        for pair in _pairs_from_folders(search, root / subset, clear, "same_name", unused_targets_notice=False):
            pairs.append(TrainPair(f"{subset}/{pair.name}", pair.target, pair.input))
    return pairs


def _noise_variants(spec: DataSpec) -> list[tuple[str, Any]]:
    """One variant per sigma (``sigma_draw: each``), or one whose sigma is drawn per item (a tuple, ``random``)."""
    if not spec.sigmas:
        return []
    if spec.sigma_draw == "random":
        return [("noise", tuple(float(s) for s in spec.sigmas))]
    return [("noise", float(s)) for s in spec.sigmas]


def _pair_size_problem(part: TrainPart, pair: TrainPair, input_size: tuple[int, ...],
                       target_size: tuple[int, ...]) -> str | None:
    """The sentence naming both files when a stored pair's input and target sizes (H, W) differ, else None."""
    if tuple(input_size) == tuple(target_size):
        return None
    why = quarter_turn_note((pair.input, pair.target), (input_size, target_size))  # type: ignore[arg-type]
    return (f"task '{part.spec.task}': {pair.input} is {input_size[0]}x{input_size[1]} (HxW) but its target "
            f"{pair.target} is {target_size[0]}x{target_size[1]}{why}")


def _patch_fit_problem(part: TrainPart, size: tuple[int, ...], where: str, patch_size: int) -> str | None:
    """The sentence naming ``where`` when an image of ``size`` (H, W) is smaller than a patch after the part's
    centre crop to a multiple, else None."""
    multiple = max(1, part.spec.crop_multiple)
    height, width = size[0] // multiple * multiple, size[1] // multiple * multiple
    if min(height, width) >= patch_size:
        return None
    return (f"task '{part.spec.task}': {where} is {height}x{width} (HxW) after the x{part.spec.crop_multiple} centre "
            f"crop, smaller than the {patch_size} px patch")


def file_problems(part: TrainPart, patch_size: int) -> list[str]:
    """One sentence per problem of a part's stored images, read from the file headers only (no pixels decoded): an
    unreadable or missing file, an input whose size differs from its target's, an image smaller than a
    ``patch_size`` patch after the part's centre crop. Built-in sample photos are not files and are not read."""
    problems = []
    for pair in part.pairs:
        if pair.target is None:
            continue
        try:
            size = image_size(pair.target)
            input_size = image_size(pair.input) if pair.input is not None else size
        except ImageReadError as err:
            problems.append(f"task '{part.spec.task}': {err}")
            continue
        problem = (_pair_size_problem(part, pair, input_size, size)
                   or _patch_fit_problem(part, size, str(pair.target), patch_size))
        if problem:
            problems.append(problem)
    return problems


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def file_conversions(parts: list[TrainPart], data_root: str | Path | None) -> dict[str, list[str]]:
    """The conversions reading the parts' stored images makes (bench_ir.data.io.header_conversions): kind -> the
    files (relative to ``data_root``, a file shared by several pairs once), from the headers only."""
    found: dict[str, list[str]] = {}
    for part in parts:
        for pair in part.pairs:
            for path in (pair.input, pair.target):
                for kind in header_conversions(path) if path is not None else ():
                    found.setdefault(kind, []).append(relative_name(path, data_root))
    return {kind: list(dict.fromkeys(files)) for kind, files in found.items()}


def conversion_notices(conversions: dict[str, list[str]]) -> list[str]:
    """One line per kind of ``conversions`` (:func:`file_conversions`), in the words and kind order of `bench-ir data
    check`: '2 grayscale images replicated to 3 RGB channels (as training reads them): a.png, b.png'."""
    from bench_ir.data.check import conversion_warnings

    return conversion_warnings(conversions, reader="training")


def build_part(spec: DataSpec, data_root: Path | None, recipe: Recipe | None = None,
               problems: list[str] | None = None) -> TrainPart:
    """One data entry of a recipe, found and paired under ``data_root`` (no image is read): DatasetNotFoundError
    or PairingError naming the task when its folders, files or pairs are missing. ``recipe``: the recipe the entry
    comes from, which its messages name. ``problems`` (`data check`): the pairing problems (inputs without a target,
    listed files or CDD-11 subsets missing) are collected there instead of raised, and the part holds the pairs
    found; a missing training folder is still raised (nothing else of the entry can be checked)."""
    search = _EntrySearch(spec, recipe, problems=problems)
    notices = search.notices
    if spec.layout == "sample":
        from bench_ir.data.sample import SAMPLE_TRAIN_IMAGES

        pairs = [TrainPair(name, None) for name in SAMPLE_TRAIN_IMAGES]
        variants = [("degradation", d) for d in spec.degradations] + _noise_variants(spec)
        return TrainPart(spec, pairs, variants, "built-in sample photos (scikit-image)", notices)
    root = _find_root(spec, data_root)
    listed = _listed(spec, root, notices, recipe)
    named = _listed_rule(root, listed)
    if spec.layout == "denoise":
        images, _ = list_images(root)
        pairs = _filter_listed(search, root, [TrainPair(p.name, p) for p in images], listed, "target")
        variants: list[tuple[str, Any]] = _noise_variants(spec)
    else:
        if spec.layout == "derain":
            pairs = _pairs_from_folders(search, root / "rainy", root / "gt", "rain100l", listed=named)
        elif spec.layout == "dehaze_ots":
            pairs = _dehaze_ots_pairs(search, root, named)
        elif spec.layout == "paired":
            pairs = _pairs_from_folders(search, root / str(spec.input), root / str(spec.target), spec.pairing,
                                        listed=named)
        else:
            pairs = _cdd11_pairs(search, root)
        pairs = _filter_listed(search, root, pairs, listed, "input")
        variants = [("pair", None)]
    if not pairs and not search.found:  # with problems collected, they say why
        raise DatasetNotFoundError(f"task '{spec.task}' (layout '{spec.layout}'): no training images in {root}")
    if spec.expected_count is not None and len(pairs) != spec.expected_count:
        notices.append(f"task '{spec.task}': {len(pairs)} images found in {root}; "
                       f"{_count_words(recipe, spec.expected_count)}")
    return TrainPart(spec, pairs, variants, str(root), notices)


def build_training_set(recipe: Recipe, data_root: str | Path | None, patch_size: int, seed: int) -> TrainingSet:
    """Find and pair every training set of the recipe (no image is decoded); missing or empty folders raise
    DatasetNotFoundError naming the task and the paths tried."""
    root = training_data_root(recipe, data_root)
    parts = [build_part(spec, root, recipe) for spec in recipe.data]
    return TrainingSet(parts, patch_size, recipe.augmentation, seed)


def training_data_root(recipe: Recipe, data_root: str | Path | None) -> Path | None:
    """``data_root`` (default ``$BENCH_IR_DATA_ROOT`` when the recipe reads folders) as a Path; FileNotFoundError when
    the recipe needs one and none is given, DatasetNotFoundError when it is not a folder."""
    if recipe.needs_data_root:
        data_root = data_root_or_env(data_root)
        if data_root is None:
            roots = ", ".join(spec.roots[0] for spec in recipe.data if spec.layout != "sample")
            raise FileNotFoundError(f"recipe '{recipe.name}' needs the folder holding {roots} ({DATA_ROOT_HINT})")
    root = Path(data_root).expanduser() if data_root is not None else None
    if root is not None and not root.is_dir() and recipe.needs_data_root:
        raise DatasetNotFoundError(f"--data-root {root} is not a folder")
    return root
