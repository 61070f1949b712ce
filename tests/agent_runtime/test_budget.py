"""Budgets bound code, never a person: waits wrapped in `waiting_for_person()` are taken off the clock."""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest

from agent_runtime import InterpreterError, tool
from agent_runtime.budget import Deadline, counting, waiting_for_person
from agent_runtime.executor import LocalPythonExecutor


@tool
async def ask_person(seconds: float) -> str:
    """Waits for a person's answer (here: a while).

    Args:
        seconds: How long the person takes.
    """
    with waiting_for_person():
        await asyncio.sleep(seconds)
    return "yes"


@tool
async def slow_service(seconds: float) -> str:
    """A slow ordinary tool: its time is the code's.

    Args:
        seconds: How long it takes.
    """
    await asyncio.sleep(seconds)
    return "done"


@tool
def ask_person_sync(seconds: float) -> str:
    """A sync tool (run in a worker thread) that waits for a person.

    Args:
        seconds: How long the person takes.
    """
    with waiting_for_person():
        time.sleep(seconds)
    return "yes"


def executor(timeout: float, **options: int) -> LocalPythonExecutor:
    runner = LocalPythonExecutor(timeout_seconds=timeout, **options)
    runner.send_tools({"ask_person": ask_person, "slow_service": slow_service, "ask_person_sync": ask_person_sync})
    return runner


async def test_a_wait_for_a_person_longer_than_the_budget_is_not_code_time() -> None:
    result = await executor(0.2).arun("answer = ask_person(0.8)\nanswer")
    assert result.output == "yes"


async def test_an_ordinary_tool_as_slow_still_runs_out_of_budget() -> None:
    with pytest.raises(InterpreterError, match=r"longer than its 0\.2 s budget"):
        await executor(0.2).arun("slow_service(0.8)")


async def test_code_time_before_and_after_a_wait_still_counts() -> None:
    started = time.monotonic()
    with pytest.raises(
        InterpreterError, match=r"0\.4 s budget \(not counting \d+(\.\d+)? s spent waiting for people\)"
    ):
        await executor(0.4).arun("slow_service(0.25)\nask_person(0.5)\nslow_service(0.25)")
    assert 0.85 < time.monotonic() - started < 3  # stopped at 0.4 s of code, plus the 0.5 s wait


async def test_a_sync_tool_waiting_in_a_thread_pauses_the_budget_too() -> None:
    result = await executor(0.2).arun("ask_person_sync(0.6)")
    assert result.output == "yes"


async def test_the_operation_budget_ignores_waits() -> None:
    result = await executor(0.2, max_operations=2_000).arun("for i in range(3):\n    ask_person(0.2)\n'ok'")
    assert result.output == "ok"


async def test_pauses_nest_and_the_deadline_moves_by_the_time_they_took() -> None:
    deadline = Deadline(1.0)
    before = deadline.at
    with counting(deadline):
        with waiting_for_person():
            with waiting_for_person():
                await asyncio.sleep(0.1)
            assert deadline.paused and deadline.remaining() == float("inf")
            await asyncio.sleep(0.1)
        assert not deadline.paused
    assert deadline.at - before == pytest.approx(0.2, abs=0.05)
    assert deadline.paused_for == pytest.approx(0.2, abs=0.05)


async def test_waits_from_a_thread_and_the_loop_at_once_keep_the_timeout_from_firing() -> None:
    deadline = Deadline(0.3)

    def person_in_a_thread() -> None:
        with waiting_for_person():
            time.sleep(0.45)

    async with asyncio.timeout(0.3) as timeout:
        deadline.bind(timeout)
        with counting(deadline):
            context = contextvars.copy_context()  # what the runtime's thread pool does for sync tools
            thread_done = asyncio.get_running_loop().run_in_executor(None, context.run, person_in_a_thread)
            with waiting_for_person():
                await asyncio.sleep(0.5)
            await thread_done
        deadline.bind(None)
    assert not timeout.expired()
    assert deadline.paused_for == pytest.approx(0.5, abs=0.1)  # overlapping waits count once


async def test_without_the_wait_marker_the_same_timeout_fires() -> None:
    deadline = Deadline(0.3)

    async def code_waiting_unmarked() -> None:
        async with asyncio.timeout(0.3) as timeout:
            deadline.bind(timeout)
            with counting(deadline):
                await asyncio.sleep(0.5)

    with pytest.raises(TimeoutError):
        await code_waiting_unmarked()


@tool
def sync_wait_then_ask(first: float, then: float) -> str:
    """A sync tool that works a while, then waits for a person (both in its worker thread).

    Args:
        first: Seconds of work first.
        then: Seconds the person takes.
    """
    time.sleep(first)
    with waiting_for_person():
        time.sleep(then)
    return "ok"


async def test_a_thread_still_waiting_from_a_cancelled_action_cannot_touch_the_next_actions_clock() -> None:
    runner = executor(0.5)
    runner.send_tools({"sync_wait_then_ask": sync_wait_then_ask})
    # Cut off while its thread waits for a person (a run's time limit, a worker's cancel) ...
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runner.arun("ask_person_sync(1.0)"), 0.2)
    # ... the thread's late resume does not cancel out the next action's own pause.
    assert (await runner.arun("ask_person(1.5)")).output == "yes"

    # A thread that begins its wait only after its action was cut off does not stop the next clock.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runner.arun("sync_wait_then_ask(0.3, 2.0)"), 0.1)
    with pytest.raises(InterpreterError, match=r"0\.5 s budget"):
        await runner.arun("slow_service(1.0)")  # ordinary work, counted while the old thread waits
