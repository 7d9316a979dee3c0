"""Profile models with `bench_ir.profiling` and append the figures, with the device name, to bench/RESULTS.md.

Run by hand on the machine to be measured (not part of the test suite), e.g. on a GPU:

    python bench/profile_models.py --models mirage-t mirage-s --device cuda --train
    python bench/profile_models.py --models all --device cuda          # MIRAGE-T/S and every baseline (Table 6)

Writes bench/results/profile-<device>-<date>.json and appends a Markdown section to bench/RESULTS.md (or, with
--out-dir, both files into that folder only). Parameters and FLOPs do not depend on the device: every run compares
them with the CPU figures committed in bench/results/cpu-params-flops.json (written by ``--params-flops-only
--write-reference``) and exits with status 3 when one differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import HERE, write_results  # noqa: E402

from bench_ir.cards import get_card, list_models  # noqa: E402
from bench_ir.checkpoints import create_model  # noqa: E402
from bench_ir.engine import resolve_device  # noqa: E402
from bench_ir.profiling import ProfileResult, profile_model, profile_to_markdown  # noqa: E402

REFERENCE = HERE / "results" / "cpu-params-flops.json"
DEVICE_INDEPENDENT = ("params_total", "params_inference", "flops", "flops_with_training_heads")


def model_names(requested: list[str]) -> list[str]:
    """``all``: every registered card except the identity baseline ``input``."""
    return [m for m in list_models() if m != "input"] if requested == ["all"] else requested


def device_independent(result: ProfileResult) -> dict[str, Any]:
    """The figures of a profile that must not change with the device: parameter counts and fvcore FLOPs."""
    return {key: getattr(result, key) for key in DEVICE_INDEPENDENT}


def compare_with_reference(results: list[ProfileResult], reference: dict[str, Any]) -> dict[str, Any]:
    """Per model: the reference figures at the same size and whether every one is equal (missing models and sizes
    are reported as such, never as equal)."""
    checks: dict[str, Any] = {}
    for result in results:
        expected = reference.get("models", {}).get(result.model, {}).get(str(result.size))
        measured = device_independent(result)
        if expected is None:
            checks[result.model] = {"status": "no reference", "measured": measured}
            continue
        differing = {k: {"reference": expected.get(k), "measured": v} for k, v in measured.items()
                     if expected.get(k) != v}
        checks[result.model] = {"status": "equal" if not differing else "DIFFERENT", "differing": differing}
    return checks


def merge_reference(path: Path, name: str, figures: dict[str, Any]) -> None:
    """Add ``figures`` (size -> device-independent figures) of model ``name`` to the reference file ``path``."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault("conventions", "params: parameter counts; flops: fvcore MACs of one 1x3xSxS eval forward "
                                   "(bench_ir.profiling.CONVENTIONS); keyed by model, then S; device-independent, "
                                   "counted on the CPU")
    data.setdefault("models", {}).setdefault(name, {}).update(figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mirage-t", "mirage-s"], help="card names, or 'all'")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train", action="store_true", help="also one training step at batch 32 x 128^2")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--out-dir", type=Path, help="write the JSON and Markdown here only (bench/ untouched)")
    parser.add_argument("--rehearsal", action="store_true", help="label the output as a rehearsal (needs --out-dir)")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="committed CPU params/FLOPs")
    parser.add_argument("--params-flops-only", action="store_true",
                        help="count parameters and FLOPs only (no timing); with --write-reference, store them")
    parser.add_argument("--write-reference", type=Path, help="where --params-flops-only writes its figures")
    args = parser.parse_args()

    device = resolve_device(args.device)
    names = model_names(args.models)
    if args.params_flops_only:
        for name in names:  # written after every model: a long CPU run that is cut short keeps what it counted
            result = profile_model(create_model(name), get_card(name), size=args.size, device=device, repeats=1,
                                   warmup=0)
            figures = {str(args.size): device_independent(result)}
            print(name, figures, flush=True)
            if args.write_reference:
                merge_reference(args.write_reference, name, figures)
        return

    results = []
    for name in names:  # one model at a time, so a slow or failing model leaves the others' figures printed
        results.append(profile_model(create_model(name), get_card(name), size=args.size, batch=args.batch,
                                     device=device, repeats=args.repeats, warmup=args.warmup, train=args.train))
        print(profile_to_markdown(results[-1]).splitlines()[2], flush=True)
    reference = json.loads(args.reference.read_text()) if args.reference.is_file() else {}
    checks = compare_with_reference(results, reference)
    command = (f"python bench/profile_models.py --models {' '.join(args.models)} --size {args.size} "
               f"--batch {args.batch} --device {device.type}{' --train' if args.train else ''}")
    lines = [f"- params and FLOPs vs the CPU figures ({args.reference.name}): "
             + ", ".join(f"{m} {c['status']}" for m, c in checks.items())]
    write_results("profile", device, command, {"profiles": [r.to_dict() for r in results], "cpu_reference": checks},
                  profile_to_markdown(results) + "\n".join(lines) + "\n", args.out, args.out_dir, args.rehearsal)
    if any(c["status"] == "DIFFERENT" for c in checks.values()):
        print("params/FLOPs differ from the CPU reference:", {m: c for m, c in checks.items()
                                                               if c["status"] == "DIFFERENT"}, file=sys.stderr)
        raise SystemExit(3)


if __name__ == "__main__":
    main()
