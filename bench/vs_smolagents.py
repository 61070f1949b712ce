"""Benchmark: this project's CodeAgent against smolagents' (1.26), side by side, on one scripted model server.

    python bench/vs_smolagents.py                 # every scenario, 1,000 agents, 0.5 s model latency
    python bench/vs_smolagents.py -n 200 --only gather

Needs smolagents (`make bench` installs the bench extra). A scripted OpenAI-compatible server
(bench/model_server.py) runs in its own process on 127.0.0.1; every completion takes `--latency`
seconds. Each run is two model calls: a code action calling a `lookup` tool, then `final_answer`.
Every scenario runs in a fresh Python process of its own:

  gather  N runs at once, after one warm-up run. This project: `arun` + `asyncio.gather` on one event
          loop with an async tool; smolagents: `agent.run` in N threads (its docs' way to run many),
          with a sync tool. Wall time, CPU per run, RSS per in-flight run, and the worst lateness of
          a 10 ms ticker (a coroutine on the loop; a thread for smolagents).
  cold    The first run in a fresh process (agent built, nothing run yet): the ticker's worst lateness.
  sync    `agent.run(task)` (the sync face) in `--threads` threads, `--sync-runs` runs in all: CPU per
          run and runs/s.

Targets (issue 13): 1,000 gathered agents' worst loop lag <= 100 ms, wall time ahead of smolagents'
threads; cold start lag <= 300 ms; the sync face's CPU per run <= smolagents' and runs/s >= theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.model_server import task

TICK = 0.01
TARGETS = {"lag_ms": 100.0, "cold_lag_ms": 300.0}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The largest RSS seen, sampled every 20 ms from a thread."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class LoopTicker:
    """A coroutine waking every 10 ms: how late it wakes is how long the loop was busy."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            self.worst = max(self.worst, time.perf_counter() - started - TICK)

    async def __aenter__(self) -> LoopTicker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class ThreadTicker:
    """A thread waking every 10 ms: how late it wakes is how long it waited for the GIL."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            started = time.perf_counter()
            if self._stop.wait(TICK):
                return
            self.worst = max(self.worst, time.perf_counter() - started - TICK)

    def __enter__(self) -> ThreadTicker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the two frameworks, built the same way ---------------------------------------------------------


def ours_agent(url: str, model_kind: str, model: Any = None) -> Any:
    from agent_runtime import CodeAgent, LiteLLMModel, OpenAIServerModel, tool

    @tool
    async def lookup(item: int) -> int:
        """Looks an item up.

        Args:
            item: the item's number
        """
        return item + 1

    if model is None:
        if model_kind == "litellm":
            model = LiteLLMModel("openai/bench", api_base=f"{url}/v1", api_key="bench")
        else:
            model = OpenAIServerModel("bench", api_base=f"{url}/v1", api_key="bench")
    return CodeAgent([lookup], model)


def smol_agent(url: str, model_kind: str, model: Any = None) -> Any:
    from smolagents import CodeAgent, LiteLLMModel, LogLevel, OpenAIServerModel, tool

    @tool
    def lookup(item: int) -> int:
        """Looks an item up.

        Args:
            item: the item's number
        """
        return item + 1

    if model is None:
        if model_kind == "litellm":
            model = LiteLLMModel("openai/bench", api_base=f"{url}/v1", api_key="bench")
        else:
            model = OpenAIServerModel("bench", api_base=f"{url}/v1", api_key="bench")
    return CodeAgent(tools=[lookup], model=model, verbosity_level=LogLevel.OFF)


def expected(n: int) -> int:
    return (n + 1) * 2


# -- scenarios, each in a fresh process ----------------------------------------------------------------


def child_gather(framework: str, url: str, n: int, model_kind: str) -> dict[str, Any]:
    make = ours_agent if framework == "ours" else smol_agent
    first = make(url, model_kind)
    agents = [first] + [make(url, model_kind, first.model) for _ in range(n - 1)]
    if framework == "ours":

        async def main() -> dict[str, Any]:
            assert await first.arun(task(0)) == expected(0)  # warm-up
            before_rss, before_cpu, started = rss_bytes(), cpu_seconds(), time.perf_counter()
            with PeakRss() as peak:
                async with LoopTicker() as ticker:
                    answers = await asyncio.gather(*(agent.arun(task(i)) for i, agent in enumerate(agents)))
            wall, cpu = time.perf_counter() - started, cpu_seconds() - before_cpu
            await first.model.aclose()
            return summary(answers, wall, cpu, peak.peak - before_rss, ticker.worst)

        return asyncio.run(main())
    assert first.run(task(0)) == expected(0)
    before_rss, before_cpu, started = rss_bytes(), cpu_seconds(), time.perf_counter()
    with PeakRss() as peak, ThreadTicker() as ticker, ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda pair: pair[1].run(task(pair[0])), enumerate(agents)))
    wall, cpu = time.perf_counter() - started, cpu_seconds() - before_cpu
    return summary(answers, wall, cpu, peak.peak - before_rss, ticker.worst)


def summary(answers: list[Any], wall: float, cpu: float, rss: int, lag: float) -> dict[str, Any]:
    n = len(answers)
    return {
        "runs": n,
        "correct": sum(answer == expected(i) for i, answer in enumerate(answers)),
        "wall_s": wall,
        "cpu_ms_per_run": cpu / n * 1000,
        "kb_per_run": rss / n / 1024,
        "lag_ms": lag * 1000,
    }


def child_cold(framework: str, url: str, model_kind: str) -> dict[str, Any]:
    agent = (ours_agent if framework == "ours" else smol_agent)(url, model_kind)
    if framework == "ours":

        async def main() -> dict[str, Any]:
            started = time.perf_counter()
            async with LoopTicker() as ticker:
                answer = await agent.arun(task(3))
            return {
                "correct": answer == expected(3),
                "wall_s": time.perf_counter() - started,
                "lag_ms": ticker.worst * 1000,
            }

        return asyncio.run(main())
    started = time.perf_counter()
    with ThreadTicker() as ticker:
        answer = agent.run(task(3))
    return {"correct": answer == expected(3), "wall_s": time.perf_counter() - started, "lag_ms": ticker.worst * 1000}


def child_sync(framework: str, url: str, threads: int, runs: int, model_kind: str) -> dict[str, Any]:
    make = ours_agent if framework == "ours" else smol_agent
    first = make(url, model_kind)
    agents = [first] + [make(url, model_kind, first.model) for _ in range(threads - 1)]
    assert first.run(task(0)) == expected(0)  # warm-up
    local = threading.local()
    free = list(agents)
    lock = threading.Lock()

    def one(i: int) -> Any:
        if not hasattr(local, "agent"):
            with lock:
                local.agent = free.pop()
        return local.agent.run(task(i))

    before_cpu, started = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(one, range(runs)))
    wall, cpu = time.perf_counter() - started, cpu_seconds() - before_cpu
    correct = sum(answer == expected(i) for i, answer in enumerate(answers))
    return {
        "runs": runs,
        "correct": correct,
        "wall_s": wall,
        "cpu_ms_per_run": cpu / runs * 1000,
        "runs_per_s": runs / wall,
    }


# -- the parent: a model server, then every scenario in a child -------------------------------------


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "model_server.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise SystemExit("the model server did not start")
    return server, f"http://127.0.0.1:{line.split()[1]}"


def in_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def verdict(ok: bool, text: str) -> bool:
    print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return ok


def parent(args: argparse.Namespace) -> int:
    try:
        import smolagents
    except ImportError:
        raise SystemExit("smolagents is not installed: make bench (or pip install -e '.[bench]')") from None
    server, url = start_server(args.latency)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        print(f"smolagents {smolagents.__version__}; model latency {args.latency:g} s; {os.cpu_count()} cores")
        scenarios: list[tuple[str, Callable[[str], tuple[str, ...]]]] = [
            ("gather", lambda fw: ("gather", fw, url, str(args.n), args.model)),
            ("cold", lambda fw: ("cold", fw, url, "0", args.model)),
            ("sync", lambda fw: ("sync", fw, url, str(args.threads), args.model, str(args.sync_runs))),
        ]
        for name, argv in scenarios:
            if args.only and name not in args.only:
                continue
            for framework in ("ours", "smolagents"):
                results[(name, framework)] = found = in_child(*argv(framework))
                print(f"{name:7} {framework:11} " + "  ".join(f"{k}={fmt(v)}" for k, v in found.items()), flush=True)
    finally:
        server.terminate()
        server.wait()
    return report(results, args)


def fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def report(results: dict[tuple[str, str], dict[str, Any]], args: argparse.Namespace) -> int:
    ok = True
    print()
    for key, found in results.items():
        ok &= verdict(found["correct"] in (True, found.get("runs")), f"{key[1]} {key[0]}: every answer right")
    if ("gather", "ours") in results:
        ours, theirs = results[("gather", "ours")], results[("gather", "smolagents")]
        ok &= verdict(
            ours["lag_ms"] <= TARGETS["lag_ms"],
            f"{args.n} agents: worst loop lag {ours['lag_ms']:.0f} ms <= 100 ms (goal 50)",
        )
        ok &= verdict(
            ours["wall_s"] < theirs["wall_s"],
            f"wall {ours['wall_s']:.2f} s ahead of smolagents' threads {theirs['wall_s']:.2f} s",
        )
    if ("cold", "ours") in results:
        cold = results[("cold", "ours")]["lag_ms"]
        ok &= verdict(cold <= TARGETS["cold_lag_ms"], f"cold start: worst lag {cold:.0f} ms <= 300 ms")
    if ("sync", "ours") in results:
        ours, theirs = results[("sync", "ours")], results[("sync", "smolagents")]
        ok &= verdict(
            ours["cpu_ms_per_run"] <= theirs["cpu_ms_per_run"],
            f"sync run CPU {ours['cpu_ms_per_run']:.1f} ms <= smolagents' {theirs['cpu_ms_per_run']:.1f} ms",
        )
        ok &= verdict(
            ours["runs_per_s"] >= theirs["runs_per_s"],
            f"sync runs/s {ours['runs_per_s']:.0f} >= smolagents' {theirs['runs_per_s']:.0f}",
        )
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="agents gathered at once")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per completion")
    parser.add_argument("--model", choices=["openai", "litellm"], default="openai")
    parser.add_argument("--threads", type=int, default=100, help="threads calling the sync agent.run")
    parser.add_argument("--sync-runs", type=int, default=1000, help="sync runs in all")
    parser.add_argument("--only", action="append", choices=["gather", "cold", "sync"])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        raise SystemExit(parent(args))
    name, framework, url, number, model_kind, *rest = args.child
    if name == "gather":
        found = child_gather(framework, url, int(number), model_kind)
    elif name == "cold":
        found = child_cold(framework, url, model_kind)
    else:
        found = child_sync(framework, url, int(number), int(rest[0]), model_kind)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
