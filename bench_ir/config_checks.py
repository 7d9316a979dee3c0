"""Type checks of the fields of a configuration dataclass (:class:`bench_ir.run_config.RunConfig`,
:class:`bench_ir.folder_restore.RestoreConfig`), importable without torch. Each refuses a field of the wrong type with
a TypeError naming the class, the field, the value and what the field takes, so that ``overwrite="no"`` is refused
instead of being taken for True."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from numbers import Integral
from typing import Any, NoReturn

__all__ = ["refuse", "check_field_types", "check_model_args", "check_strings"]


def refuse(name: str, value: Any, expected: str, owner: str = "RunConfig") -> NoReturn:
    """Raise the TypeError for field ``name`` of the class ``owner`` (RunConfig's checks name none) holding
    ``value`` where it takes ``expected`` (words, e.g. "True or False")."""
    raise TypeError(f"{owner} {name} must be {expected}, got {value!r} ({type(value).__name__})")


def check_field_types(config: Any, *, bools: Iterable[str] = (), ints: Iterable[str] = (),
                      optional_ints: Iterable[str] = (), strs: Iterable[str] = (), optional_strs: Iterable[str] = (),
                      paths: Iterable[str] = (), optional_paths: Iterable[str] = ()) -> None:
    """Check the named fields of the dataclass ``config``: ``bools`` True or False (not "no", not 0), ``ints`` an
    integer (not a bool; an integer type such as numpy's is stored as ``int``), ``strs`` a string, ``paths`` a str
    or ``os.PathLike``; the ``optional_`` ones may also be None. The TypeError names ``config``'s class."""
    owner = type(config).__name__
    for name in bools:
        if not isinstance(getattr(config, name), bool):
            refuse(name, getattr(config, name), "True or False", owner)
    optional_ints = tuple(optional_ints)
    for name in (*ints, *optional_ints):
        value = getattr(config, name)
        if value is None and name in optional_ints:
            continue
        if isinstance(value, bool) or not isinstance(value, Integral):
            refuse(name, value, "an integer or None" if name in optional_ints else "an integer", owner)
        setattr(config, name, int(value))
    optional_strs = tuple(optional_strs)
    for name in (*strs, *optional_strs):
        value = getattr(config, name)
        if not (isinstance(value, str) or (value is None and name in optional_strs)):
            refuse(name, value, "a string or None" if name in optional_strs else "a string", owner)
    optional_paths = tuple(optional_paths)
    for name in (*paths, *optional_paths):
        value = getattr(config, name)
        if not (isinstance(value, str | os.PathLike) or (value is None and name in optional_paths)):
            refuse(name, value, "a path (str or Path)" + (" or None" if name in optional_paths else ""), owner)


def check_model_args(config: Any) -> None:
    """``config.model_args`` is a mapping of card argument names (strings) to values, as ``--model-arg`` gives."""
    value = config.model_args
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        refuse("model_args", value, "a dict of card argument names to values", type(config).__name__)


def check_strings(config: Any, name: str, expected: str = "a list of strings or None") -> None:
    """``config.<name>`` is None or a list (or tuple) of strings, such as a recorded command line."""
    value = getattr(config, name)
    if value is not None and not (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
        refuse(name, value, expected, type(config).__name__)
