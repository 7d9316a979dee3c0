"""Strict YAML -> frozen dataclass validation shared by model cards and protocols."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = ["SpecError", "read_yaml", "read_yaml_with_includes", "build_dataclass", "resolve_spec_path",
           "YAML_SUFFIXES", "yaml_files"]

YAML_SUFFIXES = (".yaml", ".yml")  # what a spec file (card, protocol, recipe, suite) may end with

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


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping repeating a key (PyYAML keeps the last value silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<' merge keys may be overridden by the mapping's own keys
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the base constructor says so
                if earlier is not key_node:
                    raise yaml.constructor.ConstructorError(
                        "first defined", earlier.start_mark, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _duplicate_key(err: yaml.YAMLError) -> str | None:
    """'duplicate key 'name' at line 3 (first at line 1)' for a repeated key, else None."""
    mark, context_mark = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or ""
    if not isinstance(err, yaml.constructor.ConstructorError) or not problem.startswith("duplicate key "):
        return None
    if mark is None or context_mark is None:
        return None
    return f"{problem} at line {mark.line + 1} (first at line {context_mark.line + 1})"


def yaml_files(folder: Path) -> list[Path]:
    """The YAML files (:data:`YAML_SUFFIXES`) directly in ``folder``, sorted; sub-folders are not searched."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping; a missing file, bad YAML, a key repeated in a mapping or a non-mapping is a SpecError
    naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        duplicate = _duplicate_key(err)
        if duplicate is not None:
            raise SpecError(f"{path}: {duplicate}; a key may appear once in a mapping") from err
        raise SpecError(f"{path}: not valid YAML: {yaml_problem(err)}") from err
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


class _Included(dict):
    """A mapping read with its ``include:`` chain, remembering for each top-level key the chain of files (the
    including file first) from which it came, so that :func:`build_dataclass` names the file holding a bad value."""

    origins: dict[str, tuple[str, ...]]


def _from_chain(chain: tuple[str, ...]) -> str:
    """'(from a.yaml including b.yaml including c.yaml)'."""
    return f"(from {' including '.join(chain)})"


def read_yaml_with_includes(path: Path, merge: Merge | None = None,
                            seen: tuple[Path, ...] = (), builtin: Path | None = None) -> dict[str, Any]:
    """One YAML mapping with its ``include:`` chain resolved: the included file (a path relative to the including
    one; where none is there, ``<builtin>/<name>.yaml``, so that a user's file can write ``include: 3deg`` for a
    shipped one) is read first, then the including file's top-level keys replace its keys. ``merge(base, data,
    path, include)`` replaces that rule (``base`` is None for a file without ``include``). A cycle is a SpecError.

    An error in an included file (missing, not YAML) names that file and the files including it; the returned
    mapping remembers which file each top-level key came from, so :func:`build_dataclass` names the file that set a
    bad value."""
    return _read_included(Path(path), merge, seen, (), builtin)


def _read_included(path: Path, merge: Merge | None, seen: tuple[Path, ...],
                   chain: tuple[str, ...], builtin: Path | None = None) -> dict[str, Any]:
    """:func:`read_yaml_with_includes` of ``path`` (as the user, or the including file, wrote it) included by the
    files ``chain`` (as written, the outermost first)."""
    resolved = path.resolve()
    if resolved in seen:
        raise SpecError(f"{resolved}: include cycle via {[str(p) for p in seen]}")
    here = (*chain, str(path))
    try:
        data = read_yaml(resolved)
    except SpecError as err:
        if not chain:
            raise
        if not resolved.is_file():
            raise SpecError(f"{chain[-1]}: field 'include': {resolved}: file not found"
                            f"{' ' + _from_chain(here) if len(chain) > 1 else ''}") from err
        raise SpecError(f"{err} {_from_chain(here)}") from err
    parent = data.pop("include", None)
    own = set(data)
    base = None
    if parent is not None:
        target = resolved.parent / str(parent)  # relative to the including file itself (a link's target)
        written = path.parent / str(parent)
        shown = written if written.resolve() == target.resolve() else target
        shipped = builtin / (str(parent) if str(parent).endswith((".yaml", ".yml")) else f"{parent}.yaml") \
            if builtin is not None and "/" not in str(parent) else None
        if not target.is_file() and shipped is not None and shipped.is_file():
            shown = shipped  # `include: 3deg` of a user's file: the shipped one
        base = _read_included(shown, merge, (*seen, resolved), here, builtin)
    merged = merge(base, data, resolved, parent) if merge is not None else data if base is None else {**base, **data}
    inherited = getattr(base, "origins", {})
    result = _Included(merged)
    result.origins = {key: inherited[key] if key in inherited and key not in own else here for key in result}
    return result


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _yaml_number(text: str, tp: type) -> str | None:
    """``text`` (a finite number to Python that YAML read as a string) spelled so that YAML reads it as a ``tp``:
    for a float the exponent form with a decimal point and a signed exponent (``1e-4`` -> ``1.0e-4``, ``5e3`` ->
    ``5.0e+3``) or the number as YAML writes it, for an int its digits (``1e3`` -> ``1000``); None when there is no
    such spelling (``1.5`` for an int)."""
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if tp is int:
        return str(int(number)) if number.is_integer() else None
    mantissa, sep, exponent = text.strip().lower().partition("e")
    if sep and mantissa and exponent:
        point = "" if "." in mantissa else ".0"
        sign = "" if exponent[0] in "+-" else "+"
        return f"{mantissa}{point}e{sign}{exponent}"
    return yaml.safe_dump(number).splitlines()[0]


def _number_as_text(value: Any, tp: type) -> str:
    """For a string that is a number to Python (``'1e-4'``), why YAML read it as text and how to write it (YAML 1.1
    reads a number whose exponent lacks a decimal point or a sign, ``1e-4`` or ``1.0e4``, as a string, and any
    quoted number); '' for any other value. Appended to the type error of a numeric field."""
    spelled = _yaml_number(value, tp) if isinstance(value, str) else None
    if spelled is None:
        return ""
    try:
        quoted = isinstance(yaml.safe_load(value), (int, float))  # unquoted, YAML would have read a number
    except yaml.YAMLError:
        quoted = False
    why = ("a quoted number is text to YAML" if quoted else
           f"YAML 1.1 reads {value} as text: a number with an exponent needs a decimal point and a signed exponent")
    return f" ({why}); write {spelled}"


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
            raise SpecError(f"{where}: expected a number, got {value!r}{_number_as_text(value, tp)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}{_number_as_text(value, tp)}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise SpecError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        return value
    return value


def _origin(data: dict[str, Any], key: str) -> tuple[str, ...] | None:
    """The include chain (outermost file first) of a top-level key read from an included file, else None."""
    chain = getattr(data, "origins", {}).get(key)
    return chain if chain is not None and len(chain) > 1 else None


def _coerce_field(data: dict[str, Any], name: str, tp: Any, where: str) -> Any:
    """``_coerce`` of the top-level field ``name``; an error names the included file that set it, if one did."""
    chain = _origin(data, name)
    if chain is None:
        return _coerce(data[name], tp, f"{where}: field '{name}'")
    try:
        return _coerce(data[name], tp, f"{chain[-1]}: field '{name}'")
    except SpecError as err:
        raise SpecError(f"{err} {_from_chain(chain)}") from err


def build_dataclass(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build the frozen dataclass ``cls`` from ``data``; unknown keys, missing keys and wrong types raise."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        chain = _origin(data, unknown[0])
        if chain and all(_origin(data, key) == chain for key in unknown):
            raise SpecError(f"{chain[-1]}: unknown field(s) {unknown}; allowed: {sorted(fields)} {_from_chain(chain)}")
        raise SpecError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce_field(data, name, hints[name], where)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SpecError(f"{where}: missing required field '{name}'")
    return cls(**kwargs)


def resolve_spec_path(name_or_path: str | Path, folder: Path, kind: str) -> Path:
    """A YAML path as given, or ``<folder>/<name>.yaml`` for a built-in name, in any letter case when that names
    one file (``5DEG`` is ``5deg``, as model names are); an unknown name is a KeyError listing the known ones with
    "did you mean" hints. ``kind`` names the thing (protocol, recipe)."""
    import difflib

    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return Path(text)
    path = folder / f"{text}.yaml"
    if not path.is_file():
        folded = [p for p in folder.glob("*.yaml") if p.stem.casefold() == text.casefold()]
        if len(folded) == 1:
            return folded[0]
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        hint = difflib.get_close_matches(text, known, n=3)
        did_you_mean = f" Did you mean: {', '.join(hint)}?" if hint else ""
        raise KeyError(f"unknown {kind} '{text}'.{did_you_mean} Known {kind}s: {', '.join(known)}")
    return path
