"""Who waits for the requests asked in this context, and what becomes of them when the asker stops.

A request someone stopped waiting for is withdrawn at once, so no reviewer approves what nobody
will act on. The one exception is a stop that another attempt will pick up again: a worker handing
a run back (or losing it to another worker) keeps its requests open, and the next attempt attaches
to them by their idempotency keys. Whatever runs agents for others (a worker) says which stop is
which by setting a `RunHolder` around each run.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent_runtime.context import get_run_context

from .errors import ClientClosed


@dataclass
class RunHolder:
    """Set (in `current_holder`) by a worker around the run it holds."""

    # Awaited after each decision, before the tool acts on it: raises if this holder no longer owns
    # the run (cancelled, or taken over by another worker), so an approval is acted on once.
    fence: Callable[[], Awaitable[None]] | None = None
    keep_pending: bool = False  # set before a stop that another attempt of the run will take up
    stop_reason: str | None = None  # why the run stops, for reviewers


current_holder: contextvars.ContextVar[RunHolder | None] = contextvars.ContextVar("current_holder", default=None)


def withdrawal_reason(error: BaseException) -> str | None:
    """Why the request a wait ended with `error` is withdrawn; None to keep it open for a later attempt."""
    holder = current_holder.get()
    if holder is not None and holder.keep_pending:
        return None
    if holder is not None and holder.stop_reason:
        return holder.stop_reason
    run = get_run_context()
    if run is not None and run.deadline_passed():
        return f"the agent run reached its time limit ({run.run_timeout:g} s) while waiting"
    if isinstance(error, ClientClosed):
        return "the agent's process stopped waiting (its approval client closed)"
    if isinstance(error, asyncio.CancelledError):
        return "the agent stopped waiting: the code that asked was cancelled"
    return f"the agent stopped waiting after an error ({type(error).__name__})"
