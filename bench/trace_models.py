"""Does this torch trace every registered model? ``torch.compile`` of each card's network (seeded random weights)
at two input shapes, outputs compared with eager; runs on the CPU, no GPU needed.

    python bench/trace_models.py                              # every registered model, backend aot_eager
    python bench/trace_models.py mirage-t --backend inductor  # also inductor's code generation (minutes per model)

``aot_eager`` runs Dynamo's tracing and AOTAutograd's functionalisation and decompositions but no code generation:
it finds graph-capture failures of the model code under a new torch version in about a minute per model on two
CPU cores, before a GPU window is spent on them (tests/test_cuda.py then checks the compiled CUDA path itself).
Prints one line per model (seconds, max |compiled - eager|) and exits 1 if any failed or differed by more than
``--tol``."""

from __future__ import annotations

import argparse
import sys
import time

import torch

from bench_ir.cards import list_models
from bench_ir.checkpoints import create_model
from bench_ir.engine import restored_image

SHAPES = ((1, 3, 64, 64), (2, 3, 80, 96))  # two shapes: a recompilation (or a dynamic graph) is part of the check


def trace_model(name: str, backend: str) -> float:
    """Max |compiled - eager| over :data:`SHAPES` for the card ``name`` (eval mode, inference, seed 0)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    compiled = torch.compile(model, backend=backend)
    worst = 0.0
    with torch.inference_mode():
        for shape in SHAPES:
            x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
            worst = max(worst, (restored_image(compiled(x)) - restored_image(model(x))).abs().max().item())
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="card names (default: every registered model but 'input')")
    parser.add_argument("--backend", default="aot_eager", help="torch.compile backend (aot_eager, inductor, ...)")
    parser.add_argument("--tol", type=float, default=1e-5, help="largest accepted max |compiled - eager|")
    args = parser.parse_args(argv)
    names = args.models or [n for n in list_models() if n != "input"]
    print(f"torch {torch.__version__}, backend {args.backend}, shapes {SHAPES}", flush=True)
    failed = []
    for name in names:
        start = time.perf_counter()
        try:
            worst = trace_model(name, args.backend)
        except Exception as err:  # report every model, not only the first failure
            print(f"{name:20s} FAILED after {time.perf_counter() - start:.0f} s: {type(err).__name__}: "
                  f"{str(err).splitlines()[0][:300] if str(err) else ''}", flush=True)
            failed.append(name)
            continue
        verdict = "ok" if worst <= args.tol else f"DIFFERS (> {args.tol:g})"
        print(f"{name:20s} {verdict} in {time.perf_counter() - start:.0f} s, max abs diff {worst:.2e}", flush=True)
        if worst > args.tol:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
