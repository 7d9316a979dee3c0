"""Training logs: ``<run_dir>/train_log.csv`` always (one row per logged step), TensorBoard events under
``<run_dir>/tensorboard`` when ``torch.utils.tensorboard`` can be imported (optional dependency; a warning says
when it cannot)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from bench_ir.atomic import atomic_write

__all__ = ["TrainLog", "truncate_csv"]


def truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows with ``step`` > ``last_step`` (they belong to steps lost after the last checkpoint)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
        fields = list(rows[0].keys()) if rows else None
    if fields is None:
        return
    kept = [row for row in rows if int(float(row["step"])) <= last_step]
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:  # an interrupted resume keeps the log
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)


class TrainLog:
    """Append-only CSV of scalar rows (columns fixed by the first row written, or by the existing file) plus
    optional TensorBoard scalars under the tag ``<prefix>/<column>``. The TensorBoard events file is opened when the
    first scalar is written, so a run refused before its first step (a resume of another setup) leaves none."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), None)
            self.fields = header or None
        self.tensorboard_dir = tensorboard_dir
        self._writer: Any = None
        self._writer_class: Any = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                warnings.warn(f"no TensorBoard events in {tensorboard_dir}: the tensorboard package is not installed "
                              f"(pip install tensorboard, or pass --no-tensorboard); {path.name} holds every logged "
                              "step", stacklevel=2)
            else:
                self._writer_class = SummaryWriter

    @property
    def writer(self) -> Any:
        """The TensorBoard SummaryWriter (opened on first use), or None without TensorBoard."""
        if self._writer is None and self._writer_class is not None:
            self._writer = self._writer_class(log_dir=str(self.tensorboard_dir))
        return self._writer

    def write(self, row: dict[str, Any], prefix: str = "train") -> None:
        """Append ``row`` (must hold ``step``); unknown later columns are dropped, missing ones left empty."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = self.fields is None
        if new_file:
            self.fields = list(row)
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
