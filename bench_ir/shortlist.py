"""Messages that name the first few of many items and count the rest ("a.png, b.png ... and 8 more")."""

from __future__ import annotations

from collections.abc import Sequence


def shortlist(items: Sequence[str], shown: int, separator: str = ", ", more: str = " ... and {} more") -> str:
    """The first ``shown`` of ``items`` joined by ``separator``, followed by ``more`` formatted with the number of
    items left out (nothing when none is). ``items`` are already strings: each caller chooses how an item reads."""
    head = separator.join(items[:shown])
    return head + more.format(len(items) - shown) if len(items) > shown else head
