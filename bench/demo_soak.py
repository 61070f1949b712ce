"""Soak: `approvals demo` left alone, as a newcomer leaves it, with nobody deciding anything.

    python bench/demo_soak.py [--minutes 30] [--every 30]

Builds the demo exactly as `approvals demo` does (the dashboard, its four demo agents, the run
submitter and the in-process worker, on the embedded store) and serves it on a free port. Every
`--every` seconds it reads the store and prints: pending requests, the most pending requests any one
asker holds (an agent, or a run), runs by state, and the endings so far (expired, withdrawn,
cancelled); at the end, why runs failed. Target: never more than one pending request per waiting
agent or run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web

from approvals import ApprovalStore
from tests.redis_server import free_port
from web import WebSettings, appkeys, create_app
from web.cli.demo import Demo
from web.runs.store import RunStore


async def sample(store: ApprovalStore, runs: RunStore) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """(pending, most pending held by one asker, runs by state, endings by kind so far)."""
    pending = (await store.list_pending(limit=500)).items
    by_asker = collections.Counter(r.run_id or r.agent_id or r.requested_by or "?" for r in pending)
    endings: collections.Counter[str] = collections.Counter()
    for (_, event), n in (await store.counts()).items():
        if event != "created":
            endings[event] += n
    return len(pending), max(by_asker.values(), default=0), await runs.counts(), dict(endings)


async def main(minutes: float, every: float) -> int:
    port = free_port()
    settings = WebSettings(port=port, in_process_worker=True)
    app = create_app(settings)
    demo = Demo(settings, agents=4, store_port=-1)
    app.on_startup.append(demo.add_users)
    app.cleanup_ctx.append(demo.run_agents)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store, runs = app[appkeys.CLIENT].store, app[appkeys.RUNS]
    started = time.monotonic()
    worst = 0
    print(f"demo on http://127.0.0.1:{port}/ for {minutes:g} min; nobody decides")
    print(f"{'min':>5} {'pending':>8} {'max/asker':>10}  runs (queued/running/waiting/finished/failed)  endings")
    try:
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(every)
            pending, per_asker, states, endings = await sample(store, runs)
            worst = max(worst, per_asker)
            shown = "/".join(str(states[s]) for s in ("queued", "running", "waiting", "finished", "failed"))
            ended = ", ".join(f"{event} {n}" for event, n in sorted(endings.items()))
            print(f"{(time.monotonic() - started) / 60:>5.1f} {pending:>8} {per_asker:>10}  {shown:<44}  {ended}")
        failed = collections.Counter(r.error for r in (await runs.list_runs("failed", limit=500)).items)
    finally:
        await runner.cleanup()
    print(f"\nmost pending requests held by one agent or run at any sample: {worst} (target: 1)")
    for error, n in failed.most_common():
        print(f"failed runs: {n} x {error}")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.minutes, options.every)))
