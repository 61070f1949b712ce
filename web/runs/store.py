"""Agent runs kept in Redis, so any server process can show any run and any worker can take one.

Submitting appends the run id to a stream that workers read through one consumer group. A run is a
hash; its steps are a list; one sorted set per state indexes the runs for the dashboard. Every change
of state is one Lua script that also moves the run between those sets and publishes a notice on the
runs channel, and finishing is guarded so a run finishes exactly once, even if two workers ran it
(the one that died and the one that took it over) or someone cancelled it meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from redis.exceptions import ResponseError

from approvals import AlreadyDecided, ApprovalStore, Decision, RequestNotFound
from approvals.errors import ApprovalError, InvalidRequest
from approvals.models import Page
from approvals.validation import encodable, result_json, seconds

GROUP = "workers"
WORKER_ACTOR = "system:worker"
MAX_TASK = 20_000
MAX_STEP_TEXT = 20_000  # characters kept of each text field of a step


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED)


# What the runs page and `approvals list-runs` filter on: the stored states, and two views of them.
ACTIVE, WAITING = "active", "waiting"  # queued or running; running and waiting for a person's decision
VIEWS = (ACTIVE, WAITING, *(s.value for s in RunStatus), "all")


class RunNotFound(ApprovalError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class RunFinished(ApprovalError):
    """A change to a run that already finished (or was cancelled)."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.id} already {run.status.value}")
        self.run = run


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    task: str
    profile: str
    status: RunStatus
    created_at: float
    submitted_by: str | None = None
    attempts: int = 0
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: str | None = None
    cancelled_by: str | None = None
    timeout: float | None = None  # seconds the whole run may take, waits for people included
    deadline: float | None = None  # created_at + timeout: past it the run stops, failed
    waiting: bool = False  # running, with an approval request pending (read from the approvals, not stored)

    @property
    def state(self) -> str:
        """The status as people want to see it: `waiting` for a running run that waits for a person."""
        return WAITING if self.waiting else self.status.value

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Run:
        return cls(
            id=fields["id"],
            task=fields["task"],
            profile=fields["profile"],
            status=RunStatus(fields["status"]),
            created_at=float(fields["created_at"]),
            submitted_by=fields.get("submitted_by"),
            attempts=int(fields.get("attempts", 0)),
            worker=fields.get("worker"),
            started_at=float(fields["started_at"]) if "started_at" in fields else None,
            finished_at=float(fields["finished_at"]) if "finished_at" in fields else None,
            result=json.loads(fields["result"]) if "result" in fields else None,
            error=fields.get("error"),
            cancelled_by=fields.get("cancelled_by"),
            timeout=float(fields["timeout"]) if "timeout" in fields else None,
            deadline=float(fields["deadline"]) if "deadline" in fields else None,
        )


# KEYS: run, steps, queued set, running set, set of the new state, the run's approval requests
# ARGV: run id, new status, now, channel, retention seconds, attempt that must be the current one
#       (or ''), then hash field/value pairs to set
# Replies {'ok', attempts}; {'finished', status} when the run already finished; {'superseded'} when
# the attempt named is not the current one (another worker took the run over); or {'missing'}.
# A run that ends is kept for the retention time, like a decided approval request.
TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if redis.call('HEXISTS', KEYS[1], 'finished_at') == 1 then return {'finished', status} end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[6] then return {'superseded'} end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
local attempts = redis.call('HGET', KEYS[1], 'attempts') or '0'
if ARGV[2] == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[3], unpack(ARGV, 7))
  redis.call('DEL', KEYS[2])
  attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
else
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3], unpack(ARGV, 7))
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[6], ARGV[5])
end
redis.call('PUBLISH', ARGV[4], ARGV[1] .. '\\n' .. ARGV[2])
return {'ok', tostring(attempts)}
"""

# KEYS: run, steps. ARGV: run id, attempt, step JSON, channel.
# Appends only for the attempt that runs now: a worker that lost the run to another cannot write into
# the new attempt's steps. Replies the run's status, or 'superseded'.
ADD_STEP = """
local current = redis.call('HMGET', KEYS[1], 'status', 'attempts')
if current[1] ~= 'running' then return current[1] or 'missing' end
if current[2] ~= ARGV[2] then return 'superseded' end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1] .. '\\nstep')
return 'running'
"""


class RunStore:
    def __init__(self, store: ApprovalStore) -> None:
        self.approvals = store
        self.redis = store.redis
        self.keys = store.keys
        self.retention = store.settings.retention
        self._transition = self.redis.register_script(TRANSITION)
        self._add_step = self.redis.register_script(ADD_STEP)

    # -- submitting and reading --------------------------------------------------------------------

    async def submit(
        self, task: object, profile: str, *, submitted_by: str | None = None, timeout: object = None
    ) -> Run:
        """Queue a run. `timeout` (seconds, counted from now) bounds all of it, waits for people included."""
        task = check_task(task)
        limit = None if timeout is None else seconds(timeout, "timeout")
        now = time.time()
        deadline = None if limit is None else now + limit
        run = Run(
            uuid.uuid4().hex, task, profile, RunStatus.QUEUED, now, submitted_by, timeout=limit, deadline=deadline
        )
        fields = {
            "id": run.id,
            "task": task,
            "profile": profile,
            "status": run.status.value,
            "created_at": repr(run.created_at),
        } | ({"submitted_by": submitted_by} if submitted_by else {})
        if limit is not None and deadline is not None:
            fields |= {"timeout": repr(limit), "deadline": repr(deadline)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.run(run.id), mapping=fields)
            pipe.zadd(self.keys.runs, {run.id: run.created_at})
            pipe.zadd(self.keys.runs_in_state(RunStatus.QUEUED), {run.id: run.created_at})
            pipe.xadd(self.keys.run_queue, {"run": run.id})
            pipe.publish(self.keys.runs_channel, f"{run.id}\nqueued")
            await pipe.execute()
        return run

    async def get(self, run_id: str) -> Run:
        runs = await self.get_many([run_id]) if _well_formed(run_id) else []
        if not runs:
            raise RunNotFound(run_id)
        return runs[0]

    async def exists(self, run_id: str) -> bool:
        return _well_formed(run_id) and bool(await self.redis.exists(self.keys.run(run_id)))

    async def get_many(self, run_ids: list[str]) -> list[Run]:
        """The runs that exist among `run_ids`, in order, each knowing whether it waits for a person."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            rows = await pipe.execute()
        runs = [Run.from_hash(fields) for fields in rows if fields]
        running = [run for run in runs if run.status is RunStatus.RUNNING]
        if not running:
            return runs
        async with self.redis.pipeline(transaction=False) as pipe:
            for run in running:
                pipe.zintercard(2, [self.keys.pending(), self.keys.run_requests(run.id)], limit=1)
            waiting = {run.id for run, count in zip(running, await pipe.execute(), strict=True) if count}
        return [replace(run, waiting=True) if run.id in waiting else run for run in runs]

    async def list_runs(self, view: str = "all", *, offset: int = 0, limit: int = 50) -> Page[Run]:
        """Runs in one view (see VIEWS), newest first: by submission, start or finish as the view suits."""
        if view not in VIEWS:
            raise InvalidRequest("state", f"must be one of {', '.join(VIEWS)}")
        if view == WAITING:  # derived, so read every running run: there are as many as workers run at once
            running = await self.get_many(await self.redis.zrange(self.keys.runs_in_state("running"), 0, -1, desc=True))
            waiting = [run for run in running if run.waiting]
            return Page(waiting[offset : offset + limit], len(waiting), offset, limit)
        keys = (
            [self.keys.runs]
            if view == "all"
            else [self.keys.runs_in_state(s) for s in (("running", "queued") if view == ACTIVE else (view,))]
        )
        start = offset if len(keys) == 1 else 0  # two sets (active: running, then queued) are read from the top
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcard(key)
                pipe.zrange(key, start, offset + limit - 1, desc=True)
            replies = await pipe.execute()
        ids = [run_id for part in replies[1::2] for run_id in part][offset - start : offset - start + limit]
        return Page(await self.get_many(ids), sum(replies[::2]), offset, limit)

    async def counts(self) -> dict[str, int]:
        """How many runs are in each state, and how many running ones wait for a person."""
        states = list(RunStatus)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in states:
                pipe.zcard(self.keys.runs_in_state(state))
            sizes = await pipe.execute()
        counts = {state.value: size for state, size in zip(states, sizes, strict=True)}
        return counts | {WAITING: (await self.list_runs(WAITING, limit=1)).total}

    async def cancelled_among(self, run_ids: list[str]) -> set[str]:
        """Which of `run_ids` were cancelled: one command, however many a worker holds."""
        if not run_ids:
            return set()
        scores = await self.redis.zmscore(self.keys.runs_in_state(RunStatus.CANCELLED), run_ids)
        return {run_id for run_id, score in zip(run_ids, scores, strict=True) if score is not None}

    async def snapshot(self, run_id: str, start: int = 0) -> tuple[Run, list[dict[str, Any]]]:
        """The run and its steps from `start`, read together (MULTI), so the steps are the attempt's."""
        if not _well_formed(run_id):
            raise RunNotFound(run_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.keys.run(run_id))
            pipe.lrange(self.keys.run_steps(run_id), start, -1)
            pipe.zintercard(2, [self.keys.pending(), self.keys.run_requests(run_id)], limit=1)
            fields, steps, waiting = await pipe.execute()
        if not fields:
            raise RunNotFound(run_id)
        run = Run.from_hash(fields)
        return replace(run, waiting=run.status is RunStatus.RUNNING and bool(waiting)), [json.loads(s) for s in steps]

    async def steps(self, run_id: str, start: int = 0) -> list[dict[str, Any]]:
        return [json.loads(s) for s in await self.redis.lrange(self.keys.run_steps(run_id), start, -1)]

    async def request_ids(self, run_id: str) -> list[str]:
        """The approval requests the run made, oldest first."""
        ids: list[str] = await self.redis.zrange(self.keys.run_requests(run_id), 0, -1)
        return ids

    # -- what workers record -----------------------------------------------------------------------

    async def started(self, run_id: str, worker: str) -> int | None:
        """Record that `worker` runs it now: the attempt number (a re-run starts its steps afresh), or
        None if the run finished meanwhile (cancelled while queued, or finished by a worker that died
        before acknowledging it)."""
        kind, value = await self._change(run_id, RunStatus.RUNNING, {"worker": worker})
        return int(value) if kind == "ok" and value is not None else None

    async def add_step(self, run_id: str, attempt: int, step: dict[str, Any]) -> str:
        """Append a step of `attempt`; returns the run's status ('superseded' if another attempt runs now)."""
        keys = [self.keys.run(run_id), self.keys.run_steps(run_id)]
        status: str = await self._add_step(keys=keys, args=[run_id, attempt, step_json(step), self.keys.runs_channel])
        return status

    async def holder_status(self, run_id: str, attempt: int) -> str:
        """What `attempt` may do now: 'running' if it is still the run's current attempt, 'superseded'
        if another worker took the run over, else the run's status ('cancelled'...)."""
        status, attempts = await self.redis.hmget(self.keys.run(run_id), ["status", "attempts"])
        if status == RunStatus.RUNNING and attempts != str(attempt):
            return "superseded"
        return status or "missing"

    async def finish(
        self, run_id: str, status: RunStatus, *, attempt: int, result: Any = None, error: str | None = None
    ) -> str:
        """Finish `attempt` of the run, once: 'ok'; 'finished' if it already ended (cancelled, or
        finished by a worker that died before acknowledging); 'superseded' if another worker runs
        it now."""
        fields = {"result": result_json(result)} | ({"error": error} if error is not None else {})
        kind, _ = await self._change(run_id, status, fields, attempt=attempt)
        return kind

    async def trim(self) -> int:
        """Drop runs that ended more than the retention time ago from the indexes (their keys expire by
        TTL); returns how many."""
        cutoff = repr(time.time() - self.retention)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED):
                pipe.zrangebyscore(self.keys.runs_in_state(state), "-inf", cutoff)
                pipe.zremrangebyscore(self.keys.runs_in_state(state), "-inf", cutoff)
            replies = await pipe.execute()
        gone = [run_id for ids in replies[::2] for run_id in ids]
        if gone:
            await self.redis.zrem(self.keys.runs, *gone)
        await self._trim_queue()
        return len(gone)

    async def _trim_queue(self) -> None:
        """Drop the queue's entries that every worker is done with: older than the oldest one still
        held by a worker, and than the last one handed out."""
        try:
            groups = await self.redis.xinfo_groups(self.keys.run_queue)
        except ResponseError:
            return  # no queue yet
        group = next((g for g in groups if g["name"] == GROUP), None)
        if group is None:
            return
        pending = await self.redis.xpending(self.keys.run_queue, GROUP)
        floor = pending["min"] if pending["pending"] else group["last-delivered-id"]
        await self.redis.xtrim(self.keys.run_queue, minid=floor, approximate=False)

    # -- cancelling --------------------------------------------------------------------------------

    async def cancel(self, run_id: str, *, by: str) -> Run:
        """Cancel a run that has not finished, and the approval requests it has pending.

        The worker running it hears of it on the runs channel and stops it; a queued run is never
        started. Raises RunFinished if the run already finished.
        """
        kind, _ = await self._change(run_id, RunStatus.CANCELLED, {"cancelled_by": by, "error": f"cancelled by {by}"})
        if kind == "missing":
            raise RunNotFound(run_id)
        run = await self.get(run_id)
        if kind == "finished":
            raise RunFinished(run)
        await self.withdraw_approvals(run)
        return run

    async def withdraw_approvals(self, run: Run | str) -> list[Decision]:
        """Close what a finished run still has pending, so reviewers are not asked about a run that ended:
        cancelled in the name of whoever cancelled the run, else withdrawn by the system.

        Both the canceller and the worker that stops the run call this (whoever is first does it). Given
        a run id, the run is read only when it has something pending (most runs end with nothing).
        """
        pending = await self._pending_requests(run if isinstance(run, str) else run.id)
        if not pending:
            return []
        if isinstance(run, str):
            run = await self.get(run)
        closed = []
        for request_id in pending:
            with contextlib.suppress(AlreadyDecided, RequestNotFound):  # decided a moment ago: that stands
                if run.status is RunStatus.CANCELLED:
                    by = run.cancelled_by or "system"
                    closed.append(await self.approvals.cancel(request_id, by=by, reason="the run was cancelled"))
                else:
                    reason = f"the run ended ({run.status.value}) without waiting for it"
                    closed.append(await self.approvals.withdraw(request_id, by=WORKER_ACTOR, reason=reason))
        return closed

    async def withdraw_passed(self, run_id: str, step: int) -> list[Decision]:
        """Withdraw the run's pending requests asked at `step` or before: once a step has ended its run
        waits for none of them. (A re-run that took another path leaves such requests behind.)"""
        pending = await self._pending_requests(run_id)
        if not pending:
            return []
        keys = {request.id: request.idempotency_key or "" for request in await self.approvals.get_many(pending)}
        withdrawn = []
        for request_id, key in keys.items():  # a request deleted by hand is simply not there
            asked_at = key.split(":")[1] if key.startswith(f"{run_id}:") and key.count(":") >= 2 else ""
            if asked_at.isdigit() and int(asked_at) <= step:
                with contextlib.suppress(AlreadyDecided, RequestNotFound):
                    reason = f"the run went past step {asked_at} without waiting for it (it took another path)"
                    withdrawn.append(await self.approvals.withdraw(request_id, by=WORKER_ACTOR, reason=reason))
        return withdrawn

    async def _pending_requests(self, run_id: str) -> list[str]:
        ids: list[str] = await self.redis.zinter([self.keys.pending(), self.keys.run_requests(run_id)])
        return ids

    async def _change(
        self, run_id: str, status: RunStatus, fields: dict[str, str], *, attempt: int | None = None
    ) -> tuple[str, str | None]:
        if not _well_formed(run_id):
            return "missing", None
        keys = [
            self.keys.run(run_id),
            self.keys.run_steps(run_id),
            self.keys.runs_in_state(RunStatus.QUEUED),
            self.keys.runs_in_state(RunStatus.RUNNING),
            self.keys.runs_in_state(status),
            self.keys.run_requests(run_id),
        ]
        argv = [run_id, status.value, repr(time.time()), self.keys.runs_channel, math.ceil(self.retention)]
        argv.append("" if attempt is None else str(attempt))
        reply = await self._transition(keys=keys, args=argv + [part for pair in fields.items() for part in pair])
        return reply[0], reply[1] if len(reply) > 1 else None


def step_json(step: dict[str, Any]) -> str:
    """A step as kept: always an object; text cut to MAX_STEP_TEXT characters, any other value (a final
    answer) kept as `result_json` keeps results, and cut to text if it is still too large."""
    kept: dict[str, Any] = {}
    for name, value in step.items():
        if isinstance(value, str):
            kept[name] = value[:MAX_STEP_TEXT]
        elif value is None or isinstance(value, bool | int | float):
            kept[name] = value
        else:
            text = result_json(value)
            kept[name] = json.loads(text) if len(text) <= MAX_STEP_TEXT else text[:MAX_STEP_TEXT] + "... [cut]"
    return json.dumps(kept, ensure_ascii=False)


def check_task(task: object) -> str:
    """A task as an agent can take it, or InvalidRequest saying what is wrong."""
    if not isinstance(task, str) or not task.strip():
        raise InvalidRequest("task", 'missing or empty; send {"task": "what the agent should do"}')
    if len(task) > MAX_TASK:
        raise InvalidRequest("task", f"must be at most {MAX_TASK} characters")
    encodable(task, "task")
    return task


def _well_formed(run_id: str) -> bool:
    return len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)
