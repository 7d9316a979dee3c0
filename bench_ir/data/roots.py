"""The folders a command takes from the environment when its option is not given.

``BENCH_IR_DATA_ROOT`` names the folder holding the test (and training) sets, so that a researcher with one data
folder need not repeat ``--data-root`` on every ``run``, ``data check``, ``suite run`` and ``train``. An explicit
``--data-root`` always wins; sample data (``--sample``) never reads it. The folder actually used is recorded in the
run's manifest, so a run made through the variable is as reproducible as one made with the option.

``BENCH_IR_CHECKPOINT_DIR`` does the same for ``suite run --checkpoint-dir``: the folder a suite's relative
checkpoint paths are read from, when neither the option nor the suite file's ``checkpoint_dir`` names one. Every
cell records the absolute checkpoint path it resolved to.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ROOT_ENV", "DATA_ROOT_HINT", "CHECKPOINT_DIR_ENV", "CHECKPOINT_DIR_HINT", "data_root_or_env",
           "folder_from_env", "env_data_root_note", "env_checkpoint_dir_note"]

DATA_ROOT_ENV = "BENCH_IR_DATA_ROOT"
DATA_ROOT_HINT = f"pass --data-root or set {DATA_ROOT_ENV}"
CHECKPOINT_DIR_ENV = "BENCH_IR_CHECKPOINT_DIR"
CHECKPOINT_DIR_HINT = f"pass --checkpoint-dir or set {CHECKPOINT_DIR_ENV}"


def folder_from_env(variable: str) -> Path | None:
    """The folder named by the environment variable ``variable`` (``~`` expanded); None when it is unset or empty.
    Whether the folder exists is checked where it is used."""
    named = os.environ.get(variable, "").strip()
    return Path(named).expanduser() if named else None


def data_root_or_env(given: str | Path | None) -> str | Path | None:
    """``given`` when it is not None, else the folder named by ``$BENCH_IR_DATA_ROOT``, else None."""
    return given if given is not None else folder_from_env(DATA_ROOT_ENV)


def env_data_root_note(root: str | Path) -> str:
    """The sentence every command prints when it took its data root from ``$BENCH_IR_DATA_ROOT``."""
    return f"data root from {DATA_ROOT_ENV}: {root}"


def env_checkpoint_dir_note(folder: str | Path) -> str:
    """The sentence ``suite run`` prints when it read relative checkpoint paths from ``$BENCH_IR_CHECKPOINT_DIR``."""
    return f"checkpoint folder from {CHECKPOINT_DIR_ENV}: {folder}"
