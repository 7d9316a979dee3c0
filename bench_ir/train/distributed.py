"""Data-parallel training under torchrun: process group, DDP wrapping and the few collectives the trainer needs.

``torchrun --nproc-per-node G [--nnodes N ...] -m bench_ir train ...`` starts G x N processes; each joins the
process group (NCCL on CUDA, gloo on CPU; bench_ir.distributed), takes its local GPU, and trains a
DistributedDataParallel replica on batch_size / world_size of every global batch. Rank 0 alone logs, validates
and writes checkpoints; every rank reads the checkpoint when resuming. Outside torchrun all of this is a no-op
(rank 0 of a world of 1).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bench_ir.distributed import DistContext, dist_context

__all__ = ["DistContext", "join", "wrap_model", "unwrap_model", "mean_across", "gather_objects", "sync_buffers"]


def join(device: torch.device) -> tuple[DistContext, torch.device]:
    """The process-group context and this process's device (its local GPU under torchrun on CUDA)."""
    context = dist_context(device.type)
    return context, context.device(device)


def wrap_model(model: nn.Module, context: DistContext, device: torch.device,
               find_unused_parameters: bool = False) -> nn.Module:
    """DDP around ``model`` when a process group is active (parameters are broadcast from rank 0), else the
    model itself. ``find_unused_parameters`` is needed only by models with parameters that some steps do not
    use (MIRAGE's SPD head is used in every train-mode forward, so it does not need it)."""
    if not context.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The trained module inside a DDP wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def mean_across(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Element-wise mean of ``values`` over all processes (a copy; the input is untouched)."""
    values = values.detach().clone()
    if context.active:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= context.world_size
    return values


def gather_objects(value: Any, context: DistContext) -> list[Any]:
    """``value`` of every rank, in rank order (on every rank)."""
    if not context.active:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def sync_buffers(model: nn.Module, context: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, as DDP does before each forward; after
    the last step this makes every replica identical to the exported one."""
    if context.active:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)
