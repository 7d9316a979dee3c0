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

from bench_ir.lazy_exports import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
