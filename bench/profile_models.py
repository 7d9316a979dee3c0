"""Profile models with `bench_ir.profiling` and append the figures, with the device name, to bench/RESULTS.md.

Run by hand on the machine to be measured (not part of the test suite), e.g. on a GPU:

    python bench/profile_models.py --models mirage-t mirage-s --device cuda --train

Writes bench/results/profile-<device>-<date>.json and appends a Markdown section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

import torch

from bench_ir.cards import create_model, get_card
from bench_ir.engine import resolve_device
from bench_ir.manifest import device_info, environment_info, git_revision
from bench_ir.profiling import profile_model, profile_to_markdown

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mirage-t", "mirage-s"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train", action="store_true", help="also one training step at batch 32 x 128^2")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    device = resolve_device(args.device)
    results = [profile_model(create_model(name), get_card(name), size=args.size, batch=args.batch, device=device,
                             repeats=args.repeats, warmup=args.warmup, train=args.train) for name in args.models]
    info = device_info(device)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", str(info["name"])).strip("-").lower()
    json_path = HERE / "results" / f"profile-{slug}-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"device": info, "versions": environment_info(), "git_revision": git_revision(),
                                     "results": [r.to_dict() for r in results]}, indent=2, default=str) + "\n")
    section = [f"## Profile on {info['name']} ({stamp})", "",
               f"torch {torch.__version__}, git {git_revision()}, `python bench/profile_models.py "
               f"--models {' '.join(args.models)} --size {args.size} --batch {args.batch} --device {device.type}"
               f"{' --train' if args.train else ''}`; raw figures: `{json_path.relative_to(HERE.parent)}`", "",
               profile_to_markdown(results).rstrip(), ""]
    with open(args.out, "a", encoding="utf-8") as handle:
        handle.write("\n".join(section) + "\n")
    print("\n".join(section))


if __name__ == "__main__":
    main()
