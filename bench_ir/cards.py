"""Model cards: YAML files in registry/ (or user files / entry-point plugins) validated into ModelCard.

A card names a factory (``module:callable``) that is imported only when the model is built, so listing
models never imports an architecture. Building a model with its weights is
:func:`bench_ir.checkpoints.create_model` (checkpoints imports cards, never the other way round).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import warnings
import weakref
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench_ir.file_versions import memoised_per_file_version
from bench_ir.resources import registry_dir
from bench_ir.safety import UnsafePathError, safe_name
from bench_ir.signatures import (
    card_dir_of,
    check_args,
    import_file_module,
    locate_module_file,
    parse_factory,
    runtime_parameters,
)
from bench_ir.yamlio import SpecError, build_dataclass, read_yaml, yaml_files

if TYPE_CHECKING:  # torch is imported by the code that builds a model, not to read a card
    from torch import nn

__all__ = [
    "ArgDim",
    "CheckpointSpec",
    "PaperRef",
    "ModelCard",
    "load_card",
    "list_cards",
    "list_models",
    "get_card",
    "find_card",
    "with_model_args",
    "check_card_args",
    "check_card_name",
    "check_distinct_card_names",
    "check_checkpoint_spec",
    "card_record",
    "model_record",
    "factory_source_sha256",
    "count_parameters",
    "parameter_count_mismatch",
    "inference_parameter_total",
    "training_only_module_names",
    "default_checkpoint_path",
    "missing_default_checkpoint",
    "sample_checkpoint",
    "chosen_checkpoint",
    "sample_checkpoint_advice",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "bench_ir.models"


@dataclass(frozen=True)
class ArgDim:
    """A checkpoint tensor dimension that a factory argument sets: ``shape[dim] == per_unit * args[arg]`` for the
    tensor ``key`` (a key of the model's state_dict, prefixes removed; dimensions count from 0). A checkpoint whose
    only differences are such dimensions is loaded with the argument value that fits (a mismatch error names it)."""

    key: str
    dim: int
    arg: str
    per_unit: int = 1


@dataclass(frozen=True)
class CheckpointSpec:
    """How official weights are stored.

    format: ``lightning`` (dict with ``state_dict``), ``basicsr`` (dict with ``params``),
    ``state_dict`` (plain mapping), ``safetensors``, or ``auto`` (detect).
    strip_prefixes: key prefixes removed when loading (e.g. ``net.`` for Lightning, ``module.`` for DDP).
    key: the entry of a ``torch.save`` dict that holds the weights, for files with several weight sets (e.g.
    ``params_ema`` for BasicSR's EMA weights); default: the first of ``state_dict``, ``params``, ``params_ema``,
    ``model_state_dict``, ``model``. A file without this entry is an error; a plain state_dict ignores it.
    arg_dims: tensor dimensions set by a factory argument (:class:`ArgDim`), e.g. AirNet's MoCo queue, whose
    dimension 1 is 256 x ``train_batch_size``.
    """

    format: Literal["auto", "lightning", "basicsr", "state_dict", "safetensors"] = "auto"
    strip_prefixes: list[str] = field(default_factory=list)
    strict: bool = True
    key: str | None = None
    arg_dims: list[ArgDim] = field(default_factory=list)


@dataclass(frozen=True)
class PaperRef:
    title: str
    venue: str = ""
    year: int | None = None
    url: str = ""
    code: str = ""
    license: str = ""


@dataclass(frozen=True)
class ModelCard:
    """Everything bench-ir needs to build, load, size and cite one model.

    input_multiple: H and W the network accepts must be multiples of this.
    pad_mode: what the engine does with other sizes: ``none`` (the protocol must guarantee the size;
    otherwise an error), ``reflect`` or ``replicate`` (pad bottom/right, crop the output back).
    expected_params: total parameter count (``parameters()``) of the model built with the card's own ``args``:
    ``validate --import`` fails on another count, a model built by create_model warns when counted
    (:func:`count_parameters`), and the test suite checks every registered card.
    inference_params: parameters used at inference (without training-only heads), if different.
    published: figures printed in papers (e.g. params_m, flops_g, memory) for reference only.
    leaderboard_key: the ``model_key``/``method`` of this model in registry/leaderboard/*.csv.
    """

    name: str
    display_name: str
    factory: str
    args: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    expected_params: int | None = None
    inference_params: int | None = None
    input_multiple: int = 1
    pad_mode: Literal["none", "reflect", "replicate"] = "none"
    batch_size_one: bool = False
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    official_checkpoints: dict[str, str] = field(default_factory=dict)
    default_checkpoint: str | None = None
    paper: PaperRef | None = None
    published: dict[str, Any] = field(default_factory=dict)
    leaderboard_key: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    parity: str = ""
    notes: str = ""
    source: str = ""

    @property
    def is_placeholder(self) -> bool:
        """True for models that restore nothing (the ``input`` row)."""
        return self.factory.endswith(":InputPassthrough")


def load_card(path: str | Path) -> ModelCard:
    """Read and validate one model card file."""
    path = Path(path)
    data = read_yaml(path)
    data.setdefault("source", str(path))
    card = build_dataclass(ModelCard, data, str(path))
    check_card_name(card.name, str(path))
    parse_factory(card.factory, str(path))
    check_checkpoint_spec(card.checkpoint, str(path))
    if card.input_multiple < 1:
        raise SpecError(f"{path}: field 'input_multiple': must be >= 1")
    return card


def check_checkpoint_spec(spec: CheckpointSpec, where: str) -> None:
    """A SpecError naming ``where`` for a ``checkpoint.key`` that cannot choose anything: an empty one, or one on a
    card whose release is safetensors (a safetensors file holds a single set of weights), and for an ``arg_dims``
    entry with a negative ``dim`` or a ``per_unit`` below 1."""
    for index, entry in enumerate(spec.arg_dims):
        if entry.dim < 0 or entry.per_unit < 1:
            raise SpecError(f"{where}: field 'checkpoint': field 'arg_dims'[{index}]: dim must be >= 0 and per_unit "
                            f">= 1 (got dim {entry.dim}, per_unit {entry.per_unit}); correct the entry for "
                            f"{entry.key}")
    if spec.key is None:
        return
    if not spec.key.strip():
        raise SpecError(f"{where}: field 'checkpoint': field 'key': must name the entry of the checkpoint file "
                        "that holds the weights (e.g. params_ema), not be empty")
    if spec.format == "safetensors":
        raise SpecError(f"{where}: field 'checkpoint': field 'key': a safetensors file holds a single set of "
                        f"weights, so key ({spec.key}) only applies to torch.save formats (lightning, basicsr, "
                        "state_dict, auto)")


def check_card_name(name: str, where: str) -> None:
    """A card's ``name`` becomes part of run folder names (``runs/train/<time>-<name>-<recipe>``): it must be a safe
    name (bench_ir.safety.safe_name: no '/', no '..'); else a SpecError naming ``where`` and the field."""
    try:
        safe_name(name, f"{where}: field 'name':")
    except UnsafePathError as err:
        raise SpecError(str(err)) from err


def _plugin_cards() -> list[ModelCard]:
    """Cards exposed by installed plugins: each entry point returns a card path, a dict or a list. The entry points
    are scanned once per ``sys.path`` (where they are found): a folder added to it later (a plugin a test puts on
    ``sys.path``) is scanned again. The cards are shared: frozen, and their dicts must not be changed either."""
    return list(_scan_plugin_cards(tuple(sys.path)))


@lru_cache(maxsize=16)
def _scan_plugin_cards(search_path: tuple[str, ...]) -> tuple[ModelCard, ...]:
    """The cards of every entry point of ENTRY_POINT_GROUP found on ``search_path`` (``sys.path``, the cache key)."""
    cards: list[ModelCard] = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        provided = entry.load()
        provided = provided() if callable(provided) else provided
        items = provided if isinstance(provided, (list, tuple)) else [provided]
        for item in items:
            where = f"entry point {entry.name} ({entry.value})"
            if isinstance(item, ModelCard):
                check_card_name(item.name, item.source or where)
                check_checkpoint_spec(item.checkpoint, item.source or where)
                cards.append(item)
            elif isinstance(item, dict):
                card = build_dataclass(ModelCard, {"source": where, **item}, where)
                check_card_name(card.name, where)
                check_checkpoint_spec(card.checkpoint, where)
                cards.append(card)
            else:
                cards.append(load_card(item))
    return tuple(cards)


@memoised_per_file_version()
def _registry_card(path: str) -> ModelCard:
    """``load_card(path)`` once per version of the file (bench_ir.file_versions.memoised_per_file_version), since a name
    is looked up in the whole registry: a suite of 15 entries read every card 15 times."""
    return load_card(path)


def check_distinct_card_names(cards: list[ModelCard], where: str) -> None:
    """A SpecError naming ``where`` (a registry folder) and both files when two of ``cards`` declare the same
    ``name``: a name must identify one card (`--model NAME` would otherwise build whichever was read last)."""
    first: dict[str, ModelCard] = {}
    for card in cards:
        other = first.setdefault(card.name, card)
        if other is not card:
            raise SpecError(f"model registry {where}: {other.source} and {card.source} both declare the name "
                            f"'{card.name}'; a name must identify one card: rename one of them")


def list_cards(registry: str | Path | None = None) -> list[ModelCard]:
    """All cards: the built-in registry (or ``registry``: every ``*.yaml`` and ``*.yml`` file in it), then installed
    plugins; sorted by name. A ``registry`` that is not a folder is an error naming it (FileNotFoundError when it
    does not exist, else ValueError); two of its files declaring the same name are a SpecError naming both."""
    folder = Path(registry) if registry else registry_dir()
    if registry and not folder.is_dir():
        if not folder.exists():
            raise FileNotFoundError(f"model registry folder {folder} does not exist")
        raise ValueError(f"model registry {folder} is a file, not a folder of model cards")
    read = [_registry_card(str(path)) for path in yaml_files(folder)]
    check_distinct_card_names(read, str(folder))
    cards = {c.name: c for c in read}
    for card in _plugin_cards():
        cards.setdefault(card.name, card)
    return sorted(cards.values(), key=lambda c: c.name)


def list_models(pattern: str = "*", registry: str | Path | None = None) -> list[str]:
    """Names of registered models matching the glob ``pattern``."""
    import fnmatch

    return [c.name for c in list_cards(registry) if fnmatch.fnmatch(c.name, pattern)]


def get_card(name_or_path: str | Path | ModelCard, registry: str | Path | None = None) -> ModelCard:
    """Resolve a card by registered name, or read it from a ``.yaml`` path. A name or display name in any
    letter case is accepted when it names exactly one card (``MIRAGE-T`` and ``Mirage-t`` give ``mirage-t``)."""
    if isinstance(name_or_path, ModelCard):
        return name_or_path
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return load_card(text)
    cards = {c.name: c for c in list_cards(registry)}
    if not cards:
        raise KeyError(f"unknown model '{text}': the model registry {Path(registry) if registry else registry_dir()} "
                       "holds no model cards (*.yaml, *.yml files); put the card there or give its file as the model")
    if text in cards:
        return cards[text]
    folded = {c.name for c in cards.values() if text.casefold() in (c.name.casefold(), c.display_name.casefold())}
    if len(folded) == 1:
        return cards[folded.pop()]
    hint = difflib.get_close_matches(text, list(cards), n=3)
    did_you_mean = f" Did you mean: {', '.join(hint)}?" if hint else ""
    raise KeyError(f"unknown model '{text}'.{did_you_mean} Known models: {', '.join(sorted(cards))}")


def find_card(name_or_path: str | Path) -> ModelCard | None:
    """The card :func:`get_card` resolves, or None when it resolves none: an unknown or ambiguous name, a card file
    that is missing or no valid card (for messages and reports that only add what a card says when there is one)."""
    try:
        return get_card(name_or_path) if str(name_or_path) else None
    except (KeyError, OSError, ValueError):
        return None


def with_model_args(card: ModelCard, overrides: dict[str, Any] | None) -> ModelCard:
    """``card`` with some factory arguments replaced (e.g. ``{"queue_size": 3}`` for a single-task AirNet
    checkpoint); the display name says that the arguments were changed, and the card's shipped
    ``default_checkpoint``, ``expected_params`` and ``inference_params`` (both counts of its own arguments) are
    dropped, so that the card a training run writes with the overrides (model-card.yaml) states no count it does not
    have. No overrides: ``card`` itself."""
    if not overrides:
        return card
    shown = ", ".join(f"{key}={value}" for key, value in overrides.items())
    return replace(card, args={**card.args, **overrides}, display_name=f"{card.display_name} ({shown})",
                   default_checkpoint=None, expected_params=None, inference_params=None)


def resolve_factory(card: ModelCard):
    """Import the card's factory lazily; an import failure names the card and the field.

    For a card read from a file, the card's folder is searched too, so ``examples/my-net.yaml`` can name
    ``my_net:MyNet`` for ``examples/my_net.py`` without installing anything; ``my_net.py:MyNet`` imports that
    file by path (relative to the card's folder). Importing runs the module's code: a card is code to trust. Any
    error the module raises when imported (a SyntaxError, a RuntimeError) is a SpecError naming the card file, the
    module and the error."""
    ref = parse_factory(card.factory, card.source or card.name)
    module_name, attr = ref.file or ref.module, ref.attr
    card_dir = card_dir_of(card.source)
    try:
        if ref.file is not None:
            path = locate_module_file(ref, card_dir)
            if path is None:
                raise ImportError(f"no file {ref.file} next to the card")
            module = import_file_module(path)
        else:
            located = locate_module_file(ref, card_dir)
            if card_dir is not None and located is not None and card_dir in located.resolve().parents:
                module = _import_from_card_dir(module_name, card_dir, located)
            else:
                module = importlib.import_module(module_name)
    except ImportError as err:
        raise SpecError(f"{card.source or card.name}: field 'factory': cannot import module "
                        f"'{module_name}' ({err})") from err
    except Exception as err:  # the module's own code failed: a SyntaxError, or anything raised at import
        raise SpecError(f"{card.source or card.name}: importing {module_name}: {type(err).__name__}: {err} (the "
                        "card's factory module fails when imported; correct it)") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise SpecError(f"{card.source or card.name}: field 'factory': module '{module_name}' has no "
                        f"attribute '{attr}'") from err


def factory_from(card: ModelCard, folder: Path) -> str:
    """``card``'s factory as a card file in ``folder`` must write it to build the same network (a training run's
    model-card.yaml): a module found in the card's own folder (``tiny_unet:TinyUNet`` next to
    ``examples/tiny-unet.yaml``) becomes its file, relative to ``folder`` when both lie below a folder other than
    the file system's root (``../../../examples/tiny_unet.py:TinyUNet`` from ``runs/train/<run>``), else absolute,
    since the card's folder is not searched from ``folder``; an installed module (``bench_ir.models.mirage:MIRAGE``)
    stays as it is."""
    ref = parse_factory(card.factory, card.source or card.name)
    card_dir = card_dir_of(card.source)
    located = locate_module_file(ref, card_dir) if card_dir is not None else None
    if located is None or (ref.file is None and card_dir not in located.resolve().parents):
        return card.factory
    module, here = located.resolve(), Path(folder).resolve()
    try:
        shared = Path(os.path.commonpath([module, here]))
    except ValueError:  # another drive (Windows)
        shared = None
    path = module if shared is None or shared == Path(shared.anchor) else os.path.relpath(module, here)
    return f"{Path(path).as_posix()}:{ref.attr}"


def _import_from_card_dir(module_name: str, card_dir: Path, path: Path) -> Any:
    """Import ``module_name`` from the card's folder (``path`` is its file there). A module of that name imported
    earlier from another folder (another card's ``mynet.py``) is dropped from sys.modules first, so each card gets
    its own module; objects made from the old one keep working. The folder stays on sys.path (appended, never
    shadowing installed modules) for imports the module makes later."""
    loaded = sys.modules.get(module_name)
    loaded_file = getattr(loaded, "__file__", None) if loaded is not None else None
    if loaded is not None and (loaded_file is None or Path(loaded_file).resolve() != path.resolve()):
        head = module_name.split(".")[0]
        for name in [n for n in sys.modules if n == head or n.startswith(head + ".")]:
            del sys.modules[name]
    importlib.invalidate_caches()
    sys.path.insert(0, str(card_dir))
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(str(card_dir))
        if str(card_dir) not in sys.path:
            sys.path.append(str(card_dir))


def card_record(card: ModelCard) -> dict[str, Any]:
    """The card as a manifest records it: every field, with ``source`` as a portable path
    (bench_ir.manifest.portable_path: relative to the project or the current folder, never a home folder)."""
    from dataclasses import asdict

    from bench_ir.manifest import portable_path

    return {**asdict(card), "source": portable_path(card.source)}


def factory_source_sha256(card: ModelCard) -> str | None:
    """sha256 of the code of the source file that defines the card's factory (found without importing it,
    bench_ir.signatures.locate_module_file), so that a run of a researcher's own model knows when its code changed.
    The code is the file's syntax tree (``ast.dump``): comments, blank lines and layout do not count, a docstring
    does; a file that does not parse counts byte for byte. None for bench-ir's own factories (its version pins their
    code) or when the file cannot be found. Only that file: modules it imports are not covered."""
    import ast
    import hashlib

    try:
        ref = parse_factory(card.factory, card.source or card.name)
        if ref.module is not None and ref.module.split(".")[0] == "bench_ir":
            return None
        path = locate_module_file(ref, card_dir_of(card.source))
        if path is None:
            return None
        source = path.read_bytes()
    except (SpecError, OSError):
        return None
    try:
        code = ast.dump(ast.parse(source)).encode("utf-8")
    except (SyntaxError, ValueError):
        code = source
    return hashlib.sha256(code).hexdigest()


def model_record(card: ModelCard, params: int | None, args_overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The ``model`` entry of a manifest: the card's name and display name, the model's parameter count, the
    ``--model-arg`` overrides, the card (:func:`card_record`) and its factory's source sha256
    (:func:`factory_source_sha256`)."""
    return {"name": card.name, "display_name": card.display_name, "params": params, "args_overrides": args_overrides,
            "card": card_record(card), "factory_sha256": factory_source_sha256(card)}


def check_card_args(card: ModelCard, factory: Any | None = None) -> None:
    """Check the card's ``args`` (with any --model-arg overrides) against the factory's real signature, importing
    the factory (never calling it) unless given; a SpecError names the card file and the argument."""
    factory = resolve_factory(card) if factory is None else factory
    params = runtime_parameters(factory)
    if params is not None:
        check_args(params, card.args, f"model card {card.source or card.name}", card.factory)


def _card_folder(card: ModelCard) -> Path:
    """The folder a card's relative paths start from: its file's folder, the registry for a card without a file."""
    return Path(card.source).parent if card.source and Path(card.source).is_file() else registry_dir()


def _ships_with_bench_ir(card: ModelCard) -> bool:
    """Whether ``card`` is one of bench-ir's own (its file is in the built-in registry)."""
    source = Path(card.source) if card.source else None
    return source is not None and source.is_file() and source.resolve().parent == registry_dir().resolve()


def default_checkpoint_path(card: ModelCard) -> Path | None:
    """The file the card's ``default_checkpoint`` names, relative to the card file's folder (the registry for a card
    that is not read from a file); None when the card names none. Whether it exists is not checked."""
    if not card.default_checkpoint:
        return None
    return (_card_folder(card) / card.default_checkpoint).resolve()


def missing_default_checkpoint(card: ModelCard) -> str | None:
    """None when the card names no ``default_checkpoint`` or its file exists; else a sentence naming the card file,
    the field, its value and the path it resolves to."""
    path = default_checkpoint_path(card)
    if path is None or path.is_file():
        return None
    folder = "the card's folder" if card.source and Path(card.source).is_file() else f"the registry {registry_dir()}"
    return (f"{card.source or card.name}: field 'default_checkpoint': {card.default_checkpoint} names {path}, which "
            f"does not exist (the field is a path relative to {folder})")


def sample_checkpoint(card: ModelCard) -> Path | None:
    """The card's sample checkpoint (``default_checkpoint``, relative to the card file's folder, the registry for
    built-in cards), or None when the card names none. A named file that is missing is a FileNotFoundError: for a
    card shipped with bench-ir it says to reinstall bench-ir; for any other card it names the card file, the field
    and the path."""
    path = default_checkpoint_path(card)
    if path is None:
        return None
    if path.is_file():
        return path
    if _ships_with_bench_ir(card):
        raise FileNotFoundError(f"model card '{card.name}' names the sample checkpoint {path} "
                                f"(default_checkpoint: {card.default_checkpoint}) but the file is missing; reinstall "
                                "bench-ir or pass --checkpoint")
    raise FileNotFoundError(f"model card {missing_default_checkpoint(card)}; correct the field or pass --checkpoint")


def sample_checkpoint_advice(card: ModelCard) -> str | None:
    """How to use the card's shipped sample checkpoint (``--sample-checkpoint``, of `run` and `restore`), as an
    alternative for :func:`bench_ir.runner.missing_weights_message`; None when the card ships none."""
    if card.default_checkpoint:
        return ("--sample-checkpoint for the sample checkpoint shipped with bench-ir (trained on a CPU on a few "
                "photos: a demonstration, not the published model)")
    return None


def chosen_checkpoint(card: ModelCard, checkpoint: str | Path | None, use_sample_checkpoint: bool) -> Path | None:
    """The weights file asked for by ``--checkpoint`` (``checkpoint``) or ``--sample-checkpoint``
    (``use_sample_checkpoint``: the card's shipped sample checkpoint, :func:`sample_checkpoint`); None
    when neither is given. Both at once, or ``--sample-checkpoint`` for a card that ships none, is a ValueError; so is
    one for a card whose ``--model-arg`` overrides changed the arguments its sample checkpoint was trained with
    (:func:`with_model_args` drops it); overrides that repeat the card's own values keep it."""
    if not use_sample_checkpoint:
        return Path(checkpoint) if checkpoint else None
    if checkpoint:
        raise ValueError(f"--sample-checkpoint and --checkpoint {checkpoint} are two choices of weights; give one")
    shipped = sample_checkpoint(card)
    if shipped is not None:
        return shipped
    written = _card_as_written(card)
    if written is None or not written.default_checkpoint:
        raise ValueError(f"model '{card.name}' ships no sample checkpoint; pass --checkpoint FILE")
    changed = {key: value for key, value in card.args.items() if written.args.get(key, _UNSET) != value}
    if not changed:
        return sample_checkpoint(written)
    shown = "; ".join(f"{key}={value}, where the card has {written.args[key]}" if key in written.args
                      else f"{key}={value}, which the card leaves at the model's default"
                      for key, value in changed.items())
    raise ValueError(f"model '{card.name}' ships a sample checkpoint trained with the card's own arguments, and "
                     f"--model-arg changes them ({shown}), so it does not fit this model; pass --checkpoint FILE with "
                     "weights for these arguments, or leave out --model-arg to use the sample checkpoint")


_UNSET = object()


def _card_as_written(card: ModelCard) -> ModelCard | None:
    """``card`` as its file states it, before any ``--model-arg`` overrides; None for a card without a file or one
    whose file no longer reads."""
    if not card.source or not Path(card.source).is_file():
        return None
    try:
        return load_card(card.source)
    except (OSError, ValueError):  # SpecError is a ValueError
        return None


_COUNT_CHECKED: weakref.WeakSet = weakref.WeakSet()  # models whose count was compared with their card's


def _parameter_total(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def training_only_module_names(model: nn.Module) -> list[str]:
    """Names from the model's optional ``training_only_modules()`` (heads used only by the training objective);
    empty when it has none."""
    method = getattr(model, "training_only_modules", None)
    return list(method()) if callable(method) else []


def inference_parameter_total(model: nn.Module) -> int:
    """Number of parameters outside the model's training-only modules (shared ones once): those used at inference."""
    excluded = {id(p) for name in training_only_module_names(model) for p in model.get_submodule(name).parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in excluded)


def parameter_count_mismatch(card: ModelCard, model: nn.Module,
                             field_name: Literal["expected_params", "inference_params"] = "expected_params",
                             ) -> str | None:
    """None when the card states no ``field_name`` or ``model`` has that many parameters (``expected_params``: all of
    them; ``inference_params``: those outside its training-only modules); else a sentence naming the card file, the
    field and both numbers."""
    stated = getattr(card, field_name)
    inference = field_name == "inference_params"
    count = inference_parameter_total(model) if inference else _parameter_total(model)
    if stated is None or stated == count:
        return None
    counted = "parameters outside its training-only modules" if inference else "parameters"
    return (f"model card {card.source or card.name}: {field_name} is {stated} but the model built from "
            f"{card.factory} has {count} {counted}")


def _built_as_declared(card: ModelCard) -> bool:
    """Whether ``card`` still has the ``args`` its file (or plugin) declares: its ``expected_params`` counts the model
    of those args, not of --model-arg or create_model overrides."""
    if not card.source:
        return False
    path = Path(card.source)
    try:
        if path.is_file():
            declared: ModelCard | None = _registry_card(str(path))
        else:  # a plugin's card: the one registered under its name from the same entry point
            declared = next((c for c in list_cards() if c.name == card.name and c.source == card.source), None)
    except (OSError, SpecError):
        return False
    return declared is not None and declared.args == card.args


def count_parameters(model: nn.Module) -> int:
    """Number of parameters as ``sum(p.numel() for p in model.parameters())`` (shared ones once).

    A model built by :func:`bench_ir.checkpoints.create_model` with its card's own ``args`` is compared with the
    card's ``expected_params`` the first time it is counted (``run``, ``profile``, ``restore`` and ``train`` count
    it); a different count is a UserWarning naming the card and both numbers."""
    card = getattr(model, "bench_ir_card", None)
    if isinstance(card, ModelCard) and model not in _COUNT_CHECKED:
        _COUNT_CHECKED.add(model)
        problem = parameter_count_mismatch(card, model) if _built_as_declared(card) else None
        if problem:
            warnings.warn(f"{problem}: the card's count is wrong or the factory builds another network than the "
                          "card describes", UserWarning, stacklevel=2)
    return _parameter_total(model)
