"""`bench-ir data check`: is a data root ready for a protocol? Layout, pairing, counts, readability, sizes.

Problems (``ok`` is False; `data check` exits with 1): no layout found, no pairs, inputs without a target,
unreadable files (empty, not an image, a floating-point or otherwise unsupported image), input / target size
mismatches, images smaller than the crop multiple or (after the crop rule) than the SSIM window of the protocol's
convention, and — for protocols that neither crop nor pad — sides that are not a multiple of NONE_CROP_MULTIPLE. A
run refuses the same data. Warnings (``ok`` stays True, exit code 0; a run goes ahead): a pair count different from
the expected one (fewer pairs than expected marks the task ``incomplete``), targets without an input (a run skips
them), skipped non-image files, images too small for one of the protocol's alternative conventions, pairs whose
input and target EXIF orientations differ (viewers turn them differently; scores compare the pixels as stored),
and the conversions `run` makes on reading (grayscale replicated to RGB, alpha dropped, 16-bit or high-maxval
PPM/PGM scaled to 8 bits, 32-bit integers read as 16 bit, CMYK converted to RGB, only the first frame read of a file
holding several), grouped by kind. Every image is fully decoded unless
``decode=False`` (headers only, which finds no conversions). A data root that does not exist raises
DatasetNotFoundError once, before any task is looked at.
"""

from __future__ import annotations

import filecmp
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError

from bench_ir.data.crops import cropped_size
from bench_ir.data.datasets import (
    DatasetNotFoundError,
    PairingError,
    ResolvedLayout,
    pair_files,
    relative_name,
    resolve_layout,
)
from bench_ir.data.io import (
    QUARTER_TURN_ADVICE,
    ImageReadError,
    InputWarning,
    differing_orientations,
    image_size,
    quarter_turned_by_exif,
    read_rgb_uint8,
)
from bench_ir.engine import convention_size_problem
from bench_ir.metrics.conventions import MetricConvention, get_convention
from bench_ir.protocol import CropSpec, Protocol, TaskSpec
from bench_ir.shortlist import shortlist

__all__ = ["NONE_CROP_MULTIPLE", "TaskCheck", "check_task", "check_protocol", "conversion_warnings"]

NONE_CROP_MULTIPLE = 8
"""Side multiple required of uncropped, unpadded test images (MIRAGE and the PromptIR family downsample 3x by 2)."""

_SHOWN = 10
_SHOWN_CONVERTED = 3  # files named per conversion kind in the warning; --json lists them all
Progress = Callable[[str, int, int], None]


@dataclass
class TaskCheck:
    """The findings for one task. Sizes are raw file sizes (H, W) of the targets (inputs for the mismatch test)."""

    protocol: str
    task: str
    label: str
    data_root: str | None  # None: the layout folders are absolute
    crop: CropSpec
    expected: int | None = None
    layout: ResolvedLayout | None = None
    not_found: str = ""
    pairs: int = 0
    unpaired_inputs: list[str] = field(default_factory=list)
    unpaired_targets: list[str] = field(default_factory=list)
    non_images: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    size_mismatches: list[tuple[str, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    exif_turned: list[str] = field(default_factory=list)  # mismatched files an EXIF orientation turns in viewers
    sizes: Counter = field(default_factory=Counter)
    multiple: int | None = None
    not_multiple: list[str] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)
    convention: MetricConvention | None = None  # the protocol's (or the one asked for): its SSIM window must fit
    too_small_for_ssim: list[str] = field(default_factory=list)  # 'NAME HxW', the size as scored (after the crop)
    too_small_for_alternatives: dict[str, list[str]] = field(default_factory=dict)  # convention id -> 'NAME HxW'
    exif_differs: list[str] = field(default_factory=list)  # 'NAME (input N, target M)': EXIF orientations differ
    same_content: list[str] = field(default_factory=list)  # pairs whose input and target files hold the same bytes
    conversions: dict[str, list[str]] = field(default_factory=dict)  # kind -> files, relative to the data root

    @property
    def problems(self) -> list[str]:
        out = []
        if self.layout is None:
            out.append(self.not_found or "no layout found")
            return out
        if self.pairs == 0:
            out.append(f"no image pairs in {self.layout.describe()}")
        if self.unpaired_inputs:
            out.append(f"inputs without a target ({self.layout.layout.pairing}): {_listing(self.unpaired_inputs)}")
        if self.unreadable:
            out.append("unreadable files: " + _listing([f"{p} ({why})" for p, why in self.unreadable]))
        if self.size_mismatches:
            out.append("input/target size mismatch (HxW): " + _listing(
                [f"{n} {a[0]}x{a[1]} vs {b[0]}x{b[1]}" for n, a, b in self.size_mismatches])
                + (f"; turned a quarter turn in viewers by their EXIF orientation: {_listing(self.exif_turned)}, but "
                   f"{QUARTER_TURN_ADVICE}" if self.exif_turned else ""))
        if self.too_small:
            out.append(f"smaller than the crop multiple {self.crop.base}: {_listing(self.too_small)}")
        if self.not_multiple:
            out.append(f"sides not a multiple of {self.multiple} (the protocol neither crops nor pads): "
                       f"{_listing(self.not_multiple)}")
        if self.too_small_for_ssim and self.convention is not None:
            out.append(convention_size_problem(self.convention, self.too_small_for_ssim))
        return out

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.layout is not None and self.expected is not None and self.pairs != self.expected:
            out.append(f"{self.pairs} pairs found, {self.expected} expected")
        if self.unpaired_targets:
            out.append(f"targets without an input: {_listing(self.unpaired_targets)}")
        if self.non_images:
            out.append(f"non-image files skipped: {_listing(self.non_images)}")
        for name, images in self.too_small_for_alternatives.items():
            other = get_convention(name)
            out.append(f"smaller than the {other.ssim_window or other.min_image_side} px SSIM window of the "
                       f"alternative convention {other.id} ({other.name}) after the crop rule, so `run --convention "
                       f"{other.id}` would refuse them: {_listing(images)}")
        if self.same_content:
            out.append(f"input and target files hold the same bytes, so these pairs score an unchanged image against "
                       f"itself (PSNR inf for the degraded input): {_listing(self.same_content)}; check that the "
                       "target folder holds the clean images, not copies of the inputs")
        if self.exif_differs:
            out.append(f"input and target EXIF orientations differ, so viewers show these pairs turned differently: "
                       f"{_listing(self.exif_differs)}, but {QUARTER_TURN_ADVICE}")
        out += conversion_warnings(self.conversions)
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def incomplete(self) -> bool:
        """Fewer pairs found than the protocol's expected count (a warning: results would not be comparable)."""
        return self.layout is not None and self.expected is not None and self.pairs < self.expected

    @property
    def status(self) -> str:
        """``problems``, ``incomplete``, ``warnings`` or ``ok``: the worst finding of the task."""
        if self.problems:
            return "problems"
        if self.incomplete:
            return "incomplete"
        return "warnings" if self.warnings else "ok"

    def size_summary(self) -> str:
        """'481x321 x60, 321x481 x8; min 321x321, max 481x481' (HxW, most common first; min/max per side)."""
        if not self.sizes:
            return ""
        common = ", ".join(f"{h}x{w} x{n}" for (h, w), n in self.sizes.most_common(3))
        more = f" (+{len(self.sizes) - 3} other sizes)" if len(self.sizes) > 3 else ""
        (min_h, min_w), (max_h, max_w) = self.size_range()
        return f"{common}{more}; min {min_h}x{min_w}, max {max_h}x{max_w}"

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int]]:
        heights = [h for h, _ in self.sizes]
        widths = [w for _, w in self.sizes]
        return (min(heights), min(widths)), (max(heights), max(widths))

    def to_dict(self) -> dict[str, Any]:
        size_range = self.size_range() if self.sizes else None
        return {
            "protocol": self.protocol, "task": self.task, "label": self.label, "data_root": self.data_root,
            "ok": self.ok, "status": self.status, "incomplete": self.incomplete,
            "layout": self.layout.describe() if self.layout else None,
            "layout_source": self.layout.layout.source if self.layout else None,
            "input_dir": str(self.layout.input_dir) if self.layout and self.layout.input_dir else None,
            "target_dir": str(self.layout.target_dir) if self.layout else None,
            "not_found": self.not_found or None,
            "pairs": self.pairs, "expected": self.expected,
            "unpaired_inputs": self.unpaired_inputs, "unpaired_targets": self.unpaired_targets,
            "non_images": self.non_images,
            "unreadable": [{"path": p, "error": e} for p, e in self.unreadable],
            "size_mismatches": [{"name": n, "input": list(a), "target": list(b)} for n, a, b in self.size_mismatches],
            "sizes": [{"height": h, "width": w, "count": n} for (h, w), n in self.sizes.most_common()],
            "min_size": list(size_range[0]) if size_range else None,
            "max_size": list(size_range[1]) if size_range else None,
            "size_summary": self.size_summary(),
            "crop": {"rule": self.crop.rule, "base": self.crop.base},
            "multiple": self.multiple, "not_multiple": self.not_multiple, "too_small": self.too_small,
            "convention": self.convention.id if self.convention else None,
            "too_small_for_ssim": self.too_small_for_ssim,
            "too_small_for_alternatives": self.too_small_for_alternatives,
            "exif_orientation_differs": self.exif_differs,
            "same_content": self.same_content,
            "conversions": self.conversions,
            "problems": self.problems, "warnings": self.warnings,
        }


def _listing(items: list[str]) -> str:
    return f"{len(items)}: {shortlist(items, _SHOWN)}"


_CONVERSIONS: dict[str, str] = {
    "grayscale": "grayscale {images} replicated to 3 RGB channels",
    "alpha_dropped": "{images} whose alpha channel is dropped without compositing",
    "16_bit": "16-bit {images} scaled to 8 bits with round(v/257)",
    "netpbm_maxval": "PPM/PGM {images} with a maxval above 255 scaled to 8 bits with round(v*255/maxval)",
    "32_bit": "32-bit integer {images} read as 16-bit values and scaled to 8 bits",
    "cmyk": "CMYK {images} converted to RGB as PIL convert('RGB') does, without colour management",
    "first_frame": "{images} holding several frames (pages or an animation) of which only the first is read",
    "other": "{images} changed on reading",
}
"""The warning of `data check` about each kind of conversion :func:`read_rgb_uint8` states (the ``kind`` of its
InputWarning; the keys of TaskCheck.conversions and of --json). ``other`` takes a warning without a known kind; its
files are listed as 'FILE (MESSAGE)'."""


def conversion_warnings(conversions: dict[str, list[str]], reader: str = "run") -> list[str]:
    """One line per kind of ``conversions`` (kind -> files; the ``kind`` of read_rgb_uint8's InputWarning, 'other'
    for an unknown one), in the order of :data:`_CONVERSIONS`: '12 grayscale images replicated to 3 RGB channels
    (as run reads them): a.png, b.png ... and 9 more'; ``reader`` names who reads them (run, training)."""
    order = list(_CONVERSIONS)
    lines = []
    for kind in sorted(conversions, key=lambda k: order.index(k if k in order else "other")):
        files = conversions[kind]
        what = _CONVERSIONS[kind if kind in order else "other"].format(images="image" if len(files) == 1 else "images")
        lines.append(f"{len(files)} {what} (as {reader} reads them): {shortlist(files, _SHOWN_CONVERTED)}")
    return lines


class _Probed(NamedTuple):
    """What probing one file found: its size (H, W) or why it is unreadable, and the conversions `run` makes on
    reading it as (kind, read_rgb_uint8's message without 'PATH: '); none without decoding."""

    size: tuple[int, int] | None
    error: str | None
    conversions: tuple[tuple[str, str], ...] = ()


class _FileProbe:
    """Size (H, W) or error, and conversions, of each file, decoded once even when several tasks share a folder."""

    def __init__(self, decode: bool) -> None:
        self.decode = decode
        self.cache: dict[Path, _Probed] = {}

    def __call__(self, path: Path) -> _Probed:
        """Decoding reads the file as ``run`` does (:func:`read_rgb_uint8`), so that a file ``run`` would refuse (a
        float image, say) is reported here, and so are the conversions it states; without decoding only the header
        is read."""
        if path not in self.cache:
            try:
                conversions: tuple[tuple[str, str], ...] = ()
                if self.decode:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")  # every file's own, even when a message repeats
                        height, width = read_rgb_uint8(path).shape[:2]
                    conversions = tuple((_conversion_kind(w.message), str(w.message).removeprefix(f"{path}: "))
                                        for w in caught if issubclass(w.category, InputWarning))
                else:  # the header refusals of `run` (an empty file, a float image, an unsupported TIFF)
                    height, width = image_size(path)
                self.cache[path] = _Probed((int(height), int(width)), None, conversions)
            except UnidentifiedImageError:
                self.cache[path] = _Probed(None, "not an image or an unsupported format")
            except ImageReadError as err:
                self.cache[path] = _Probed(None, str(err).removeprefix(f"{path}: "))
            except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
                self.cache[path] = _Probed(None, f"corrupt or truncated: {err}")
        return self.cache[path]


def _conversion_kind(warning: Warning | str) -> str:
    """The key of _CONVERSIONS for an InputWarning of read_rgb_uint8: its ``kind``, or 'other'."""
    kind = getattr(warning, "kind", "")
    return kind if kind in _CONVERSIONS else "other"


def _note_conversions(check: TaskCheck, name: str, conversions: tuple[tuple[str, str], ...]) -> None:
    """Add file ``name`` to the kinds of its ``conversions`` ((kind, message) pairs) in ``check.conversions``."""
    for kind, message in conversions:
        check.conversions.setdefault(kind, []).append(f"{name} ({message})" if kind == "other" else name)


def check_task(protocol: Protocol, task: TaskSpec | str, data_root: str | Path | None, decode: bool = True,
               multiple: int | None = None, progress: Progress | None = None,
               _probe: _FileProbe | None = None, convention: str | MetricConvention | None = None) -> TaskCheck:
    """Check one task of ``protocol`` under ``data_root``. ``multiple`` overrides the side multiple required of
    the raw images (default: NONE_CROP_MULTIPLE when the protocol's crop rule is ``none``, else no check).
    ``convention`` (default: the protocol's) is the one whose SSIM window every image must hold after the crop
    rule, as `run` requires; images too small for one of the protocol's other conventions are warnings."""
    task = protocol.task(task) if isinstance(task, str) else task
    crop = protocol.crop_for(task)
    if multiple is None and crop.rule == "none":
        multiple = NONE_CROP_MULTIPLE
    chosen = get_convention(convention or protocol.convention)
    others = [get_convention(name) for name in protocol.alternative_conventions]
    others = [other for other in dict.fromkeys(others) if other.id != chosen.id]
    check = TaskCheck(protocol.name, task.name, task.label, str(data_root) if data_root is not None else None, crop,
                      task.expected_count,
                      multiple=multiple, convention=chosen)
    try:
        check.layout = resolve_layout(task, data_root, protocol_name=protocol.name)
    except DatasetNotFoundError as err:
        check.not_found = "no layout found; tried: " + "; ".join(err.tried) if err.tried else str(err)
        return check
    layout = check.layout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported in the check instead
        try:
            pairing = pair_files(layout.layout, layout.input_dir, layout.target_dir, allow_unpaired=True)
        except PairingError as err:  # ambiguous stems
            check.not_found = str(err)
            check.layout = None
            return check
    check.pairs = len(pairing.pairs)
    check.unpaired_inputs = [p.name for p in pairing.unpaired_inputs]
    check.unpaired_targets = [p.name for p in pairing.unpaired_targets]
    check.non_images = [str(p) for p in pairing.non_images]
    probe = _probe or _FileProbe(decode)
    root = Path(data_root).expanduser() if data_root is not None else None
    for done, pair in enumerate(pairing.pairs, start=1):
        target_size, target_error, target_conversions = probe(pair.target_path)
        if target_error:
            check.unreadable.append((str(pair.target_path), target_error))
        input_size = None
        if pair.input_path is not None:
            input_size, input_error, input_conversions = probe(pair.input_path)
            if input_error:
                check.unreadable.append((str(pair.input_path), input_error))
            _note_conversions(check, relative_name(pair.input_path, root), input_conversions)
        _note_conversions(check, relative_name(pair.target_path, root), target_conversions)
        if target_size is not None:
            check.sizes[target_size] += 1
            if input_size is not None and input_size != target_size:
                check.size_mismatches.append((pair.name, input_size, target_size))
                check.exif_turned += quarter_turned_by_exif((pair.input_path, pair.target_path),
                                                            (input_size, target_size))
            size = input_size or target_size
            if crop.rule == "center_multiple" and min(size) < crop.base:
                check.too_small.append(pair.name)
            elif scored := _scored_size(target_size, crop):  # the size the metric sees must hold the SSIM window
                named = f"{pair.name} {scored[0]}x{scored[1]}"
                if min(scored) < chosen.min_image_side:
                    check.too_small_for_ssim.append(named)
                for other in others:
                    if min(scored) < other.min_image_side:
                        check.too_small_for_alternatives.setdefault(other.id, []).append(named)
            if multiple and (size[0] % multiple or size[1] % multiple):
                check.not_multiple.append(f"{pair.name} {size[0]}x{size[1]}")
            paths = (pair.input_path, pair.target_path)
            if input_size == target_size and (orientations := differing_orientations(paths)):
                check.exif_differs.append(f"{pair.name} (input {orientations[0]}, target {orientations[1]})")
            if pair.input_path is not None and _same_bytes(pair.input_path, pair.target_path):
                check.same_content.append(pair.name)
        if progress is not None:
            progress(task.name, done, len(pairing.pairs))
    check.unreadable = list(dict.fromkeys(check.unreadable))  # a shared target counted once
    check.conversions = {kind: list(dict.fromkeys(check.conversions[kind]))  # in kind order, a shared target once
                         for kind in _CONVERSIONS if kind in check.conversions}
    return check


def _same_bytes(first: Path, second: Path) -> bool:
    """Whether two files hold the same bytes (read only when their sizes are equal, which real degraded/clean pairs
    almost never are); False when either cannot be read (reported as unreadable)."""
    try:
        return first.stat().st_size == second.stat().st_size and filecmp.cmp(first, second, shallow=False)
    except OSError:
        return False


def _scored_size(size: tuple[int, int], crop: CropSpec) -> tuple[int, int] | None:
    """(H, W) of an image of raw ``size`` as the metric sees it (after the crop rule); None when the crop rule
    cannot take it (reported as too small for the crop multiple)."""
    try:
        return cropped_size(*size, crop)
    except ValueError:
        return None


def check_protocol(protocol: Protocol, data_root: str | Path | None, decode: bool = True,
                   progress: Progress | None = None, tasks: list[str] | None = None,
                   convention: str | MetricConvention | None = None) -> list[TaskCheck]:
    """:func:`check_task` for every task (or those named in ``tasks``, as `run --task` scores them); files shared by
    several tasks are decoded once. A ``data_root`` that is not a folder raises DatasetNotFoundError (one line)
    instead of one not-found finding per task; an unknown task name is a KeyError naming the protocol's tasks.
    ``convention``: as in :func:`check_task`."""
    root = Path(data_root).expanduser() if data_root is not None else None
    if root is not None and not root.is_dir():
        raise DatasetNotFoundError(f"data root {root} {'is not a folder' if root.exists() else 'does not exist'}")
    chosen = protocol.select_tasks(tasks)
    probe = _FileProbe(decode)
    return [check_task(protocol, task, data_root, decode=decode, progress=progress, _probe=probe,
                       convention=convention) for task in chosen]
