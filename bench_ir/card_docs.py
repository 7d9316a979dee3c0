"""A model card described in full, as Markdown: what `bench-ir list models --details` prints.

Everything comes from the card (registry/*.yaml or a user's file): the network, its size rule, the checkpoint
format, the tensor dimensions its arguments set (``checkpoint.arg_dims``) and the official checkpoints it loads, the
paper and its printed figures, the options where the official code and the paper disagree, and the measured parity
with the official implementation.
"""

from __future__ import annotations

from typing import Any

from bench_ir.cards import ArgDim, ModelCard

__all__ = ["card_markdown"]


def _size_rule(card: ModelCard) -> str:
    if card.input_multiple <= 1:
        return "any height and width"
    if card.pad_mode == "none":
        return (f"height and width multiples of {card.input_multiple} (no padding: the protocol's crop rule must "
                "give them)")
    return (f"height and width multiples of {card.input_multiple}: other sizes are padded at the bottom/right "
            f"({card.pad_mode}) and the output cropped back")


def _parameters(card: ModelCard) -> str:
    if card.expected_params is None:
        return "not stated by the card"
    text = f"{card.expected_params:,}"
    if card.inference_params is not None and card.inference_params != card.expected_params:
        text += f" ({card.inference_params:,} used at inference; the rest are training-only heads)"
    return text


def _checkpoint(card: ModelCard) -> str:
    spec = card.checkpoint
    text = f"`{spec.format}`"
    if spec.strip_prefixes:
        text += f", key prefixes removed: {', '.join(f'`{p}`' for p in spec.strip_prefixes)}"
    return text + ("" if spec.strict else "; loaded non-strictly")


def _arg_dims(entries: list[ArgDim]) -> str:
    """The card's ``checkpoint.arg_dims`` in words: which checkpoint tensor dimension each factory argument sets
    (dimensions count from 0), and that a checkpoint differing only there gets a load error naming the
    ``--model-arg`` that loads it."""
    sizes = "; ".join(f"`{entry.key}` dimension {entry.dim} = "
                      + (f"{entry.per_unit} x " if entry.per_unit != 1 else "") + f"`{entry.arg}`"
                      for entry in entries)
    return f"{sizes} (a checkpoint that differs only there gets a load error naming the `--model-arg` that loads it)"


def _paper(card: ModelCard) -> str:
    paper = card.paper
    if paper is None:
        return "—"
    parts = [f"*{paper.title}*", f"{paper.venue} {paper.year or ''}".strip()]
    parts += [f"{label} {value}" for label, value in (("paper", paper.url), ("code", paper.code),
                                                      ("license", paper.license)) if value]
    return ", ".join(part for part in parts if part)


def _option(name: str, value: Any) -> str:
    """One option line: ``{default, paper, choices, note}`` spelled out; any other value as it is."""
    if not (isinstance(value, dict) and "default" in value):
        return f"- `{name}`: {value}"
    text = f"- `{name}`: {value['default']}"
    if "choices" in value:
        text += f" (choices: {', '.join(str(c) for c in value['choices'])})"
    if "paper" in value and value["paper"] != value["default"]:
        text += f" (the paper: {value['paper']})"
    return text + (f" — {str(value['note']).strip()}" if value.get("note") else "")


def card_markdown(card: ModelCard) -> str:
    """The card of one model as Markdown: a heading, a table of its facts, its options, parity and notes."""
    rows = [
        ("`--model`", f"`{card.name}`"),
        ("network", f"`{card.factory}`" + (f" with {', '.join(f'{k}={v!r}' for k, v in card.args.items())}"
                                           if card.args else "")),
        ("parameters", _parameters(card)),
        ("input", _size_rule(card) + ("; one image per forward pass" if card.batch_size_one else "")),
        ("checkpoint format", _checkpoint(card)),
        *([("checkpoint dimensions set by arguments", _arg_dims(card.checkpoint.arg_dims))]
          if card.checkpoint.arg_dims else []),
        ("official checkpoints", "; ".join(f"{k}: `{v}`" for k, v in card.official_checkpoints.items()) or "—"),
        ("default checkpoint", f"`{card.default_checkpoint}` (sample runs)" if card.default_checkpoint else "—"),
        ("paper", _paper(card)),
        ("published figures", ", ".join(f"{k} {v}" for k, v in card.published.items()) or "—"),
        ("leaderboard row", f"`{card.leaderboard_key}`" if card.leaderboard_key else "—"),
        ("card file", f"`{card.source}`" if card.source else "—"),
    ]
    lines = [f"## {card.display_name}", ""]
    if card.description.strip():
        lines += [card.description.strip(), ""]
    lines += ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows), ""]
    if card.options:
        lines += ["**Options** (default, and the paper's value where it differs):", "",
                  *(_option(name, value) for name, value in card.options.items()), ""]
    for title, text in (("Parity with the official code", card.parity), ("Notes", card.notes)):
        if text.strip():
            lines += [f"**{title}:** {text.strip()}", ""]
    return "\n".join(lines)
