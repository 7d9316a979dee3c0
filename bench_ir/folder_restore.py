"""`bench-ir restore` as a library call: a folder of degraded images (or one image) -> a folder of restored PNGs (no
targets, no metrics), for figures and for looking at a model's output on your own photos.

Each image goes through the model whole and at its own size: it is padded at the bottom/right to the card's
multiple (with the card's pad mode; reflect when the card has none; ``pad`` overrides it) and the output is cropped
back, so a restored image has its input's size. (A protocol's centre crop applies to scoring only: an image whose
sides are multiples of 16 is restored here exactly as ``bench-ir run --save-images`` restores it.)

The fast path is eager (channels-last on CUDA) unless ``compile`` is "on": each image size would be compiled anew.

The input is a folder of images or one image file. Outputs are ``<input name without its extension>.png``, 8-bit
RGB, written atomically (with ``recursive``, the images of every sub-folder too, each into the same sub-folder of
the output folder; a sub-folder holding a ``restore.json`` holds another restore's outputs, not degraded photos, and
is skipped with a notice naming it). Pixels are restored as stored; a photo's EXIF orientation tag (a camera's
"rotate to display") is copied into its output, so a viewer shows the output turned like the photo.

An image whose output ``restore.json`` records, made from an input of the same path and content (sha256), is skipped,
so an interrupted restore continues where it stopped; an output whose input has changed since (or that
``restore.json`` does not record, as after ``kill -9`` between two writes of it) is restored again; ``overwrite`` redoes
every image. A restore of part of the input folder (one image, or without ``recursive`` after a recursive
restore) keeps the records of the outputs it does not cover, so ``restore.json`` describes the whole folder; a
folder holding outputs of another input folder that this restore would leave there is refused (``overwrite``
restores into it anyway, and names those outputs as no longer recorded). An input that cannot be decoded (corrupt,
truncated, not an image) does not stop the others: it is named with the reason under ``unreadable`` in
``restore.json``, whose status is then ``incomplete``.
``restore.json`` in the output folder (written when the restore starts, every few seconds while it runs and when it
ends) records the model, the checkpoint (sha256), the device, the execution path, the library versions and each
output's input with the input's sha256;
continuing a folder with another setup (model, weights, dtype, execution, tiling, padding, versions) is refused, so
that one folder never mixes two models' outputs, and so is a folder without ``restore.json`` that already holds an
output's name. The setup compared is the effective one: the model's arguments after ``--model-arg`` overrides (one
that repeats the card's own value changes nothing) and the padding applied (``pad`` "reflect" on a card whose pad
mode is reflect is no change), so a ``restore.json`` of an older bench-ir compares alike. A folder whose
``restore.json`` records no restored image (its restore failed or was interrupted before the first) is continued with
any setup, and a notice says so. One process at a time writes a folder (its hidden ``.restore.lock``). On CUDA, an
image that does not fit in GPU memory whole is restored in overlapping tiles (512 px, then 256 px); ``restore.json``
names each such output under ``auto_tiled`` with its tile size, since near tile seams it differs from a whole-image
restoration.
An output for which the model returned NaN/Inf values is written (NaN as 0, ±Inf clipped), stated in a notice and
counted under ``nonfinite`` in ``restore.json``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench_ir.acceleration import AcceleratedForward, plan_execution, precision_settings
from bench_ir.atomic import write_text_atomic
from bench_ir.cards import (
    ModelCard,
    check_card_args,
    chosen_checkpoint,
    count_parameters,
    get_card,
    model_record,
    sample_checkpoint_advice,
    with_model_args,
)
from bench_ir.checkpoints import create_model, sha256_file
from bench_ir.config_checks import check_field_types, check_model_args, check_strings, refuse
from bench_ir.counts import check_counts
from bench_ir.data.datasets import list_images, uint8_to_tensor, warn_skipped_files
from bench_ir.data.io import IMAGE_EXTENSIONS, ImageReadError, exif_orientation, read_rgb_uint8, write_png_uint8
from bench_ir.engine import (
    EvalOptions,
    OutputShapeError,
    check_model_precision,
    output_shape_error,
    resolve_device,
    resolve_dtype,
    restore,
    saved_image_name,
    saved_name_clash,
)
from bench_ir.folder_names import RESTORE_MANIFEST_NAME
from bench_ir.geometry import FitPolicy, check_pad_mode, tile_size
from bench_ir.manifest import device_info, environment_info, git_revision, now_iso
from bench_ir.resume import RunLock, identity_differences
from bench_ir.runner import MissingWeightsError, missing_weights_message, sigterm_as_interrupt
from bench_ir.shortlist import shortlist

__all__ = ["RestoreConfig", "RestoreOutcome", "restore_folder", "MANIFEST_NAME"]

MANIFEST_NAME = RESTORE_MANIFEST_NAME
LOCK_NAME = ".restore.lock"  # hidden: the folder is meant for images
MANIFEST_EVERY_S = 2.0  # restore.json is rewritten at most this often while images are restored
# what must match for a folder to be continued (names of bench_ir.resume.IDENTITY_FIELDS; the padding is compared as
# the fit policy applied, _fit_of, not as the raw override)
_IDENTITY = ("model", "weights", "dtype", "execution", "tiling", "library versions")
_RECORDS = ("images", "input_sha256", "auto_tiled", "nonfinite")  # restore.json's records per output file


@dataclass
class RestoreConfig:
    """What a restore is. ``model`` is a card name or YAML path; ``checkpoint`` a weights file, or
    ``use_sample_checkpoint`` for the card's shipped sample checkpoint (a demonstration, not a published model).
    ``pad``: padding mode to the model's multiple (default: the card's, reflect when the card has none).
    ``recursive``: also the images of every sub-folder (hidden ones, ``out_dir`` and other restores' output folders
    excepted), each written to the same sub-folder of ``out_dir``. The field types are checked when it is built (a
    TypeError names the field): ``overwrite="no"`` is refused, not taken for True."""

    input_dir: str | Path  # a folder of images, or one image file
    out_dir: str | Path
    model: str | Path | ModelCard = "mirage-t"
    model_args: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | Path | None = None
    use_sample_checkpoint: bool = False
    device: str = "auto"
    dtype: str = "fp32"
    exact: bool = False
    compile: str = "auto"
    tile: int | None = None
    tile_overlap: int = 32
    pad: str | None = None
    overwrite: bool = False
    recursive: bool = False
    registry: str | Path | None = None
    command: list[str] | None = None

    def __post_init__(self) -> None:
        """Refuse a field of the wrong type (TypeError naming the field, the value and what it takes); an integer
        type is stored as ``int``. Values (a dtype, a device, counts) are checked by :func:`restore_folder` before it
        writes anything."""
        check_field_types(self, bools=("use_sample_checkpoint", "exact", "overwrite", "recursive"),
                          ints=("tile_overlap",), optional_ints=("tile",), strs=("device", "dtype", "compile"),
                          optional_strs=("pad",), paths=("input_dir", "out_dir"),
                          optional_paths=("checkpoint", "registry"))
        if not isinstance(self.model, str | os.PathLike | ModelCard):
            refuse("model", self.model, "a model card name, a YAML path or a ModelCard", "RestoreConfig")
        check_model_args(self)
        check_strings(self, "command")


@dataclass
class RestoreOutcome:
    """``restored``: output files written now; ``kept``: outputs that were already there (not redone);
    ``tiled``: the outputs written now in tiles after a GPU out-of-memory error, with their tile size in pixels;
    ``unreadable``: the inputs (relative to the input folder) that could not be decoded, with the reason;
    ``notices``: what to state beside the result (a failed torch.compile and the eager fallback);
    ``redone``: outputs that were there but no longer stood for their input (restored again, or removed when the
    input can no longer be read), with the reason; ``nonfinite``: the outputs written now whose model output had
    NaN/Inf values, with how many (NaN written as 0, ±Inf clipped)."""

    out_dir: Path
    restored: list[Path]
    kept: list[Path]
    manifest: dict[str, Any]
    redone: dict[str, str] = field(default_factory=dict)
    tiled: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)


def restore_folder(config: RestoreConfig, on_image: Callable[[str, int, int], None] | None = None) -> RestoreOutcome:
    """Restore every image of ``config.input_dir`` into ``config.out_dir`` (see the module docstring).
    ``on_image(name, done, total)`` is called before each image is restored (``done``: the outputs there so far,
    those kept from before included) and once at the end with ``name`` "".
    SIGTERM stops it like Ctrl-C (KeyboardInterrupt), with ``restore.json`` marked interrupted."""
    if not isinstance(config, RestoreConfig):
        raise TypeError(f"restore_folder takes a RestoreConfig, got {config!r} ({type(config).__name__}); call "
                        "restore_folder(RestoreConfig(input_dir=..., out_dir=...))")
    with sigterm_as_interrupt():
        return _restore_folder(config, on_image)


def _restore_folder(config: RestoreConfig, on_image: Callable[[str, int, int], None] | None) -> RestoreOutcome:
    input_dir, out_dir = Path(config.input_dir), Path(config.out_dir)
    jobs, other_restores = _plan_outputs(input_dir, out_dir, config.recursive)
    input_root = input_dir.parent if input_dir.is_file() else input_dir  # restore.json names inputs relative to it
    base_card = get_card(config.model, config.registry)
    overrides = _effective_overrides(base_card, config.model_args)
    card = with_model_args(base_card, overrides)
    check_card_args(card)
    check_counts([("--tile", config.tile, 1), ("--tile-overlap", config.tile_overlap, 0)])
    policy = _fit_policy(card, config.pad)
    if config.tile is not None:
        _check_tile(config.tile, config.tile_overlap, policy.multiple)
    resolve_dtype(config.dtype)  # refused here, before the output folder and restore.json are written
    checkpoint = chosen_checkpoint(card, config.checkpoint, config.use_sample_checkpoint)
    device = resolve_device(config.device)
    # compile only when asked: a folder of photos has as many input shapes as sizes, each compiled anew
    compile_choice = "off" if config.compile == "auto" else config.compile
    plan = plan_execution(device, exact=config.exact, compile=compile_choice,  # type: ignore[arg-type]
                          dtype=config.dtype)
    model = create_model(card, checkpoint=checkpoint, registry=config.registry).to(device).eval()
    check_model_precision(model, config.dtype, f"model '{card.name}'")
    if checkpoint is None and count_parameters(model) > 0:
        raise MissingWeightsError(missing_weights_message(card, sample_checkpoint_advice(card)))
    manifest = {
        "kind": "restore", "created": now_iso(), "status": "running",
        "command": config.command if config.command is not None else sys.argv,
        "input_dir": str(input_dir.resolve()), "input_root": str(input_root.resolve()), "recursive": config.recursive,
        "model": model_record(card, count_parameters(model), overrides or None),
        "checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint)} if checkpoint else None,
        "sample_checkpoint": config.use_sample_checkpoint,
        "random_weights": False,
        "device": device_info(device), "dtype": config.dtype, "execution": plan.describe(),
        "tile": config.tile, "tile_overlap": config.tile_overlap, "pad": config.pad,
        "fit": {"multiple": policy.multiple, "pad_mode": policy.pad_mode},
        "versions": environment_info(), "git_revision": git_revision(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir, then="run the same command again", file_name=LOCK_NAME):
        present = [out for _, out in jobs if out.is_file()]
        covered = {_key(out, out_dir) for _, out in jobs}
        manifest, notices = _continue_folder(out_dir, manifest, config.overwrite, present, covered)
        redone = {} if config.overwrite else _stale_outputs(jobs, manifest, input_root, out_dir)
        for name in redone:  # removed now: an interrupted redo must not leave an output of the old input
            (out_dir / name).unlink()
        kept = [out for out in present if _key(out, out_dir) not in redone] if not config.overwrite else []
        kept_set = set(kept)
        todo = [(source, out) for source, out in jobs if out not in kept_set]
        restored: dict[str, str] = {}  # output -> input (paths relative to their folders), written now
        digests: dict[str, str] = {}  # output -> sha256 of its input, for outputs written now
        tiled: dict[str, int] = {}  # output -> tile size, for outputs written now in tiles after an OOM
        nonfinite: dict[str, int] = {}  # output -> NaN/Inf values of the model's output, for outputs written now
        unreadable: dict[str, str] = {}  # input -> why it could not be decoded
        manifest["unreadable"] = {**_unreadable_elsewhere(manifest, input_root, jobs), **unreadable}
        _keep_true_records(manifest, out_dir, covered, {_key(out, out_dir) for out in kept})
        _write_manifest(out_dir, manifest, {})  # a kept output is recorded with its input (_stale_outputs)
        written_at = time.monotonic()
        accelerated = AcceleratedForward(model, plan)
        options = EvalOptions(device=device, dtype=config.dtype, tile=config.tile, tile_overlap=config.tile_overlap,
                              forward=accelerated)
        try:
            with precision_settings(plan), torch.inference_mode():
                for source, out in todo:
                    if on_image is not None:
                        on_image(_key(source, input_root), len(kept) + len(restored), len(jobs))
                    try:
                        tile, bad_values = _restore_one(model, source, out, policy, options)
                    except ImageReadError as err:  # one broken file does not stop the others
                        reason = str(err).removeprefix(f"{source}: ")
                        unreadable[_key(source, input_root)] = manifest["unreadable"][_key(source, input_root)] = reason
                        continue
                    restored[_key(out, out_dir)] = _key(source, input_root)
                    digests[_key(out, out_dir)] = sha256_file(source)
                    if tile is not None:
                        tiled[_key(out, out_dir)] = tile
                        manifest["auto_tiled"][_key(out, out_dir)] = tile
                    if bad_values:
                        nonfinite[_key(out, out_dir)] = manifest["nonfinite"][_key(out, out_dir)] = bad_values
                    if time.monotonic() - written_at >= MANIFEST_EVERY_S:  # after kill -9 at most that is redone
                        _write_manifest(out_dir, manifest, restored, digests)
                        written_at = time.monotonic()
                if on_image is not None:
                    on_image("", len(kept) + len(restored), len(jobs))
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                manifest.update(status="interrupted", interrupted=now_iso())
            else:
                manifest.update(status="failed", failed=now_iso(), error=f"{type(err).__name__}: {err}")
            _write_manifest(out_dir, manifest, restored, digests)
            raise
        manifest.update(status="incomplete" if manifest["unreadable"] else "complete", finished=now_iso(),
                        execution=accelerated.describe())
        _write_manifest(out_dir, manifest, restored, digests)
    if other_restores:
        notices.insert(0, _other_restores_notice(other_restores))
    if notice := accelerated.compile_notice():
        notices.append(notice)
    if nonfinite:
        shown = shortlist(sorted(nonfinite), 5, more=" and {} more")
        notices.append(f"the model's output had NaN/Inf values for {len(nonfinite)} image(s) ({shown}): NaN is "
                       "written as 0 (black) and ±Inf clipped to 0 or 255; restore.json counts them under nonfinite")
    return RestoreOutcome(out_dir=out_dir, restored=[out_dir / name for name in restored], kept=kept,
                          manifest=manifest, tiled=tiled, unreadable=unreadable, notices=notices, redone=redone,
                          nonfinite=nonfinite)


def _plan_outputs(input_dir: Path, out_dir: Path,
                  recursive: bool = False) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(input file, output file) for the image file ``input_dir``, or for every image of the folder ``input_dir``
    (and, ``recursive``, of its sub-folders but hidden ones, ``out_dir`` and other restores' output folders, each
    into the same sub-folder of ``out_dir``), with the output folders of other restores so skipped; refuses a
    missing or empty folder, an output that would replace an input, and two inputs that would write one output
    (``a.jpg`` and ``a.png``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    if input_dir.is_file():
        if recursive:
            raise ValueError(f"--recursive restores the sub-folders of a folder; --input-dir {input_dir} is a file")
        if input_dir.name.startswith("."):  # as in folders: macOS's ._ resource forks carry an image's suffix
            raise ValueError(f"--input-dir {input_dir}: a hidden file (a name starting with '.', such as macOS's ._ "
                             "copies), which bench-ir never takes for an image; give the image or its folder")
        if input_dir.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"--input-dir {input_dir}: not a folder, nor an image file "
                             f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        out = out_dir / saved_image_name(input_dir.name)
        if out.resolve() == input_dir.resolve():
            raise ValueError(f"--out {out_dir}: the restored PNG would replace its input {input_dir}; choose another "
                             "folder")
        return [(input_dir, out)], []
    if not input_dir.is_dir():
        raise FileNotFoundError(f"--input-dir {input_dir}: not found")
    if out_dir.exists() and out_dir.resolve() == input_dir.resolve():
        raise ValueError(f"--out {out_dir} is the input folder: restored PNGs would replace its images; choose "
                         "another folder")
    jobs: list[tuple[Path, Path]] = []
    folders, other_restores = _image_folders(input_dir, out_dir) if recursive else ([input_dir], [])
    for folder in folders:
        images, skipped = list_images(folder)
        warn_skipped_files(skipped)
        clash = saved_name_clash([path.name for path in images])
        if clash:
            first, second, saved = clash
            raise ValueError(f"{first} and {second} in {folder} would both be restored to {saved}; rename one of "
                             "them")
        target = out_dir / folder.relative_to(input_dir)
        jobs += [(path, target / saved_image_name(path.name)) for path in images]
    if not jobs:
        raise ValueError(f"--input-dir {input_dir} holds no image ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                         + ("" if recursive else _nested_hint(input_dir, out_dir)))
    return jobs, other_restores


def _image_folders(input_dir: Path, out_dir: Path) -> tuple[list[Path], list[Path]]:
    """``input_dir`` and its sub-folders, depth first in name order, without hidden folders, ``out_dir`` (when it
    lies inside) and the output folders of other restores (a sub-folder holding a ``restore.json``), with those
    output folders. Symbolic links to folders are followed, each real folder once (no cycles)."""
    skip = out_dir.resolve() if out_dir.exists() else out_dir.absolute()
    seen = {input_dir.resolve()}
    folders, other_restores = [], []
    for root, dirs, _files in os.walk(input_dir, followlinks=True):
        kept = []
        for name in sorted((d for d in dirs if not d.startswith(".")), key=lambda d: (Path(root, d).is_symlink(), d)):
            real = Path(root, name).resolve()
            if real == skip or real in seen:
                continue
            seen.add(real)
            if (real / MANIFEST_NAME).is_file():
                other_restores.append(Path(root, name))
            else:
                kept.append(name)
        dirs[:] = kept
        folders.append(Path(root))
    return folders, other_restores


def _other_restores_notice(folders: list[Path]) -> str:
    """The notice for the sub-folders ``recursive`` skipped because they hold another restore's outputs."""
    shown = shortlist([str(folder) for folder in folders], 5, more=" and {} more")
    return (f"skipped {len(folders)} sub-folder(s) holding a {MANIFEST_NAME}, the outputs of another restore rather "
            f"than degraded photos: {shown}; to restore one of them, give it as --input-dir")


def _nested_hint(input_dir: Path, out_dir: Path) -> str:
    """For a folder without images of its own: its sub-folders that hold images, and --recursive."""
    counts = [(folder, len(list_images(folder)[0])) for folder in _image_folders(input_dir, out_dir)[0][1:]]
    nested = [(folder, count) for folder, count in counts if count]
    if not nested:
        return ""
    shown = shortlist([f"{folder} ({count})" for folder, count in nested], 5, more=" and {} more")
    return (f"; sub-folders are searched with --recursive (their outputs go to the same sub-folders of --out), "
            f"and these hold images: {shown}")


def _key(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder``, '/'-separated: how restore.json names inputs and outputs."""
    return path.relative_to(folder).as_posix()


def _fit_policy(card: ModelCard, pad: str | None) -> FitPolicy:
    check_pad_mode(pad, allow_none=False)  # an image of any size is padded to the model's multiple and cropped back
    return FitPolicy(card.input_multiple, _pad_mode(card.pad_mode, pad))


def _pad_mode(card_pad_mode: str | None, pad: str | None) -> str:
    """The padding applied: ``pad``, else the card's pad mode, else (a card whose pad mode is none) reflect."""
    return pad or (card_pad_mode if card_pad_mode not in (None, "none") else "reflect")


def _effective_overrides(card: ModelCard, model_args: dict[str, Any]) -> dict[str, Any]:
    """The ``--model-arg`` overrides that change the card's arguments: one that repeats the card's own value (width=16
    on a card with width 16) changes nothing, so the model keeps its card (and its sample checkpoint)."""
    return {key: value for key, value in model_args.items() if key not in card.args or card.args[key] != value}


def _check_tile(tile: int, overlap: int, multiple: int) -> None:
    """``tile`` checked against ``overlap`` before any work: geometry.tile_size, whose GeometryError names the
    options to change."""
    tile_size(tile, overlap, multiple)


def _fit_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The fit policy a restore.json's images were padded with: its ``fit``, else (written without one) what its
    card and ``pad`` give."""
    if isinstance(manifest.get("fit"), dict):
        return {"multiple": manifest["fit"].get("multiple"), "pad_mode": manifest["fit"].get("pad_mode")}
    card = (manifest.get("model") or {}).get("card") or {}
    return {"multiple": card.get("input_multiple"), "pad_mode": _pad_mode(card.get("pad_mode"), manifest.get("pad"))}


def _setup_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How two restore.json setups differ, in words: the model with its effective arguments (the card record holds
    them with the overrides applied; the raw overrides are not compared), weights, dtype, execution, tiling, library
    versions, and the padding applied."""
    def effective(manifest: dict[str, Any]) -> dict[str, Any]:
        return {**manifest, "model": {**(manifest.get("model") or {}), "args_overrides": None}}

    differences = identity_differences(effective(old), effective(new), fields=_IDENTITY)
    before, after = _fit_of(old), _fit_of(new)
    if before["multiple"] == after["multiple"] == 1:  # nothing is padded: the pad mode is never used
        before, after = {**before, "pad_mode": None}, {**after, "pad_mode": None}
    if before != after:
        differences.append(f"padding: {before['pad_mode']} to a multiple of {before['multiple']} → "
                           f"{after['pad_mode']} to a multiple of {after['multiple']}")
    return differences


def _input_root_of(manifest: dict[str, Any]) -> str | None:
    """The folder a restore.json names its inputs relative to: its ``input_root``, else (written without one) its
    ``input_dir``, or that file's folder when it was one image; None when it records neither."""
    if manifest.get("input_root"):
        return str(manifest["input_root"])
    if not manifest.get("input_dir"):
        return None
    given = Path(manifest["input_dir"])
    one_image = given.suffix.lower() in IMAGE_EXTENSIONS and not given.is_dir()
    return str(given.parent if one_image else given)


def _continue_folder(out_dir: Path, manifest: dict[str, Any], overwrite: bool, present: list[Path],
                     covered: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The manifest to write and the notices to give. An earlier restore into ``out_dir`` (its ``restore.json``)
    with the same setup is continued: its records carry over. One that recorded no image (it failed or was
    interrupted before the first) is continued with any setup, with a notice. Refused: another setup; outputs of
    another input folder that this restore does not cover (``covered``: its outputs' names), which one
    ``restore.json`` could not name; a folder without ``restore.json`` that holds one of the outputs (``present``:
    someone else's files). With ``overwrite`` none is refused, and the earlier outputs of another setup or input
    folder that this restore does not cover are named in a notice as no longer recorded."""
    from bench_ir.results import ManifestError, read_manifest_file

    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        if present and not overwrite:
            names = ", ".join(p.name for p in present[:3]) + (f" ... ({len(present)} files)" if len(present) > 3
                                                               else "")
            raise FileExistsError(f"{out_dir} already holds {names} but no {MANIFEST_NAME}: not a bench-ir restore "
                                  "folder. Choose another --out, or pass --overwrite to replace those files")
        return manifest, []
    try:
        old = read_manifest_file(path)
    except (ManifestError, OSError):
        if overwrite:  # replaced as it is
            return manifest, []
        raise
    differences = _setup_differences(old, manifest)
    left = sorted(name for name in old.get("images") or {} if name not in covered and (out_dir / name).is_file())
    old_root = _input_root_of(old)
    other_root = old_root if left and old_root is not None and old_root != manifest["input_root"] else None
    if not differences and other_root is None:
        return {**manifest, "created": old.get("created", manifest["created"]),
                "continued": [*old.get("continued", []), {"at": manifest["created"], "command": manifest["command"]}],
                **{record: old.get(record) or {} for record in (*_RECORDS, "unreadable")}}, []
    if not old.get("images"):
        changed = ", ".join(difference.split(":")[0] for difference in differences)
        return manifest, [f"{path} records no restored image (status: {old.get('status')}), so this restore "
                          f"continues the folder with its own setup (another {changed})"]
    if not overwrite:
        raise ValueError(_refusal(out_dir, differences, other_root, left))
    return manifest, _dropped_records_notice(out_dir, left, differences, other_root)


def _refusal(out_dir: Path, differences: list[str], other_root: str | None, left: list[str]) -> str:
    """The error for continuing a folder restored with another setup, or holding outputs of another input folder
    (``left``) that this restore would leave there."""
    if differences:
        return (f"{out_dir} holds images restored with another setup: {'; '.join(differences)}. Choose another --out, "
                "or pass --overwrite to restore every image again")
    shown = shortlist(left, 5, more=" and {} more")
    return (f"{out_dir} holds {len(left)} output(s) restored from another input folder, {other_root}, that this "
            f"--input-dir does not restore ({shown}), and {MANIFEST_NAME} names the inputs of one folder. Choose "
            "another --out for this --input-dir, or pass --overwrite to restore into it anyway (those outputs are "
            "then no longer recorded)")


def _dropped_records_notice(out_dir: Path, left: list[str], differences: list[str],
                            other_root: str | None) -> list[str]:
    """With ``overwrite``: the outputs of the earlier restore (another setup or input folder) still in ``out_dir``
    that this restore does not redo (``left``), which restore.json no longer records."""
    if not left:
        return []
    why = f"from {other_root}" if other_root else f"with another setup ({'; '.join(differences)})"
    shown = shortlist(left, 5, more=" and {} more")
    return [f"{len(left)} output(s) in {out_dir} were restored {why} and are not among this restore's images: "
            f"{shown}; {MANIFEST_NAME} no longer records them, so delete them or restore them again into this folder"]


def _keep_true_records(manifest: dict[str, Any], out_dir: Path, covered: set[str], kept: set[str]) -> None:
    """Keep in ``manifest``'s per-output records (``images``, ``input_sha256``, ``auto_tiled``, ``nonfinite``) what
    still holds: of the outputs this restore covers, those it keeps (the others are restored again); of the others,
    those whose file is there (a restore of part of the folder leaves them as they are)."""
    for record in _RECORDS:
        manifest[record] = {name: value for name, value in (manifest.get(record) or {}).items()
                            if (name in kept if name in covered else (out_dir / name).is_file())}


def _unreadable_elsewhere(manifest: dict[str, Any], input_root: Path, jobs: list[tuple[Path, Path]]) -> dict[str, str]:
    """The inputs an earlier restore of this folder could not decode that this one does not read again (it covers
    part of the folder) and that are still there: their outputs are still missing."""
    read_now = {_key(source, input_root) for source, _ in jobs}
    return {name: reason for name, reason in (manifest.get("unreadable") or {}).items()
            if name not in read_now and (input_root / name).exists()}


def _stale_outputs(jobs: list[tuple[Path, Path]], manifest: dict[str, Any], input_root: Path,
                   out_dir: Path) -> dict[str, str]:
    """The outputs in ``out_dir`` that no longer stand for their input, with the reason: ``restore.json``
    (``manifest``, continued) does not record them, records another input for them, or records an input sha256 that
    the input no longer has. An output recorded without a digest (by a bench-ir from before digests) is trusted on
    its input's path."""
    recorded, digests = manifest.get("images") or {}, manifest.get("input_sha256") or {}
    stale = {}
    for source, out in jobs:
        name = _key(out, out_dir)
        if not out.is_file():
            continue
        if recorded.get(name) != _key(source, input_root):
            stale[name] = ("restore.json does not record it" if name not in recorded
                           else f"it was restored from {recorded[name]}")
        elif name in digests and digests[name] != _sha256_or_none(source):
            stale[name] = f"{_key(source, input_root)} has changed since it was restored"
    return stale


def _sha256_or_none(path: Path) -> str | None:
    """The file's sha256, or None when it cannot be read (a broken link: it is then restored again, and named)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def _write_manifest(out_dir: Path, manifest: dict[str, Any], restored: dict[str, str],
                    digests: dict[str, str] | None = None) -> None:
    """Write ``restore.json``; ``images`` maps every output file written so far to its input file (paths relative to
    the output and the input folder: the file name, or ``sub/folder/name`` with ``recursive``), ``input_sha256``
    each output written since input digests were recorded to the sha256 of its input file."""
    import json

    manifest["images"] = {**(manifest.get("images") or {}), **restored}
    manifest["input_sha256"] = {**(manifest.get("input_sha256") or {}), **(digests or {})}
    write_text_atomic(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=2, default=str) + "\n")


def _restore_one(model: torch.nn.Module, source: Path, out: Path, policy: FitPolicy,
                 options: EvalOptions) -> tuple[int | None, int]:
    """Read ``source``, restore it at its own size, write ``out`` (8-bit PNG, carrying the source's EXIF
    orientation). Returns the tile size when the image was tiled after a GPU out-of-memory error (else None) and
    the number of NaN/Inf values of the model's output (NaN written as 0, ±Inf clipped to 0 or 1)."""
    x = uint8_to_tensor(read_rgb_uint8(source)).unsqueeze(0).to(options.device)
    try:
        restored, tile = restore(model, x, policy, options)
    except OutputShapeError as err:
        raise output_shape_error(str(source), model, str(err)) from None
    bad_values = int((~torch.isfinite(restored)).sum())
    image = torch.nan_to_num(restored[0], nan=0.0) if bad_values else restored[0]
    write_png_uint8(out, image.clamp(0, 1).cpu(), orientation=exif_orientation(source))
    return tile, bad_values
