"""Who waits for the requests asked in this context, and what becomes of them when the asker stops.

A request someone stopped waiting for is withdrawn at once, so no reviewer approves what nobody
will act on. The one exception is a stop that another attempt will pick up again: a worker handing
a run back (or losing it to another worker) keeps its requests open, and the next attempt attaches
to them by their idempotency keys. Whatever runs agents for others (a worker) says which stop is
which by setting a `RunHolder` around each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from agent_runtime.context import get_run_context

from .errors import AlreadyDecided, ClientClosed, RequestNotFound
from .store import ApprovalStore

log = logging.getLogger("approvals.asking")

WITHDRAW_GRACE = 5.0  # seconds a withdrawal is given to finish, however often its caller is cancelled


@dataclass
class RunHolder:
    """Set (in `current_holder`) by a worker around the run it holds."""

    # Awaited after each decision, before the tool acts on it: raises if this holder no longer owns
    # the run (cancelled, or taken over by another worker), so an approval is acted on once.
    fence: Callable[[], Awaitable[None]] | None = None
    # Whether this holder still owns the run: a wait that ends after the run was taken over (or
    # cancelled) leaves the request to the run's current attempt (or to its canceller).
    still_holds: Callable[[], Awaitable[bool]] | None = None
    keep_pending: bool = False  # set before a stop that another attempt of the run will take up
    requested_by: str | None = None  # the person the run acts for: the requester of record


current_holder: contextvars.ContextVar[RunHolder | None] = contextvars.ContextVar("current_holder", default=None)


async def withdrawal_reason(error: BaseException) -> str | None:
    """Why the request a wait ended with `error` is withdrawn; None to keep it open for a later attempt."""
    holder = current_holder.get()
    if holder is not None and holder.keep_pending:
        return None
    if holder is not None and holder.still_holds is not None:
        with contextlib.suppress(RedisError, OSError):  # cannot tell: withdraw (if Redis lets us)
            if not await holder.still_holds():
                return None
    run = get_run_context()
    if run is not None and run.deadline_passed():
        return "the agent run reached its time limit while waiting"
    if isinstance(error, ClientClosed):
        return "the agent's process stopped waiting (its approval client closed)"
    if isinstance(error, asyncio.CancelledError):
        return "the agent stopped waiting: the code that asked was cancelled"
    return f"the agent stopped waiting after an error ({type(error).__name__})"


class Asking:
    """A client's asks in progress and the withdrawals they started: each withdrawal runs to its end
    even if its caller is cancelled again, and closing the client waits for all of them first."""

    def __init__(self) -> None:
        self._asks = 0  # in progress (a count: a burst of 100,000 asks should not hold 100,000 objects)
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy: set[asyncio.Task[None]] = set()  # withdrawals running

    @contextlib.contextmanager
    def in_progress(self) -> Iterator[None]:
        self._asks += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._asks -= 1
            if not self._asks:
                self._idle.set()

    async def give_up(self, store: ApprovalStore, request_id: str, error: BaseException) -> None:
        """Withdraw `request_id` unless the stop keeps it (see `withdrawal_reason`). A cancellation
        that arrives meanwhile is raised once the withdrawal ended (or its grace ran out)."""
        task = asyncio.ensure_future(_withdraw(store, request_id, error))  # copies this context: holder, run
        self._busy.add(task)
        task.add_done_callback(self._busy.discard)
        loop = asyncio.get_running_loop()
        deadline, cancelled = loop.time() + WITHDRAW_GRACE, False
        while not task.done() and loop.time() < deadline:
            try:
                await asyncio.wait([task], timeout=deadline - loop.time())
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def settle(self) -> None:
        """Wait (within the grace) for every ask to end and every withdrawal to be written."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WITHDRAW_GRACE
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), WITHDRAW_GRACE)
        while self._busy and loop.time() < deadline:
            await asyncio.wait(list(self._busy), timeout=deadline - loop.time())


async def _withdraw(store: ApprovalStore, request_id: str, error: BaseException) -> None:
    reason = await withdrawal_reason(error)
    if reason is None:
        return
    try:
        await store.withdraw(request_id, reason=reason)
    except (AlreadyDecided, RequestNotFound):
        pass  # decided a moment ago (that decision stands), or never written
    except (RedisError, OSError) as failure:
        log.warning("approvals: cannot withdraw request %s (%s); it expires at its deadline", request_id, failure)
