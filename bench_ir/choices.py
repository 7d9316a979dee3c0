"""Enumerated command-line choices shared by several commands (no heavy imports: the CLI parses with them)."""

from __future__ import annotations

from enum import Enum

__all__ = ["CompileMode"]


class CompileMode(str, Enum):
    """``--compile``: torch.compile on CUDA only (auto), always (on) or never (off)."""

    auto = "auto"
    on = "on"
    off = "off"
