"""File names that mark the folders bench-ir writes besides runs (no imports, so any module can name them).

A run directory's own names (``manifest.json``, ``records.jsonl``, ``profile.json``) live in bench_ir.results.
"""

from __future__ import annotations

__all__ = ["TRAIN_MANIFEST_NAME", "TRAIN_CHECKPOINT_NAME", "FINAL_WEIGHTS_NAME", "RESTORE_MANIFEST_NAME",
           "SUITE_PLAN_NAME"]

TRAIN_MANIFEST_NAME = "train_manifest.json"  # a training run (bench_ir.train)
TRAIN_CHECKPOINT_NAME = "checkpoints/last.pt"  # its resumable state, relative to the training run
FINAL_WEIGHTS_NAME = "final.safetensors"  # a training run's last weights, what `bench-ir run --checkpoint` takes
RUN_CARD_NAME = "model-card.yaml"  # a training run's card with its --model-arg values (only when there are some)
RESTORE_MANIFEST_NAME = "restore.json"  # a folder of restored images (bench-ir restore)
SUITE_PLAN_NAME = "plan.json"  # a suite directory (bench-ir suite run); its runs are under runs/
