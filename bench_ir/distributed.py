"""Process-group helpers for runs started by torchrun (sharded evaluation, DDP training).

Outside torchrun everything degrades to a single process: rank 0 of a world of 1.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from bench_ir.shortlist import shortlist

__all__ = ["DistContext", "RankError", "StoppedForAnotherRank", "dist_context"]

_EXCHANGES = itertools.count()  # on_every_rank calls of this process: every rank makes the same ones, in order
_current_exchange: int | None = None  # the one running now; its key in the store says a rank failed in it


class RankError(RuntimeError):
    """An error on one or more ranks of a torchrun run, raised on every rank. The message is each failing rank's
    error as ``Type: message (on rank R of N)``, joined by '; ' (the first three, then how many more)."""


class StoppedForAnotherRank(Exception):
    """Raised by work inside :meth:`DistContext.on_every_rank` that stopped early because
    :meth:`DistContext.another_rank_failed`: not a failure of its own, so not named in the RankError."""


def _failure_key(exchange: int) -> str:
    return f"bench-ir/failed-in-exchange-{exchange}"


def _default_store() -> Any:
    """The key-value store of the default process group (torchrun's rendezvous store), or None when it cannot be
    reached (no group, or a torch without the private accessor)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class DistContext:
    """rank / world_size / local_rank of this process; ``active`` when a process group is in use."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """On CUDA each process takes its local GPU; CPU stays CPU."""
        if self.active and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        payload = [value]
        dist.broadcast_object_list(payload, src=0)
        return payload[0]

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0 (None elsewhere); an exception there is raised on every rank (so no rank waits at a
        barrier forever)."""
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as err:  # re-raised below, on every rank
                error = err
        shared = self.broadcast(error)
        if shared is not None:
            raise error if error is not None else shared
        return result

    def on_every_rank(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on every rank, then an exchange of whether each succeeded: when ``fn`` raised on any rank, every
        rank raises the same :class:`RankError` naming the failing rank(s) and their errors (so no rank waits at a
        later collective for one that stopped, and rank 0 can record the real cause). Outside torchrun ``fn``'s own
        error propagates unchanged. Only exceptions are exchanged: Ctrl-C and SIGTERM reach every rank anyway.

        A rank whose ``fn`` raised says so at once in the process group's store, so that the others' ``fn`` can stop
        early (:meth:`another_rank_failed`, then :class:`StoppedForAnotherRank`) instead of finishing their share
        while it waits in the exchange, which the process group's timeout would end first (NCCL: 10 minutes)."""
        if not self.active:
            return fn()
        global _current_exchange
        _current_exchange = next(_EXCHANGES)
        result, error = None, None
        try:
            result = fn()
        except Exception as err:  # raised below, on every rank, as a RankError
            error = err
            if not isinstance(err, StoppedForAnotherRank):
                self._say_this_rank_failed()
        finally:
            _current_exchange = None
        outcomes: list[tuple[bool, str] | None] = [None] * self.world_size
        dist.all_gather_object(outcomes, None if error is None else (
            isinstance(error, StoppedForAnotherRank), f"{type(error).__name__}: {error}"))
        ended = [(rank, *outcome) for rank, outcome in enumerate(outcomes) if outcome is not None]  # rank,stopped,text
        named = [(rank, text) for rank, stopped, text in ended if not stopped] or [(r, t) for r, _, t in ended]
        failures = [f"{text} (on rank {rank} of {self.world_size})" for rank, text in named]
        if failures:
            raise RankError(shortlist(failures, 3, separator="; ", more="; ... and {} more rank(s) failed")) from error
        return result

    def another_rank_failed(self) -> bool:
        """Inside :meth:`on_every_rank`: whether another rank's ``fn`` has raised already (work that checks it between
        items can stop with :class:`StoppedForAnotherRank`). False outside torchrun, outside an exchange, or when the
        process group's store cannot be asked."""
        if not self.active or _current_exchange is None:
            return False
        store = _default_store()
        try:
            return store is not None and bool(store.check([_failure_key(_current_exchange)]))
        except RuntimeError:
            return False

    def _say_this_rank_failed(self) -> None:
        """Set the current exchange's failure key in the process group's store (best effort)."""
        store = _default_store()
        if store is None or _current_exchange is None:
            return
        try:
            store.set(_failure_key(_current_exchange), str(self.rank))
        except RuntimeError:
            pass

    def shard(self, items: list) -> list:
        """This rank's share of ``items``: every world_size-th item starting at rank (disjoint, complete)."""
        return items[self.rank::self.world_size]


def dist_context(device_type: str = "cpu") -> DistContext:
    """Join the process group torchrun set up (env WORLD_SIZE > 1): NCCL for CUDA, gloo otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, active=True)
