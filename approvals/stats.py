"""Decision statistics per queue over a recent window: throughput, time to decision, expiries."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .store import ApprovalStore

WINDOW = 3600.0  # seconds of history the figures cover
SAMPLE = 1000  # most recent decisions read per queue


@dataclass(frozen=True, slots=True)
class DecisionStats:
    queue: str
    decided: int  # in the window (up to SAMPLE)
    per_minute: float  # over the last ten minutes
    p50: float | None  # seconds from request to decision
    p95: float | None
    expired: int
    by_outcome: dict[str, int]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def decision_stats(store: ApprovalStore, window: float = WINDOW) -> list[DecisionStats]:
    now = time.time()
    queues = sorted(await store.redis.smembers(store.keys.queues))
    async with store.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrevrangebyscore(store.keys.history(queue), "+inf", repr(now - window), start=0, num=SAMPLE)
        id_lists = await pipe.execute()
    async with store.redis.pipeline(transaction=False) as pipe:
        for ids in id_lists:
            for request_id in ids:
                pipe.hmget(store.keys.request(request_id), ["created_at", "decided_at", "status"])
        rows = iter(await pipe.execute())
    stats = []
    for queue, ids in zip(queues, id_lists, strict=True):
        durations: list[float] = []
        recent = 0
        outcomes: dict[str, int] = {}
        for created, decided, status in (next(rows) for _ in ids):
            if created is None or decided is None:
                continue  # removed by retention between the two reads
            outcomes[status] = outcomes.get(status, 0) + 1
            durations.append(float(decided) - float(created))
            recent += float(decided) > now - 600
        stats.append(
            DecisionStats(
                queue=queue,
                decided=len(durations),
                per_minute=recent / 10,
                p50=percentile(durations, 0.5),
                p95=percentile(durations, 0.95),
                expired=outcomes.get("expired", 0),
                by_outcome=outcomes,
            )
        )
    return stats
