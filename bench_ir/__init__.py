"""bench-ir: benchmark and reproducibility harness for all-in-one image restoration.

Python API::

    import bench_ir
    model = bench_ir.create_model("mirage-t", checkpoint="5Deg_tiny.ckpt")   # eval mode
    bench_ir.list_models()
    outcome = bench_ir.run_protocol(bench_ir.RunConfig(protocol="5deg", model="mirage-t", sample=True))
"""

from __future__ import annotations

from bench_ir.cards import create_model, get_card, list_models
from bench_ir.protocol import list_protocols, load_protocol
from bench_ir.results import load_run
from bench_ir.runner import RunConfig, run_protocol

__all__ = [
    "create_model",
    "get_card",
    "list_models",
    "list_protocols",
    "load_protocol",
    "load_run",
    "RunConfig",
    "run_protocol",
]
