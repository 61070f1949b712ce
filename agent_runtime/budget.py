"""Budgets bound the agent's own work, never a person's: time spent waiting for someone is taken off.

A running budget (the executor's wall clock for one code action) registers its `Deadline` in the
context while it runs. Code that waits for a person wraps the wait in `waiting_for_person()`, which
stops every registered deadline's clock and, when the wait ends, moves each deadline on by the time
the wait took. Waits for people are bounded by their own deadlines, and whole runs by `run_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator


class Deadline:
    """A wall-clock limit of `seconds` whose clock stands still while a person is awaited.

    `bind` ties an `asyncio.Timeout` to it, so the timeout never fires during such a wait and fires
    as much later as the waits took. Pauses nest: the clock runs again once the last wait ended.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.paused_for = 0.0  # seconds of waiting for people taken off so far
        self.epoch = 0  # which start() the current clock belongs to
        self._pauses = 0
        self._paused_at = 0.0
        self._timeout: asyncio.Timeout | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # a sync tool may wait for a person from a worker thread

    def start(self) -> None:
        """Start the clock afresh (each code action). Waits begun before belong to an older epoch:
        a tool thread still waiting from a cancelled action can no longer pause or resume this one."""
        with self._lock:
            self.epoch += 1
            self.at = time.monotonic() + self.seconds
            self.paused_for, self._pauses = 0.0, 0

    @property
    def paused(self) -> bool:
        return self._pauses > 0

    def remaining(self) -> float:
        return float("inf") if self.paused else self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def bind(self, timeout: asyncio.Timeout | None) -> None:
        """Keep `timeout` (an `asyncio.timeout(...)` entered on the running loop) in step with this deadline."""
        self._timeout = timeout
        self._loop = asyncio.get_running_loop() if timeout is not None else None
        self._reschedule()

    def pause(self, epoch: int) -> None:
        """Stop the clock, for a wait that began under `epoch`; a wait of an earlier action changes nothing."""
        with self._lock:
            if epoch != self.epoch:
                return
            self._pauses += 1
            if self._pauses == 1:
                self._paused_at = time.monotonic()
        self._reschedule()

    def resume(self, epoch: int) -> None:
        with self._lock:
            if epoch != self.epoch or self._pauses == 0:
                return  # a wait of an earlier action, ending late: this clock was started afresh since
            self._pauses -= 1
            if self._pauses == 0:
                waited = time.monotonic() - self._paused_at
                self.at += waited
                self.paused_for += waited
        self._reschedule()

    def _reschedule(self) -> None:
        loop, timeout = self._loop, self._timeout
        if loop is None or timeout is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._apply(timeout, loop)
        else:
            loop.call_soon_threadsafe(self._apply, timeout, loop)

    def _apply(self, timeout: asyncio.Timeout, loop: asyncio.AbstractEventLoop) -> None:
        if timeout is not self._timeout or timeout.expired():
            return  # the action ended, or its time ran out before the wait began
        remaining = self.remaining()
        timeout.reschedule(None if remaining == float("inf") else loop.time() + remaining)


# The running deadlines, each with the epoch it was started in: what a wait in this context may pause.
_running: contextvars.ContextVar[tuple[tuple[Deadline, int], ...]] = contextvars.ContextVar(
    "running_budgets", default=()
)


@contextlib.contextmanager
def counting(deadline: Deadline) -> Iterator[Deadline]:
    """Register `deadline`, as started now, as running in this context (and the tasks and tool threads
    it starts) for the block."""
    token = _running.set((*_running.get(), (deadline, deadline.epoch)))
    try:
        yield deadline
    finally:
        _running.reset(token)


@contextlib.contextmanager
def waiting_for_person() -> Iterator[None]:
    """Wrap a wait for a person's decision: no running budget counts the time it takes.

        with waiting_for_person():
            decision = await client.wait(request_id)

    `ApprovalClient.wait` and `request_approval` do this themselves.
    """
    running = _running.get()
    for deadline, epoch in running:
        deadline.pause(epoch)
    try:
        yield
    finally:
        for deadline, epoch in running:
            deadline.resume(epoch)
