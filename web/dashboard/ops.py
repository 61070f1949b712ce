"""The ops page: queues, reviewers, processes, workers, runs and Redis at a glance."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from approvals.heartbeat import live_processes
from approvals.notify import notify_status
from approvals.stats import recent_stats

from .. import appkeys
from ..access.auth import (
    require_user,
)
from ..http.params import store_of
from ..http.render import render


async def ops_page(request: web.Request) -> web.Response:
    require_user(request)
    store = store_of(request)
    queues, (stats, reviewers), processes, runs, notify, refused = await asyncio.gather(
        store.queue_stats(), recent_stats(store), live_processes(store), request.app[appkeys.RUNS].counts(),
        notify_status(store), store.recent_refusals(),
    )  # fmt: skip
    return render(
        request,
        "ops.html",
        {
            "reviewers": reviewers,
            "runs": runs,
            "workers": [p for p in processes if "worker" in p.details],
            "queues": queues,
            "stats": {s.queue: s for s in stats},
            "processes": processes,
            "redis": await redis_health(request),
            "settings": request.app[appkeys.SETTINGS].approvals,
            "subscribers": request.app[appkeys.FEED].subscribers,
            "notify": notify,
            "notify_config": request.app[appkeys.SETTINGS].notify,
            "refused": refused,
        },
    )


async def redis_health(request: web.Request) -> dict[str, Any]:
    store = store_of(request)
    started = time.perf_counter()
    try:
        await store.redis.ping()
        info = await store.redis.info("server") if not store.settings.embedded else {}
        memory = await store.redis.info("memory") if not store.settings.embedded else {}
    except (RedisError, OSError) as error:
        return {"ok": False, "error": str(error)}
    return {
        "ok": True,
        "latency_ms": (time.perf_counter() - started) * 1000,
        "version": info.get("redis_version", "embedded (fakeredis)"),
        "memory": memory.get("used_memory_human", "-"),
        "url": store.settings.display_url,
    }
