"""bench-ir: benchmark and reproducibility harness for all-in-one image restoration.

Python API (names are imported lazily, so `import bench_ir` stays light)::

    import bench_ir
    model = bench_ir.create_model("mirage-t", checkpoint="5Deg_tiny.ckpt")   # eval mode
    bench_ir.list_models()
    outcome = bench_ir.run_protocol(bench_ir.RunConfig(protocol="5deg", model="mirage-t", sample=True))
    bench_ir.restore_folder(bench_ir.RestoreConfig("my-photos", "restored", model="mirage-t",
                                                   checkpoint="5Deg_tiny.ckpt"))
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_model": "bench_ir.checkpoints",
    "get_card": "bench_ir.cards",
    "list_models": "bench_ir.cards",
    "list_protocols": "bench_ir.protocol",
    "load_protocol": "bench_ir.protocol",
    "load_run": "bench_ir.results",
    "RunConfig": "bench_ir.runner",
    "run_protocol": "bench_ir.runner",
    "RestoreConfig": "bench_ir.folder_restore",
    "restore_folder": "bench_ir.folder_restore",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench_ir' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
