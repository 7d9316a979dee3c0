"""Checks of count options (``--limit``, ``--batch-size``, ``--workers`` ...) shared by the commands that take them.

A count that cannot work is refused with the option's name before any work starts, never replaced by a default
(a batch size of 0 is not "the default batch size").
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["check_counts"]


def check_counts(options: Iterable[tuple[str, int | None, int]]) -> None:
    """Raise ValueError for the first ``(option, value, minimum)`` whose value is set (not None) and below the
    minimum: "--limit must be at least 1, got 0", "--workers must be 0 or more, got -1"."""
    for option, value, minimum in options:
        if value is not None and value < minimum:
            bound = "0 or more" if minimum == 0 else f"at least {minimum}"
            raise ValueError(f"{option} must be {bound}, got {value}")
