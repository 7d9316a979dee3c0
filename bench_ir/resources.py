"""Locate the declarative folders (registry/, protocols/, reports/, suites/) from a clone or an installed wheel.

In a clone (``pip install -e .``) they sit next to the ``bench_ir`` package; a built wheel carries
them inside the package as ``bench_ir/_resources/<name>``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["resource_dir", "registry_dir", "protocols_dir", "reports_dir", "leaderboard_dir"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``registry``, ``protocols``, ``reports`` or ``suites``), wheel copy first."""
    for candidate in (_PACKAGE_DIR / "_resources" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"bench-ir resource folder '{name}' not found next to {_PACKAGE_DIR}; "
        "reinstall bench-ir (pip install -e . from a clone, or the wheel)"
    )


def registry_dir() -> Path:
    return resource_dir("registry")


def protocols_dir() -> Path:
    return resource_dir("protocols")


def reports_dir() -> Path:
    return resource_dir("reports")


def leaderboard_dir() -> Path:
    return registry_dir() / "leaderboard"
