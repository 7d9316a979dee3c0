"""Strict YAML -> frozen dataclass validation shared by model cards and protocols."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = ["SpecError", "read_yaml", "read_yaml_with_includes", "build_dataclass", "resolve_spec_path"]

Merge = Callable[[dict[str, Any] | None, dict[str, Any], Path, str | None], dict[str, Any]]


class SpecError(ValueError):
    """A model card or protocol file is invalid; the message names the file and the field."""


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML parse error in one line: 'line L, column C: <problem> (<context> at line L, column C)', lines and
    columns counted from 1 as editors do; the error's own text when it carries no position."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is None or not problem:
        return " ".join(str(err).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and context_mark is not None:
        text += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return text


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping; a missing file, bad YAML or a non-mapping is a SpecError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {yaml_problem(err)}") from err
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_yaml_with_includes(path: Path, merge: Merge | None = None,
                            seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One YAML mapping with its ``include:`` chain resolved: the included file (a path relative to the including
    one) is read first, then the including file's top-level keys replace its keys. ``merge(base, data, path,
    include)`` replaces that rule (``base`` is None for a file without ``include``). A cycle is a SpecError."""
    path = Path(path).resolve()
    if path in seen:
        raise SpecError(f"{path}: include cycle via {[str(p) for p in seen]}")
    data = read_yaml(path)
    parent = data.pop("include", None)
    base = None if parent is None else read_yaml_with_includes(path.parent / parent, merge, (*seen, path))
    if merge is not None:
        return merge(base, data, path, parent)
    return data if base is None else {**base, **data}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert nested mappings to dataclasses."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, where)
            except SpecError as err:
                errors.append(str(err))
        raise SpecError(errors[0] if errors else f"{where}: must not be null")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise SpecError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
        return build_dataclass(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
        _key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return {k: _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise SpecError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        return value
    return value


def build_dataclass(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build the frozen dataclass ``cls`` from ``data``; unknown keys, missing keys and wrong types raise."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}: field '{name}'")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SpecError(f"{where}: missing required field '{name}'")
    return cls(**kwargs)


def resolve_spec_path(name_or_path: str | Path, folder: Path, kind: str) -> Path:
    """A YAML path as given, or ``<folder>/<name>.yaml`` for a built-in name; an unknown name is a KeyError
    listing the known ones with "did you mean" hints. ``kind`` names the thing (protocol, recipe)."""
    import difflib

    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return Path(text)
    path = folder / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        hint = difflib.get_close_matches(text, known, n=3)
        did_you_mean = f" Did you mean: {', '.join(hint)}?" if hint else ""
        raise KeyError(f"unknown {kind} '{text}'.{did_you_mean} Known {kind}s: {', '.join(known)}")
    return path
