"""`bench-ir validate`: check a model card, protocol, training recipe or suite file without running it.

Code named by a file is checked statically by default, never imported: a card's schema, the shape of its factory
string (``module.path:callable`` or ``file.py:callable``), that the factory's module file exists, and its ``args``
against the factory's signature as read from the module's syntax tree (bench_ir.signatures); the training hooks a
card or recipe names (objective, optimizer factory) must exist in their modules' files; a card's
``default_checkpoint`` must name an existing file (relative to the card, as runs resolve it). ``import_factory=True``
(``--import``) imports them (which runs their code), checks the args against the real signature and builds the model:
a parameter count other than the card's ``expected_params`` or ``inference_params`` is an error. A protocol is
loaded and validated (includes, safe task/dataset names, layout folders). A suite is loaded as `suite run` loads it
(its protocol files must have distinct names: its cells and report tables are named by protocol name).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_ir.yamlio import SpecError, read_yaml, read_yaml_with_includes, yaml_files

if TYPE_CHECKING:
    from bench_ir.cards import ModelCard
    from bench_ir.signatures import FactoryRef

__all__ = ["validate_file", "validate_card_static", "check_hooks_static", "spec_files"]


def spec_files(paths: list[str | Path]) -> list[Path]:
    """``paths`` with each folder replaced by the YAML files directly in it (sorted), e.g. ``registry`` -> its model
    cards. A folder without YAML files is a FileNotFoundError naming it; files are kept as given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files = yaml_files(path)
            if not files:
                raise FileNotFoundError(f"{path}: a folder without YAML files (*.yaml, *.yml)")
            found += files
        else:
            found.append(path)
    return found


def validate_card_static(card, notes: list[str] | None = None) -> None:
    """Check ``card``'s factory and args without importing anything: the factory's module file must exist and bind
    the factory's name; what cannot be read statically is added to ``notes`` (the args are then checked only by
    ``--import`` or when the model is built)."""
    from bench_ir.signatures import card_dir_of, check_args, locate_module_file, parse_factory, static_parameters

    where = card.source or card.name
    ref = parse_factory(card.factory, where)
    source = locate_module_file(ref, card_dir_of(card.source))
    if source is None:
        _refuse_compiled(ref, f"{where}: field 'factory'")
        what = f"file {ref.file}" if ref.file else f"module '{ref.module}'"
        raise SpecError(f"{where}: field 'factory': cannot import {what} (not found in the card's folder or on the "
                        "import path; nothing was imported)")
    if not _check_name_static(source, ref.file or ref.module, ref.attr, card.factory, f"{where}: field 'factory'",
                              notes):
        return  # the name may be bound dynamically: noted, and checked by --import
    params = static_parameters(source, ref.attr)
    if params is None:
        if notes is not None:
            notes.append(f"{where}: the signature of {card.factory} cannot be read from {source} without importing "
                         "it (not a plain function or class with its own __init__); its args are checked by "
                         "`validate --import` and when the model is built")
        return
    check_args(params, card.args, f"model card {where}", card.factory)


def _refuse_compiled(ref: FactoryRef, where: str) -> None:
    """A SpecError naming ``where`` (file and field) when the module of ``ref`` (a FactoryRef) exists on the import
    path but without a Python source file (:func:`_compiled_module`): the static check cannot read it."""
    compiled = _compiled_module(ref.module)
    if compiled is not None:
        raise SpecError(f"{where}: module '{ref.module}' has no Python source in which to check '{ref.attr}' and its "
                        f"signature ({compiled}); a card's factory or a hook must be a class or function of a Python "
                        "file (a module of your package, or a file.py next to the card). Nothing was imported; "
                        "`validate --import` would import it and run its code")


def _compiled_module(module: str | None) -> str | None:
    """How the top-level ``module``, found on the import path without a Python source file, exists instead: frozen
    or built into the interpreter (``os``, ``sys``), a compiled extension (``math``); None when it is not found, or
    is a dotted name (finding a submodule would import its package)."""
    import importlib.util

    if module is None or "." in module:
        return None
    try:
        spec = importlib.util.find_spec(module)  # finds, does not execute
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin.endswith(".py"):
        return None
    if spec.origin in ("frozen", "built-in"):
        return f"it is {'frozen' if spec.origin == 'frozen' else 'built'} into the Python interpreter"
    return f"it is compiled code, {spec.origin}"


def _check_name_static(source: Path, module: str, attr: str, text: str, where: str,
                       notes: list[str] | None) -> bool:
    """Whether the Python file ``source`` (module ``module``) binds ``attr`` at its top level to something other than
    a literal value, read without importing it. A name it cannot bind is a SpecError worded as the import check words
    it (``where`` names the file and field), and so is a file that is not valid Python; a name it may bind
    dynamically is a note (False is returned)."""
    from bench_ir.signatures import top_level_names

    try:
        names, dynamic = top_level_names(source)
    except SpecError as err:  # the file is not valid Python: named with the card or recipe that points to it
        raise SpecError(f"{where}: {err}") from err
    if attr not in names:
        if not dynamic:
            raise SpecError(f"{where}: module '{module}' has no attribute '{attr}' ({source})")
        if notes is not None:
            notes.append(f"{where}: '{attr}' is not defined literally in {source}; `validate --import` checks it")
        return False
    if names[attr] == "literal":
        raise SpecError(f"{where}: {text} is not callable")
    return True


def check_hooks_static(hooks: dict[str, str | None], where: str, notes: list[str] | None = None) -> None:
    """Every named hook (``{"loss.objective": "module:name", ...}``; None = not set) must be a ``module:name`` whose
    module file exists and binds ``name`` at its top level to something other than a literal value; found without
    importing. A SpecError names ``where`` and the field (worded as the import check words it); a name the file may
    bind dynamically is a note."""
    from bench_ir.signatures import locate_module_file, parse_factory

    for field_name, text in hooks.items():
        if text is None:
            continue
        module, sep, attr = str(text).partition(":")
        if not sep or not module or not attr:
            raise SpecError(f"{where}: {field_name}: expected 'module:name', got {text!r}")
        ref = parse_factory(str(text), f"{where}: {field_name}")
        source = locate_module_file(ref, None)
        if source is None:
            _refuse_compiled(ref, f"{where}: {field_name}")
            raise SpecError(f"{where}: {field_name}: cannot import module '{module}' (no such module file on the "
                            "import path; nothing was imported)")
        _check_name_static(source, module, attr, str(text), f"{where}: {field_name}", notes)


def _import_hooks(hooks: dict[str, str | None], where: str) -> None:
    """bench_ir.train.objectives.check_hooks, hook by hook, with an error that a hook's module raises when imported
    (a SyntaxError, a RuntimeError) as a SpecError naming ``where``, the field and the module."""
    from bench_ir.train.objectives import check_hooks

    for field_name, text in hooks.items():
        try:
            check_hooks({field_name: text}, where)
        except SpecError:
            raise
        except Exception as err:  # the module's own code failed
            module = str(text).partition(":")[0]
            raise SpecError(f"{where}: {field_name}: importing {module}: {type(err).__name__}: {err} (the module "
                            "fails when imported; correct it)") from err


def validate_file(path: str | Path, import_factory: bool = False, notes: list[str] | None = None) -> tuple[str, str]:
    """Validate ``path`` as a suite (has ``entries``), a protocol (has ``tasks``), a training recipe (has ``data``)
    or a model card (has ``factory``); a file that has none of these itself but an ``include:`` is read as the
    recipe or protocol it includes, its includes resolved exactly as `train` and `run` resolve them (a file beside
    it, else the shipped one by name: `include: 3deg` is the shipped recipe for a recipe and the shipped protocol
    for a protocol).

    Code is checked statically (see the module docstring); with ``import_factory`` a card's factory is imported, its
    args bound to the real signature and the model built (its parameter counts must be the card's ``expected_params``
    and ``inference_params`` when the card states them), and named hooks (a card's options
    ``objective``/``optimizer``, a recipe's ``loss.objective``/``optimizer.factory``) are imported. Returns (kind,
    name); raises SpecError naming the file and field. Remarks that are not errors (e.g. a signature that cannot be
    read statically, or what a recipe's training would be told: a card option replacing its value, a schedule its
    length does not fit) go to ``notes``."""
    path = Path(path)
    data = read_yaml(path)
    if "entries" in data:
        return _validate_suite(path, import_factory, notes)
    if "include" in data and not {"tasks", "data", "factory"} & set(data):
        return _validate_included(path, str(data["include"]), import_factory, notes)
    if "tasks" in data:
        return _validate_protocol(path)
    if "data" in data:
        return _validate_recipe(path, import_factory, notes)
    if "factory" in data:
        return _validate_card(path, import_factory, notes)
    raise SpecError(f"{path}: neither a suite (no 'entries'), a protocol (no 'tasks'), a recipe (no 'data') nor a "
                    "model card (no 'factory')")


def _validate_suite(path: Path, import_factory: bool, notes: list[str] | None) -> tuple[str, str]:
    """The suite as `suite run` loads and plans it: each entry's model_args against its card's factory (statically,
    or by importing it with ``import_factory``) and the profile size against each card's input_multiple
    (bench_ir.suite.plan.check_entries)."""
    from bench_ir.suite.plan import check_entries
    from bench_ir.suite.spec import load_suite

    suite = load_suite(path)
    check_entries(suite, None if import_factory else (lambda card: validate_card_static(card, notes)))
    return "suite", suite.name


def _validate_included(path: Path, include: str, import_factory: bool, notes: list[str] | None) -> tuple[str, str]:
    """A file whose kind comes from the file it includes: a recipe when its include chain, read as `train` reads
    recipes, gives ``data``; a protocol when, read as `run` reads protocols, it gives ``tasks``. A file that may be
    either (``include: 3deg`` names a shipped recipe and a shipped protocol) is the kinds it is valid as; valid as
    both, ``notes`` says so."""
    from bench_ir.resources import protocols_dir
    from bench_ir.train.recipes import recipes_dir

    kinds: list[str] = []
    unreadable: list[SpecError] = []
    for kind, key, builtin in (("recipe", "data", recipes_dir()), ("protocol", "tasks", protocols_dir())):
        try:
            if key in read_yaml_with_includes(path, builtin=builtin):
                kinds.append(kind)
        except SpecError as err:
            unreadable.append(err)
    if not kinds:
        if unreadable:
            raise unreadable[0]
        raise SpecError(f"{path}: field 'include': '{include}' gives neither a recipe (no 'data') nor a protocol "
                        "(no 'tasks')")
    if len(kinds) == 1:
        return _validate_as(kinds[0], path, import_factory, notes)
    results, errors = {}, {}
    for kind in kinds:
        try:
            results[kind] = _validate_as(kind, path, import_factory, notes)
        except (KeyError, OSError, ValueError) as err:  # SpecError is a ValueError
            errors[kind] = err
    if not results:
        raise SpecError(f"{path}: `include: {include}` names a shipped recipe and a shipped protocol, and the file is "
                        f"neither: as a recipe, {errors['recipe']}; as a protocol, {errors['protocol']}")
    if len(results) == 2:
        if notes is not None:
            notes.append(f"{path}: `include: {include}` names both a shipped recipe and a shipped protocol, and the "
                         "file is valid as either: `train` and `data check --recipe` read it as the recipe, `run` and "
                         "suites as the protocol")
        return "recipe and protocol", results["recipe"][1]
    return next(iter(results.values()))


def _validate_as(kind: str, path: Path, import_factory: bool, notes: list[str] | None) -> tuple[str, str]:
    return _validate_recipe(path, import_factory, notes) if kind == "recipe" else _validate_protocol(path)


def _validate_protocol(path: Path) -> tuple[str, str]:
    from bench_ir.protocol import load_protocol

    return "protocol", load_protocol(path).name


def _validate_recipe(path: Path, import_factory: bool, notes: list[str] | None) -> tuple[str, str]:
    """The recipe as `train` loads it, its named hooks, and (to ``notes``) what its training would be told that is
    known without the data: for the registered models whose cards replace a value of the recipe, and for its own
    epochs or steps, a schedule they do not fit (bench_ir.train.plan_notices.model_notices)."""
    from bench_ir.cards import list_cards
    from bench_ir.train.plan_notices import model_notices
    from bench_ir.train.recipes import load_recipe

    recipe = load_recipe(path)
    hooks = {"loss.objective": recipe.loss.objective, "optimizer.factory": recipe.optimizer.factory}
    if import_factory:
        _import_hooks(hooks, str(path))
    else:
        check_hooks_static(hooks, str(path), notes)
    if notes is not None:
        notes += [f"{path}: {notice}" for notice in model_notices(recipe, list_cards())]
    return "recipe", recipe.name


def _validate_card(path: Path, import_factory: bool, notes: list[str] | None) -> tuple[str, str]:
    from bench_ir.cards import check_card_args, load_card, missing_default_checkpoint, resolve_factory

    card = load_card(path)
    _check_name_unique_in_folder(card, path)
    missing = missing_default_checkpoint(card)
    if missing:
        raise SpecError(missing)
    hooks = {f"options.{key}{'' if value == 'default' else '.' + value}": option
             for key in ("objective", "optimizer") for value, option in _option_values(card.options, key)}
    if not import_factory:
        validate_card_static(card, notes)
        check_hooks_static(hooks, str(path), notes)
        return "model card", card.name
    factory = resolve_factory(card)
    if not callable(factory):
        raise SpecError(f"{path}: field 'factory': {card.factory} is not callable")
    check_card_args(card, factory)
    _import_hooks(hooks, str(path))
    _check_built_model(card, path)
    return "model card", card.name


def _check_built_model(card: ModelCard, path: Path) -> None:
    """Build the card's model; its parameter counts must be the card's ``expected_params`` and ``inference_params``
    where stated. An unexpected error of the model's own code while it is built (in its ``__init__``, its ``eval``)
    or counted (its ``training_only_modules``) is a SpecError naming the card file, so that `validate` reports it for
    this file and goes on; errors that already name the card (a SpecError, the factory's own ModelBuildError) pass
    unchanged."""
    from bench_ir.cards import parameter_count_mismatch
    from bench_ir.checkpoints import create_model

    with _model_code_errors(path, "building the model"):
        model = create_model(card)
    for field_name in ("expected_params", "inference_params"):
        with _model_code_errors(path, f"counting the model's parameters for {field_name}"):
            mismatch = parameter_count_mismatch(card, model, field_name)
        if mismatch:
            raise SpecError(f"{mismatch}; correct {field_name} or the factory and its args")


@contextmanager
def _model_code_errors(path: Path, doing: str) -> Iterator[None]:
    """Run code that runs the model's own code: an error not already worded for the card (a SpecError or a
    ModelBuildError names it) becomes a SpecError ``<path>: <doing> raised <type>: <message>``."""
    from bench_ir.checkpoints import ModelBuildError

    try:
        yield
    except (SpecError, ModelBuildError):
        raise
    except Exception as err:  # the model's own code failed
        raise SpecError(f"{path}: {doing} raised {type(err).__name__}: {err} (the card's model code fails; "
                        "correct it or the card's args)") from err


def _check_name_unique_in_folder(card: ModelCard, path: Path) -> None:
    """The card's folder is a registry to `--registry FOLDER`, where a name identifies one card: another card file
    there declaring ``card``'s name is a SpecError naming both files (bench_ir.cards.check_distinct_card_names).
    Files of the folder that are no readable card are left to their own validation."""
    from bench_ir.cards import check_distinct_card_names, load_card

    same_name = []
    for file in yaml_files(path.parent):
        if file.resolve() == path.resolve():
            same_name.append(card)
            continue
        try:
            data = read_yaml(file)
            if "factory" in data and data.get("name") == card.name:
                same_name.append(load_card(file))
        except SpecError:
            continue
    check_distinct_card_names(same_name, str(path.parent))


def _option_values(options: dict[str, Any], key: str) -> list[tuple[str, Any]]:
    """The values a card option can take: ``[("default", v)]`` for a plain value, default and paper for a
    ``{default:, paper:}`` mapping."""
    if key not in options:
        return []
    option = options[key]
    if not isinstance(option, dict):
        return [("default", option)]
    return [(which, option[which]) for which in ("default", "paper") if option.get(which) is not None]
