"""The sync faces run on one background loop: shared by threads, in the caller's context, never waiting for itself."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent_runtime import CodeAgent, ScriptedModel, tool
from agent_runtime.concurrency import background, iterate_async_sync, run_coroutine_sync
from agent_runtime.memory import ActionStep

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def code(source: str) -> str:
    return f"```python\n{source}\n```"


def test_sync_calls_from_many_threads_share_one_loop() -> None:
    async def which_loop() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0.01)
        return asyncio.get_running_loop()

    with ThreadPoolExecutor(8) as pool:
        loops = set(pool.map(lambda _: run_coroutine_sync(which_loop), range(32)))
    assert loops == {background.loop()}


def test_the_callers_context_variables_are_seen_by_the_coroutine() -> None:
    async def read() -> str:
        return REQUEST_ID.get()

    token = REQUEST_ID.set("req-42")
    try:
        assert run_coroutine_sync(read) == "req-42"
    finally:
        REQUEST_ID.reset(token)


def test_errors_and_cancellation_reach_the_caller() -> None:
    async def fail() -> None:
        raise ValueError("bad")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(ValueError, match="bad"):
        run_coroutine_sync(fail)
    with pytest.raises(asyncio.CancelledError):
        run_coroutine_sync(cancelled)


def test_a_sync_run_inside_a_sync_callback_of_a_sync_run_does_not_wait_for_itself() -> None:
    inner = CodeAgent([], ScriptedModel([code("final_answer('inner')")]))
    seen: list[str] = []

    def callback(step: ActionStep) -> None:  # sync: called on the background loop's thread
        seen.append(inner.run("nested"))

    outer = CodeAgent([], ScriptedModel([code("final_answer('outer')")]), step_callbacks=[callback])
    assert outer.run("go") == "outer"
    assert seen == ["inner"]


def test_a_sync_stream_stopped_early_runs_nothing_more_and_closes_its_generator() -> None:
    produced: list[int] = []
    closed = threading.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            for n in range(10):
                produced.append(n)
                yield n
        finally:
            closed.set()

    for n in iterate_async_sync(numbers):
        if n == 2:
            break
    assert produced == [0, 1, 2]
    assert closed.wait(5)


def test_a_sync_stream_whose_generator_cannot_start_raises_instead_of_hanging() -> None:
    def broken() -> AsyncIterator[int]:
        raise RuntimeError("no generator")

    with pytest.raises(RuntimeError, match="no generator"):
        list(iterate_async_sync(broken))


def test_sync_run_called_from_async_code_blocks_that_loop_but_completes() -> None:
    @tool
    async def double(x: int) -> int:
        """Doubles.

        Args:
            x: a number
        """
        await asyncio.sleep(0.01)
        return 2 * x

    agent = CodeAgent([double], ScriptedModel([code("final_answer(double(21))")]))

    async def caller() -> object:
        return agent.run("go")  # sync face in async code: runs on the background loop, this one waits

    assert asyncio.run(caller()) == 42
