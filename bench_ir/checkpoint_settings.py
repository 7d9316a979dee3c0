"""Which setting a card's official checkpoint file was released for, recognised by the file's name.

A card's ``official_checkpoints`` maps a setting to where the release keeps its file. All-in-one releases key it by
protocol name (``3deg``, ``5deg``, ``cdd11``; AirNet's single-task ``denoise``, ``derain``, ``dehaze``); single-task
releases key it by their own task name (Restormer's ``deraining``, NAFNet's ``gopro-deblur``), which names no
bench-ir protocol. A setting is the protocol of the same name in any letter case.

Values are read in each form the cards use: a path (``train_ckpt/3deg_tiny/3Deg_tiny.ckpt``); a path and a remark in
parentheses (``ckpt/Denoise.pth (train_batch_size 3)``, ``model_L.pth (https://...)``); a path with ``{a,b}``
alternatives (``gaussian_color_denoising_{blind,sigma15}.pth``: one file each); a mapping with the path under
``path`` or ``file``; or a description with no file name (``CDD11 Small checkpoint (README link)``), which no
checkpoint matches. The file is the value's first word when that word has a suffix.

A checkpoint matches a setting when its path ends with that setting's official file name. When several settings
match, only those whose official path shares the longest tail with the checkpoint's path count:
``ck/MoCE_IR_AIO3/last.ckpt`` matches MoCE-IR's ``checkpoints/MoCE_IR_AIO3/last.ckpt`` (3deg), not its 5deg
``last.ckpt``, while a bare ``last.ckpt`` matches every setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench_ir.cards import ModelCard

__all__ = ["official_files", "matching_settings", "setting_mismatch_notice"]

_ALTERNATIVES = re.compile(r"\{([^{}]*)\}")


def _expand_alternatives(text: str) -> list[str]:
    """``a_{x,y}.pth`` -> [``a_x.pth``, ``a_y.pth``]; text without braces as it is."""
    found = _ALTERNATIVES.search(text)
    if found is None:
        return [text]
    return [expanded for choice in found.group(1).split(",")
            for expanded in _expand_alternatives(text[:found.start()] + choice.strip() + text[found.end():])]


def official_files(value: Any) -> list[PurePosixPath]:
    """The files an ``official_checkpoints`` value names (forms in the module docstring); [] for a description
    without a file name."""
    if isinstance(value, Mapping):
        return official_files(value.get("path") or value.get("file") or "")
    words = str(value).split()
    if not words or not PurePosixPath(words[0]).suffix:
        return []
    return [PurePosixPath(path) for path in _expand_alternatives(words[0])]


def _parts(path: str | Path) -> tuple[str, ...]:
    """The components of ``path``, with ``/`` or ``\\`` as separator."""
    return PureWindowsPath(str(path)).parts if "\\" in str(path) else PurePosixPath(str(path)).parts


def _shared_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many trailing path components ``a`` and ``b`` share."""
    shared = 0
    while shared < min(len(a), len(b)) and a[-1 - shared] == b[-1 - shared]:
        shared += 1
    return shared


def matching_settings(card: ModelCard, checkpoint: str | Path) -> list[str]:
    """The settings of ``card.official_checkpoints`` whose official file ``checkpoint`` is named like (those sharing
    the longest path tail with it), in card order; [] when its file name is no official one."""
    parts = _parts(checkpoint)
    tails = {setting: max((_shared_tail(parts, file.parts) for file in official_files(value)), default=0)
             for setting, value in card.official_checkpoints.items()}
    best = max(tails.values(), default=0)
    return [setting for setting, tail in tails.items() if best and tail == best]


def _setting_of(card: ModelCard, protocol: str) -> str | None:
    """The key of ``card.official_checkpoints`` for ``protocol`` (same name in any letter case), or None."""
    return next((key for key in card.official_checkpoints if key.casefold() == protocol.casefold()), None)


def _words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _run_setting_clause(card: ModelCard, protocol: str) -> str:
    """What the card says of the run's own protocol: its official file, or that it has none (or none named)."""
    setting = _setting_of(card, protocol)
    if setting is None:
        return f"for which {card.name} has no official checkpoint"
    names = [file.name for file in official_files(card.official_checkpoints[setting])]
    if not names:
        return f"whose official checkpoint the {card.name} card does not name by file"
    return f"whose official checkpoint is {_words(names)}"


def setting_mismatch_notice(card: ModelCard, checkpoint: str | Path, protocol: str) -> str | None:
    """A notice when ``checkpoint`` is named like ``card``'s official checkpoint of other settings and not like that
    of ``protocol`` (the run's); None otherwise (no official name, or the run's own setting matches too)."""
    settings = matching_settings(card, checkpoint)
    if not settings or any(setting.casefold() == protocol.casefold() for setting in settings):
        return None
    name = _parts(checkpoint)[-1]
    which, that = ((f"{_words(settings)} checkpoints", "one of those files") if len(settings) > 1
                   else (f"{settings[0]} checkpoint", "that file"))
    return (f"checkpoint {name} is named like {card.name}'s official {which}; this run is on {protocol}, "
            f"{_run_setting_clause(card, protocol)}: if it is {that}, this run's numbers are not a reproduction of "
            f"the published {protocol} row of {card.name}")

