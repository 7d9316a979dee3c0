"""Official checkpoint formats: reading, strict loading with diagnostics, sha256, safetensors export.

Supported files (the structure is detected from the content, so any supported file loads for any card;
the card's ``checkpoint.format`` records what the official release uses):

- ``lightning``: a ``torch.save`` dict with ``state_dict`` (keys ``net.*``) and ``pytorch-lightning_version``;
- ``basicsr``: a dict with ``params`` (used when present) or ``params_ema``;
- ``state_dict``: a plain mapping of tensors, or a dict holding one under ``state_dict`` /
  ``model_state_dict`` / ``model`` (e.g. ``{'state_dict': ..., 'optimizer': ..., 'epoch': ...}``), or tensors at
  the top level beside metadata that holds no tensor (``{**state_dict, 'epoch': 5}``: the tensors are read as a
  Lightning file's weights are, beside its metadata);
- ``safetensors``: by suffix or header;
- ``module``: a whole ``torch.save(model)`` pickle, read only with ``trust_pickle``: its ``state_dict()`` (so is a
  pickled model under an entry, ``{'model': model}``).

Weight sets: a dict's weights are the entry named by the card's ``checkpoint.key`` (e.g. ``params_ema``), else the
first of ``state_dict``, ``params``, ``params_ema``, ``model_state_dict``, ``model``. A file holding several weight
sets (those entries, or ``state_dict_ema`` / ``ema_state_dict`` / ``model_ema``) for a card without ``key``
loads that first one and says so in a warning.

Prefixes: the card's ``strip_prefixes`` are removed from every key that starts with them; ``module.`` (DDP) and
``_orig_mod.`` (torch.compile) are removed when every key has them. A card prefix applies to a key as stored or,
when none of them starts it, to the key once ``module.`` / ``_orig_mod.`` are removed: ``module.model.conv.weight``
with ``strip_prefixes: ["model."]`` becomes ``conv.weight``. Prefixes whose removal gives two keys one name (a
network under ``net.`` and its EMA copy under ``net_ema.``, both stripped) raise :class:`CheckpointError` naming
both keys and how to load one set, rather than keeping whichever came last.

Mismatches: strict loads raise :class:`CheckpointMismatchError` listing the differing keys, and say which
``strip_prefixes`` make the keys fit when one more common prefix (``model.``, ``generator.``) is all that differs;
a non-strict load that matches none of the model's tensors raises the same error. When the only differences are
tensor dimensions that the card's ``checkpoint.arg_dims`` tie to a factory argument (AirNet's MoCo queue:
256 x ``train_batch_size``), the error names the ``--model-arg`` values that fit. Otherwise it names the registered
models the file resembles, each compared with the keys its own load gives (its prefixes, not the given card's); a
file holding every tensor of the model and more keys is said to be so (and what the extra keys are when they are
another set of its weights), and a file that matches the given model at least half (:class:`ModelGuess` scores) and
no other better is called that model, damaged, modified or of another version, with what is missing or reshaped.
Weights of a bench-ir training run (``final.safetensors``) record the card and the arguments the network was built
with (:func:`trained_model`); when they do not fit the same card with other arguments, the error names the arguments
they were trained with and how to load them (the run's ``model-card.yaml``, or ``--model-arg``).

Unpickling policy: files are read with ``torch.load(weights_only=True)``, which builds tensors and
primitives only. A file that also pickles Python objects is retried when every object is harmless
metadata from :data:`METADATA_GLOBALS` (argparse ``Namespace`` hyperparameters, paths, numpy scalars,
Lightning's ``AttributeDict``); anything else raises :class:`CheckpointError` naming the objects.
``trust_pickle=True`` loads with ``weights_only=False``; it can execute code from the file, so use it only
for files from a source you trust.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import shlex
import traceback
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from bench_ir.atomic import atomic_target, naming_path
from bench_ir.cards import (
    CheckpointSpec,
    ModelCard,
    check_card_args,
    default_checkpoint_path,
    find_card,
    get_card,
    list_cards,
    resolve_factory,
    with_model_args,
)
from bench_ir.folder_names import RUN_CARD_NAME
from bench_ir.manifest import bench_ir_version, portable_path
from bench_ir.results import write_json_atomic
from bench_ir.shortlist import shortlist
from bench_ir.yamlio import SpecError

__all__ = [
    "ModelBuildError",
    "missing_checkpoint_message",
    "is_sample_checkpoint",
    "TRAINED_CARD_KEY",
    "TRAINED_ARGS_KEY",
    "TrainedModel",
    "model_args_metadata",
    "trained_model",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointContents",
    "KeyMismatch",
    "LoadReport",
    "ModelGuess",
    "METADATA_GLOBALS",
    "read_state_dict",
    "read_checkpoint",
    "load_weights",
    "create_model",
    "compare_state_dict",
    "guess_models",
    "sha256_file",
    "sidecar_path",
    "convert_checkpoint",
    "save_lightning_checkpoint",
]

_WRAPPER_KEYS = ("state_dict", "params", "params_ema", "model_state_dict", "model")
_OTHER_WEIGHT_SETS = ("state_dict_ema", "ema_state_dict", "model_ema")  # EMA copies: never chosen without a card key
_AUTO_STRIP = ("module.", "_orig_mod.")
_SHOWN = 5  # keys listed per category in a mismatch message
V = TypeVar("V")
_DTYPES = {"fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
           "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32}


class CheckpointError(RuntimeError):
    """A file that is not a usable checkpoint (corrupt, not a checkpoint, unsafe to unpickle)."""


class ModelBuildError(ValueError):
    """A card's factory raised while building the model (most often a wrong value in its args or --model-arg)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the model; carries the diff and the registry guesses."""

    def __init__(self, message: str, mismatch: KeyMismatch, guesses: list[ModelGuess]):
        super().__init__(message)
        self.mismatch = mismatch
        self.guesses = guesses


def _metadata_globals() -> list[Any]:
    allowed: list[Any] = [argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath,
                          pathlib.PureWindowsPath, np.ndarray, np.dtype]
    allowed += sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}, key=str)
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    for package in ("numpy.core", "numpy._core"):
        allowed += [(multiarray._reconstruct, f"{package}.multiarray._reconstruct"),
                    (multiarray.scalar, f"{package}.multiarray.scalar")]
    for where in ("lightning.fabric.utilities.data", "lightning_fabric.utilities.data",
                  "pytorch_lightning.utilities.parsing"):
        allowed.append((dict, f"{where}.AttributeDict"))  # Lightning hyperparameters, read as a plain dict
    return allowed


METADATA_GLOBALS: list[Any] = _metadata_globals()
"""Python objects allowed in a checkpoint besides tensors: hyperparameter containers, paths, numpy data."""


# ----------------------------------------------------------------------------------------------- reading
def _global_name(entry: Any) -> str:
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


def _describe_bytes(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "the file is empty"
    if head[:4] == b"PK\x03\x04":
        return "it is a zip archive that is truncated or was not written by torch.save"
    if head[:1] == b"\x80":
        return "it is a raw Python pickle, not a torch.save file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "it looks like JSON text"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it looks like a text file"
    return "its bytes match no checkpoint format"


def _torch_detail(failure: BaseException) -> str:
    """torch's own reason in parentheses, unless it is its ``weights_only`` advice: for a file that is not a
    checkpoint at all that advice names the wrong cause (and loading with weights_only=False is unsafe)."""
    first = (str(failure).splitlines() or [""])[0]
    if "weights_only" in str(failure) or not first:
        return ""
    return f" ({type(failure).__name__}: {first[:200]})"


def _unreadable(path: Path, failure: BaseException) -> CheckpointError:
    """The error for a file torch.load cannot read: what its bytes look like, and torch's reason."""
    return CheckpointError(
        f"cannot read checkpoint {path}: {_describe_bytes(path)}. Expected a PyTorch checkpoint "
        f"(.ckpt/.pth/.pt/.tar written by torch.save) or a .safetensors file.{_torch_detail(failure)}")


def _is_torch_archive(path: Path) -> bool:
    """Whether ``path`` is a readable zip archive holding a torch.save pickle (``<name>/data.pkl``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    if trust_pickle:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # a file that is no checkpoint, or whose objects fail to unpickle
            if _is_torch_archive(path) or isinstance(err, (ImportError, AttributeError)):  # an object it pickles
                raise CheckpointError(f"cannot unpickle checkpoint {path} (--trust-pickle): {type(err).__name__}: "
                                      f"{(str(err).splitlines() or [''])[0][:200]}") from err
            raise _unreadable(path, err) from err
    try:
        with warnings.catch_warnings():  # torch warns about protocols before failing on raw pickles
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first_error:  # every failure becomes a CheckpointError below
        failure = first_error
    unsafe: list[str] = []
    if zipfile.is_zipfile(path):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            unsafe = []
    if not unsafe:
        raise _unreadable(path, failure) from failure
    allowed_names = {_global_name(entry) for entry in METADATA_GLOBALS}
    foreign = sorted(set(unsafe) - allowed_names)
    if foreign:
        raise CheckpointError(
            f"checkpoint {path} pickles Python objects that bench-ir does not unpickle: {', '.join(foreign)}. "
            "Loading them could execute code from the file. If you trust its source, convert it once with "
            "`bench-ir convert CKPT OUT.safetensors --model M --trust-pickle` (trust_pickle=True in Python) and use "
            "the .safetensors file it writes."
        )
    with torch.serialization.safe_globals(METADATA_GLOBALS):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:
        raise CheckpointError(f"cannot read safetensors file {path}: {err}. The file is truncated or "
                              "not a safetensors file.") from err


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _is_tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def _weight_sets(obj: Mapping) -> list[str]:
    """Entries of a checkpoint dict that hold a set of weights (a mapping with tensors), in choosing order."""
    return [key for key in (*_WRAPPER_KEYS, *_OTHER_WEIGHT_SETS)
            if isinstance(obj.get(key), Mapping) and any(isinstance(v, Tensor) for v in obj[key].values())]


def _take(obj: Mapping, key: str, path: Path) -> tuple[dict[str, Tensor], str]:
    """(tensors of ``obj[key]``, detected format); an entry that is not purely tensors is a CheckpointError."""
    inner = obj[key]
    if not isinstance(inner, Mapping):
        raise CheckpointError(f"checkpoint {path}: '{key}' holds a {type(inner).__name__}; expected a state_dict")
    tensors = {k: v for k, v in inner.items() if isinstance(v, Tensor)}
    others = sorted(set(inner) - set(tensors))
    if not tensors or others:
        detail = f"non-tensor entries {others[:_SHOWN]}" if tensors else "no tensors"
        raise CheckpointError(f"checkpoint {path}: '{key}' holds {detail}; expected a state_dict")
    if key.startswith("params"):
        return tensors, "basicsr"
    lightning = key == "state_dict" and "pytorch-lightning_version" in obj
    return tensors, "lightning" if lightning else "state_dict"


def _holds_tensor(value: Any) -> bool:
    """Whether ``value`` is a tensor or a container (mapping, list, tuple) holding one at any depth."""
    if isinstance(value, Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensor(v) for v in value.values())
    return isinstance(value, (list, tuple)) and any(_holds_tensor(v) for v in value)


def _entry_weights(obj: Any) -> Any:
    """``obj`` with each entry that is an ``nn.Module`` (a whole pickled model, only read with trust_pickle) replaced
    by its ``state_dict()`` (``{'model': model, 'epoch': 3}``)."""
    if isinstance(obj, Mapping) and any(isinstance(v, nn.Module) for v in obj.values()):
        return {k: v.state_dict() if isinstance(v, nn.Module) else v for k, v in obj.items()}
    return obj


def _top_level_tensors(obj: Mapping, path: Path) -> dict[str, Tensor] | None:
    """The tensors at the top level of a dict holding no weight set, when every other entry is metadata holding no
    tensor (``{**state_dict, 'epoch': 5}``): read as a Lightning file's weights are, beside its metadata. None when
    the dict has no top-level tensor; a CheckpointError when another entry holds tensors too (which are the weights
    is then unclear)."""
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        return None
    holding = [repr(k) for k, v in obj.items() if k not in tensors and _holds_tensor(v)]
    if holding:
        raise CheckpointError(
            f"checkpoint {path} holds {len(tensors)} tensors at its top level "
            f"({shortlist(list(map(repr, tensors)), 3)}) beside entries holding tensors in another form "
            f"({shortlist(holding, _SHOWN)}): which are the weights is unclear. Save the weights alone as a "
            "mapping of parameter names to tensors, or, if one entry holds them, name it in a copy of the model card "
            "(`checkpoint: {key: ENTRY}`).")
    return tensors


def _no_state_dict_error(obj: Mapping, path: Path) -> CheckpointError:
    """The error for a dict with no tensor at its top level and no entry of the known weight-set names: the entries
    that do hold a mapping of tensors (``{'net': state_dict}``) and the card's ``checkpoint.key`` that loads one."""
    listed = ", ".join(repr(k) for k in list(obj)[:10])
    text = f"checkpoint {path} holds no state_dict: top-level keys are {listed}."
    entries = [k for k, v in obj.items() if isinstance(v, Mapping) and any(isinstance(t, Tensor) for t in v.values())]
    if entries:
        held = ", ".join(f"'{k}' ({sum(isinstance(t, Tensor) for t in obj[k].values())} tensors)" for k in entries)
        return CheckpointError(f"{text} Entries holding tensors: {held}; to load one, name it in a copy of the model "
                               f"card: `checkpoint: {{key: {entries[0]}}}` (the card's checkpoint.key).")
    return CheckpointError(f"{text} Expected tensors under one of {', '.join(_WRAPPER_KEYS)}, under the entry the "
                           "card's checkpoint.key names, or a plain mapping of parameter names to tensors.")


def _extract(obj: Any, path: Path, chosen: str | None = None) -> tuple[dict[str, Tensor], str, str | None]:
    """(state_dict, detected format, entry it came from) from what torch.load returned; ``chosen`` is the card's
    ``checkpoint.key`` (ignored for a plain mapping of tensors, which holds one weight set). A whole pickled
    ``nn.Module`` (read only with trust_pickle) gives its ``state_dict()``, format ``module``."""
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), "module", None
    obj = _entry_weights(obj)
    if _is_tensor_mapping(obj):
        return dict(obj), "state_dict", None
    if isinstance(obj, Mapping):
        sets = _weight_sets(obj)
        loose = None if sets or chosen in obj else _top_level_tensors(obj, path)
        if loose is not None:
            return loose, "state_dict", None
        if chosen is not None:
            if chosen not in obj:
                held = f"its weight sets are {', '.join(map(repr, sets))}" if sets else "it holds no weight set"
                raise CheckpointError(
                    f"checkpoint {path} has no entry '{chosen}' (the card's checkpoint.key): {held}; top-level "
                    f"keys are {', '.join(repr(k) for k in list(obj)[:10])}")
            return (*_take(obj, chosen, path), chosen)
        for key in _WRAPPER_KEYS:
            if not isinstance(obj.get(key), Mapping):
                continue
            tensors, fmt = _take(obj, key, path)
            if len(sets) > 1:
                other = next(s for s in sets if s != key)
                warnings.warn(f"checkpoint {path} holds {len(sets)} weight sets ({', '.join(map(repr, sets))}); "
                              f"loaded '{key}'. To load another, name it in the model card: "
                              f"`checkpoint: {{key: {other}}}`", UserWarning, stacklevel=4)
            return tensors, fmt, key
        raise _no_state_dict_error(obj, path)
    raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict (a mapping of "
                          "parameter names to tensors)")


def _strip_card(key: str, prefixes: Sequence[str], removed: dict[str, None]) -> str:
    """``key`` without those of ``prefixes`` that start it (each once, in order); each removed one is noted in
    ``removed``."""
    for prefix in prefixes:
        if prefix and key.startswith(prefix):
            key = key[len(prefix):]
            removed.setdefault(prefix)
    return key


def _strip_auto(keys: list[str], removed: dict[str, None]) -> list[str]:
    """``keys`` without ``module.`` / ``_orig_mod.`` where every key has it; each removed one is noted in
    ``removed``."""
    for prefix in _AUTO_STRIP:
        if keys and all(k.startswith(prefix) for k in keys):
            keys = [k[len(prefix):] for k in keys]
            removed.setdefault(prefix)
    return keys


def _strip_keys(stored: Sequence[str], prefixes: Sequence[str]) -> tuple[list[str], tuple[str, ...]]:
    """(``stored`` keys with the card's ``prefixes`` and the automatic ones removed, the prefixes actually removed
    from at least one key, in the order first removed). See the module docstring: card prefixes, then ``module.`` /
    ``_orig_mod.``, then the card prefixes of keys they did not match as stored (and the automatic ones again if
    that revealed any)."""
    removed: dict[str, None] = {}
    keys = [_strip_card(k, prefixes, removed) for k in stored]
    untouched = [new == old for new, old in zip(keys, stored, strict=True)]
    keys = _strip_auto(keys, removed)
    if prefixes and any(untouched):
        again: dict[str, None] = {}
        revealed = [_strip_card(k, prefixes, again) if fresh else k for k, fresh in zip(keys, untouched, strict=True)]
        if revealed != keys:
            removed.update(again)
            keys = _strip_auto(revealed, removed)
    return keys, tuple(removed)


def _strip(state: Mapping[str, V], prefixes: Sequence[str]) -> dict[str, V]:
    """``state`` with the card's ``prefixes`` and the automatic ones removed (see :func:`_strip_keys`)."""
    keys, _ = _strip_keys(list(state), prefixes)
    return dict(zip(keys, state.values(), strict=True))


def _load_prefixes(card_prefixes: Sequence[str], fmt: str, stored: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """The ``strip_prefixes`` a load applies to the ``stored`` keys of a file of format ``fmt``: the card's, or
    ``net.`` for a Lightning file whose keys all have it when the card gives none."""
    if not card_prefixes and fmt == "lightning" and all(k.startswith("net.") for k in stored):
        return ["net."]
    return list(card_prefixes)


def _keys_as_loaded(stored: Mapping[str, V], card_prefixes: Sequence[str], fmt: str) -> dict[str, V]:
    """``stored`` (keys as in a file of format ``fmt``) with the keys a load with ``card_prefixes`` gives."""
    return _strip(stored, _load_prefixes(card_prefixes, fmt, stored))


def _name_clashes(stored: Sequence[str], keys: Sequence[str]) -> dict[str, list[str]]:
    """The names a strip gives to more than one key: name -> the ``stored`` keys that became it (``keys`` are
    ``stored`` with prefixes removed, in the same order). Empty when every key keeps a name of its own."""
    if len(set(keys)) == len(keys):
        return {}
    sources: dict[str, list[str]] = {}
    for old, new in zip(stored, keys, strict=True):
        sources.setdefault(new, []).append(old)
    return {name: olds for name, olds in sources.items() if len(olds) > 1}


def _removed_part(stored_key: str, name: str) -> str:
    """The leading part of ``stored_key`` that stripping removed to give ``name`` (prefixes come off the front)."""
    return stored_key[:len(stored_key) - len(name)]


def _set_words(part: str) -> str:
    """'under 'net_ema.'': the keys of the weight set stored under ``part`` ('' for keys without a prefix)."""
    return f"under '{part}'" if part else "without a prefix"


def _set_prefixes(part: str) -> list[str]:
    """The ``strip_prefixes`` that select the weight set stored under ``part`` ('' for keys without a prefix)."""
    return [part] if part else []


def _set_choice_sentence(stored: Sequence[str], parts: Sequence[str], fmt: str, converting: bool) -> str:
    """How to load one of the weight sets a file of format ``fmt`` holds under the stored key prefixes ``parts``: a
    copy of the model card whose ``strip_prefixes`` remove only that set's prefix, loading non-strictly so that the
    other sets' keys stay unused. Only the sets such a strip isolates (giving no two keys one name) are offered; for
    ``bench-ir convert``, which checks strictly, and for the other sets, the set must be saved alone first."""
    choices = [part for part in parts
               if not _name_clashes(stored, _strip_keys(stored, _load_prefixes(_set_prefixes(part), fmt, stored))[0])]
    others = [_set_words(part) for part in parts if part not in choices]
    save_alone = "alone (its tensors, keys without the prefix) with torch.save and"
    sentences = []
    if choices:
        settings = [f"`checkpoint: {{strip_prefixes: {json.dumps(_set_prefixes(part))}, strict: false}}` (the set "
                    f"{_set_words(part)})" for part in choices]
        sentences.append(f"To load one set and leave the others unused, put {' or '.join(settings)} in a copy of the "
                         "model card.")
    if others:
        sentences.append(f"For the set {' and the set '.join(others)}, save it {save_alone} load or convert that file.")
    if converting and choices:
        sentences.append(f"`bench-ir convert` checks strictly and cannot leave a set out: save the chosen set "
                         f"{save_alone} convert that file.")
    return " ".join(sentences)


def _clash_error(path: Path, stored: Sequence[str], stripped: Sequence[str], clashes: Mapping[str, list[str]],
                 fmt: str) -> CheckpointError:
    """The error for prefixes whose removal gives several keys of the file one name (one tensor would silently
    replace the others, as a file holding a network and its EMA copy under ``net.`` and ``net_ema.`` with both
    stripped): an example, the counts, the prefixes of the sets and how to load one of them."""
    name, sources = next(iter(clashes.items()))
    parts = list(dict.fromkeys(_removed_part(old, new) for new, olds in clashes.items() for old in olds))
    shown = " and ".join(f"'{old}'" for old in sources)
    return CheckpointError(
        f"checkpoint {path}: removing the key prefixes {json.dumps(list(stripped))} gives "
        f"{sum(map(len, clashes.values()))} of its keys only {len(clashes)} names (e.g. {shown} "
        f"{'both' if len(sources) == 2 else 'all'} become '{name}'), so one tensor of each name would silently "
        f"replace the other: the file holds more than one set of weights "
        f"({', '.join(_set_words(part) for part in parts)}). {_set_choice_sentence(stored, parts, fmt, True)}")


_CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".tar", ".bin", ".safetensors")


def _checkpoint_files_hint(folder: Path, shown: int = 5) -> str:
    """', e.g. one of: a.ckpt, b.pth' naming the checkpoint-like files in ``folder`` and its direct sub-folders
    (a training run's folder, a Lightning log folder), or '' when there is none."""
    found = sorted(p for pattern in ("*", "*/*") for p in folder.glob(pattern)
                   if p.suffix in _CHECKPOINT_SUFFIXES and p.is_file())
    if not found:
        return ""
    return f", e.g. one of: {shortlist([str(p) for p in found], shown, more=' (and {} more)')}"


@dataclass(frozen=True)
class CheckpointContents:
    """Tensors of a checkpoint (prefixes removed, on CPU) and the detected file format.

    key: the entry of the file's dict the tensors came from (None for a plain state_dict or safetensors);
    prefixes: the ``strip_prefixes`` tried (the card's, or ``net.`` for a Lightning file when it has none);
    stored_shapes: tensor shapes by key as stored in the file; stripped: the prefixes actually removed from at
    least one key, automatic ones (``module.``, ``_orig_mod.``) included, in the order first removed."""

    state_dict: dict[str, Tensor]
    format: str
    key: str | None = None
    prefixes: tuple[str, ...] = ()
    stored_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    stripped: tuple[str, ...] = ()


def read_checkpoint(path: str | Path, spec: CheckpointSpec | None = None,
                    trust_pickle: bool = False) -> CheckpointContents:
    """Read ``path`` into ``(state_dict, detected format)``; see the module docstring for formats."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory; pass the checkpoint file itself"
                              f"{_checkpoint_files_hint(path)}")
    spec = spec or CheckpointSpec()
    # the content decides (a card's format names the official release's): a card whose release is safetensors
    # still loads a torch.save file, such as a bench-ir training checkpoint (checkpoints/last.pt)
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        state, fmt, key = _read_safetensors(path), "safetensors", None
    else:
        state, fmt, key = _extract(_torch_load(path, trust_pickle), path, spec.key)
    prefixes = _load_prefixes(spec.strip_prefixes, fmt, state)
    keys, stripped = _strip_keys(list(state), prefixes)
    clashes = _name_clashes(list(state), keys)
    if clashes:
        raise _clash_error(path, list(state), stripped, clashes, fmt)
    return CheckpointContents(dict(zip(keys, state.values(), strict=True)), fmt, key, tuple(prefixes),
                              _signature(state), stripped)


def read_state_dict(path: str | Path, spec: CheckpointSpec | None = None,
                    trust_pickle: bool = False) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, on CPU, with the card's key prefixes removed."""
    return read_checkpoint(path, spec, trust_pickle).state_dict


# ------------------------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class KeyMismatch:
    """Differences between a checkpoint and a model: names, and (key, checkpoint shape, model shape)."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def _signature(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def compare_state_dict(model_shapes: Mapping[str, tuple[int, ...]],
                       checkpoint_shapes: Mapping[str, tuple[int, ...]]) -> KeyMismatch:
    """Keys the model lacks, keys the checkpoint lacks, and common keys whose shapes differ."""
    missing = [k for k in model_shapes if k not in checkpoint_shapes]
    unexpected = [k for k in checkpoint_shapes if k not in model_shapes]
    mismatched = [(k, tuple(checkpoint_shapes[k]), tuple(shape)) for k, shape in model_shapes.items()
                  if k in checkpoint_shapes and tuple(checkpoint_shapes[k]) != tuple(shape)]
    return KeyMismatch(missing, unexpected, mismatched)


@dataclass(frozen=True)
class ModelGuess:
    """A registered model whose state_dict resembles a checkpoint; ``score`` is the share of
    (key, shape) pairs common to both, over the larger of the two key counts (1.0 = identical)."""

    name: str
    display_name: str
    score: float

    @property
    def exact(self) -> bool:
        return self.score == 1.0


@lru_cache(maxsize=64)
def _card_signature(factory: str, args_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    card = ModelCard(name="", display_name="", factory=factory, args=json.loads(args_json))
    with torch.device("meta"):
        model = resolve_factory(card)(**card.args)
    return tuple(_signature(model.state_dict()).items())


def _signature_of_card(card: ModelCard) -> dict[str, tuple[int, ...]]:
    return dict(_card_signature(card.factory, json.dumps(card.args, sort_keys=True, default=str)))


def guess_models(checkpoint_shapes: Mapping[str, tuple[int, ...]], exclude: tuple[str, ...] = (),
                 registry: str | Path | None = None, checkpoint_format: str = "state_dict",
                 extra_prefixes: Sequence[str] = ()) -> list[ModelGuess]:
    """Registered models ranked by how well their state_dict (built on the meta device) matches.

    ``checkpoint_shapes`` are keyed as stored in the file (:attr:`CheckpointContents.stored_shapes`) of format
    ``checkpoint_format``: each card is compared with the keys its own load gives (its ``strip_prefixes``, then
    ``extra_prefixes`` such as convert's ``--strip-prefix``; ``net.`` for a Lightning file when it gives none;
    ``module.`` / ``_orig_mod.``), so the ranking does not depend on the card the file was first given to. Keys
    already stripped compare as they are."""
    guesses = []
    for card in list_cards(registry):
        if card.name in exclude or card.is_placeholder:
            continue
        try:
            expected = _signature_of_card(card)
        except Exception:  # a card whose model cannot be built is no candidate
            continue
        if expected:
            loaded = _keys_as_loaded(checkpoint_shapes, [*card.checkpoint.strip_prefixes, *extra_prefixes],
                                     checkpoint_format)
            guesses.append(ModelGuess(card.name, card.display_name, _match_score(loaded, expected)))
    return sorted(guesses, key=lambda g: -g.score)


def _match_score(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]) -> float:
    """How well a checkpoint's tensors (``found``, keys as loaded) match a model's (``expected``): the share of
    (key, shape) pairs common to both over the larger of the two key counts (1.0 = identical; :class:`ModelGuess`)."""
    common = {(k, tuple(s)) for k, s in found.items()} & {(k, tuple(s)) for k, s in expected.items()}
    return len(common) / max(len(found), len(expected), 1)


def _guess_sentence(guesses: list[ModelGuess]) -> str:
    if not guesses or guesses[0].score == 0:
        return "It matches no registered model."
    best = guesses[0]
    if best.exact:
        return (f"Its keys and shapes match {best.display_name} exactly: did you mean "
                f"--model {best.name}?")
    if best.score >= 0.5:
        return (f"Closest registered model: {best.display_name} ({best.score:.0%} of tensors match by name "
                f"and shape): did you mean --model {best.name}?")
    return f"It matches no registered model (closest: {best.display_name}, {best.score:.0%} of tensors)."


_HINT_DEPTH = 3  # dotted components tried as a missing strip prefix: 'model.', 'model.net.', 'model.net.body.'
_HINT_CANDIDATES = 20
_MOSTLY = 0.5  # a file matching the given model at least this well (_match_score), and no other better, is that model


def _leading_parts(keys: Sequence[str]) -> list[str]:
    """The dotted leading parts of ``keys`` ('model.', 'model.net.', up to :data:`_HINT_DEPTH` components, never a
    whole key), most common first, at most :data:`_HINT_CANDIDATES`."""
    counts: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        for depth in range(1, min(_HINT_DEPTH, len(parts) - 1) + 1):
            candidate = ".".join(parts[:depth]) + "."
            counts[candidate] = counts.get(candidate, 0) + 1
    return sorted(counts, key=lambda c: -counts[c])[:_HINT_CANDIDATES]


def _prefix_fix(checkpoint: CheckpointContents, model_shapes: Mapping[str, tuple[int, ...]],
                mismatch: KeyMismatch) -> tuple[list[str], int] | None:
    """(strip_prefixes, unexpected keys left) with which every model tensor is found in the checkpoint by name and
    shape: the applied prefixes plus one common leading part of the unexpected keys, checked with the real key
    stripping on the keys as stored. Only a file with missing or shape-mismatched keys gets one (a prefix counts
    when removing it finds them), and never a prefix whose removal gives two keys one name. None when no such prefix
    exists; the fewest leftover keys wins."""
    if not checkpoint.stored_shapes or not mismatch.unexpected or not (mismatch.missing or mismatch.mismatched):
        return None
    stored = list(checkpoint.stored_shapes)
    best: tuple[list[str], int] | None = None
    for candidate in _leading_parts(mismatch.unexpected):
        prefixes = [*checkpoint.prefixes, candidate]
        keys, _ = _strip_keys(stored, prefixes)
        if _name_clashes(stored, keys):
            continue
        fixed = compare_state_dict(model_shapes, dict(zip(keys, checkpoint.stored_shapes.values(), strict=True)))
        if not fixed.missing and not fixed.mismatched and (best is None or len(fixed.unexpected) < best[1]):
            best = (prefixes, len(fixed.unexpected))
    return best


def _prefix_sentence(fix: tuple[list[str], int], converting: bool = False) -> str:
    prefixes, left = fix
    if left:
        instead = (" and run or restore with that card: convert keeps every tensor of the file and checks strictly, so "
                   "it cannot leave them out") if converting else ""
        return (f"Removing the prefix '{prefixes[-1]}' from its keys finds every tensor of the model ({left} "
                f"checkpoint keys stay unused): put `checkpoint: {{strip_prefixes: {json.dumps(prefixes)}, "
                f"strict: false}}` in the model card{instead}.")
    also = f" (or convert with `--strip-prefix {prefixes[-1]}`)" if converting else ""
    return (f"Removing the prefix '{prefixes[-1]}' from its keys makes them fit: put "
            f"`checkpoint: {{strip_prefixes: {json.dumps(prefixes)}}}` in the model card{also}.")


def _stored_names(checkpoint: CheckpointContents) -> dict[str, str]:
    """Key as loaded -> key as stored in the file (the load's prefixes removed)."""
    stored = list(checkpoint.stored_shapes)
    return dict(zip(_strip_keys(stored, checkpoint.prefixes)[0], stored, strict=True))


def _other_weight_sets(checkpoint: CheckpointContents, model_shapes: Mapping[str, tuple[int, ...]],
                       unexpected: Sequence[str]) -> list[str]:
    """The stored key prefixes under which the ``unexpected`` keys hold every tensor of the model once more (an EMA
    copy beside the network: ``net_ema.`` beside ``net.``), in the order found."""
    if not checkpoint.stored_shapes:
        return []
    as_stored, loaded = _stored_names(checkpoint), _signature(checkpoint.state_dict)
    parts: list[str] = []
    for candidate in _leading_parts(unexpected):
        names = {key: key[len(candidate):] for key in unexpected if key.startswith(candidate)}
        found = compare_state_dict(model_shapes, {name: loaded[key] for key, name in names.items()})
        if not found.missing and not found.mismatched:
            key, name = next(iter(names.items()))
            parts.append(_removed_part(as_stored[key], name))
    return list(dict.fromkeys(parts))


def _extra_keys_words(target: str, unexpected: Sequence[str]) -> str:
    """'Every tensor of T is in the checkpoint with its shape; it also holds keys the model lacks (2: a, b).'"""
    return (f"Every tensor of {target} is in the checkpoint with its shape; it also holds keys the model lacks "
            f"({len(unexpected)}: {shortlist(list(unexpected), 3)}).")


def _extra_keys_sentence(target: str, checkpoint: CheckpointContents, model_shapes: Mapping[str, tuple[int, ...]],
                         unexpected: Sequence[str], converting: bool, strict: bool) -> str:
    """For a file holding every tensor of the model and more keys: says so, names those keys (a few, and their
    count), and whether they are another set of the model's weights (then how to load one set); otherwise, for a
    strict load, the card setting that leaves them unused, and for a conversion that it writes only what fits."""
    text = _extra_keys_words(target, unexpected)
    sets = _other_weight_sets(checkpoint, model_shapes, unexpected)
    if sets:
        first = next(iter(model_shapes))
        taken = _removed_part(_stored_names(checkpoint)[first], first)
        text += (f" They hold another set of the model's weights ({', '.join(map(_set_words, sets))}; this load "
                 f"took the set {_set_words(taken)}).")
        if strict or converting:
            text += " " + _set_choice_sentence(list(checkpoint.stored_shapes), [taken, *sets], checkpoint.format,
                                               converting)
        return text
    card_setting = (f"`checkpoint: {{strip_prefixes: {json.dumps(list(checkpoint.prefixes))}, strict: false}}`"
                    if checkpoint.prefixes else "`checkpoint: {strict: false}`")
    if converting:
        return (f"{text} `bench-ir convert` checks strictly and writes no file with keys the model lacks: save the "
                f"model's tensors alone with torch.save and convert that file, or load this one with {card_setting} "
                "in a copy of the model card.")
    if strict:
        return (f"{text} If they were saved beside the network (a loss, a discriminator), a copy of the model card "
                f"with {card_setting} loads the model's tensors and leaves them unused.")
    return text


def _whole_parts(missing: Sequence[str], model_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """The ``missing`` model keys grouped by the shortest dotted prefix all of whose model keys are missing
    ('degradation_net.': 105), or by the key itself where there is none: group -> missing keys in it, in order."""
    def prefixes(key: str) -> list[str]:
        parts = key.split(".")
        return [".".join(parts[:depth]) + "." for depth in range(1, len(parts))]

    in_model: dict[str, int] = {}
    in_missing: dict[str, int] = {}
    for counts, keys in ((in_model, model_shapes), (in_missing, missing)):
        for key in keys:
            for prefix in prefixes(key):
                counts[prefix] = counts.get(prefix, 0) + 1
    groups: dict[str, int] = {}
    for key in missing:
        group = next((p for p in prefixes(key) if in_missing[p] == in_model.get(p)), key)
        groups[group] = groups.get(group, 0) + 1
    return groups


def _missing_words(missing: Sequence[str], model_shapes: Mapping[str, tuple[int, ...]]) -> str:
    """'degradation_representations and all 105 under 'degradation_net.'' when the missing keys make up whole parts
    of the model (a few), else 'first: a, b, c'."""
    groups = _whole_parts(missing, model_shapes)
    if len(groups) < len(missing) and len(groups) <= _SHOWN:
        named = [f"all {count} under '{group}'" if group.endswith(".") else f"'{group}'"
                 for group, count in groups.items()]
        return " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    return missing[0] if len(missing) == 1 else f"first: {', '.join(missing[:3])}"


def _damaged_sentence(target: str, mismatch: KeyMismatch, model_shapes: Mapping[str, tuple[int, ...]]) -> str:
    """For a file that is mostly the given model: how many of its tensors are missing or of another shape (and which,
    or which parts of the model), and what that means."""
    found: list[tuple[int, str]] = []
    if mismatch.missing:
        found.append((len(mismatch.missing), f"missing ({_missing_words(mismatch.missing, model_shapes)})"))
    if mismatch.mismatched:
        key, stored, expected = mismatch.mismatched[0]
        found.append((len(mismatch.mismatched), f"of another shape (first: {key}, {list(stored)} instead of "
                                                f"{list(expected)})"))
    (count, words), *more = found
    described = f"{count} of its {len(model_shapes)} tensors {words}" + "".join(f" and {n} {w}" for n, w in more)
    lacking = f", and {len(mismatch.unexpected)} keys the model lacks" if mismatch.unexpected else ""
    return (f"It is {target} with {described}{lacking}: the file is damaged, modified, or of another version of the "
            "model (it matches no registered model better).")


def _fit_sentence(target: str, checkpoint: CheckpointContents, model_shapes: Mapping[str, tuple[int, ...]],
                  mismatch: KeyMismatch, guesses: list[ModelGuess], converting: bool, strict: bool) -> str:
    """What a file that no prefix or argument fixes is: one holding every tensor of the model and more keys
    (:func:`_extra_keys_sentence`, then the registered model it matches better, if one does at least
    :data:`_MOSTLY`); mostly the given model, none matching better (:func:`_damaged_sentence`); else the registered
    models it resembles (``guesses``, the given card not among them)."""
    own = _match_score(_signature(checkpoint.state_dict), model_shapes)
    better = bool(guesses) and guesses[0].score > own
    if not mismatch.missing and not mismatch.mismatched:
        if better and guesses[0].score >= _MOSTLY:
            return f"{_extra_keys_words(target, mismatch.unexpected)} {_guess_sentence(guesses)}"
        return _extra_keys_sentence(target, checkpoint, model_shapes, mismatch.unexpected, converting, strict)
    if own >= _MOSTLY and not better:
        return _damaged_sentence(target, mismatch, model_shapes)
    return _guess_sentence(guesses)


def _mismatch_error(path: Path, target: str, checkpoint: CheckpointContents, model_state: Mapping[str, Tensor],
                    mismatch: KeyMismatch, exclude: tuple[str, ...], headline: str = "",
                    converting: bool = False, card: ModelCard | None = None,
                    extra_prefixes: Sequence[str] = (), strict: bool = True) -> CheckpointMismatchError:
    """The error for a checkpoint that does not fit: the differing keys, then the missing strip prefix that makes
    them fit or, without one, the other arguments of ``card`` the file was trained with
    (:func:`_trained_args_sentence`), or the argument values its ``checkpoint.arg_dims`` read from the shapes
    (:func:`_arg_dims_sentence`) or, without those, what the file is (:func:`_fit_sentence`): the given model with
    more keys, the given model damaged, or the registered models it resembles, each compared with the keys its own
    load gives (``exclude``: the given card's name; ``extra_prefixes``: prefixes removed besides the cards' own).
    ``strict``: whether the load was strict (a non-strict one is not told to set ``strict: false``)."""
    model_shapes = _signature(model_state)
    fix = _prefix_fix(checkpoint, model_shapes, mismatch)
    hint = (_prefix_sentence(fix, converting) if fix else
            _trained_args_sentence(path, card) or _arg_dims_sentence(mismatch, _signature(checkpoint.state_dict), card))
    guesses: list[ModelGuess] = []
    if not hint:
        stored = checkpoint.stored_shapes or _signature(checkpoint.state_dict)
        guesses = guess_models(stored, exclude=exclude, checkpoint_format=checkpoint.format,
                               extra_prefixes=extra_prefixes)
        hint = _fit_sentence(target, checkpoint, model_shapes, mismatch, guesses, converting, strict)
    message = _mismatch_message(path, target, mismatch, len(checkpoint.state_dict), len(model_state), guesses, hint)
    return CheckpointMismatchError(headline + message, mismatch, guesses)


# ------------------------------------------------------------------------------ weights of a training run
TRAINED_CARD_KEY = "bench_ir_model"
"""safetensors metadata key: the name of the model card a training run trained (``final.safetensors``)."""
TRAINED_ARGS_KEY = "bench_ir_model_args"
"""safetensors metadata key: the arguments its network was built with (the card's, with the run's --model-arg
values), as :func:`model_args_metadata` writes them."""


@dataclass(frozen=True)
class TrainedModel:
    """The model card (by name) and the arguments its network was built with, as a training run recorded them."""

    card: str
    args: dict[str, Any]


def model_args_metadata(args: Mapping[str, Any]) -> str:
    """Model arguments as a metadata string: JSON with sorted keys, so that the same arguments in any order give the
    same text (and the weights file the same bytes)."""
    return json.dumps(dict(args), sort_keys=True, separators=(",", ":"), default=str)


def trained_model(path: str | Path) -> TrainedModel | None:
    """The card and model arguments a safetensors file's metadata records (:data:`TRAINED_CARD_KEY`,
    :data:`TRAINED_ARGS_KEY`); None for any other file, or one that records no arguments (written elsewhere, or by a
    bench-ir from before they were recorded)."""
    path = Path(path)
    if not path.is_file() or not (path.suffix == ".safetensors" or _looks_like_safetensors(path)):
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        args = json.loads(metadata[TRAINED_ARGS_KEY])
    except Exception:  # noqa: BLE001 - unreadable or foreign metadata records nothing
        return None
    name = metadata.get(TRAINED_CARD_KEY)
    return TrainedModel(name, args) if isinstance(args, dict) and isinstance(name, str) and name else None


def _as_recorded(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` as they read back from the metadata (tuples as lists...), so that they compare with recorded ones."""
    return json.loads(model_args_metadata(args))


def _trained_args_sentence(path: Path, card: ModelCard | None) -> str | None:
    """For weights whose training run recorded other arguments of ``card`` than it has: those arguments (and the
    given ones) and how to load the weights, with the run's model-card.yaml beside them (when it records the same
    arguments) or with --model-arg flags. None otherwise (another card, the same arguments, nothing recorded)."""
    trained = trained_model(path) if card is not None else None
    if card is None or trained is None or trained.card != card.name:
        return None
    given = _as_recorded(card.args)
    differing = {key: value for key, value in trained.args.items() if key not in given or given[key] != value}
    if not differing:
        return None
    shown = ", ".join(f"{key}={json.dumps(value)}" for key, value in differing.items())
    flags = " ".join(_model_arg_flag(key, value) for key, value in differing.items())
    run_card = path.parent / RUN_CARD_NAME
    how = f"`--model {_card_reference(card)} {flags}`"
    if _records_args(run_card, trained.args):
        how = f"`--model {shlex.quote(str(run_card))}` (the card its training run wrote) or {how}"
    return (f"It was trained with other arguments of model card '{card.name}': {shown} (given: "
            f"{_given_words(given, list(differing))}); load it with {how}.")


def _card_reference(card: ModelCard) -> str:
    """What ``--model`` takes to name ``card``: its name when the registry (or a plugin) resolves that name to this
    card, else its file (a card file given by path, ``examples/tiny-unet.yaml``), shell-quoted."""
    registered = find_card(card.name)
    if not card.source or registered is not None and registered.source == card.source:
        return card.name
    return shlex.quote(card.source)


def _given_words(given: Mapping[str, Any], keys: list[str]) -> str:
    """'dim=16; num_blocks left to the factory's default': the values ``given`` has for ``keys``."""
    unset = [key for key in keys if key not in given]
    words = [", ".join(f"{key}={json.dumps(given[key])}" for key in keys if key in given)]
    if unset:
        words.append(f"{', '.join(unset)} left to the factory's default{'s' if len(unset) > 1 else ''}")
    return "; ".join(word for word in words if word)


def _model_arg_flag(key: str, value: Any) -> str:
    """``--model-arg 'num_blocks=[1,1,1,1]'``: the flag that sets ``value`` (JSON is YAML), quoted for a shell."""
    compact = json.dumps(value, separators=(",", ":"))
    return f"--model-arg {shlex.quote(f'{key}={compact}')}"


def _records_args(card_file: Path, args: Mapping[str, Any]) -> bool:
    """Whether ``card_file`` is a readable model card whose arguments are ``args``."""
    if not card_file.is_file():
        return False
    try:
        return _as_recorded(get_card(card_file).args) == dict(args)
    except Exception:  # noqa: BLE001 - a card that cannot be read is not suggested
        return False


def _arg_values_that_fit(mismatch: KeyMismatch, checkpoint_shapes: Mapping[str, tuple[int, ...]],
                         card: ModelCard) -> dict[str, int] | None:
    """The card arguments with which the checkpoint fits, read from the card's ``checkpoint.arg_dims``
    (``shape[dim] == per_unit * value``): when nothing is missing or unexpected, every shape mismatch differs only in
    a dimension an argument sets, and each argument gets one whole value >= 1 from all its tensors in the checkpoint.
    None otherwise."""
    if not mismatch.mismatched or mismatch.missing or mismatch.unexpected:
        return None
    dims = {entry.key: entry for entry in card.checkpoint.arg_dims}
    values: dict[str, int] = {}
    for key, stored, expected in mismatch.mismatched:
        entry = dims.get(key)
        if entry is None or len(stored) != len(expected) or entry.dim >= len(stored):
            return None
        if any(a != b for i, (a, b) in enumerate(zip(stored, expected, strict=True)) if i != entry.dim):
            return None
        values.setdefault(entry.arg, stored[entry.dim] // entry.per_unit)
    for entry in card.checkpoint.arg_dims:
        shape = checkpoint_shapes.get(entry.key)
        if entry.arg in values and shape is not None and (len(shape) <= entry.dim or values[entry.arg] < 1
                                                          or shape[entry.dim] != entry.per_unit * values[entry.arg]):
            return None
    return values


def _arg_dims_sentence(mismatch: KeyMismatch, checkpoint_shapes: Mapping[str, tuple[int, ...]],
                       card: ModelCard | None) -> str | None:
    """For a checkpoint that fits ``card`` with other values of the arguments its ``checkpoint.arg_dims`` name
    (:func:`_arg_values_that_fit`): which tensor dimensions say so, the values and the --model-arg flags that load
    it. None otherwise."""
    values = _arg_values_that_fit(mismatch, checkpoint_shapes, card) if card is not None else None
    if card is None or not values:
        return None
    differing = {key for key, _, _ in mismatch.mismatched}
    reasons = "; ".join(f"{entry.key} has {checkpoint_shapes[entry.key][entry.dim]} in dimension {entry.dim}, which "
                        f"is {entry.per_unit} x {entry.arg}" for entry in card.checkpoint.arg_dims
                        if entry.key in differing)
    shown = ", ".join(f"{key}={json.dumps(value)}" for key, value in values.items())
    flags = " ".join(_model_arg_flag(key, value) for key, value in values.items())
    return (f"It fits model card '{card.name}' with {shown} ({reasons}; given: "
            f"{_given_words(_as_recorded(card.args), list(values))}): load it with `--model {card.name} {flags}`.")


def _mismatch_message(path: Path, target: str, mismatch: KeyMismatch, n_checkpoint: int, n_model: int,
                      guesses: list[ModelGuess], hint: str | None = None) -> str:
    lines = [f"checkpoint {path} does not fit {target}: {len(mismatch.missing)} missing, "
             f"{len(mismatch.unexpected)} unexpected, {len(mismatch.mismatched)} shape-mismatched keys "
             f"(the checkpoint has {n_checkpoint} tensors, the model expects {n_model})."]
    if mismatch.missing:
        lines.append("  missing (model keys absent from the checkpoint): " + ", ".join(mismatch.missing[:_SHOWN]))
    if mismatch.unexpected:
        lines.append("  unexpected (checkpoint keys the model lacks): " + ", ".join(mismatch.unexpected[:_SHOWN]))
    if mismatch.mismatched:
        shown = [f"{k} checkpoint {list(c)} vs model {list(m)}" for k, c, m in mismatch.mismatched[:_SHOWN]]
        lines.append("  shape mismatches: " + "; ".join(shown))
    lines.append(hint or _guess_sentence(guesses))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did: detected format, tensors loaded, and any differences."""

    path: str
    format: str
    tensors: int
    loaded: int
    strict: bool
    mismatch: KeyMismatch = field(default_factory=lambda: KeyMismatch([], [], []))


def missing_checkpoint_message(path: str | Path, card: ModelCard | None) -> str:
    """The error for a checkpoint file that is not there (a run's or a suite cell's): its path, the card's official
    checkpoints and where their release keeps the download links."""
    text = (f"checkpoint file not found: {path}. Give the path of a downloaded checkpoint "
            "(`bench-ir run --checkpoint PATH`, or the `checkpoint` of a suite entry).")
    if card is None:
        return text
    if card.official_checkpoints:
        listed = "; ".join(f"{task}: {where}" for task, where in card.official_checkpoints.items())
        text += f" Official {card.display_name} checkpoints: {listed}"
        if card.paper and card.paper.code:
            text += f" (download links in the README of {card.paper.code})"
        return text + "."
    return text + f" The model card ({card.source or card.name}) lists no official checkpoint."


def load_weights(model: nn.Module, path: str | Path, card: ModelCard | None = None, strict: bool | None = None,
                 trust_pickle: bool = False) -> LoadReport:
    """Load a checkpoint into ``model`` (in place). ``strict`` defaults to the card's ``checkpoint.strict``
    (True without a card). Strict: any missing, unexpected or shape-mismatched key raises
    :class:`CheckpointMismatchError`. Non-strict: the matching tensors are loaded, the rest is reported
    in the returned :class:`LoadReport` and in a warning; a checkpoint matching none of the model's tensors
    raises :class:`CheckpointMismatchError` (it would load nothing)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(missing_checkpoint_message(path, card))
    spec = card.checkpoint if card else None
    strict = (spec.strict if spec else True) if strict is None else strict
    checkpoint = read_checkpoint(path, spec, trust_pickle)
    model_state = model.state_dict()
    mismatch = compare_state_dict(_signature(model_state), _signature(checkpoint.state_dict))
    target = f"{card.display_name} ({card.name})" if card else type(model).__name__
    bad = {k for k, _, _ in mismatch.mismatched} | set(mismatch.unexpected)
    usable = {k: v for k, v in checkpoint.state_dict.items() if k not in bad}
    if not mismatch.ok:
        exclude = (card.name,) if card else ()
        if strict:
            raise _mismatch_error(path, target, checkpoint, model_state, mismatch, exclude, card=card)
        if model_state and not usable:
            raise _mismatch_error(path, target, checkpoint, model_state, mismatch, exclude,
                                  f"non-strict load (checkpoint.strict: false): no tensor of the checkpoint "
                                  f"matches any of the {len(model_state)} tensors of {target} by name and shape, "
                                  "so it would load nothing.\n", card=card)
        message = _mismatch_error(path, target, checkpoint, model_state, mismatch, exclude, card=card, strict=False)
        warnings.warn(f"non-strict load: {message}", UserWarning, stacklevel=2)
    model.load_state_dict(usable, strict=mismatch.ok)
    return LoadReport(str(path), checkpoint.format, len(checkpoint.state_dict), len(usable), strict, mismatch)


def create_model(
    name: str | Path | ModelCard,
    checkpoint: str | Path | None = None,
    registry: str | Path | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the model of a card (keyword ``overrides`` replace card args), load weights, set eval mode.

    Without ``checkpoint`` the weights are the architecture's random initialisation.
    """
    card = get_card(name, registry)
    if overrides:
        card = replace(card, args={**card.args, **overrides})
    factory = resolve_factory(card)
    check_card_args(card, factory)  # unknown or missing args: one error naming the card, before building
    try:
        model = factory(**card.args)
    except Exception as err:  # the card's code: name the card, the values it got and where it failed
        frame = traceback.extract_tb(err.__traceback__)[-1]
        args = ", ".join(f"{key}={value!r}" for key, value in card.args.items())
        raise ModelBuildError(f"{card.source or card.name}: {card.factory}({args}) raised {type(err).__name__}: "
                              f"{err} (at {frame.filename}:{frame.lineno}); check the card's args and any "
                              "--model-arg values") from err
    if not isinstance(model, nn.Module):
        raise SpecError(f"{card.source or card.name}: field 'factory': {card.factory} returned "
                        f"{type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        load_weights(model, checkpoint, card)
    model.eval()
    model.bench_ir_card = card  # type: ignore[attr-defined]
    return model


# ----------------------------------------------------------------------------------- hashing, writing
def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_bytes`` pieces (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def is_sample_checkpoint(card: ModelCard, sha256: str | None) -> bool:
    """Whether weights whose file has content ``sha256`` are the card's shipped sample checkpoint (a copy of it
    counts): a demonstration, not published weights, so reports do not rank its runs on real data."""
    path = default_checkpoint_path(card)
    return sha256 is not None and path is not None and path.is_file() and sha256_file(path) == sha256


def sidecar_path(out: str | Path) -> Path:
    """The JSON provenance file written beside a converted checkpoint: ``<out>.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def convert_checkpoint(src: str | Path, out: str | Path, card: ModelCard | str, dtype: str | torch.dtype | None = None,
                       trust_pickle: bool = False, overwrite: bool = False, strip_prefixes: Sequence[str] = (),
                       model_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check ``src`` against the card's model (strictly), write its tensors to ``out`` (.safetensors) and
    a provenance sidecar ``<out>.json``; return the sidecar's content.

    dtype: cast floating-point tensors (``"fp16"``, ``"bf16"``, ``"fp32"`` or a torch dtype); integer
    buffers such as BatchNorm's ``num_batches_tracked`` keep their dtype.
    overwrite: replace an existing ``out`` and its sidecar (else an existing one is a FileExistsError).
    strip_prefixes: key prefixes removed in addition to the card's ``checkpoint.strip_prefixes`` (a checkpoint saved
    from a wrapper, e.g. ``model.``).
    model_args: card arguments replaced (as ``--model-arg`` does), e.g. ``{"queue_size": 3}``; recorded in the
    sidecar (``model_args``, {} without) and, when given, in the output's metadata as a training run records them
    (:data:`TRAINED_ARGS_KEY`), so that a load with other arguments names these.
    The sidecar records what the conversion actually did: ``stripped_prefixes`` (the prefixes removed from at least
    one key, ``module.`` / ``_orig_mod.`` included) and ``weights_key`` (the entry of the file that held the weights,
    e.g. ``params_ema``; null when the file is itself the state_dict).
    Both files are written to temporary names first and renamed at the end: a failure leaves no new output
    without its sidecar.
    """
    from safetensors.torch import save_file

    src, out = Path(src), Path(out)
    card = with_model_args(get_card(card), dict(model_args or {}))
    if strip_prefixes:
        card = replace(card, checkpoint=replace(card.checkpoint, strip_prefixes=[*card.checkpoint.strip_prefixes,
                                                                                 *strip_prefixes]))
    if out.suffix != ".safetensors":
        raise ValueError(f"output {out} must end in .safetensors")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise FileExistsError(f"output {out} is the checkpoint being converted; choose another output file")
    if not overwrite:
        for existing in (out, sidecar_path(out)):
            if existing.exists():
                raise FileExistsError(f"output {existing} already exists; pass --overwrite (overwrite=True) to "
                                      "replace it, or choose another output file")
    cast = _DTYPES.get(dtype.lower(), None) if isinstance(dtype, str) else dtype
    if isinstance(dtype, str) and cast is None:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    if not src.exists():
        raise FileNotFoundError(missing_checkpoint_message(src, card))
    check_card_args(card)  # an unknown --model-arg: one error naming the card, before the file is read
    checkpoint = read_checkpoint(src, card.checkpoint, trust_pickle)
    with torch.device("meta"):
        model = resolve_factory(card)(**card.args)
    model_state = model.state_dict()
    mismatch = compare_state_dict(_signature(model_state), _signature(checkpoint.state_dict))
    if not mismatch.ok:
        raise _mismatch_error(src, f"{card.display_name} ({card.name})", checkpoint, model_state, mismatch,
                              (card.name,), converting=True, card=card, extra_prefixes=tuple(strip_prefixes))

    tensors = {}
    for key, value in checkpoint.state_dict.items():
        value = value.detach()
        if cast is not None and value.is_floating_point():
            value = value.to(cast)
        tensors[key] = value.contiguous().clone()  # clone: safetensors refuses tensors sharing storage
    source_sha = sha256_file(src)
    parameter_keys = {name for name, _ in model.named_parameters()}
    floating = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    sidecar: dict[str, Any] = {
        "model": card.name,
        "display_name": card.display_name,
        "card_source": portable_path(card.source, {"output": out.parent}),
        "source_file": src.name,
        "source_sha256": source_sha,
        "source_format": checkpoint.format,
        "weights_key": checkpoint.key,
        "stripped_prefixes": list(checkpoint.stripped),
        "model_args": dict(model_args or {}),
        "output_file": out.name,
        "output_sha256": "",  # filled in once the output is written
        "tensors": len(tensors),
        "parameters": sum(t.numel() for k, t in tensors.items() if k in parameter_keys),
        "buffer_elements": sum(t.numel() for k, t in tensors.items() if k not in parameter_keys),
        "dtype": floating[0] if len(floating) == 1 else floating,
        "bench_ir_version": bench_ir_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = {"format": "pt", TRAINED_CARD_KEY: card.name, "source_sha256": source_sha}
    if model_args:
        metadata[TRAINED_ARGS_KEY] = model_args_metadata(card.args)
    # output and sidecar go to temporary files first; the output is renamed into place, then the sidecar (a
    # failure in between removes the new output), so no new output is ever left without its provenance
    output_placed = False
    try:
        with atomic_target(sidecar_path(out)) as sidecar_tmp:
            with atomic_target(out) as tmp:  # safetensors itself creates 0600 files; this gives a normal mode
                save_file(tensors, str(tmp), metadata=metadata)
                sidecar["output_sha256"] = sha256_file(tmp)
                with naming_path(sidecar_path(out)):  # an OSError names the sidecar, not a temporary file
                    write_json_atomic(sidecar_tmp, sidecar)
            output_placed = True
    except BaseException:
        if output_placed:
            out.unlink(missing_ok=True)
        raise
    return sidecar


def save_lightning_checkpoint(model: nn.Module, path: str | Path, epoch: int = 0, global_step: int = 0,
                              lightning_version: str = "2.6.0") -> Path:
    """Write ``model``'s weights as an official-style Lightning checkpoint: ``state_dict`` keys are
    ``net.`` + the model's keys, next to ``epoch``, ``global_step`` and ``pytorch-lightning_version``
    (optimizer and scheduler states are left empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"net.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"epoch": epoch, "global_step": global_step, "pytorch-lightning_version": lightning_version,
                "state_dict": state, "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": []},
               path)
    return path
