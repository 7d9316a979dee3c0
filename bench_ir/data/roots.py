"""The benchmark data root a command uses when ``--data-root`` is not given.

``BENCH_IR_DATA_ROOT`` names the folder holding the test (and training) sets, so that a researcher with one data
folder need not repeat ``--data-root`` on every ``run``, ``data check``, ``suite run`` and ``train``. An explicit
``--data-root`` always wins; sample data (``--sample``) never reads it. The folder actually used is recorded in the
run's manifest, so a run made through the variable is as reproducible as one made with the option.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ROOT_ENV", "DATA_ROOT_HINT", "data_root_or_env", "env_data_root_note"]

DATA_ROOT_ENV = "BENCH_IR_DATA_ROOT"
DATA_ROOT_HINT = f"pass --data-root or set {DATA_ROOT_ENV}"


def data_root_or_env(given: str | Path | None) -> str | Path | None:
    """``given`` when it is not None, else the folder named by ``$BENCH_IR_DATA_ROOT`` (``~`` expanded), else None
    (the variable unset or empty). Whether the folder exists is checked where it is used."""
    if given is not None:
        return given
    named = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(named).expanduser() if named else None


def env_data_root_note(root: str | Path) -> str:
    """The sentence every command prints when it took its data root from ``$BENCH_IR_DATA_ROOT``."""
    return f"data root from {DATA_ROOT_ENV}: {root}"
