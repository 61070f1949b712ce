"""`/metrics` for Prometheus, through prometheus_client (the exposition format, its escaping and the
choice between text and OpenMetrics are the library's), and the health checks.

The figures live in Redis, read asynchronously for each scrape; a collector then hands them to the
library, which collects synchronously.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.samples import Sample
from redis.exceptions import RedisError

from approvals import ApprovalClient
from approvals.heartbeat import ProcessInfo, live_processes
from approvals.models import QueueStats
from approvals.notify import NotifyStatus, notify_status
from approvals.stats import DecisionStats, decision_stats

from .. import appkeys
from ..access.auth import require_user

DECISIONS = ("approved", "rejected")
OTHER_ENDINGS = {
    "expired": "Requests nobody decided in time.",
    "cancelled": "Requests cancelled by a person.",
    "withdrawn": "Requests withdrawn because their asker stopped waiting (cancelled, failed, timed out, superseded).",
}


@dataclass(frozen=True, slots=True)
class Figures:
    """What one scrape read from Redis."""

    queues: list[QueueStats]
    counts: dict[tuple[str, str], int]
    reviewer_counts: dict[tuple[str, str], int]
    stats: list[DecisionStats]
    processes: list[ProcessInfo]
    runs: dict[str, int]
    notify: NotifyStatus


async def metrics(request: web.Request) -> web.Response:
    """For any signed-in user or token (it names reviewers): scrape with a token."""
    require_user(request)
    client = request.app[appkeys.CLIENT]
    try:
        figures: Figures | None = await _read(client, request.app[appkeys.RUNS].counts())
    except (RedisError, OSError):
        figures = None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(figures, client))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(registry), headers={"Content-Type": content_type})


async def _read(client: ApprovalClient, runs: Any) -> Figures:
    store = client.store
    queues, counts, reviewer_counts, stats, processes, run_counts, notify = await asyncio.gather(
        store.queue_stats(), store.counts(), store.reviewer_counts(), decision_stats(store),
        live_processes(store), runs, notify_status(store, failures=0),
    )  # fmt: skip
    return Figures(queues, counts, reviewer_counts, stats, processes, run_counts, notify)


class _Scrape:
    """A collector over one scrape's figures, and this process's wake latencies."""

    def __init__(self, figures: Figures | None, client: ApprovalClient) -> None:
        self.figures, self.client = figures, client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("approvals_redis_up", "Whether Redis answered this scrape.")
        up.add_metric([], 1 if self.figures is not None else 0)
        yield up
        if self.figures is not None:
            yield from _queues(self.figures)
            yield from _endings(self.figures)
            yield _time_to_decision(self.figures.stats)
            yield from _processes_and_runs(self.figures)
            yield from _notifications(self.figures.notify)
        yield from self.client.waiter.wake_latency.collect()


def _queues(figures: Figures) -> Iterator[Metric]:
    depth = GaugeMetricFamily("approvals_queue_depth", "Pending requests per queue.", labels=["queue"])
    oldest = GaugeMetricFamily(
        "approvals_queue_oldest_age_seconds", "Age of the oldest pending request per queue.", labels=["queue"]
    )
    for queue in figures.queues:
        depth.add_metric([queue.queue], queue.depth)
        oldest.add_metric([queue.queue], queue.oldest_age)
    yield depth
    yield oldest


def _endings(figures: Figures) -> Iterator[Metric]:
    created = CounterMetricFamily("approvals_requests_created", "Requests created.", labels=["queue"])
    decisions = CounterMetricFamily(
        "approvals_decisions", "Reviewers' decisions, by outcome.", labels=["queue", "outcome"]
    )
    others = {e: CounterMetricFamily(f"approvals_{e}", text, labels=["queue"]) for e, text in OTHER_ENDINGS.items()}
    for (queue, event), count in sorted(figures.counts.items()):
        if event == "created":
            created.add_metric([queue], count)
        elif event in DECISIONS:
            decisions.add_metric([queue, event], count)
        elif event in others:
            others[event].add_metric([queue], count)
    reviewers = CounterMetricFamily(
        "approvals_reviewer_decisions", "Decisions per reviewer, by outcome.", labels=["reviewer", "outcome"]
    )
    for (reviewer, outcome), count in sorted(figures.reviewer_counts.items()):
        reviewers.add_metric([reviewer, outcome], count)
    yield from (created, decisions, reviewers, *others.values())


def _time_to_decision(stats: list[DecisionStats]) -> Metric:
    family = SummaryMetricFamily(
        "approvals_time_to_decision_seconds", "Request to a reviewer's decision, last hour.", labels=["queue"]
    )
    for queue in stats:
        family.add_metric([queue.queue], count_value=queue.decided, sum_value=queue.waited)
        for quantile, value in (("0.5", queue.p50), ("0.95", queue.p95)):
            if value is not None:
                labels = {"queue": queue.queue, "quantile": quantile}
                family.samples.append(Sample("approvals_time_to_decision_seconds", labels, value))
    return family


def _processes_and_runs(figures: Figures) -> Iterator[Metric]:
    waiting = GaugeMetricFamily(
        "approvals_waiting_coroutines", "Coroutines waiting for a decision, per process.", labels=["process", "role"]
    )
    for process in figures.processes:
        waiting.add_metric([process.process_id, process.role], process.waiting)
    runs = GaugeMetricFamily(
        "approvals_runs",
        "Agent runs per state ('waiting': running and waiting for a person; also counted as running).",
        labels=["state"],
    )
    for state, count in figures.runs.items():
        runs.add_metric([state], count)
    workers = GaugeMetricFamily("approvals_worker_runs", "Runs each worker holds now.", labels=["worker"])
    for process in figures.processes:
        if process.details:
            workers.add_metric([process.details["worker"]], process.details.get("runs", 0))
    yield from (waiting, runs, workers)


def _notifications(notify: NotifyStatus) -> Iterator[Metric]:
    deliveries = CounterMetricFamily(
        "approvals_notify_deliveries",
        "Notification deliveries by channel and outcome: delivered, retried (an attempt failed), failed (gave up).",
        labels=["channel", "outcome"],
    )
    for (channel, outcome), count in sorted(notify.counts.items()):
        deliveries.add_metric([channel, outcome], count)
    pending = GaugeMetricFamily("approvals_notify_pending", "Notification deliveries not sent yet (due or retrying).")
    pending.add_metric([], notify.pending)
    refused = CounterMetricFamily(
        "approvals_refused_attempts",
        "Attempts to decide from an email link or Slack that were refused (forged, replayed, expired, not allowed).",
        labels=["via"],
    )
    for via, count in sorted(notify.refused.items()):
        refused.add_metric([via], count)
    yield from (deliveries, pending, refused)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "time": time.time()})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[appkeys.CLIENT].store.redis.ping(), 2)
    except (RedisError, OSError, TimeoutError):
        return web.json_response({"status": "unavailable", "redis": "does not answer"}, status=503)
    return web.json_response({"status": "ready"})
