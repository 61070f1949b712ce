"""Benchmark: N CodeAgents whose code calls a slow async tool, on one event loop vs in anyio's worker threads.

    python bench/agents.py                     # 1,000 agents: async, threads, RSS per agent, event-loop lag
    python bench/agents.py -n 200 --sleep 0.2  # smaller and quicker
    python bench/agents.py --skip-threads      # async mode and the event-loop lag only

Each agent has its own ScriptedModel whose one reply is a code action calling `slow_tool(i)` without
`await`; `slow_tool` is an async @tool that sleeps `--sleep` seconds and returns 2 * i.

  async    all runs in one event loop: `asyncio.gather(*(agent.arun(task) for ...))`.
  threads  the pattern the smolagents docs call Approach 2:
           `asyncio.gather(*(anyio.to_thread.run_sync(agent.run, task) for ...))`, 40 threads by default.

Prints wall time of each mode and the ratio, RSS per agent while every async run is inside its tool's
sleep (over the RSS just before the gather, after building the agents and a warm-up run), the worst
event-loop lag seen by a 10 ms ticker during each phase, and the lag while one agent's code spins in
`while True: pass` until its executor's time budget (`--budget`) stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio.to_thread

from agent_runtime import CodeAgent, InterpreterError, ScriptedModel, Tool, tool

TARGETS = {"speedup": 10.0, "kb_per_agent": 50.0, "lag_ms": 50.0}
TICK = 0.01  # the ticker's period, seconds


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class InFlight:
    """How many tool calls are sleeping right now, and the most at once (thread-safe: threads mode)."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def make_slow_tool(seconds: float, in_flight: InFlight) -> Tool:
    @tool
    async def slow_tool(x: int) -> int:
        """Doubles a number, slowly (it waits on a pretend remote service).

        Args:
            x: the number to double
        """
        in_flight.enter()
        try:
            await asyncio.sleep(seconds)
        finally:
            in_flight.leave()
        return 2 * x

    return slow_tool


def code_reply(code: str) -> str:
    return f"Thought: I call the tool.\n```python\n{code}\n```"


def build_agents(n: int, slow_tool: Tool) -> list[CodeAgent]:
    script = "result = slow_tool({i})\nfinal_answer(result)"
    return [CodeAgent([slow_tool], ScriptedModel([code_reply(script.format(i=i))])) for i in range(n)]


def task(i: int) -> str:
    return f"Double {i} with slow_tool."


class Ticker:
    """A coroutine that wakes every 10 ms and records how late each wake-up was (event-loop lag)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.perf_counter() - started - TICK))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    @property
    def worst_ms(self) -> float:
        return max(self.lags, default=0.0) * 1000


@dataclass
class Result:
    mode: str
    agents: int
    wall: float
    ideal: float  # the least wall time the tool sleeps allow
    correct: int
    peak_in_flight: int
    worst_lag_ms: float
    bytes_per_run: float | None = None  # mid-run RSS over RSS just before the gather, per agent
    bytes_per_agent: float | None = None  # the same over RSS before the agents were built
    sampled_at: float | None = None  # seconds after the gather started
    in_flight_at_sample: int | None = None
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        def kb(value: float | None) -> str:
            return "-" if value is None else f"{value / 1024:.1f}"

        return (
            f"{self.mode:8} {self.agents:>7,} {self.wall:>8.2f} {self.ideal:>8.2f} {self.correct:>8,} "
            f"{self.peak_in_flight:>9,} {kb(self.bytes_per_run):>9} {kb(self.bytes_per_agent):>10} "
            f"{self.worst_lag_ms:>8.1f}"
        )


HEADER = (
    f"{'mode':8} {'agents':>7} {'wall s':>8} {'ideal s':>8} {'correct':>8} {'peak busy':>9} {'KB/run':>9} "
    f"{'KB/agent':>10} {'lag ms':>8}"
)


async def sample_rss_when_all_busy(in_flight: InFlight, n: int, done: asyncio.Event) -> tuple[int, float, int]:
    """RSS at the moment every run is inside its tool (or, if that never happens, at the busiest moment)."""
    started = time.perf_counter()
    best = (rss_bytes(), 0.0, in_flight.now)
    while not done.is_set():
        busy = in_flight.now
        if busy > best[2]:
            best = (rss_bytes(), time.perf_counter() - started, busy)
            if busy >= n:
                break
        await asyncio.sleep(0.002)
    return best


async def timed(awaitable: Awaitable[list[Any]]) -> tuple[list[Any], float]:
    started = time.perf_counter()
    results = await awaitable
    return results, time.perf_counter() - started


async def warm_up() -> None:
    """One run first, so one-time costs (imports, caches, first greenlet) are not charged to the agents."""
    (agent,) = build_agents(1, make_slow_tool(0.0, InFlight()))
    assert await agent.arun(task(0)) == 0


async def run_async(n: int, sleep: float) -> Result:
    await warm_up()
    in_flight = InFlight()
    gc.collect()
    before_agents = rss_bytes()
    agents = build_agents(n, make_slow_tool(sleep, in_flight))
    gc.collect()
    before = rss_bytes()
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_rss_when_all_busy(in_flight, n, done))
    ticker = Ticker()
    ticker.start()
    try:
        async with asyncio.timeout(60 + 10 * sleep):
            results, wall = await timed(asyncio.gather(*(agent.arun(task(i)) for i, agent in enumerate(agents))))
    finally:
        done.set()
        await ticker.stop()
    mid, sampled_at, busy = await sampler
    result = Result(
        "async", n, wall, sleep, sum(r == 2 * i for i, r in enumerate(results)), in_flight.peak, ticker.worst_ms,
        (mid - before) / n, (mid - before_agents) / n, sampled_at, busy,
    )  # fmt: skip
    if busy < n:
        result.notes.append(f"only {busy:,} of {n:,} runs were in the tool at once: RSS sampled then")
    return result


async def run_threads(n: int, sleep: float) -> Result:
    in_flight = InFlight()
    agents = build_agents(n, make_slow_tool(sleep, in_flight))
    threads = anyio.to_thread.current_default_thread_limiter().total_tokens
    ticker = Ticker()
    ticker.start()
    try:
        runs = (anyio.to_thread.run_sync(agent.run, task(i)) for i, agent in enumerate(agents))
        results, wall = await timed(asyncio.gather(*runs))
    finally:
        await ticker.stop()
    ideal = math.ceil(n / threads) * sleep
    result = Result(
        "threads", n, wall, ideal, sum(r == 2 * i for i, r in enumerate(results)), in_flight.peak, ticker.worst_ms
    )
    result.notes.append(f"anyio's default thread limiter: {threads:g} threads")
    return result


@dataclass
class LagResult:
    budget: float
    wall: float
    ticks: int
    worst_ms: float
    p99_ms: float
    error: BaseException | None
    answer: Any

    @property
    def stopped_by_time_budget(self) -> bool:
        message = f"longer than its {self.budget:g} s budget"
        return isinstance(self.error, InterpreterError) and message in str(self.error)


async def run_lag(budget: float) -> LagResult:
    """One agent whose code spins until its time budget runs out, next to a 10 ms ticker."""
    model = ScriptedModel([code_reply("while True:\n    pass"), "I could not finish: the loop ran out of time."])
    # max_operations far out of reach, so the time budget is what stops the loop.
    agent = CodeAgent([], model, max_steps=1, executor_timeout=budget, max_operations=10**15)
    ticker = Ticker()
    ticker.start()
    started = time.perf_counter()
    try:
        answer = await asyncio.wait_for(agent.arun("Spin forever."), timeout=budget + 30)
    finally:
        wall = time.perf_counter() - started
        await ticker.stop()
    steps = agent.memory.action_steps
    error = steps[0].error if steps else None
    ordered = sorted(ticker.lags)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else 0.0
    return LagResult(budget, wall, len(ordered), ticker.worst_ms, p99, error, answer)


def report(results: list[Result], lag: LagResult) -> None:
    print(HEADER)
    for result in results:
        print(result.row())
    print("  wall s: gather start -> every run finished; ideal s: the tool sleeps alone (batches of the thread pool)")
    print("  peak busy: most tool calls sleeping at once")
    print("  lag ms: worst lateness of a 10 ms ticker during the run (async: all first steps run in one loop turn)")
    async_result = next(r for r in results if r.mode == "async")
    print(
        f"  KB/run: (RSS mid-run - RSS just before the gather) / agents, sampled {async_result.sampled_at:.2f} s in "
        f"with {async_result.in_flight_at_sample:,} runs inside the tool"
    )
    print("  KB/agent: the same over RSS before the agents were built (agent objects included)")
    for result in results:
        for note in result.notes:
            print(f"  {result.mode}: {note}")
    print()
    print(f"event-loop lag while one agent's code runs `while True: pass` with a {lag.budget:g} s time budget:")
    print(f"  action ended after {lag.wall:.2f} s with {type(lag.error).__name__}: {lag.error}")
    print(f"  ticker: {lag.ticks} ticks, worst lag {lag.worst_ms:.1f} ms, p99 {lag.p99_ms:.1f} ms")
    print()

    checks: list[tuple[str, bool]] = []
    threads = next((r for r in results if r.mode == "threads"), None)
    for result in results:
        checks.append((f"{result.mode}: all {result.agents:,} answers correct", result.correct == result.agents))
    if threads is not None:
        ratio = threads.wall / async_result.wall
        print(f"threads / async at {async_result.agents:,} agents: wall time x{ratio:.1f}")
        name = f"async >= {TARGETS['speedup']:g}x faster than threads (wall time)"
        checks.append((name, ratio >= TARGETS["speedup"]))
    assert async_result.bytes_per_run is not None
    checks += [
        (
            f"<= {TARGETS['kb_per_agent']:g} KB RSS per in-flight agent run (async)",
            async_result.bytes_per_run <= TARGETS["kb_per_agent"] * 1024,
        ),
        (f"event-loop lag <= {TARGETS['lag_ms']:g} ms while code spins", lag.worst_ms <= TARGETS["lag_ms"]),
        ("the spinning action was stopped by its time budget (InterpreterError)", lag.stopped_by_time_budget),
    ]
    if async_result.agents < 1000:
        print("(the targets are meant for -n 1000 or more)")
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--agents", type=int, default=1000, help="number of agents (default 1,000)")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds slow_tool sleeps (default 0.5)")
    parser.add_argument("--budget", type=float, default=2.0, help="time budget of the spinning code (default 2 s)")
    parser.add_argument("--skip-threads", action="store_true", help="do not run threads mode")
    args = parser.parse_args()
    phases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [("async", lambda: run_async(args.agents, args.sleep))]
    if not args.skip_threads:
        phases.append(("threads", lambda: run_threads(args.agents, args.sleep)))
    print(f"{args.agents:,} CodeAgents, slow_tool sleeps {args.sleep:g} s, {os.cpu_count()} CPUs")
    results: list[Result] = []
    for name, phase in phases:
        print(f"  running {name} mode ...", flush=True)
        results.append(await phase())
    print(f"  running the event-loop lag check ({args.budget:g} s) ...", flush=True)
    lag = await run_lag(args.budget)
    print()
    report(results, lag)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
