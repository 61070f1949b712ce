"""The approval store: create, read, list and decide requests in Redis.

Every change of state is one Lua script (see `scripts.py`), so a request is decided exactly once and
its audit entry and wake-up message are written in the same atomic step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import schema, scripts
from . import validation as check
from .batching import ScriptBatcher
from .creation import Ask, create_call
from .errors import AlreadyDecided, IdempotencyConflict, InvalidRequest, RequestNotFound, SelfDecisionForbidden
from .keys import Keys
from .models import DECISION_FIELDS, ApprovalRequest, AuditEvent, AuditPage, Decision, Page, QueueStats, Status
from .settings import Settings

EXPIRY_ACTOR = "system:expiry"
EXPIRY_REASON = "no reviewer decided before the request expired"
WITHDRAW_ACTOR = "system:agent"  # the asker's own process, which stopped waiting
SUPERSEDED_REASON = "superseded: the same run asked again at this step, for another action or other arguments"
MAX_KEY_MOVES = 4  # attempts to move an idempotency key to a new request while others race for it


RECENT_REFUSALS = 50  # refused decision attempts kept apart from the audit, for the Ops page


class ApprovalStore:
    """All reads and writes of approval requests. Holds no connection of its own: it uses `redis`."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._create = ScriptBatcher(redis, redis.register_script(scripts.CREATE))  # a burst shares round trips
        self._decide = redis.register_script(scripts.DECIDE)

    async def aclose(self) -> None:
        """Stop sending what is still queued (its callers get CancelledError); the connection is the owner's."""
        await self._create.aclose()

    # -- creating and reading ------------------------------------------------------------------

    async def create(
        self,
        action: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        timeout: float | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
        context: Mapping[str, Any] | None = None,
        args_schema: Mapping[str, Any] | None = None,
        supersede: bool = False,
        request_id: str | None = None,
        idempotency_scope: str | None = None,
    ) -> ApprovalRequest:
        """Record a pending request (under `request_id`, if the caller chose one: a new 32-hex id).

        An idempotency key belongs to its owner, `idempotency_scope` (by default the requester; a run's
        requests use `run:<id>`): the same key from another owner is another request, never this one.
        With an idempotency key, asking again returns the first request (decided, if someone did),
        unless that one was withdrawn because its asker stopped waiting: then a new request is made.
        The same key with another action, queue or arguments raises `IdempotencyConflict`, or with
        `supersede=True` (a re-run that took another path) withdraws the old request and asks anew.
        """
        ask = Ask(
            action, args, queue, timeout, agent_id, run_id, requested_by, idempotency_key, idempotency_scope, context,
            args_schema,
        )  # fmt: skip
        if args_schema is not None:  # checked now: a large argument is checked in a worker thread
            encoded = ask.fields(self.settings)[0]["args"] or "{}"
            await schema.check_args_off_loop(args_schema, json.loads(encoded), "args", len(encoded))  # as stored
        new_id = uuid.uuid4().hex if request_id is None else check.request_id(request_id)
        replaceable = "+"
        for _ in range(MAX_KEY_MOVES):  # an "existing" reply wrote nothing: the next try may use new_id again
            call = functools.partial(create_call, self.keys, self.settings, new_id, ask, replaceable)
            (kind, named_id), stored = await self._create(call)
            if kind == "created":
                return ApprovalRequest.from_hash(stored)
            existing = await self._holder_of_key(named_id, stored, supersede)
            if existing is not None:
                return existing
            replaceable = named_id  # withdrawn, superseded, or gone: the key moves to a new request
        raise IdempotencyConflict(idempotency_key or "", named_id)

    async def _holder_of_key(
        self, request_id: str, asked: Mapping[str, str], supersede: bool
    ) -> ApprovalRequest | None:
        """The request an idempotency key names, if asking again should attach to it; None if the key
        should move to a new request (it was withdrawn, is gone, or is superseded)."""
        try:
            existing = await self.get(request_id)
        except RequestNotFound:
            return None  # removed by retention or by hand: nothing to attach to
        same = (existing.queue, existing.action, existing.args) == (
            asked["queue"],
            asked["action"],
            json.loads(asked["args"]),
        )
        if existing.status is Status.WITHDRAWN:
            return None  # its asker gave up: whoever asks again now waits for a new request
        if same:
            return existing
        if not supersede:
            raise IdempotencyConflict(asked.get("idempotency_key", ""), existing.id)
        if existing.pending:
            with contextlib.suppress(AlreadyDecided):
                await self.withdraw(existing.id, reason=SUPERSEDED_REASON)
        return None

    async def get(self, request_id: str) -> ApprovalRequest:
        fields = await self.redis.hgetall(self.keys.request(check.request_id(request_id)))
        if not fields:
            raise RequestNotFound(request_id)
        return ApprovalRequest.from_hash(fields)

    async def get_many(self, request_ids: Sequence[str]) -> list[ApprovalRequest]:
        """The requests that exist among `request_ids`, in the same order, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for request_id in request_ids:
                pipe.hgetall(self.keys.request(request_id))
            replies = await pipe.execute()
        return [ApprovalRequest.from_hash(fields) for fields in replies if fields]

    async def not_pending(self, request_ids: Sequence[str]) -> list[str]:
        """Those of `request_ids` that are no longer pending, in one small reply (a re-check's first look)."""
        if not request_ids:
            return []
        scores = await self.redis.zmscore(self.keys.pending(), list(request_ids))
        return [request_id for request_id, score in zip(request_ids, scores, strict=True) if score is None]

    async def decisions(self, request_ids: Sequence[str]) -> dict[str, Decision]:
        """The decisions of those of `request_ids` that have left pending, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for request_id in request_ids:
                pipe.hmget(self.keys.request(request_id), DECISION_FIELDS)
            replies = await pipe.execute()
        found = {}
        for values in replies:
            fields = {name: value for name, value in zip(DECISION_FIELDS, values, strict=True) if value is not None}
            if fields.get("status", "pending") != "pending":
                found[fields["id"]] = Decision.from_fields(fields)
        return found

    async def list_pending(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 50
    ) -> Page[ApprovalRequest]:
        """Pending requests, oldest first, of one queue or (None) of all queues."""
        key = self.keys.pending(None if queue is None else check.queue_name(queue))
        page = await self._page(key, offset, limit, newest_first=False)
        return Page([r for r in page.items if r.pending], page.total, page.offset, page.limit)

    async def list_decided(
        self, queue: str | None = None, *, offset: int = 0, limit: int = 50
    ) -> Page[ApprovalRequest]:
        """Decided requests (within retention), newest decision first, of one queue or of all queues."""
        key = self.keys.history(None if queue is None else check.queue_name(queue))
        return await self._page(key, offset, limit, newest_first=True)

    async def _page(self, key: str, offset: int, limit: int, *, newest_first: bool) -> Page[ApprovalRequest]:
        offset, limit = check.page(offset, limit)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(key)
            pipe.zrange(key, offset, offset + limit - 1, desc=newest_first)
            total, ids = await pipe.execute()
        return Page(await self.get_many(ids), total, offset, limit)

    async def queue_stats(self) -> list[QueueStats]:
        """Depth and age of the oldest pending request, for every queue that has had requests."""
        queues = sorted(await self.redis.smembers(self.keys.queues))
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(self.keys.pending(queue))
                pipe.zrange(self.keys.pending(queue), 0, 0, withscores=True)
            replies = await pipe.execute()
        now = time.time()
        stats = []
        for queue, depth, oldest in zip(queues, replies[::2], replies[1::2], strict=True):
            created = oldest[0][1] if oldest else None
            stats.append(QueueStats(queue, depth, created, max(0.0, now - created) if created else 0.0))
        return stats

    async def read_audit(self, *, before: str | None = None, after: str | None = None, limit: int = 100) -> AuditPage:
        """One page of the audit log: newest first (`before` a cursor), or oldest first from `after`."""
        _, limit = check.page(0, limit)
        if before is not None and after is not None:
            raise InvalidRequest("before", "give either before or after, not both")
        for cursor in (before, after):
            if cursor is not None:
                check.stream_id(cursor)
        if (
            before is not None
            and before.split("-")[0].lstrip("0") == ""
            and before.rpartition("-")[2].lstrip("0") == ""
        ):
            return AuditPage([], None)  # nothing comes before the first possible id (Redis refuses "(0-0")
        try:
            if after is not None:
                entries = await self.redis.xrange(self.keys.events, min=f"({after}", count=limit)
            else:
                entries = await self.redis.xrevrange(self.keys.events, max=f"({before}" if before else "+", count=limit)
        except ResponseError:  # an id Redis will not take as an exclusive bound
            raise InvalidRequest("before" if before else "after", "is not a usable event id") from None
        events = [AuditEvent.from_entry(event_id, fields) for event_id, fields in entries]
        return AuditPage(events, events[-1].event_id if len(events) == limit else None)

    # -- deciding --------------------------------------------------------------------------------

    async def approve(
        self,
        request_id: str,
        *,
        by: str,
        edited_args: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> Decision:
        """Approve, optionally with edited arguments (which are then the ones to run).

        Edited arguments must fit the request's argument schema, if it has one (InvalidRequest
        names each argument that does not); edits equal to the arguments asked for are no edit.
        """
        if edited_args is None:
            return await self._decided(request_id, Status.APPROVED, by, reason, "", check_self=True)
        edited = check.json_object(edited_args, "edited_args")
        request = await self.get(request_id)
        await schema.check_args_off_loop(request.args_schema, json.loads(edited), "edited_args", len(edited))
        if schema.same_json(json.loads(edited), request.args):
            edited = ""  # no edit (True and 1 differ in JSON, though not in Python)
        return await self._decided(request_id, Status.APPROVED, by, reason, edited, check_self=True)

    async def reject(self, request_id: str, *, by: str, reason: str) -> Decision:
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidRequest("reason", "a rejection needs a reason the agent can act on")
        return await self._decided(request_id, Status.REJECTED, by, reason, "", check_self=True)

    async def cancel(self, request_id: str, *, by: str, reason: str | None = None) -> Decision:
        """Withdraw a pending request (usually by the agent that asked); no self-decision check."""
        return await self._decided(request_id, Status.CANCELLED, by, reason, "", check_self=False)

    async def withdraw(self, request_id: str, *, reason: str, by: str = WITHDRAW_ACTOR) -> Decision:
        """Close a pending request nobody waits for any more (its asker was cancelled, failed, timed
        out or superseded), so no reviewer can approve what will not be acted on. Not a decision:
        decision rates and times do not count it, and History lists it apart."""
        return await self._decided(request_id, Status.WITHDRAWN, by, reason, "", check_self=False)

    async def expire(self, request_id: str) -> Decision | None:
        """Decide an overdue request `expired`; None if it is not due yet. Raises AlreadyDecided if decided."""
        try:
            return await self._decided(request_id, Status.EXPIRED, EXPIRY_ACTOR, EXPIRY_REASON, "", check_self=False)
        except _NotDue:
            return None

    async def expire_due(self, limit: int = 500) -> list[Decision]:
        """Expire up to `limit` overdue requests; returns the expiries this call made."""
        ids = await self.redis.zrangebyscore(self.keys.expiry, "-inf", repr(time.time()), start=0, num=limit)
        results = await asyncio.gather(*(self.expire(i) for i in ids), return_exceptions=True)
        expired = []
        for request_id, result in zip(ids, results, strict=True):
            if isinstance(result, RequestNotFound):
                # A request hash that vanished (deleted by hand) must not stay in the index forever.
                await self.redis.zrem(self.keys.expiry, request_id)
            elif isinstance(result, Decision):
                expired.append(result)
            elif isinstance(result, BaseException) and not isinstance(result, AlreadyDecided):
                raise result
        return expired

    async def record_refused(
        self, request_id: str, *, by: str, reason: str, request: ApprovalRequest | None = None, via: str = "other"
    ) -> None:
        """Note in the audit that someone tried to decide `request_id` and was refused (nothing else changes).

        For attempts from outside the dashboard (an email link, a Slack button): a forged, replayed or
        expired link, or a person who may not decide, leaves a trace of what was tried and why it failed.
        `via` (email, slack) is what /metrics counts them by.
        """
        entry = {
            "type": "refused",
            "id": request_id[:64],
            "queue": request.queue if request is not None else "-",
            "action": request.action if request is not None else "-",
            "actor": by[:200],
            "at": repr(time.time()),
            "args": json.dumps(request.args if request is not None else {}, separators=(",", ":")),
            "reason": reason[:500],
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.events, entry, maxlen=self.settings.events_maxlen, approximate=True)
            pipe.lpush(self.keys.refused_recent, json.dumps(entry))
            pipe.ltrim(self.keys.refused_recent, 0, RECENT_REFUSALS - 1)
            pipe.hincrby(self.keys.refused_counts, via[:20], 1)
            await pipe.execute()

    async def recent_refusals(self, limit: int = 20) -> list[AuditEvent]:
        """The latest refused decision attempts, newest first (they are in the audit too, among the rest)."""
        entries = await self.redis.lrange(self.keys.refused_recent, 0, limit - 1)
        return [AuditEvent.from_entry("", json.loads(entry)) for entry in entries]

    async def record_outcome(self, request_id: str, outcome: Any) -> bool:
        """Note what the approved action returned, once: False if an outcome was noted already."""
        text = check.result_json(outcome)
        return bool(await self.redis.hsetnx(self.keys.request(check.request_id(request_id)), "outcome", text))

    async def outcome(self, request_id: str) -> tuple[bool, Any]:
        """(True, what the approved action returned) if it ran already, else (False, None)."""
        text = await self.redis.hget(self.keys.request(check.request_id(request_id)), "outcome")
        return (False, None) if text is None else (True, json.loads(text))

    async def counts(self) -> dict[tuple[str, str], int]:
        """Requests created and decided so far, by (queue, event): for counters in /metrics."""
        counts = {}
        for key, value in (await self.redis.hgetall(self.keys.counts)).items():
            queue, _, event = key.rpartition(":")
            counts[queue, event] = int(value)
        return counts

    async def reviewer_counts(self) -> dict[tuple[str, str], int]:
        """People's decisions so far, by (reviewer, approved|rejected): for counters in /metrics."""
        counts = {}
        for key, value in (await self.redis.hgetall(self.keys.reviewer_counts)).items():
            reviewer, _, outcome = key.rpartition("\n")
            counts[reviewer, outcome] = int(value)
        return counts

    async def trim_history(self) -> int:
        """Drop ids of requests past retention from the history indexes (their hashes expire by TTL)."""
        cutoff = repr(time.time() - self.settings.retention)
        queues = await self.redis.smembers(self.keys.queues)
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in [None, *queues]:
                pipe.zremrangebyscore(self.keys.history(queue), "-inf", cutoff)
            removed: list[int] = await pipe.execute()
        return removed[0]

    async def _decided(
        self, request_id: str, status: Status, by: str, reason: str | None, edited: str, *, check_self: bool
    ) -> Decision:
        request_key = self.keys.request(check.request_id(request_id))
        actor = check.name(by, "by")
        reason = check.reason(reason)
        queue, idempotency_key, scope = await self.redis.hmget(
            request_key, ["queue", "idempotency_key", "idempotency_scope"]
        )
        if queue is None:
            raise RequestNotFound(request_id)
        keys = [
            request_key,
            self.keys.pending(),
            self.keys.pending(queue),
            self.keys.expiry,
            self.keys.history(),
            self.keys.history(queue),
            self.keys.events,
            self.keys.counts,
            self.keys.reviewer_counts,
        ]
        if idempotency_key:
            keys.append(self.keys.idempotency(scope or "", idempotency_key))
        argv = [request_id, status.value, repr(time.time()), actor, reason or "", edited, int(check_self)]
        argv += [self.keys.decided_channel, self.settings.events_maxlen, math.ceil(self.settings.retention)]
        argv += [EXPIRY_ACTOR, EXPIRY_REASON, self.keys.runs_channel]
        reply = await self._decide(keys=keys, args=argv)
        return _decision_from_reply(reply, request_id, actor)


class _NotDue(Exception):
    """An expiry was asked for a request whose deadline has not passed."""


def _decision_from_reply(reply: list[str], request_id: str, actor: str) -> Decision:
    kind = reply[0]
    if kind == "missing":
        raise RequestNotFound(request_id)
    if kind == "self":
        raise SelfDecisionForbidden(request_id, actor)
    if kind == "not_due":
        raise _NotDue(request_id)
    decision = Decision.from_message(reply[1])
    if kind != "ok":  # "decided" (someone was first) or "late" (it had expired)
        raise AlreadyDecided(decision)
    return decision
