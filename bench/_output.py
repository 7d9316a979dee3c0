"""Where bench scripts put their figures: raw JSON in bench/results/ and a Markdown section in bench/RESULTS.md,
both named by the measured device."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import torch

from bench_ir.manifest import device_info, environment_info, git_revision

HERE = Path(__file__).resolve().parent


def write_results(kind: str, device: torch.device, command: str, results: Any, markdown: str,
                  out: Path = HERE / "RESULTS.md") -> Path:
    """Write ``results`` to bench/results/<kind>-<device>-<date>.json and append a section headed with the device
    name, the command and ``markdown`` to ``out``; returns the JSON path."""
    info = device_info(device)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", str(info["name"])).strip("-").lower()
    json_path = HERE / "results" / f"{kind}-{slug}-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"device": info, "versions": environment_info(), "git_revision": git_revision(),
                                     "command": command, "results": results}, indent=2, default=str) + "\n")
    section = [f"## {kind} on {info['name']} ({stamp})", "",
               f"torch {torch.__version__}, git {git_revision()}, `{command}`; raw figures: "
               f"`{json_path.relative_to(HERE.parent)}`", "", markdown.rstrip(), ""]
    with open(out, "a", encoding="utf-8") as handle:
        handle.write("\n".join(section) + "\n")
    print("\n".join(section))
    return json_path
