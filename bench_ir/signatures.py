"""A model card's factory string and its signature, read without running the card's code.

A factory is written ``module.path:attr`` (an importable module) or ``file.py:attr`` (a Python file, relative to
the card's folder). :func:`static_parameters` finds the module's file without importing anything (the top-level
package is located with ``importlib.util.find_spec``, which runs no module code) and reads the parameters of
``attr`` from its syntax tree: a function, or a class's own ``__init__`` (or the fields of a ``@dataclass``; a
bare ``nn.Module`` subclass takes none). :func:`runtime_parameters` reads them from the imported callable.
:func:`check_args` compares a card's ``args`` with either, so unknown or missing arguments are one clear error
before anything is built.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_ir.yamlio import SpecError

__all__ = ["FactoryRef", "Parameters", "parse_factory", "locate_module_file", "static_parameters",
           "top_level_names", "runtime_parameters", "check_args"]

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_MODULE_BASES = frozenset({"nn.Module", "torch.nn.Module", "Module"})


@dataclass(frozen=True)
class FactoryRef:
    """A parsed factory string: ``module`` (dotted name) or ``file`` (a .py path as written), and ``attr``."""

    text: str
    attr: str
    module: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class Parameters:
    """What a factory accepts by keyword: ``names`` (keyword-passable), ``required`` (no default),
    ``any_keyword`` (it has ``**kwargs``)."""

    names: tuple[str, ...]
    required: tuple[str, ...]
    any_keyword: bool = False


def parse_factory(text: str, where: str) -> FactoryRef:
    """``module.path:attr`` or ``file.py:attr``; anything else is a SpecError naming ``where`` (file: field)."""
    target, sep, attr = str(text).rpartition(":")
    if not sep or not _IDENTIFIER.fullmatch(attr):
        raise SpecError(f"{where}: field 'factory': expected 'module.path:callable' or 'file.py:callable', "
                        f"got {text!r}")
    if target.endswith(".py"):
        return FactoryRef(text, attr, file=target)
    if not _DOTTED.fullmatch(target):
        raise SpecError(f"{where}: field 'factory': {target!r} is neither a dotted module name nor a .py file")
    return FactoryRef(text, attr, module=target)


def locate_module_file(ref: FactoryRef, card_dir: Path | None) -> Path | None:
    """The source file of the factory's module, found without executing any module code; None if not found.
    A ``file.py`` is relative to ``card_dir``; a module is searched in ``card_dir`` first, then on sys.path."""
    if ref.file is not None:
        path = Path(ref.file).expanduser()
        path = path if path.is_absolute() or card_dir is None else card_dir / path
        return path if path.is_file() else None
    head, *rest = ref.module.split(".")  # type: ignore[union-attr]
    roots: list[Path] = []
    if card_dir is not None and ((card_dir / head).is_dir() or (card_dir / f"{head}.py").is_file()):
        roots = [card_dir]
    else:
        try:
            spec = importlib.util.find_spec(head)  # a top-level name: finds, does not execute
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None
        if not rest:
            return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
        roots = [Path(p).parent for p in (spec.submodule_search_locations or [])]
    for root in roots:
        base = root.joinpath(head, *rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _from_arguments(args: ast.arguments, skip_first: bool) -> Parameters:
    positional = [*args.posonlyargs, *args.args]
    n_posonly = len(args.posonlyargs)
    defaults_from = len(positional) - len(args.defaults)
    names, required = [], []
    for index, arg in enumerate(positional):
        if skip_first and index == 0:
            continue
        if index < n_posonly:
            if index < defaults_from:
                required.append(arg.arg)
            continue
        names.append(arg.arg)
        if index < defaults_from:
            required.append(arg.arg)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        names.append(arg.arg)
        if default is None:
            required.append(arg.arg)
    return Parameters(tuple(names), tuple(required), any_keyword=args.kwarg is not None)


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def static_parameters(source: Path, attr: str) -> Parameters | None:
    """Parameters of the top-level function or class ``attr`` of the Python file ``source``, read from its syntax
    tree; None when they cannot be read that way (``attr`` assigned, imported, or a class without its own
    ``__init__``). A SyntaxError in the file is a SpecError naming it."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except SyntaxError as err:
        raise SpecError(f"{source}:{err.lineno}: invalid Python ({err.msg}); correct the file") from err
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attr:
            return _from_arguments(node.args, skip_first=False)
        if isinstance(node, ast.ClassDef) and node.name == attr:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return _from_arguments(item.args, skip_first=True)
            if _is_dataclass(node) and not node.bases:
                fields = [(s.target.id, s.value is not None) for s in node.body
                          if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
                return Parameters(tuple(n for n, _ in fields), tuple(n for n, has in fields if not has))
            if node.bases and all(ast.unparse(base) in _PLAIN_MODULE_BASES for base in node.bases):
                return Parameters((), ())  # torch.nn.Module.__init__ takes no arguments
            return None
    return None


def top_level_names(source: Path) -> tuple[dict[str, str], bool]:
    """(names bound at the top level of the Python file ``source`` -> how: ``def``, ``class``, ``import``,
    ``literal`` (assigned a constant, list, tuple, dict or set of constants) or ``assign``; whether the file may bind
    other names dynamically: a star import, a module ``__getattr__`` or a conditional block). Nothing is imported."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except SyntaxError as err:
        raise SpecError(f"{source}:{err.lineno}: invalid Python ({err.msg}); correct the file") from err
    names: dict[str, str] = {}
    dynamic = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = "class" if isinstance(node, ast.ClassDef) else "def"
            dynamic |= node.name == "__getattr__"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            how = "literal" if _is_literal(node.value) else "assign"
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update((n.id, how) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                dynamic |= alias.name == "*"
                names[(alias.asname or alias.name).split(".")[0]] = "import"
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For)):
            dynamic = True  # definitions inside blocks are not read here
    return names, dynamic


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def runtime_parameters(factory: Any) -> Parameters | None:
    """Parameters of an imported callable (``inspect.signature``); None when Python cannot tell. A class that
    inherits ``torch.nn.Module.__init__`` (or ``object.__init__``) takes no arguments."""
    if inspect.isclass(factory):
        # the class that defines the __init__ in use, found by the MRO (robust to a library wrapping the function)
        owner = next((klass for klass in factory.__mro__ if "__init__" in vars(klass)), object)
        if owner is object or (owner.__module__, owner.__qualname__) == ("torch.nn.modules.module", "Module"):
            return Parameters((), ())
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names, required, any_keyword = [], [], False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            any_keyword = True
        elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            names.append(parameter.name)
            if parameter.default is parameter.empty:
                required.append(parameter.name)
        elif parameter.kind is parameter.POSITIONAL_ONLY and parameter.default is parameter.empty:
            required.append(parameter.name)
    return Parameters(tuple(names), tuple(required), any_keyword)


def check_args(params: Parameters, args: dict[str, Any], where: str, factory: str) -> None:
    """SpecError naming ``where`` when ``args`` has names ``factory`` does not accept or misses required ones."""
    unknown = [] if params.any_keyword else [name for name in args if name not in params.names]
    missing = [name for name in params.required if name not in args]
    if unknown:
        accepted = ", ".join(params.names) or "no keyword arguments"
        raise SpecError(f"{where}: unknown argument(s) {', '.join(unknown)} for {factory} (card 'args' or "
                        f"--model-arg); it accepts: {accepted}")
    if missing:
        raise SpecError(f"{where}: {factory} needs argument(s) {', '.join(missing)}, which the card's 'args' "
                        "do not give")


def card_dir_of(source: str) -> Path | None:
    """The folder of a card read from a file (searched for its factory module), else None. A relative source that
    is not a file here is looked up in the project too (manifests record cards relative to it)."""
    if not source:
        return None
    if Path(source).is_file():
        return Path(source).parent.resolve()
    from bench_ir.manifest import project_root

    in_project = project_root() / source
    return in_project.parent.resolve() if not Path(source).is_absolute() and in_project.is_file() else None


def import_file_module(path: Path) -> Any:
    """Import a ``file.py`` factory module by path (its name in sys.modules is derived from the path)."""
    name = "bench_ir_card_" + re.sub(r"\W", "_", str(path.resolve().with_suffix("")))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
