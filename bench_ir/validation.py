"""`bench-ir validate`: check a model card or protocol file without running it.

A card is checked statically by default: its schema, the shape of its factory string (``module.path:callable``
or ``file.py:callable``), that the factory's module file exists, and its ``args`` against the factory's
signature as read from the module's syntax tree (bench_ir.signatures) -- no code of the card is imported.
``import_factory=True`` (``--import``) imports the module (which runs its code) and checks the args against the
real signature. A protocol is loaded and validated (includes, safe task/dataset names, layout folders).
"""

from __future__ import annotations

from pathlib import Path

from bench_ir.yamlio import SpecError, read_yaml

__all__ = ["validate_file", "validate_card_static"]


def validate_card_static(card, notes: list[str] | None = None) -> None:
    """Check ``card``'s factory and args without importing anything; what cannot be read statically is added to
    ``notes`` (the args are then checked only by ``--import`` or when the model is built)."""
    from bench_ir.signatures import card_dir_of, check_args, locate_module_file, parse_factory, static_parameters

    where = card.source or card.name
    ref = parse_factory(card.factory, where)
    source = locate_module_file(ref, card_dir_of(card.source))
    if source is None:
        what = f"file {ref.file}" if ref.file else f"module '{ref.module}'"
        raise SpecError(f"{where}: field 'factory': {what} not found (searched the card's folder and the import "
                        "path, without importing)")
    params = static_parameters(source, ref.attr)
    if params is None:
        if notes is not None:
            notes.append(f"{where}: the signature of {card.factory} cannot be read from {source} without importing "
                         "it (not a plain function or class with its own __init__); its args are checked by "
                         "`validate --import` and when the model is built")
        return
    check_args(params, card.args, f"model card {where}", card.factory)


def validate_file(path: str | Path, import_factory: bool = False, notes: list[str] | None = None) -> tuple[str, str]:
    """Validate ``path`` as a protocol (has ``tasks`` or ``include``) or a model card (has ``factory``).

    A card is checked statically (see the module docstring), or with ``import_factory`` by importing its factory
    and binding its args to the real signature. Returns (kind, name); raises SpecError naming the file and field.
    Remarks that are not errors (e.g. a signature that cannot be read statically) are appended to ``notes``."""
    from bench_ir.cards import check_card_args, load_card, resolve_factory
    from bench_ir.protocol import load_protocol

    path = Path(path)
    data = read_yaml(path)
    if "tasks" in data or "include" in data:
        protocol = load_protocol(path)
        return "protocol", protocol.name
    if "factory" in data:
        card = load_card(path)
        if not import_factory:
            validate_card_static(card, notes)
            return "model card", card.name
        factory = resolve_factory(card)
        if not callable(factory):
            raise SpecError(f"{path}: field 'factory': {card.factory} is not callable")
        check_card_args(card, factory)
        return "model card", card.name
    raise SpecError(f"{path}: neither a protocol (no 'tasks') nor a model card (no 'factory')")
