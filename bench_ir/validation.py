"""`bench-ir validate`: check a model card, protocol or suite file without running a model."""

from __future__ import annotations

from pathlib import Path

from bench_ir.yamlio import SpecError, read_yaml

__all__ = ["validate_file"]


def validate_file(path: str | Path) -> tuple[str, str]:
    """Validate ``path`` as a suite (has ``entries``), a protocol (has ``tasks``) or a model card (has ``factory``).

    For a card the factory is imported (not called) so an unimportable factory is reported.
    Returns (kind, name); raises SpecError naming the file and field otherwise."""
    from bench_ir.cards import load_card, resolve_factory
    from bench_ir.protocol import load_protocol

    path = Path(path)
    data = read_yaml(path)
    if "entries" in data:
        from bench_ir.suite.spec import load_suite

        return "suite", load_suite(path).name
    if "tasks" in data or "include" in data:
        protocol = load_protocol(path)
        return "protocol", protocol.name
    if "factory" in data:
        card = load_card(path)
        factory = resolve_factory(card)
        if not callable(factory):
            raise SpecError(f"{path}: field 'factory': {card.factory} is not callable")
        return "model card", card.name
    raise SpecError(f"{path}: neither a suite (no 'entries'), a protocol (no 'tasks') nor a model card (no 'factory')")
