"""Test-set folders: find a task's layout under --data-root, pair input and target files, serve image pairs.

File order is the code-point order of the file names (Python ``sorted``), as ``sorted(os.listdir())`` in
the reference scripts that sort; it fixes the order of the reference noise stream. ``position`` pairing alone
sorts both folders in natural order instead (:func:`natural_key`: digits compared as numbers, ``2.png`` before
``10.png``), as Histoformer's ``natsorted``, and refuses folders that hold different numbers of images. Hidden
files and files without an image extension are skipped with a warning. ``noise_order="listdir"`` draws the
reference noise stream in the order ``os.listdir`` returns for the clean folder instead (what the official
MIRAGE/PromptIR/AdaIR/AirNet test loops do; it depends on the file system), while items stay sorted.

Items are ``{"name": str, "input": (3, H, W) float32, "target": (3, H, W) float32}`` in [0, 1] (uint8 / 255,
as torchvision ToTensor), after the protocol's crop rule: ``center_multiple`` crops input and target alike;
``none`` and ``pad_multiple`` leave them whole (padding is the engine's job).
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from bench_ir.data.crops import center_crop_to_multiple, cropped_size
from bench_ir.data.io import (
    IMAGE_EXTENSIONS,
    InputWarning,
    image_size,
    quarter_turn_note,
    read_rgb_uint8,
)
from bench_ir.data.synthesis import (
    DEGRADATIONS,
    ReferenceNoiseStream,
    apply_degradations,
    gaussian_noise_uint8,
    per_image_rng,
)
from bench_ir.protocol import PAIRING_RULES, CropSpec, LayoutSpec, NoiseSpec, Protocol, TaskSpec, command_ref
from bench_ir.safety import inside
from bench_ir.shortlist import shortlist

__all__ = [
    "uint8_to_tensor",
    "warn_skipped_files",
    "DatasetNotFoundError",
    "PairingError",
    "ImageSizeMismatchError",
    "ResolvedLayout",
    "ImagePair",
    "Pairing",
    "ItemSource",
    "TaskDataset",
    "NOISE_ORDERS",
    "listdir_order",
    "resolve_layout",
    "needs_data_root",
    "list_images",
    "relative_name",
    "natural_key",
    "pair_files",
    "evaluation_pairing_advice",
    "PairingAdvice",
    "build_task_dataset",
    "build_folder_dataset",
    "unpaired_targets_notice",
]

_SHOWN = 10


class DatasetNotFoundError(FileNotFoundError):
    """No layout of a task exists under the data root (or it holds no images); the message lists what was tried,
    ``tried`` holds the same lines (one per layout, without the leading dash). ``finding`` is the message without
    its closing ``advice`` (what to do next), for callers that give their own."""

    def __init__(self, message: str, tried: Sequence[str] = (), advice: str = "") -> None:
        super().__init__(f"{message}\n{advice}" if advice else message)
        self.finding, self.advice = message, advice
        self.tried = list(tried)


class PairingError(ValueError):
    """Input files without a target (first names listed, with the count), inputs paired with themselves (one file),
    or ``position`` pairing of folders that hold different numbers of images."""


class ImageSizeMismatchError(ValueError):
    """An input and its target differ in size; the message names both files and sizes."""


@dataclass(frozen=True)
class ResolvedLayout:
    """The layout found for a task: its spec and the absolute folders (input_dir None for noise tasks)."""

    layout: LayoutSpec
    input_dir: Path | None
    target_dir: Path

    def describe(self) -> str:
        """``INPUT -> TARGET (pairing RULE; SOURCE)``, or ``TARGET (clean only, input synthesised; SOURCE)`` when
        there is no input folder: every clean image is an item and no pairing rule applies."""
        source = self.layout.source or "layout"
        if self.input_dir is None:
            return f"{self.target_dir} (clean only, input synthesised; {source})"
        return f"{self.input_dir} -> {self.target_dir} (pairing {self.layout.pairing}; {source})"


@dataclass(frozen=True)
class ImagePair:
    name: str
    input_path: Path | None
    target_path: Path


@dataclass
class Pairing:
    pairs: list[ImagePair]
    unpaired_inputs: list[Path] = field(default_factory=list)
    unpaired_targets: list[Path] = field(default_factory=list)
    non_images: list[Path] = field(default_factory=list)


def _shortlist(paths: Sequence[Path | str]) -> str:
    return f"{len(paths)}: {shortlist([Path(p).name for p in paths], _SHOWN)}"


# --------------------------------------------------------------------------------------------- layouts
FOLDER_PAIR_SOURCE = "--input-dir/--target-dir"
"""The ``source`` of the layout of an ad-hoc folder pair (``bench-ir run --input-dir/--target-dir``)."""


def _folder_state(folder: Path) -> str:
    return "exists" if folder.is_dir() else "a file, not a folder" if folder.exists() else "missing"


def _layout_dirs(layout: LayoutSpec, data_root: Path | None) -> tuple[Path | None, Path | None]:
    """The layout's folders: absolute ones as they are, wherever they are (the protocol file names them outright);
    relative ones under ``data_root`` (None without one), inside which they must stay (bench_ir.safety.inside, an
    UnsafePathError otherwise)."""
    def place(rel: str | None) -> Path | None:
        if rel is None:
            return None
        path = Path(rel).expanduser()
        if path.is_absolute():
            return path
        if data_root is None:
            return None
        inside(data_root, path, f"layout folder ({layout.source or 'layout'})")
        return data_root / path

    return place(layout.input), place(layout.target)


def needs_data_root(tasks: Iterable[TaskSpec]) -> bool:
    """Whether a layout of ``tasks`` names a folder relative to the data root: tasks whose layout folders are all
    absolute need no --data-root."""
    return any(folder is not None and not Path(folder).expanduser().is_absolute()
               for task in tasks for layout in task.layouts for folder in (layout.input, layout.target))


def resolve_layout(task: TaskSpec, data_root: str | Path | None, protocol_name: str | None = None) -> ResolvedLayout:
    """The first layout of ``task`` whose folders exist under ``data_root`` (absolute layout paths are used
    as they are; relative ones need a data root). Raises DatasetNotFoundError listing every path tried."""
    root = Path(data_root).expanduser() if data_root is not None else None
    tried = []
    for layout in task.layouts:
        input_dir, target_dir = _layout_dirs(layout, root)
        if target_dir is None or (layout.input is not None and input_dir is None):
            folders = f"input {layout.input}, target {layout.target}" if layout.input else f"target {layout.target}"
            tried.append(f"{folders} (relative paths: needs --data-root) - {layout.source or 'layout'}")
            continue
        if target_dir.is_dir() and (input_dir is None or input_dir.is_dir()):
            return ResolvedLayout(layout, input_dir, target_dir)
        parts = []
        if input_dir is not None:
            parts.append(f"input {input_dir} ({_folder_state(input_dir)})")
        parts.append(f"target {target_dir} ({_folder_state(target_dir)})")
        tried.append(f"{', '.join(parts)} - {layout.source or 'layout'}")
    if all(layout.source == FOLDER_PAIR_SOURCE for layout in task.layouts):
        folders = tried[0].removesuffix(f" - {FOLDER_PAIR_SOURCE}")
        raise DatasetNotFoundError(f"task '{task.name}' ({task.label}): {folders}", tried,
                                   advice="--input-dir and --target-dir take two folders of images.")
    protocol = protocol_name or "<protocol>"
    root_text = str(root) if root is not None else "<data root>" if needs_data_root([task]) else None
    root_option = f" --data-root {root_text}" if root_text else ""
    check = f"`bench-ir data check --protocol {protocol}{root_option}` to see what is missing."
    raise DatasetNotFoundError(
        f"task '{task.name}' ({task.label}): no layout found{f' under {root_text}' if root_text else ''}. Tried:\n" +
        "\n".join(f"  - {line}" for line in tried),
        tried,
        advice=(f"Use --sample for the built-in sample data, or run {check}" if task.has_sample_variant
                else f"Run {check}"),
    )


# --------------------------------------------------------------------------------------------- pairing
def relative_name(path: str | Path, data_root: str | Path | None) -> str:
    """``path`` relative to ``data_root``, '/'-separated, as it was joined under it (no file system access); the
    whole path when it is outside the data root or there is none."""
    if data_root is not None:
        try:
            return Path(path).relative_to(data_root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files sorted by name, skipped non-image files): hidden files and unknown extensions are skipped;
    sub-folders are ignored. A broken symbolic link with an image's name is listed as an image, so that reading it
    names it (a dataset on a drive that is not mounted must not shrink without a word)."""
    images, others = [], []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.is_file() and not (path.is_symlink() and not path.exists()):
            continue
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            others.append(path)
        else:
            images.append(path)
    return images, others


def warn_skipped_files(skipped: Sequence[Path]) -> None:
    """One InputWarning per folder naming the non-image files :func:`list_images` skipped there."""
    for folder in dict.fromkeys(path.parent for path in skipped):
        here = [path for path in skipped if path.parent == folder]
        warnings.warn(f"skipped non-image files ({_shortlist(here)}) in {folder}", InputWarning, stacklevel=3)


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key of a file name in natural order: runs of digits compare as numbers, the rest by code point
    (case-sensitive), so ``1.png < 2.png < 10.png`` and ``1_gt.png < 2_gt.png < 10_gt.png``; names equal as
    numbers (``01.png``, ``1.png``) fall back to code-point order. This is ``natsort.natsorted``'s default order
    (Histoformer's metric script pairs its two folders by position after ``natsorted``)."""
    parts = _DIGITS.split(name)  # text, digits, text, ...: str and int never meet at one position
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), name


def _natural_sorted(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda path: natural_key(path.name))


def evaluation_pairing_advice(rules: Sequence[str]) -> str:
    """How an evaluation sets the pairing rules ``rules`` (either one will do): its --pairing option or a protocol
    layout's ``pairing:``."""
    options = " or ".join(f"`--pairing {rule}`" for rule in rules)
    return f"{options} (`pairing: {'`/`'.join(rules)}` in a protocol layout)"


PairingAdvice = Callable[[Sequence[str]], str]
"""Words for "set the pairing rule to one of these" where the caller's users set it (see
:func:`evaluation_pairing_advice`)."""


def _position_count_error(layout: LayoutSpec, input_dir: Path, target_dir: Path, inputs: list[Path],
                          targets: list[Path], advise: PairingAdvice) -> PairingError:
    """The refusal of ``position`` pairing for folders holding different numbers of images."""
    shorter = min(len(inputs), len(targets))
    extra, kind, partner = ((targets[shorter:], "targets", "an input") if len(targets) > len(inputs)
                            else (inputs[shorter:], "inputs", "a target"))
    return PairingError(
        f"pairing rule '{layout.pairing}': {input_dir} holds {len(inputs)} image(s) and {target_dir} "
        f"{len(targets)}; position pairing needs the same number in both, since it pairs the n-th input with the "
        f"n-th target (both in natural order of the file names) and one extra or missing file shifts every pair "
        f"after it. {kind.capitalize()} left without {partner} at the end — {_shortlist(extra)} (the extra file "
        f"may be anywhere in the list). Make the two folders hold the same images, or pair by name: "
        f"{advise(['same_name', 'stem'])}.")


def _candidates(rule: str, name: str) -> list[str]:
    """Target file names an input file name may pair with, best first (name rules only). ``rain100l`` puts the
    clean name first (``rain-001.png`` -> ``norain-001.png``, as MIRAGE's ``_get_gt_path``) and the input's own
    name last (for targets that keep it, ``1.png`` -> ``1.png``), so that a target folder that also holds copies
    of the rainy images never pairs an input with its own copy."""
    stem, ext = Path(name).stem, Path(name).suffix
    if rule == "same_name":
        return [name]
    if rule == "sots":
        return [(name.split("_")[0] if "_" in name else stem) + ".png"]
    if rule == "rain100l":
        return ["no" + name] + (["no" + stem.split("_")[0] + ext] if "_" in stem else []) + [name]
    if rule == "raindrop":
        return [stem[: -len("_rain")] + "_clean" + ext] if stem.endswith("_rain") else [name]
    if rule == "outdoor_rain":
        return [name[:7] + ext]
    raise ValueError(f"unknown pairing rule '{rule}'")


def _nfc(name: str) -> str:
    """A file name in Unicode normal form C: "ö" as one code point, as Linux tools write it, or as "o" and a
    combining diaeresis (NFD), as macOS wrote it, compare equal."""
    return unicodedata.normalize("NFC", name)


class TargetIndex:
    """Target files looked up by file name, or by stem when exactly one target has it (another extension); names
    are compared in Unicode normal form C."""

    def __init__(self, targets: list[Path]) -> None:
        self._by_name = {_nfc(p.name): p for p in targets}
        self._by_stem: dict[str, list[Path]] = {}
        for path in targets:
            self._by_stem.setdefault(_nfc(path.stem), []).append(path)

    def with_stem(self, stem: str) -> list[Path]:
        return self._by_stem.get(_nfc(stem), [])

    def find(self, names: list[str], stem_fallback: bool = True) -> Path | None:
        """The target of the first of ``names`` (best first) that has one: a target with that name, else
        (``stem_fallback``) the only target with its stem. A better name found by its stem wins over a worse
        name found exactly (``norain-1.jpg`` over ``rain-1.png`` for ``[norain-1.png, rain-1.png]``)."""
        for name in names:
            match = self._by_name.get(_nfc(name))
            if match is None and stem_fallback and len(found := self.with_stem(Path(name).stem)) == 1:
                match = found[0]
            if match is not None:
                return match
        return None


def _match_by_name(rule: str, inputs: list[Path], targets: list[Path]) -> tuple[list[ImagePair], list[Path]]:
    index = TargetIndex(targets)
    pairs, unpaired = [], []
    for path in inputs:
        if rule == "stem":
            found = index.with_stem(path.stem)
            if len(found) > 1:
                raise PairingError(f"{path}: several targets share its stem: {[p.name for p in found]}")
            match = found[0] if found else None
        else:  # same stem with another extension (e.g. .jpg targets) accepted except for same_name
            match = index.find(_candidates(rule, path.name), stem_fallback=rule != "same_name")
        if match is None:
            unpaired.append(path)
        else:
            pairs.append(ImagePair(path.name, path, match))
    return pairs, unpaired


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path after links, or hard links of one file."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # a broken link: reading it names the problem
        return False


def _refuse_self_pairs(layout: LayoutSpec, input_dir: Path, target_dir: Path, pairs: list[ImagePair]) -> None:
    """Raise PairingError when an input is paired with itself (one file: the same path, a link to it or a hard link
    of it): a model would be scored against its own input (PSNR inf), which a test set never means. Two files that
    hold the same bytes are not refused here (a test set may hold an image its degradation left unchanged)."""
    itself = [p.input_path for p in pairs if p.input_path is not None and _same_file(p.input_path, p.target_path)]
    if itself:  # every score would compare an image with itself (PSNR inf)
        raise PairingError(f"{input_dir}: inputs paired with themselves as targets in {target_dir} (pairing rule "
                           f"'{layout.pairing}') — {_shortlist(itself)}; the input and the target of a pair must be "
                           "two files (is the target folder the input folder, or are its files links to the inputs?)")


def pair_files(layout: LayoutSpec, input_dir: Path | None, target_dir: Path,
               allow_unpaired: bool = False, advise: PairingAdvice = evaluation_pairing_advice) -> Pairing:
    """Pair the files of ``input_dir`` with those of ``target_dir`` by ``layout.pairing`` (see LayoutSpec).

    With ``input_dir`` None every target image is an item (input synthesised). Pair names are the input file
    names (target names when there is no input). Name rules other than ``same_name`` also accept a target
    with the expected stem and another extension. Unpaired inputs raise PairingError unless
    ``allow_unpaired`` (for ``same_name``, the error names the inputs whose stem a target has with another
    extension and suggests ``--pairing stem``, in the words of ``advise``); unpaired targets (targets no input
    pairs with; a target that several inputs pair with, as SOTS, is paired) are only reported, in
    ``Pairing.unpaired_targets``. A pair whose input and target are one file (same path, a link, a hard link)
    raises PairingError, whatever ``allow_unpaired``: it would score a model against its own input.

    ``position`` pairs the n-th input with the n-th target, both in natural order (:func:`natural_key`, as
    Histoformer's ``natsorted``), and raises PairingError when the folders hold different numbers of images
    (whatever ``allow_unpaired``): an extra file would shift every later pair. MoCE-IR pairs Rain100L by position
    in plain ``sorted()`` (code-point) lists; the two orders pair alike whenever both folders number their files
    the same way (``1..100.png`` in both), and differ where the names sort differently in the two folders
    (``1, 2, 10.png`` with ``1_gt, 2_gt, 10_gt.png``: code-point order puts ``10.png`` second but ``10_gt.png``
    first). No shipped protocol pairs by position (its MoCE-IR Rain100L layout uses the ``rain100l`` name rule).
    """
    if layout.pairing not in PAIRING_RULES:
        raise ValueError(f"unknown pairing rule '{layout.pairing}'; choose one of {', '.join(PAIRING_RULES)}")
    targets, non_images = list_images(target_dir)
    if input_dir is None:
        pairing = Pairing([ImagePair(p.name, None, p) for p in targets], non_images=non_images)
    else:
        inputs, skipped = list_images(input_dir)
        non_images = skipped + non_images
        if layout.pairing == "position":
            inputs, targets = _natural_sorted(inputs), _natural_sorted(targets)
            if len(inputs) != len(targets):
                raise _position_count_error(layout, input_dir, target_dir, inputs, targets, advise)
            pairs = [ImagePair(i.name, i, t) for i, t in zip(inputs, targets, strict=True)]
            unpaired = []
        else:
            pairs, unpaired = _match_by_name(layout.pairing, inputs, targets)
        _refuse_self_pairs(layout, input_dir, target_dir, pairs)
        used = {p.target_path for p in pairs}
        pairing = Pairing(pairs, unpaired, [t for t in targets if t not in used], non_images)
    warn_skipped_files(pairing.non_images)
    if pairing.unpaired_inputs:
        message = (f"{input_dir}: inputs without a target in {target_dir} (pairing rule "
                   f"'{layout.pairing}') — {_shortlist(pairing.unpaired_inputs)}"
                   f"{_other_extension_hint(layout, pairing.unpaired_inputs, targets, advise)}")
        if not allow_unpaired:
            raise PairingError(message)
        warnings.warn(message, InputWarning, stacklevel=2)
    return pairing


def _other_extension_hint(layout: LayoutSpec, unpaired: list[Path], targets: list[Path],
                          advise: PairingAdvice) -> str:
    """For ``same_name``: the unpaired inputs whose stem a target has with another extension, and the way out."""
    if layout.pairing != "same_name":
        return ""
    index = TargetIndex(targets)
    found = [(path, index.with_stem(path.stem)) for path in unpaired if index.with_stem(path.stem)]
    if not found:
        return ""
    shown = shortlist([f"{path.name} → {matches[0].name}" for path, matches in found], 3)
    return (f". {len(found)} of them have a target with the same stem and another extension ({shown}): "
            f"pair by stem with {advise(['stem'])}")


# --------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class ItemSource:
    """Where one item comes from: target (file or uint8 array) and input (file, array, or None when it is
    synthesised from the target by the dataset's noise or degradations)."""

    name: str
    target: Path | np.ndarray
    input: Path | np.ndarray | None = None


def _describe(source: Path | np.ndarray) -> str:
    return str(source) if isinstance(source, Path) else "<in-memory image>"


def _load(source: Path | np.ndarray) -> np.ndarray:
    return read_rgb_uint8(source) if isinstance(source, Path) else source


def _raw_size(source: Path | np.ndarray) -> tuple[int, int]:
    return image_size(source) if isinstance(source, Path) else (int(source.shape[0]), int(source.shape[1]))


_UINT8_TO_FLOAT = torch.arange(256, dtype=torch.float32).div(255).numpy()
"""Value v -> float32(v) / 255 computed by torch, i.e. exactly what torchvision ToTensor gives each pixel."""


def uint8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) = uint8 / 255 (torchvision ToTensor), via a 256-entry lookup."""
    return torch.from_numpy(np.ascontiguousarray(_UINT8_TO_FLOAT[img.transpose(2, 0, 1)]))


class _Sizes:
    """Lazily computed, cached raw (H, W) of every entry of the full dataset, shared with its subsets."""

    def __init__(self, entries: Sequence[ItemSource]) -> None:
        self.entries = list(entries)
        self.cache: dict[int, tuple[int, int]] = {}

    def raw(self, index: int) -> tuple[int, int]:
        if index not in self.cache:
            entry = self.entries[index]
            size = _raw_size(entry.target)
            if entry.input is not None:
                input_size = _raw_size(entry.input)
                if input_size != size:
                    files = (entry.input, entry.target)
                    why = quarter_turn_note(files, (input_size, size)) if all(  # type: ignore[arg-type]
                        isinstance(f, Path) for f in files) else ""
                    raise ImageSizeMismatchError(
                        f"{entry.name}: input {_describe(entry.input)} is {input_size[0]}x{input_size[1]} (HxW) "
                        f"but target {_describe(entry.target)} is {size[0]}x{size[1]}{why}")
            self.cache[index] = size
        return self.cache[index]

@lru_cache(maxsize=8)
def _shared_stream(shapes: tuple, sigmas: tuple[float, ...], seed: int) -> ReferenceNoiseStream:
    """One replay per distinct stream: the sigma-15/25/50 tasks of a protocol share the same images and stream."""
    return ReferenceNoiseStream(list(shapes), sigmas, seed)


class _NoiseSource:
    """N(0, 1) draws per item for a NoiseSpec: the reference stream over the FULL item list (so subsets and
    limits never change an image's noise) or an independent per-image generator."""

    def __init__(self, spec: NoiseSpec, task_name: str, names: list[str], sizes: _Sizes, crop: CropSpec,
                 stream_order: Sequence[str] | None = None) -> None:
        self.spec, self.task_name, self.names, self.sizes, self.crop = spec, task_name, names, sizes, crop
        self.stream_order = list(stream_order) if stream_order is not None else list(names)
        if sorted(self.stream_order) != sorted(names):
            raise ValueError(f"task '{task_name}': the noise stream order must list every item once")
        self._stream: ReferenceNoiseStream | None = None
        if spec.stream == "reference" and float(spec.sigma) not in [float(s) for s in spec.stream_sigmas]:
            raise ValueError(f"task '{task_name}': noise sigma {spec.sigma} is not in stream_sigmas "
                             f"{spec.stream_sigmas}")

    def stream(self) -> ReferenceNoiseStream:
        if self._stream is None:
            index = {name: i for i, name in enumerate(self.names)}
            shapes = tuple((name, cropped_size(*self.sizes.raw(index[name]), self.crop)) for name in self.stream_order)
            self._stream = _shared_stream(shapes, tuple(float(s) for s in self.spec.stream_sigmas), self.spec.seed)
        return self._stream

    def draws(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if self.spec.stream == "per_image":
            return per_image_rng(name, self.task_name, self.spec.seed).standard_normal(shape)
        draws = self.stream().draws(name, self.spec.sigma)
        if draws.shape != tuple(shape):
            raise ImageSizeMismatchError(f"{name}: decoded size {shape[:2]} differs from its header size "
                                         f"{draws.shape[:2]}")
        return draws


class TaskDataset(Dataset):
    """Image pairs of one task (see the module docstring for the item format and the crop rule).

    ``names`` are in dataset order; ``item_sizes()`` gives the post-crop (H, W) of each item from the file
    headers; ``subset``/``limit`` keep the noise of every image unchanged. ``is_sample`` marks the built-in
    synthetic sample data. ``noise_stream_order`` (item names) is the order the reference noise stream is drawn
    in; by default the dataset order. ``unpaired_targets``: the images of the target folder that no input pairs
    with (not items; ``run`` notes them, see :func:`unpaired_targets_notice`).
    """

    def __init__(self, entries: Sequence[ItemSource], crop: CropSpec, task_name: str, noise: NoiseSpec | None = None,
                 degradations: Sequence[str] = (), seed_parts: Sequence[Any] = (), layout: ResolvedLayout | None = None,
                 is_sample: bool = False, label: str = "", noise_stream_order: Sequence[str] | None = None,
                 unpaired_targets: Sequence[Path] = ()) -> None:
        self.task_name, self.crop, self.noise, self.layout = task_name, crop, noise, layout
        self.unpaired_targets = list(unpaired_targets)
        self.degradations, self.seed_parts = tuple(degradations), tuple(seed_parts)
        self.is_sample, self.label = is_sample, label or task_name
        unknown = [d for d in self.degradations if d not in DEGRADATIONS]
        if unknown:
            raise KeyError(f"task '{task_name}': unknown degradation(s) {unknown}; "
                           f"known: {', '.join(sorted(DEGRADATIONS))}")
        self._entries = list(entries)
        names = [e.name for e in self._entries]
        if len(set(names)) != len(names):
            raise ValueError(f"task '{task_name}': duplicate item names")
        self._indices = list(range(len(self._entries)))
        self._sizes = _Sizes(self._entries)
        self._noise = (_NoiseSource(noise, task_name, names, self._sizes, crop, noise_stream_order)
                       if noise is not None else None)

    # ---- selection
    def subset(self, indices: Iterable[int]) -> TaskDataset:
        """A view on the items at ``indices`` (positions in this dataset), sharing noise and size caches."""
        view = object.__new__(TaskDataset)
        view.__dict__.update(self.__dict__)
        view._indices = [self._indices[i] for i in indices]
        return view

    def limit(self, n: int) -> TaskDataset:
        """The first ``n`` items in dataset order."""
        return self.subset(range(min(max(0, n), len(self))))

    # ---- introspection
    @property
    def names(self) -> list[str]:
        return [self._entries[i].name for i in self._indices]

    def __len__(self) -> int:
        return len(self._indices)

    def item_sizes(self) -> list[tuple[int, int]]:
        """Post-crop (H, W) of every item, from headers (no decoding); a size mismatch, or an image too small for
        the crop rule, is raised here naming the file."""
        return [self._cropped_size(i) for i in self._indices]

    def _cropped_size(self, index: int) -> tuple[int, int]:
        size = self._sizes.raw(index)
        try:
            return cropped_size(*size, self.crop)
        except ValueError as err:
            entry = self._entries[index]
            raise ValueError(f"{_describe(entry.target)} (task '{self.task_name}', image '{entry.name}'): "
                             f"{err}") from err

    def source_paths(self, index: int) -> tuple[Path | None, Path | None]:
        """(input file, target file) of item ``index``; None where the image is synthesised or in memory."""
        entry = self._entries[self._indices[index]]
        return tuple(s if isinstance(s, Path) else None for s in (entry.input, entry.target))  # type: ignore[return-value]

    def prepare(self) -> None:
        """Replay the reference noise stream now (worth calling before DataLoader workers fork)."""
        if self._noise is not None and self.noise is not None and self.noise.stream == "reference":
            self._noise.stream().prepare(self.noise.sigma)

    # ---- items
    def _crop(self, img: np.ndarray) -> np.ndarray:
        return center_crop_to_multiple(img, self.crop.base) if self.crop.rule == "center_multiple" else img

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self._entries[self._indices[index]]
        target = _load(entry.target)
        if entry.input is not None:
            inp = _load(entry.input)
            if inp.shape != target.shape:
                raise ImageSizeMismatchError(
                    f"{entry.name}: input {_describe(entry.input)} is {inp.shape[0]}x{inp.shape[1]} (HxW) but "
                    f"target {_describe(entry.target)} is {target.shape[0]}x{target.shape[1]}")
            inp = self._crop(inp)
            target = self._crop(target)
        elif self._noise is not None and self.noise is not None:
            target = self._crop(target)
            draws = self._noise.draws(entry.name, target.shape)
            inp = gaussian_noise_uint8(target, self.noise.sigma, draws, truncate=self.noise.truncate)
        elif self.degradations:
            target = self._crop(target)
            inp = apply_degradations(target, self.degradations, entry.name, *self.seed_parts)
        else:
            raise ValueError(f"task '{self.task_name}': item '{entry.name}' has no input and nothing to synthesise")
        return {"name": entry.name, "input": uint8_to_tensor(inp), "target": uint8_to_tensor(target)}


# --------------------------------------------------------------------------------------------- builders
NoiseOrder = Literal["sorted", "listdir"]
NOISE_ORDERS: tuple[str, ...] = ("sorted", "listdir")


def listdir_order(folder: Path, names: Sequence[str]) -> list[str]:
    """``names`` in the order ``os.listdir(folder)`` returns their files (file-system dependent)."""
    wanted = set(names)
    order = [name for name in os.listdir(folder) if name in wanted]
    missing = wanted - set(order)
    if missing:
        raise FileNotFoundError(f"{folder}: os.listdir does not list {sorted(missing)[:5]}")
    return order


def build_task_dataset(protocol: Protocol, task: TaskSpec | str, data_root: str | Path | None = None,
                       allow_unpaired: bool = False, noise_order: NoiseOrder = "sorted") -> TaskDataset:
    """The dataset of ``task`` from ``data_root`` (first matching layout). Raises DatasetNotFoundError /
    PairingError naming what is wrong. The built-in sample data is bench_ir.data.sample.build_sample_task_dataset
    (sample builds on this module, never the other way round).

    ``noise_order`` is the order the reference noise stream is drawn in: ``sorted`` file names (deterministic,
    the default) or ``listdir``, the order ``os.listdir`` returns for the clean folder on this machine (what
    the official test loops do). Only folders under ``data_root`` have a listdir order."""
    task = protocol.task(task) if isinstance(task, str) else task
    if noise_order not in NOISE_ORDERS:
        raise ValueError(f"unknown noise order '{noise_order}'; expected one of {', '.join(NOISE_ORDERS)}")
    resolved = resolve_layout(task, data_root, protocol_name=command_ref(protocol))
    pairing = pair_files(resolved.layout, resolved.input_dir, resolved.target_dir, allow_unpaired=allow_unpaired)
    if not pairing.pairs:
        raise DatasetNotFoundError(f"task '{task.name}' ({task.label}): {resolved.describe()} holds no image pairs")
    if resolved.input_dir is None and task.noise is None:
        raise ValueError(f"task '{task.name}': layout has no input folder and the task defines no noise")
    entries = [ItemSource(p.name, p.target_path, p.input_path) for p in pairing.pairs]
    stream_order = None
    if noise_order == "listdir" and task.noise is not None and task.noise.stream == "reference":
        by_file = {p.target_path.name: p.name for p in pairing.pairs}
        stream_order = [by_file[f] for f in listdir_order(resolved.target_dir, list(by_file))]
    return TaskDataset(entries, protocol.crop_for(task), task.name, noise=task.noise, layout=resolved,
                       label=task.label, noise_stream_order=stream_order, unpaired_targets=pairing.unpaired_targets)


def build_folder_dataset(input_dir: str | Path, target_dir: str | Path, pairing: str = "same_name",
                         crop: CropSpec | None = None, allow_unpaired: bool = False) -> TaskDataset:
    """An ad-hoc dataset of two folders (no protocol); crop defaults to the 3deg/5deg rule (centre, /16)."""
    layout = LayoutSpec(target=str(Path(target_dir).resolve()), input=str(Path(input_dir).resolve()),
                        pairing=pairing, source="folders")  # type: ignore[arg-type]
    task = TaskSpec(name="folder", label=Path(input_dir).name, dataset="folder", layouts=[layout])
    resolved = resolve_layout(task, None)
    result = pair_files(layout, resolved.input_dir, resolved.target_dir, allow_unpaired=allow_unpaired)
    if not result.pairs:
        raise DatasetNotFoundError(f"{resolved.describe()} holds no image pairs")
    entries = [ItemSource(p.name, p.target_path, p.input_path) for p in result.pairs]
    return TaskDataset(entries, crop or CropSpec(rule="center_multiple", base=16), "folder", layout=resolved,
                       label=task.label, unpaired_targets=result.unpaired_targets)


def unpaired_targets_notice(dataset: TaskDataset, shown: int = 5) -> str | None:
    """A line naming the target images no input of ``dataset`` pairs with (how many, the first ``shown``), or None
    when there are none. A target that several inputs pair with (SOTS: ``0001_0.8_0.2.jpg`` and
    ``0001_0.9_0.1.jpg`` -> ``0001.png``) is paired; only targets without any input count."""
    unused, layout = dataset.unpaired_targets, dataset.layout
    if not unused or layout is None or layout.input_dir is None:
        return None
    names = shortlist([path.name for path in unused], shown)
    images = "image" if len(unused) == 1 else "images"
    return (f"task '{dataset.task_name}' ({dataset.label}): {len(unused)} target {images} in {layout.target_dir} "
            f"without an input in {layout.input_dir} (pairing rule '{layout.layout.pairing}'), not scored: {names}")
