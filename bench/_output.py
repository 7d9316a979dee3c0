"""Where bench scripts put their figures: raw JSON in bench/results/ and a Markdown section in bench/RESULTS.md,
both named by the measured device; or, with ``out_dir``, both into that folder only (bench/gpu_check.sh, whose
files the lead reviews and copies into bench/ after the run).

A rehearsal (a check of the scripts themselves, e.g. on a CPU before a GPU window) is never a result: its files
are prefixed ``rehearsal-``, its JSON says ``"rehearsal": true``, and it must be written to an ``out_dir``."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import torch

from bench_ir.manifest import device_info, environment_info, git_revision

HERE = Path(__file__).resolve().parent


def device_slug(device: torch.device) -> str:
    """The device name as a file-name fragment, e.g. ``nvidia-h200``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", str(device_info(device)["name"])).strip("-").lower()


def write_results(kind: str, device: torch.device, command: str, results: Any, markdown: str,
                  out: Path = HERE / "RESULTS.md", out_dir: Path | None = None, rehearsal: bool = False) -> Path:
    """Write ``results`` to bench/results/<kind>-<device>-<date>.json and append a section headed with the device
    name, the command and ``markdown`` to ``out``; returns the JSON path.

    out_dir: write <kind>-<device>-<date>.json and the section as <kind>-<device>-<date>.md into this folder
    instead, leaving bench/ untouched. rehearsal: label everything as a rehearsal (requires ``out_dir``)."""
    if rehearsal and out_dir is None:
        raise ValueError("a rehearsal is not a measurement: give an output folder (--out-dir)")
    info = device_info(device)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    prefix = "rehearsal-" if rehearsal else ""
    name = f"{prefix}{kind}-{device_slug(device)}-{stamp}"
    json_path = (out_dir if out_dir is not None else HERE / "results") / f"{name}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"device": info, "rehearsal": rehearsal, "versions": environment_info(),
                                     "git_revision": git_revision(), "command": command, "results": results},
                                    indent=2, default=str) + "\n")
    title = f"## {kind} on {info['name']} ({stamp})"
    if rehearsal:
        title = f"## REHEARSAL (not a measurement): {kind} on {info['name']} ({stamp})"
    where = f"bench/results/{json_path.name}" if out_dir is not None and not rehearsal else json_path.name
    if out_dir is None:
        where = str(json_path.relative_to(HERE.parent))
    section = [title, "", f"torch {torch.__version__}, git {git_revision()}, `{command}`; raw figures: `{where}`", "",
               markdown.rstrip(), ""]
    text = "\n".join(section) + "\n"
    if out_dir is not None:
        json_path.with_suffix(".md").write_text(text, encoding="utf-8")
    else:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(text)
    print(text)
    return json_path
