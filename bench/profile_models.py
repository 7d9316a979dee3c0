"""Profile models with `bench_ir.profiling` and append the figures, with the device name, to bench/RESULTS.md.

Run by hand on the machine to be measured (not part of the test suite), e.g. on a GPU:

    python bench/profile_models.py --models mirage-t mirage-s --device cuda --train

Writes bench/results/profile-<device>-<date>.json and appends a Markdown section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import HERE, write_results  # noqa: E402

from bench_ir.cards import get_card  # noqa: E402
from bench_ir.checkpoints import create_model  # noqa: E402
from bench_ir.engine import resolve_device  # noqa: E402
from bench_ir.profiling import profile_model, profile_to_markdown  # noqa: E402


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
    command = (f"python bench/profile_models.py --models {' '.join(args.models)} --size {args.size} "
               f"--batch {args.batch} --device {device.type}{' --train' if args.train else ''}")
    write_results("profile", device, command, [r.to_dict() for r in results], profile_to_markdown(results),
                  args.out)


if __name__ == "__main__":
    main()
