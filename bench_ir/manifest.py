"""Provenance recorded in every run manifest: package versions, device, git revision, time."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a device is described: `bench-ir --version` needs no torch
    import torch

__all__ = ["environment_info", "device_info", "git_revision", "now_iso", "bench_ir_version", "portable_path",
           "portable_command", "project_root", "version_text"]

_VERSIONED = ("bench-ir", "torch", "numpy", "scikit-image", "scipy", "pandas", "pillow", "pyiqa", "fvcore")


def bench_ir_version() -> str:
    try:
        return metadata.version("bench-ir")
    except metadata.PackageNotFoundError:
        return "unknown"


def project_root() -> Path:
    """The folder holding registry/, protocols/ and reports/: the clone's root, or the installed package's resources."""
    from bench_ir.resources import registry_dir

    return registry_dir().parent


def portable_path(path: str | os.PathLike[str] | None, roots: dict[str, str | os.PathLike[str] | None] | None = None,
                  ) -> str | None:
    """How provenance records a file: relative to the first of ``roots`` (e.g. ``{"run": run_dir, "data": data_root}``),
    the bench-ir project (``registry/mirage-t.yaml``) or the current folder that contains it, written with '/';
    a path under none of them is recorded by its file name only, never as a user's home or build folder. A text
    that is not a file path (e.g. ``entry point x``) is returned as it is."""
    if path is None or path == "":
        return None
    text = os.fspath(path)
    candidate = Path(text).expanduser()
    if not candidate.is_absolute() and not candidate.exists():
        return Path(text).as_posix() if not text.startswith(("..", "~")) else candidate.name
    resolved = candidate.resolve()
    named = [(name, root) for name, root in (roots or {}).items() if root is not None]
    for _, root in [*named, ("project", project_root()), ("cwd", Path.cwd())]:
        try:
            return resolved.relative_to(Path(root).expanduser().resolve()).as_posix()
        except ValueError:
            continue
    return resolved.name


def portable_command(argv: list[str], roots: dict[str, str | os.PathLike[str] | None] | None = None) -> list[str]:
    """A command line as provenance records it: every absolute path argument (``/x/y`` or ``--opt=/x/y``) through
    :func:`portable_path`, every other argument as it is."""

    def portable(arg: str) -> str:
        option, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not Path(value).expanduser().is_absolute():
            return arg
        return f"{option}{equals}{portable_path(value, roots)}"

    return [portable(str(arg)) for arg in argv]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_revision() -> str | None:
    """HEAD of the bench-ir checkout this code runs from (with '-dirty' when modified), or None (wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``), or ``"cpu"`` when the
    system does not tell; never the bare architecture (``x86_64``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    name = platform.processor()
    return name if name and name != platform.machine() else "cpu"


def device_info(device: torch.device) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"type": device.type, "cpu": cpu_name(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info.update(name=torch.cuda.get_device_name(index), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info["name"] = info["cpu"]
    return info


def environment_info() -> dict[str, Any]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def version_text() -> str:
    """What `bench-ir --version` prints: bench-ir's version and git revision (a checkout), then the versions a
    manifest records (Python and the libraries; "not installed" for an optional one that is missing)."""
    versions = environment_info()
    revision = git_revision()
    head = f"bench-ir {versions.pop('bench-ir') or 'unknown'}" + (f" (git {revision[:12]}"
                                                                  f"{'-dirty' if revision.endswith('-dirty') else ''})"
                                                                  if revision else "")
    platform_name = versions.pop("platform")
    libraries = ", ".join(f"{name} {version or 'not installed'}" for name, version in versions.items())
    return f"{head}\n{libraries}\n{platform_name}\n{compilers_text()}"


def compilers_text() -> str:
    """The C and C++ compilers on PATH that torch.compile builds its kernels with (Triton's launcher: C; Inductor's
    CPU kernels: C++), or what is missing: without them compiling fails and bench-ir goes on eagerly."""
    import shutil

    found = []
    for language, names in (("C", ("cc", "gcc", "clang")), ("C++", ("c++", "g++", "clang++"))):
        path = next((p for p in map(shutil.which, names) if p), None)
        found.append(f"{language} {path}" if path else f"no {language} compiler ({', '.join(names)})")
    return "compilers for torch.compile: " + ", ".join(found)
