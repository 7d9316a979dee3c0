"""Resumable training checkpoints: atomic writes, RNG states, and the safetensors export of the weights.

A checkpoint (``<run_dir>/checkpoints/last.pt``) is a ``torch.save`` dict holding only tensors and plain
Python values, so it loads with ``torch.load(weights_only=True)``: ``model`` (state_dict, which also makes the
file usable as ``bench-ir run --checkpoint``), ``optimizer``, ``schedule``, ``step``, ``epoch``, ``data``
(seed, position in the epoch), ``rng`` (per process: python, numpy, torch, and cuda: the generator state of
the CUDA device the process trains on) and the run's identity (recipe sha256, model, plan) that ``--resume``
checks. Older checkpoints hold under ``cuda`` a list, one state per CUDA device the writing process saw;
a resume takes the entry of its own device from it.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench_ir.atomic import atomic_write, write_bytes_atomic

__all__ = ["CHECKPOINT_FORMAT", "capture_rng_state", "restore_rng_state", "preserved_rng", "save_atomic",
           "load_training_checkpoint", "export_safetensors"]

CHECKPOINT_FORMAT = "bench-ir-train/1"


def capture_rng_state(device: torch.device | str | None = None) -> dict[str, Any]:
    """Python, NumPy (legacy global) and torch CPU generator states as weights_only-loadable values, and under
    ``cuda`` the generator state of the CUDA ``device`` (None: the current CUDA device) when CUDA is initialised;
    none for a CPU ``device``. One device's state, so that a process seeing fewer GPUs can resume it."""
    state = _host_rng_state()
    index = _cuda_index(device) if _cuda_initialised() else None
    if index is not None:
        state["cuda"] = torch.cuda.get_rng_state(index)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device | str | None = None) -> str | None:
    """Inverse of :func:`capture_rng_state` for ``device`` (None: the current CUDA device). Returns a notice when
    the CUDA generator could not be restored: a checkpoint of the old format (a list of every visible device's
    state) without an entry for ``device``. The CUDA generator then keeps its state; only random draws on the GPU
    (dropout, stochastic depth on CUDA tensors) differ from an uninterrupted run, so this is no reason to refuse a
    resume; None otherwise."""
    _restore_host_rng_state(state)
    saved = state.get("cuda")
    index = _cuda_index(device) if saved is not None and torch.cuda.is_available() else None
    if index is None:
        return None
    if isinstance(saved, (list, tuple)):  # the old format: one state per device the writing process saw
        if index >= len(saved):
            return (f"the checkpoint holds the CUDA random states of {len(saved)} device(s) and none for cuda:{index}, "
                    "the device this process trains on: weights, optimizer, data order and patches are restored "
                    "exactly, but random draws on the GPU (dropout, stochastic depth) differ from an uninterrupted run")
        saved = saved[index]
    torch.cuda.set_rng_state(saved, index)
    return None


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. validation, which builds a model) without disturbing any global generator (those of every
    CUDA device included)."""
    host = _host_rng_state()
    cuda = torch.cuda.get_rng_state_all() if _cuda_initialised() else None
    try:
        yield
    finally:
        _restore_host_rng_state(host)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _host_rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch CPU generator states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }


def _restore_host_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


def _cuda_initialised() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _cuda_index(device: torch.device | str | None) -> int | None:
    """The index of the CUDA device ``device`` (None or an index-less ``cuda``: the current one); None for a device
    of another type."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type != "cuda":
        return None
    if device is not None and device.index is not None:
        return device.index
    return torch.cuda.current_device()


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)
    return path


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by the trainer (tensors to CPU); a foreign file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}; nothing to resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read training checkpoint {path}: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a bench-ir training checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def export_safetensors(model: nn.Module, path: str | Path, metadata: dict[str, str]) -> Path:
    """The model's state_dict (parameters and buffers, on CPU, contiguous copies) as a safetensors file,
    written atomically; loadable with ``bench-ir run --checkpoint``. The same tensors and metadata give the same
    bytes in any process (see :func:`_with_sorted_metadata`)."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    write_bytes_atomic(path, _with_sorted_metadata(save(tensors, metadata={"format": "pt", **metadata})))
    return path


def _with_sorted_metadata(blob: bytes) -> bytes:
    """A safetensors file's bytes with the ``__metadata__`` of its JSON header in key order. safetensors writes
    that map in an order that changes from process to process (a hash map seeded at random), so identical weights
    got another sha256 each time. The tensors' entries keep safetensors' order; their offsets count from the end
    of the header, so only the header (8-byte length, JSON padded with spaces to a multiple of 8) is written
    again."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    metadata = header.pop("__metadata__", None)
    ordered = {**({"__metadata__": dict(sorted(metadata.items()))} if metadata is not None else {}), **header}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + size:]
