"""Turns on the event loop: a burst of agents works through its CPU a slice at a time.

A thousand agents whose model replies arrive together would each parse, check and run their
code in one loop iteration: the loop would not look at a timer, a socket or a reviewer's click for
a second or more. Agents take a turn before each stretch of CPU work (building a prompt, reading a
reply, running code between tool calls): one turn is handed out per loop iteration, in order of
asking, so timers and I/O are served between any two agents' stretches and the loop's lag is one
stretch long, whatever the number of agents. A lone agent takes its turn without waiting.

Throughput is unchanged (there is one thread either way); each turn costs one more loop iteration.
"""

from __future__ import annotations

import asyncio
import collections
import weakref


class Turns:
    """First come, first served, one turn per loop iteration. Made per event loop (`take_turn`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._handed_out = False  # a turn went out in this loop iteration

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def take(self) -> None:
        if not self._handed_out and not self._waiting:
            self._hand_out()  # nobody ahead: go on at once
            return
        future = self._loop.create_future()
        self._waiting.append(future)
        await future  # a cancelled waiter is skipped; it holds nothing, so nothing needs handing back

    def _hand_out(self) -> None:
        self._handed_out = True
        self._loop.call_soon(self._next)  # runs in the next iteration, after its timers and I/O are queued

    def _next(self) -> None:
        self._handed_out = False
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)  # its task runs in the next iteration
                self._hand_out()
                return


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns] = weakref.WeakKeyDictionary()


def turns() -> Turns:
    """This event loop's turns."""
    loop = asyncio.get_running_loop()
    found = _turns.get(loop)
    if found is None:
        found = _turns[loop] = Turns(loop)
    return found


async def take_turn() -> None:
    """Wait for this task's turn at the CPU (at once when nobody else waits)."""
    await turns().take()
