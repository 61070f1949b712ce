"""Decision statistics over a recent window: people's decisions per queue and per reviewer, and apart
from them what ended without one (expiries, cancellations, withdrawals)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .models import Status
from .store import ApprovalStore

WINDOW = 3600.0  # seconds of history the figures cover
RATE_WINDOW = 600.0  # seconds the per-minute rate covers
SAMPLE = 1000  # most recent endings read per queue


@dataclass(frozen=True, slots=True)
class DecisionStats:
    """One queue, over the window. Only reviewers' decisions (approved, rejected) count as decisions."""

    queue: str
    decided: int  # reviewers' decisions in the window (up to SAMPLE endings read)
    per_minute: float  # reviewers' decisions per minute, over the last ten minutes
    p50: float | None  # seconds from request to a reviewer's decision
    p95: float | None
    waited: float  # seconds from request to decision, summed over the decisions counted
    expired: int
    cancelled: int  # by a person: the requester, an admin, whoever cancelled the run
    withdrawn: int  # by the system: the asker stopped waiting
    by_outcome: dict[str, int] = field(default_factory=dict)  # every ending, decisions included


@dataclass(frozen=True, slots=True)
class ReviewerStats:
    reviewer: str
    approved: int
    rejected: int
    per_minute: float
    p50: float | None  # seconds from request to this reviewer's decision

    @property
    def decided(self) -> int:
        return self.approved + self.rejected


@dataclass(frozen=True, slots=True)
class _Ending:
    queue: str
    status: str
    by: str
    created_at: float
    decided_at: float

    @property
    def waited(self) -> float:
        return self.decided_at - self.created_at


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _recent_endings(store: ApprovalStore, window: float, now: float) -> tuple[list[str], list[_Ending]]:
    queues = sorted(await store.redis.smembers(store.keys.queues))
    async with store.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrevrangebyscore(store.keys.history(queue), "+inf", repr(now - window), start=0, num=SAMPLE)
        id_lists = await pipe.execute()
    async with store.redis.pipeline(transaction=False) as pipe:
        for ids in id_lists:
            for request_id in ids:
                pipe.hmget(store.keys.request(request_id), ["created_at", "decided_at", "status", "decided_by"])
        rows = iter(await pipe.execute())
    endings = []
    for queue, ids in zip(queues, id_lists, strict=True):
        for created, decided, status, by in (next(rows) for _ in ids):
            if created is not None and decided is not None:  # else removed by retention between the reads
                endings.append(_Ending(queue, status, by or "", float(created), float(decided)))
    return queues, endings


async def decision_stats(store: ApprovalStore, window: float = WINDOW) -> list[DecisionStats]:
    """Per queue, over the last `window` seconds."""
    return (await recent_stats(store, window))[0]


async def recent_stats(store: ApprovalStore, window: float = WINDOW) -> tuple[list[DecisionStats], list[ReviewerStats]]:
    """Per queue and per reviewer (busiest first), from one read of the last `window` seconds."""
    now = time.time()
    queues, endings = await _recent_endings(store, window, now)
    return [_queue_stats(q, [e for e in endings if e.queue == q], now) for q in queues], _reviewer_stats(endings, now)


def _queue_stats(queue: str, endings: list[_Ending], now: float) -> DecisionStats:
    decisions = [e for e in endings if Status(e.status).by_reviewer]
    outcomes: dict[str, int] = {}
    for ending in endings:
        outcomes[ending.status] = outcomes.get(ending.status, 0) + 1
    waits = [e.waited for e in decisions]
    return DecisionStats(
        queue=queue,
        decided=len(decisions),
        per_minute=_per_minute(decisions, now),
        p50=percentile(waits, 0.5),
        p95=percentile(waits, 0.95),
        waited=sum(waits),
        expired=outcomes.get(Status.EXPIRED, 0),
        cancelled=outcomes.get(Status.CANCELLED, 0),
        withdrawn=outcomes.get(Status.WITHDRAWN, 0),
        by_outcome=outcomes,
    )


def _reviewer_stats(endings: list[_Ending], now: float) -> list[ReviewerStats]:
    by_reviewer: dict[str, list[_Ending]] = {}
    for ending in endings:
        if Status(ending.status).by_reviewer:
            by_reviewer.setdefault(ending.by, []).append(ending)
    stats = [
        ReviewerStats(
            reviewer=reviewer,
            approved=sum(e.status == Status.APPROVED for e in decisions),
            rejected=sum(e.status == Status.REJECTED for e in decisions),
            per_minute=_per_minute(decisions, now),
            p50=percentile([e.waited for e in decisions], 0.5),
        )
        for reviewer, decisions in by_reviewer.items()
    ]
    return sorted(stats, key=lambda s: (-s.decided, s.reviewer))


def _per_minute(decisions: list[_Ending], now: float) -> float:
    return sum(e.decided_at > now - RATE_WINDOW for e in decisions) / (RATE_WINDOW / 60)
