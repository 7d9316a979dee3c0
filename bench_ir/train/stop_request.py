"""Ctrl-C or SIGTERM (what schedulers send before they kill a job) during a training run: the first asks for a stop
at the next step boundary (the trainer then writes a checkpoint of that step, so no step is lost), a second stops at
once (the steps since the last checkpoint are lost).

Only a single-process run defers these signals: under torchrun every process receives them and torchrun itself
tears the group down, so there each process keeps Python's default (Ctrl-C raises KeyboardInterrupt at once).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["StopRequest", "TrainingStopped", "ignore_interrupts", "interrupt_reason"]

SIGNAL_REASONS = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


class TrainingStopped(KeyboardInterrupt):
    """Raised at a step boundary after Ctrl-C or SIGTERM, once the checkpoint of that step is written;
    ``terminated`` is True for SIGTERM."""

    def __init__(self, terminated: bool = False) -> None:
        super().__init__()
        self.terminated = terminated


def interrupt_reason(err: KeyboardInterrupt) -> str:
    """The manifest's ``reason`` of a training ended by ``err``: "SIGTERM" or "SIGINT (Ctrl-C)"."""
    return SIGNAL_REASONS[signal.SIGTERM if getattr(err, "terminated", False) else signal.SIGINT]


class StopRequest:
    """A context manager that turns the first SIGINT or SIGTERM into a request (``reason`` set, ``on_request``
    called once with it) and lets a second raise KeyboardInterrupt (``terminated`` set for SIGTERM). It does
    nothing when ``enabled`` is false or outside the main thread (where Python cannot install a signal handler),
    and leaves SIGTERM alone when the caller installed its own handler; the previous handlers are restored on
    exit."""

    def __init__(self, on_request: Callable[[str], None] | None = None, enabled: bool = True) -> None:
        self.on_request = on_request
        self.enabled = enabled
        self.reason: str | None = None
        self.terminated = False
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            err = KeyboardInterrupt()
            err.terminated = signum == signal.SIGTERM  # type: ignore[attr-defined]
            raise err
        self.reason, self.terminated = SIGNAL_REASONS[signum], signum == signal.SIGTERM
        if self.on_request is not None:
            self.on_request(self.reason)

    def __enter__(self) -> StopRequest:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_REASONS:
                previous = signal.getsignal(signum)
                if signum == signal.SIGTERM and previous != signal.SIG_DFL:
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a worker outlives the signals meant for the trainer, so that it does not end
    (and fail the next batch) while the trainer finishes its step; it ends with the loader.

    - SIGINT, which a terminal's Ctrl-C sends to every process of the job, is ignored.
    - SIGTERM, which a scheduler (Slurm) sends to every process of the job, is ignored unless the trainer's process
      sends it: the loader and Python's exit stop workers that way (torch's own worker handler draws the same line).
      This needs ``signal.sigwaitinfo`` (Linux); elsewhere SIGTERM keeps torch's handler.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):
        return
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # every thread started from here blocks it too

    def end_when_the_trainer_says_so() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)

    threading.Thread(target=end_when_the_trainer_says_so, name="sigterm-from-trainer", daemon=True).start()
