"""Agent runs kept in Redis, so any server process can show any run and any worker can take one.

Submitting appends the run id to a stream that workers read through one consumer group; a run's
steps are a Redis list; finishing is guarded so a run finishes exactly once, even if two workers
ran it (the one that died and the one that took it over).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from approvals import ApprovalStore
from approvals.errors import ApprovalError, InvalidRequest

GROUP = "workers"
MAX_TASK = 20_000


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class RunNotFound(ApprovalError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    task: str
    profile: str
    status: RunStatus
    created_at: float
    attempts: int = 0
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: str | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Run:
        return cls(
            id=fields["id"],
            task=fields["task"],
            profile=fields["profile"],
            status=RunStatus(fields["status"]),
            created_at=float(fields["created_at"]),
            attempts=int(fields.get("attempts", 0)),
            worker=fields.get("worker"),
            started_at=float(fields["started_at"]) if "started_at" in fields else None,
            finished_at=float(fields["finished_at"]) if "finished_at" in fields else None,
            result=json.loads(fields["result"]) if "result" in fields else None,
            error=fields.get("error"),
        )


class RunStore:
    def __init__(self, store: ApprovalStore) -> None:
        self.redis = store.redis
        self.keys = store.keys

    async def submit(self, task: object, profile: str) -> Run:
        if not isinstance(task, str) or not task.strip():
            raise InvalidRequest("task", 'is required: send {"task": "what the agent should do"}')
        if len(task) > MAX_TASK:
            raise InvalidRequest("task", f"must be at most {MAX_TASK} characters")
        run = Run(uuid.uuid4().hex, task, profile, RunStatus.QUEUED, time.time())
        fields = {
            "id": run.id,
            "task": task,
            "profile": profile,
            "status": run.status.value,
            "created_at": repr(run.created_at),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.run(run.id), mapping=fields)
            pipe.zadd(self.keys.runs, {run.id: run.created_at})
            pipe.xadd(self.keys.run_queue, {"run": run.id})
            await pipe.execute()
        return run

    async def get(self, run_id: str) -> Run:
        fields = await self.redis.hgetall(self.keys.run(run_id)) if len(run_id) == 32 else {}
        if not fields:
            raise RunNotFound(run_id)
        return Run.from_hash(fields)

    async def recent(self, limit: int = 50) -> list[Run]:
        ids = await self.redis.zrange(self.keys.runs, 0, limit - 1, desc=True)
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in ids:
                pipe.hgetall(self.keys.run(run_id))
            rows = await pipe.execute()
        return [Run.from_hash(fields) for fields in rows if fields]

    async def steps(self, run_id: str, start: int = 0) -> list[dict[str, Any]]:
        return [json.loads(s) for s in await self.redis.lrange(self.keys.run_steps(run_id), start, -1)]

    async def started(self, run_id: str, worker: str) -> int:
        """Record that `worker` runs it now; returns the attempt number. A re-run starts its steps afresh."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.keys.run(run_id), mapping={"status": "running", "worker": worker, "started_at": repr(time.time())}
            )
            pipe.hincrby(self.keys.run(run_id), "attempts", 1)
            pipe.delete(self.keys.run_steps(run_id))
            replies = await pipe.execute()
        return int(replies[1])

    async def add_step(self, run_id: str, step: dict[str, Any]) -> None:
        await self.redis.rpush(self.keys.run_steps(run_id), json.dumps(step, default=str))

    async def finish(self, run_id: str, status: RunStatus, *, result: Any = None, error: str | None = None) -> bool:
        """Finish once: False if the run was already finished (by another worker)."""
        if not await self.redis.hsetnx(self.keys.run(run_id), "finished_at", repr(time.time())):
            return False
        fields = {"status": status.value, "result": json.dumps(result, default=str)}
        if error is not None:
            fields["error"] = error
        await self.redis.hset(self.keys.run(run_id), mapping=fields)
        return True
