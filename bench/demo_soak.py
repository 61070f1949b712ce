"""Soak: `approvals demo` left alone, as a newcomer leaves it, with nobody deciding anything.

    python bench/demo_soak.py [--minutes 30] [--every 30]

Builds the demo exactly as `approvals demo` does (the dashboard, its four demo agents, the run
submitter and the in-process worker, on the embedded store) and serves it on a free port. Every
`--every` seconds it reads the store and prints: pending requests, the most pending requests any one
asker holds (an agent, or a run), runs by state, and the endings so far (expired, withdrawn,
cancelled), the mails its SMTP catcher holds and the notifications not yet sent or given up on; at
the end, why runs failed. Targets: never more than one pending request per waiting agent or run, and
no notification given up on.
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
from approvals.notify import notify_status
from tests.redis_server import free_port
from web import WebSettings, appkeys
from web.cli.demo import demo_app
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
    app, demo = demo_app(settings, agents=4, store_port=-1)
    assert demo.mailbox is not None
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store, runs = app[appkeys.CLIENT].store, app[appkeys.RUNS]
    started = time.monotonic()
    worst = 0
    print(f"demo on http://127.0.0.1:{port}/ for {minutes:g} min; nobody decides")
    print(f"{'min':>5} {'pending':>8} {'max/asker':>10} {'mails':>6} {'unsent':>6} {'failed':>6}  "
          "runs (queued/running/waiting/finished/failed)  endings")  # fmt: skip
    try:
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(every)
            pending, per_asker, states, endings = await sample(store, runs)
            notify = await notify_status(store)
            worst = max(worst, per_asker)
            gave_up = sum(n for (_, outcome), n in notify.counts.items() if outcome == "failed")
            shown = "/".join(str(states[s]) for s in ("queued", "running", "waiting", "finished", "failed"))
            ended = ", ".join(f"{event} {n}" for event, n in sorted(endings.items()))
            minute, mails = (time.monotonic() - started) / 60, demo.mailbox.received
            print(f"{minute:>5.1f} {pending:>8} {per_asker:>10} {mails:>6} {notify.pending:>6} {gave_up:>6}  "
                  f"{shown:<44}  {ended}")  # fmt: skip
        failed = collections.Counter(r.error for r in (await runs.list_runs("failed", limit=500)).items)
        gave_up = sum(n for (_, outcome), n in (await notify_status(store)).counts.items() if outcome == "failed")
    finally:
        await runner.cleanup()
    print(f"\nmost pending requests held by one agent or run at any sample: {worst} (target: 1)")
    for error, n in failed.most_common():
        print(f"failed runs: {n} x {error}")
    print(f"notifications given up on: {gave_up} (target: 0)")
    return 0 if worst <= 1 and gave_up == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.minutes, options.every)))
