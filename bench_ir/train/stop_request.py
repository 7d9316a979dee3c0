"""Ctrl-C or SIGTERM (what schedulers send before they kill a job) during a training run: the first asks for a stop
at the next step boundary (the trainer then writes a checkpoint of that step, so no step is lost), a second stops at
once (the steps since the last checkpoint are lost).

Under torchrun each process gets the signal twice: from the terminal or the scheduler, which signal every process
of the job, and from torchrun, which forwards what it receives to its workers and kills them 30 s later. A repeat
within ``same_request_within`` seconds of the first is therefore the same request there. The processes agree at
each step boundary on whether any of them was asked to stop (the trainer's collective), so that all stop after
the same step.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["StopRequest", "TrainingStopped", "ignore_interrupts", "interrupt_reason", "CTRL_C", "TERMINATED",
           "TORCHRUN_REPEAT_S"]

SIGNAL_REASONS = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
CTRL_C, TERMINATED = SIGNAL_REASONS[signal.SIGINT], SIGNAL_REASONS[signal.SIGTERM]
TORCHRUN_REPEAT_S = 5.0  # under torchrun, a repeat of a signal within this many seconds is the same request


class TrainingStopped(KeyboardInterrupt):
    """Raised at a step boundary after Ctrl-C or SIGTERM, once the checkpoint of that step is written;
    ``terminated`` is True for SIGTERM."""

    def __init__(self, terminated: bool = False) -> None:
        super().__init__()
        self.terminated = terminated


def interrupt_reason(err: KeyboardInterrupt) -> str:
    """The manifest's ``reason`` of a training ended by ``err``: "SIGTERM" or "SIGINT (Ctrl-C)"."""
    return TERMINATED if getattr(err, "terminated", False) else CTRL_C


class StopRequest:
    """A context manager that turns the first SIGINT or SIGTERM into a request (``reason`` set, ``on_request``
    called once with it) and lets a second raise KeyboardInterrupt (``terminated`` set for SIGTERM); a repeat within
    ``same_request_within`` seconds of the first (torchrun's forward of the same signal) is part of the first. It
    does nothing outside the main thread (where Python cannot install a signal handler), and leaves SIGTERM alone
    when the caller installed its own handler; the previous handlers are restored on exit."""

    def __init__(self, on_request: Callable[[str], None] | None = None, same_request_within: float = 0.0) -> None:
        self.on_request = on_request
        self.same_request_within = same_request_within
        self.reason: str | None = None
        self.terminated = False
        self._requested_at = 0.0
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            if time.monotonic() - self._requested_at < self.same_request_within:
                return
            err = KeyboardInterrupt()
            err.terminated = signum == signal.SIGTERM  # type: ignore[attr-defined]
            raise err
        self.reason, self.terminated = SIGNAL_REASONS[signum], signum == signal.SIGTERM
        self._requested_at = time.monotonic()
        if self.on_request is not None:
            self.on_request(self.reason)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
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
