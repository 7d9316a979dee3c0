"""Path safety: names that become folder names are safe identifiers, and every path bench-ir writes (or reads
from a dataset) stays inside the folder it was given.

``safe_name`` is the one validator of task and dataset names (used when a protocol is loaded, hence by
``bench-ir validate`` too); ``inside`` is the one containment check, used by every writer under a run directory
and by the dataset layout resolution under ``--data-root``. The check is lexical (``..`` and absolute paths
are resolved on the text, symbolic links are not followed), so a dataset folder that the user linked into the
data root is accepted, while a name from a protocol can never climb out of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["UnsafePathError", "SAFE_NAME", "safe_name", "inside", "stays_below"]

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""A safe identifier: starts with a letter or digit, then letters, digits, '.', '_', '+', '-' (at most 128
characters); never '..'. Such a name is a single path component on every platform."""


class UnsafePathError(ValueError):
    """A name is not a safe identifier, or a path leaves the folder it must stay in; the message names both."""


def safe_name(value: object, what: str) -> str:
    """``value`` when it is a safe identifier (see :data:`SAFE_NAME`); else UnsafePathError naming ``what``
    (e.g. ``"protocols/x.yaml: task name"``) and the offending value."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value) or ".." in value:
        raise UnsafePathError(f"{what} {value!r} is not a safe name: use letters, digits, '.', '_', '+' and '-' "
                              "(starting with a letter or digit, no '..', no '/'), at most 128 characters")
    return value


def _normal(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str = "path") -> Path:
    """``path`` (relative paths are taken relative to ``root``) as an absolute path, when it lies inside
    ``root`` (or is ``root``); else UnsafePathError naming both. ``what`` says what the path is for the message
    (e.g. ``"saved image"``, ``"layout folder"``)."""
    base = _normal(root)
    joined = path if os.path.isabs(os.path.expanduser(os.fspath(path))) else os.path.join(base, os.fspath(path))
    target = _normal(joined)
    if target != base and not target.startswith(base.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"{what} {os.fspath(path)} leaves {os.fspath(root)} (it resolves to {target}); "
                              "bench-ir only writes inside the run directory and reads datasets inside --data-root")
    return Path(target)


def stays_below(relative: str | os.PathLike[str], what: str = "path") -> None:
    """Check on the text alone that the relative path ``relative`` stays below the folder it will be joined to
    (no leading ``..`` after normalisation); else UnsafePathError naming ``what`` and the path."""
    text = os.path.normpath(os.fspath(relative))
    if os.path.isabs(text) or text == os.pardir or text.startswith(os.pardir + os.sep):
        raise UnsafePathError(f"{what} {os.fspath(relative)!r} climbs out of the folder it is relative to "
                              "(a layout folder must stay inside --data-root)")
