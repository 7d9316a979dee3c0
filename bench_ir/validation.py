"""`bench-ir validate`: check a model card, protocol, training recipe or suite file without running a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_ir.yamlio import SpecError, read_yaml, read_yaml_with_includes

__all__ = ["validate_file"]


def validate_file(path: str | Path) -> tuple[str, str]:
    """Validate ``path`` as a suite (has ``entries``), a protocol (has ``tasks``), a training recipe (has ``data``)
    or a model card (has ``factory``); ``include:`` chains are resolved first.

    For a card the factory is imported (not called), and so are the training hooks it names (options
    ``objective`` and ``optimizer``); for a recipe its ``loss.objective`` and ``optimizer.factory``. An
    unimportable name is reported. Returns (kind, name); raises SpecError naming the file and field otherwise."""
    from bench_ir.cards import load_card, resolve_factory
    from bench_ir.protocol import load_protocol

    path = Path(path)
    data = read_yaml(path)
    if "entries" in data:
        from bench_ir.suite.spec import load_suite

        return "suite", load_suite(path).name
    if "include" in data:
        data = {**read_yaml_with_includes(path), **data}
    if "tasks" in data:
        protocol = load_protocol(path)
        return "protocol", protocol.name
    if "data" in data:
        from bench_ir.train.objectives import check_hooks
        from bench_ir.train.recipes import load_recipe

        recipe = load_recipe(path)
        check_hooks({"loss.objective": recipe.loss.objective, "optimizer.factory": recipe.optimizer.factory},
                    str(path))
        return "recipe", recipe.name
    if "factory" in data:
        from bench_ir.train.objectives import check_hooks

        card = load_card(path)
        factory = resolve_factory(card)
        if not callable(factory):
            raise SpecError(f"{path}: field 'factory': {card.factory} is not callable")
        check_hooks({f"options.{key}{'' if value == 'default' else '.' + value}": option
                     for key in ("objective", "optimizer") for value, option in _option_values(card.options, key)},
                    str(path))
        return "model card", card.name
    raise SpecError(f"{path}: neither a suite (no 'entries'), a protocol (no 'tasks'), a recipe (no 'data') nor a "
                    "model card (no 'factory')")


def _option_values(options: dict[str, Any], key: str) -> list[tuple[str, Any]]:
    """The values a card option can take: ``[("default", v)]`` for a plain value, default and paper for a
    ``{default:, paper:}`` mapping."""
    if key not in options:
        return []
    option = options[key]
    if not isinstance(option, dict):
        return [("default", option)]
    return [(which, option[which]) for which in ("default", "paper") if option.get(which) is not None]
