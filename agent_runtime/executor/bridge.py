"""Run sync code on the event loop and let it wait on awaitables, with greenlets (as SQLAlchemy does).

Model-written code runs in a greenlet. When it calls an async tool, `await_only` switches back to
the driver coroutine, which awaits the tool on the loop and switches back in with the result. No
thread per run, and lambdas, callbacks given to built-ins, generators and class bodies all work.
The code goes on only when its task's turn comes (`agent_runtime.turns`): many agents' code
resuming together runs a stretch per loop iteration, never all of it in one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

from ..turns import take_turn

T = TypeVar("T")

_MARK = "_agent_runtime_code"  # set on the greenlets greenlet_spawn starts; their parent is the driver


def in_code_greenlet() -> bool:
    return getattr(greenlet.getcurrent(), _MARK, False)


def await_only(awaitable: Awaitable[T]) -> T:
    """From code running under `greenlet_spawn`: wait for `awaitable` on the loop and return its result."""
    current = greenlet.getcurrent()
    if not getattr(current, _MARK, False):
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()  # never awaited: close it rather than leak a "never awaited" warning
        raise RuntimeError("await_only() called outside code run by greenlet_spawn()")
    return cast(T, current.parent.switch(awaitable))


async def greenlet_spawn(function: Callable[..., T], *args: Any) -> T:
    """Run sync `function` in a greenlet, awaiting on its behalf whatever it passes to `await_only`."""
    code = greenlet.greenlet(function, greenlet.getcurrent())
    setattr(code, _MARK, True)
    result = code.switch(*args)
    cancelled: BaseException | None = None
    while not code.dead:
        try:
            value = await result
            await take_turn()
        except BaseException as error:
            # Cancellation and errors of the awaited thing surface inside the code, where they happened.
            if isinstance(error, asyncio.CancelledError):
                cancelled = error
            result = code.throw(*sys.exc_info())
        else:
            result = code.switch(value)
    if cancelled is not None:
        raise cancelled  # the code swallowed it (a `return` in `finally`...): a cancellation still stands
    return cast(T, result)
