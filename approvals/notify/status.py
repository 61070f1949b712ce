"""How notifications are going, for /metrics, the Ops page and `approvals status`: read from Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..store import ApprovalStore


@dataclass(frozen=True, slots=True)
class NotifyStatus:
    counts: dict[tuple[str, str], int]  # (channel, delivered|retried|failed) -> count
    pending: int  # deliveries not yet sent (waiting, retrying, or being sent)
    failures: list[dict[str, Any]]  # the latest that gave up, newest first
    refused: dict[str, int]  # refused decision attempts from email links and Slack, by where from


async def notify_status(store: ApprovalStore, failures: int = 20) -> NotifyStatus:
    keys = store.keys
    lanes = await store.redis.zrange(keys.notify_lanes, 0, -1)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.notify_counts)
        pipe.lrange(keys.notify_failures, 0, failures - 1)
        pipe.hgetall(keys.refused_counts)
        for lane in lanes:
            pipe.zcard(keys.notify_lane(lane))
        counts, failed, refused, *per_lane = await pipe.execute()
    pending = sum(per_lane)
    by_channel = {}
    for key, value in counts.items():
        channel, _, outcome = key.rpartition(":")
        by_channel[channel, outcome] = int(value)
    refused_by = {via: int(n) for via, n in refused.items()}
    return NotifyStatus(by_channel, int(pending), [json.loads(f) for f in failed], refused_by)
