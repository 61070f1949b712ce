"""The operations commands: `approvals status`, `list`, `show ID`, `approve ID`, `reject ID`.

Exit codes: 0 done; 1 refused (bad input, not allowed); 3 no such request; 4 already decided.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from approvals import (
    AlreadyDecided,
    ApprovalClient,
    ApprovalRequest,
    InvalidRequest,
    RequestNotFound,
    SelfDecisionForbidden,
)
from approvals.heartbeat import live_processes
from approvals.stats import decision_stats
from approvals.validation import visible_text

from ..access.users import UserStore
from ..http.render import age, fields_of, summary
from ..runs.store import RunStore
from ..settings import WebSettings

NOT_FOUND, ALREADY_DECIDED = 3, 4
Action = Callable[[ApprovalClient, argparse.Namespace], Awaitable[int]]


def add_commands(commands: Any) -> None:
    commands.add_parser("status", help="queues, processes, workers and runs by state").set_defaults(
        run=lambda a: _run(_status, a)
    )
    listing = commands.add_parser("list", help="list pending (or --decided) requests")
    listing.add_argument("--queue")
    listing.add_argument("--decided", action="store_true")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(run=lambda a: _run(_list, a))
    show = commands.add_parser("show", help="one request (or run), in full")
    show.add_argument("id")
    show.set_defaults(run=lambda a: _run(_show, a))
    for name in ("approve", "reject"):
        decide = commands.add_parser(name, help=f"{name} a request as a named reviewer or admin")
        decide.add_argument("id")
        decide.add_argument("--as", dest="reviewer", required=True, help="the user deciding (must be allowed to)")
        decide.add_argument("--reason", required=name == "reject")
        if name == "approve":
            decide.add_argument(
                "--edited-args",
                metavar="JSON",
                help="approve with these arguments instead (a JSON object; it must fit the action's inputs)",
            )
        decide.set_defaults(run=lambda a, outcome=name: _run(_decide, a, outcome))


def _run(action: Callable[..., Awaitable[int]], args: argparse.Namespace, *extra: Any) -> int:
    async def run() -> int:
        settings = WebSettings.from_env()
        async with ApprovalClient(settings.approvals, sweep_expired=False, heartbeat=None) as client:
            return await action(client, args, *extra)

    return asyncio.run(run())


async def _status(client: ApprovalClient, args: argparse.Namespace) -> int:
    store = client.store
    queues, stats, processes = await asyncio.gather(store.queue_stats(), decision_stats(store), live_processes(store))
    by_queue = {s.queue: s for s in stats}
    print(f"Redis: {store.settings.display_url}")
    print("\nqueues (decisions: reviewers' approvals and rejections; the rest over the last hour)")
    header = ("queue", "pending", "oldest", "per min", "p50", "p95", "expired", "cancel'd", "withdrawn")
    print(f"{header[0]:20} " + " ".join(f"{h:>9}" for h in header[1:]))
    for q in queues:
        s = by_queue.get(q.queue)
        p50, p95 = (age(s.p50), age(s.p95)) if s and s.p50 is not None and s.p95 is not None else ("-", "-")
        rest = (s.expired, s.cancelled, s.withdrawn) if s else (0, 0, 0)
        print(
            f"{q.queue:20} {q.depth:>9} {age(q.oldest_age) if q.depth else '-':>9} "
            f"{s.per_minute if s else 0:>9.1f} {p50:>9} {p95:>9} " + " ".join(f"{n:>9}" for n in rest)
        )
    print(f"\n{'process':48} {'role':12} {'waiting':>8}")
    for p in processes:
        print(f"{p.process_id:48} {p.role:12} {p.waiting:>8}")
    print(f"\n{sum(p.waiting for p in processes)} coroutine(s) waiting in {len(processes)} process(es)")
    workers = [p for p in processes if "worker" in p.details]
    print(f"\n{'worker':48} {'runs':>6} {'of':>6} {'finished':>9}")
    for p in workers:
        d = p.details
        print(f"{d['worker']:48} {d.get('runs', 0):>6} {d.get('concurrency', 0):>6} {d.get('finished', 0):>9}")
    counts = await RunStore(store).counts()
    states = ", ".join(f"{counts[state]} {state}" for state in ("queued", "running", "finished", "failed", "cancelled"))
    print(f"\nruns: {states} ({counts['waiting']} of the running wait for approval)")
    return 0


async def _list(client: ApprovalClient, args: argparse.Namespace) -> int:
    store = client.store
    try:
        page = await (store.list_decided if args.decided else store.list_pending)(args.queue, limit=args.limit)
    except InvalidRequest as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    now = time.time()
    for r in page.items:
        when = f"{r.status.value} by {r.decided_by}" if args.decided else f"waiting {age(now - r.created_at)}"
        print(visible_text(f"{r.id}  {r.queue:12} {when:24} {r.action}  {summary(r.args, 60)}"))
    print(f"{len(page.items)} of {page.total}", file=sys.stderr)
    return 0


async def _load(client: ApprovalClient, request_id: str) -> ApprovalRequest | None:
    try:
        return await client.store.get(request_id)
    except (RequestNotFound, InvalidRequest):
        print(f"error: no approval request (or run) with id {request_id!r}", file=sys.stderr)
        return None


async def _show(client: ApprovalClient, args: argparse.Namespace) -> int:
    """An approval request or, given a run id, the run with its steps and approval requests."""
    runs = RunStore(client.store)
    if await runs.exists(args.id):
        run = await runs.get(args.id)
        data = fields_of(run) | {"status": run.status.value, "state": run.state}
        data |= {"steps": await runs.steps(run.id), "approval_requests": await runs.request_ids(run.id)}
    else:
        request = await _load(client, args.id)
        if request is None:
            return NOT_FOUND
        data = fields_of(request) | {"status": request.status.value}
    print(visible_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str)))
    return 0


async def _decide(client: ApprovalClient, args: argparse.Namespace, outcome: str) -> int:
    request = await _load(client, args.id)
    if request is None:
        return NOT_FOUND
    reviewer = await UserStore(client.store).get(args.reviewer)
    if reviewer is None or not reviewer.can_decide(request.queue):
        role = reviewer.role.value if reviewer else "unknown"
        print(f"error: {args.reviewer!r} ({role}) may not decide requests in queue {request.queue!r}", file=sys.stderr)
        return 1
    try:
        if outcome == "approve":
            edited = _edited_args(args.edited_args)
            decision = await client.store.approve(request.id, by=reviewer.name, reason=args.reason, edited_args=edited)
        else:
            decision = await client.store.reject(request.id, by=reviewer.name, reason=args.reason)
    except AlreadyDecided as error:
        print(f"error: {error}", file=sys.stderr)
        return ALREADY_DECIDED
    except (InvalidRequest, SelfDecisionForbidden) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{decision.status.value}{' with edits' if decision.edited else ''} by {decision.decided_by}")
    return 0


def _edited_args(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("--edited-args", "must be a JSON object, such as '{\"amount\": 5}'") from None
