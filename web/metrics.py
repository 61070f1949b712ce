"""`/metrics` in the Prometheus text format, and the health endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiohttp import web
from redis.exceptions import RedisError

from approvals.heartbeat import live_processes
from approvals.stats import decision_stats

from . import appkeys
from .auth import require_user

DECISIONS = ("approved", "rejected")


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels.items()
    )
    return "{" + inner + "}"


def _number(value: float) -> str:
    """Exact: counters as whole numbers (1234567, never 1.23457e+06), other figures in full."""
    return str(value) if isinstance(value, int) else repr(float(value))


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text, for any signed-in user or token (it names reviewers): scrape with a token."""
    require_user(request)
    client = request.app[appkeys.CLIENT]
    store = client.store
    out = _Text()
    try:
        queues, counts, reviewer_counts, stats, processes, runs = await asyncio.gather(
            store.queue_stats(),
            store.counts(),
            store.reviewer_counts(),
            decision_stats(store),
            live_processes(store),
            request.app[appkeys.RUNS].counts(),
        )
    except (RedisError, OSError):
        out.metric("approvals_redis_up", "gauge", "Whether Redis answered this scrape.", [("", 0)])
        return web.Response(text="\n".join(out.lines) + "\n", content_type="text/plain", charset="utf-8")
    out.metric("approvals_redis_up", "gauge", "Whether Redis answered this scrape.", [("", 1)])
    out.metric(
        "approvals_queue_depth",
        "gauge",
        "Pending requests per queue.",
        [(_labels(queue=q.queue), q.depth) for q in queues],
    )
    out.metric(
        "approvals_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest pending request per queue.",
        [(_labels(queue=q.queue), q.oldest_age) for q in queues],
    )

    def by_queue(event: str) -> list[tuple[str, float]]:
        return [(_labels(queue=q), n) for (q, e), n in sorted(counts.items()) if e == event]

    decided = [(_labels(queue=q, outcome=e), n) for (q, e), n in sorted(counts.items()) if e in DECISIONS]
    out.metric("approvals_requests_created_total", "counter", "Requests created.", by_queue("created"))
    out.metric(
        "approvals_decisions_total", "counter", "Reviewers' decisions, by outcome (approved, rejected).", decided
    )
    out.metric(
        "approvals_reviewer_decisions_total",
        "counter",
        "Decisions per reviewer, by outcome.",
        [(_labels(reviewer=r, outcome=e), n) for (r, e), n in sorted(reviewer_counts.items())],
    )
    out.metric(
        "approvals_expired_total", "counter", "Requests nobody decided before their deadline.", by_queue("expired")
    )
    out.metric("approvals_cancelled_total", "counter", "Requests cancelled by a person.", by_queue("cancelled"))
    out.metric(
        "approvals_withdrawn_total",
        "counter",
        "Requests withdrawn because their asker stopped waiting (cancelled, failed, timed out, superseded).",
        by_queue("withdrawn"),
    )
    quantiles = [
        (_labels(queue=s.queue, quantile=q), value)
        for s in stats
        for q, value in (("0.5", s.p50), ("0.95", s.p95))
        if value is not None
    ]
    out.metric(
        "approvals_time_to_decision_seconds",
        "summary",
        "Request to a reviewer's decision, over the last hour.",
        quantiles,
    )
    waiting = [(_labels(process=p.process_id, role=p.role), p.waiting) for p in processes]
    out.metric("approvals_waiting_coroutines", "gauge", "Coroutines waiting for a decision, per process.", waiting)
    out.metric(
        "approvals_runs",
        "gauge",
        "Agent runs per state ('waiting': running and waiting for a person; also counted as running).",
        [(_labels(state=state), n) for state, n in runs.items()],
    )
    workers = [(_labels(worker=p.details["worker"]), p.details.get("runs", 0)) for p in processes if p.details]
    out.metric("approvals_worker_runs", "gauge", "Runs each worker holds now.", workers)
    histogram = client.waiter.wake_latency
    buckets = [(_labels(le=le), n) for le, n in histogram.cumulative()]
    out.metric(
        "approvals_wake_latency_seconds",
        "histogram",
        "Decision written to waiting coroutine woken, in this server process.",
        [],
    )
    out.lines += [f"approvals_wake_latency_seconds_bucket{labels} {n}" for labels, n in buckets]
    out.lines += [
        f"approvals_wake_latency_seconds_sum {_number(histogram.total)}",
        f"approvals_wake_latency_seconds_count {histogram.count}",
    ]
    return web.Response(text="\n".join(out.lines) + "\n", content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "time": time.time()})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[appkeys.CLIENT].store.redis.ping(), 2)
    except (RedisError, OSError, TimeoutError):
        return web.json_response({"status": "unavailable", "redis": "does not answer"}, status=503)
    return web.json_response({"status": "ready"})
