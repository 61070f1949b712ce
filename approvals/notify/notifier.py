"""The notifier: every request event, sent where the configuration says, at least once, off the agents' path.

Three loops, each safe to run in any number of processes sharing one Redis:

- **Reading**: the audit stream through the consumer group "notify". Each event becomes one delivery
  per target, written to Redis (a hash, and its due time in its receiver's lane) before the event is
  acknowledged; an event that fails, or whose process dies before acknowledging, is claimed again,
  and the deliveries it made are found by id (the event id and the target), waiting or done (a marker
  kept an hour), not made twice.
- **Sending**: due deliveries are leased (their due time moved past a lease) as sending slots free up,
  each sent by a task of its own within one deadline (`send_timeout`, well inside the lease), and then
  removed. One receiver gets at most a quarter of the slots, so a dead one, holding its deliveries
  until they time out, never holds up the others. A failure is
  retried with exponential backoff up to `max_attempts`, then kept on the failures list for the Ops
  page. A sender that dies mid-way loses nothing: the lease ends and another sends it. Each delivery
  keeps one id for all its attempts (`X-Approvals-Delivery`), for receivers to dedupe.
- **Timers**: reminders and escalations, scheduled when a request is created, fire once: whichever
  process removes the timer from the sorted set adds, in the same step and only if the request still
  waits, a `reminded` or `escalated` entry to the audit stream, which the reading loop then sends like
  any other event, so the audit says who was reminded of what, and when.

Nothing here runs in `request_approval`'s path: a slow or dead receiver delays only its own deliveries.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ..errors import RequestNotFound
from ..models import ApprovalRequest, AuditEvent
from ..store import ApprovalStore
from ..tasks import BackgroundTasks
from . import email
from .config import EmailTarget, NotifyConfig, SlackTarget, Target, WebhookTarget
from .links import link_key, make_link
from .slack import SlackMessages, web_client

log = logging.getLogger("approvals.notify")
MayDecide = Callable[[str, ApprovalRequest], Awaitable[bool]]

GROUP = "notify"
READ_AT_ONCE = 16  # events handled at once (each takes a few round trips; the pool serves agents too)
DONE_FOR = 3600  # seconds a finished delivery is remembered, so that an event read again makes it not twice
# Audit entry types -> the events receivers see.
EVENT_OF = {
    "created": "created",
    "approved": "decided",
    "rejected": "decided",
    "expired": "expired",
    "cancelled": "cancelled",
    "withdrawn": "cancelled",
    "reminded": "reminder",
    "escalated": "escalated",
}
FINAL = {"approved", "rejected", "expired", "cancelled", "withdrawn"}
NOTIFY_ACTOR = "system:notify"

# Each receiver (target) has a lane: a sorted set of its deliveries by due time. The lanes set holds each
# lane at (no later than) its earliest due time, so senders find what is due lane by lane, and a lane whose
# receiver already has all the deliveries it may have in flight is passed over without a look inside.

# KEYS: delivery hash, lane, lanes, done marker. ARGV: id, due time, lane, then the hash's field/value pairs.
# Written once: an event read again (its first reader died before acknowledging) finds it there, or finds
# it done (sent, or given up on) for an hour.
ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local current = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not current or tonumber(current) > tonumber(ARGV[2]) then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3]) end
return 1
"""

# KEYS: lane, lanes. ARGV: delivery id, due time, lane. A delivery due again (a retry), if it still exists.
DUE_AGAIN = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local current = redis.call('ZSCORE', KEYS[2], ARGV[3])
if not current or tonumber(current) > tonumber(ARGV[2]) then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) end
return 1
"""

# KEYS: lane, lanes. ARGV: now, lease end, how many, lane. The lane's due deliveries, each leased until
# `lease end`; the lane then stands at its new earliest due time (or leaves the lanes, empty).
LEASE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then redis.call('ZREM', KEYS[2], ARGV[4]) else redis.call('ZADD', KEYS[2], first[2], ARGV[4]) end
return ids
"""

# KEYS: delivery hash. ARGV: what went wrong. One more failed attempt, unless the delivery is gone (then -1):
# never a stray hash.
COUNT_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'last_error', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""

# KEYS: timers, audit stream, request hash. ARGV: timer, stream length, then the entry's field/value pairs.
# Whoever removes the timer adds its audit entry, in one step (a crash in between loses nothing), and only
# while the request still waits.
FIRE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[3], 'status') ~= 'pending' then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
return 1
"""


class Notifier:
    """Reads request events and sends them by email, to Slack and to webhooks; see the module's docstring."""

    def __init__(
        self,
        store: ApprovalStore,
        reader: Redis,
        config: NotifyConfig,
        *,
        consumer: str | None = None,
        max_attempts: int = 8,
        first_retry: float = 2.0,
        max_retry: float = 600.0,
        send_timeout: float = 10.0,
        lease: float = 60.0,
        poll: float = 0.5,
        concurrency: int = 16,
        may_decide: MayDecide | None = None,
    ) -> None:
        self.store = store
        # Whether an address belongs to someone who may decide a request: emails to anyone else carry no
        # decision links (the server passes its reviewers' rules; without it, every recipient gets them,
        # and the link's own page refuses those who may not).
        self.may_decide = may_decide
        self._reader = reader  # a connection of its own: it blocks in XREADGROUP
        self.config = config
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.max_attempts, self.first_retry, self.max_retry = max_attempts, first_retry, max_retry
        self.send_timeout, self.lease, self.poll = send_timeout, lease, poll
        self.concurrency, self.per_target = concurrency, max(1, concurrency // 4)
        self._sends = BackgroundTasks()  # one per delivery being sent
        self._mailer: email.Mailer | None = None  # connections to the mail server, kept open
        self._busy: collections.Counter[str] = collections.Counter()  # deliveries being sent, per lane
        self._in_flight: dict[str, str] = {}  # delivery id -> lane, while being sent here
        self._due = asyncio.Event()  # set when this process enqueued something: send without waiting a poll
        self._tasks = BackgroundTasks()
        self._http: aiohttp.ClientSession | None = None
        self._slack: SlackMessages | None = None
        self._enqueue = store.redis.register_script(ENQUEUE)
        self._lease = store.redis.register_script(LEASE)
        self._due_again = store.redis.register_script(DUE_AGAIN)
        self._count_attempt = store.redis.register_script(COUNT_ATTEMPT)
        self._fire = store.redis.register_script(FIRE)

    async def _adopt_legacy_due(self) -> None:
        """Deliveries waiting in the single due set of earlier versions move to their receivers' lanes."""
        redis, keys = self.store.redis, self.store.keys
        legacy = f"{keys.prefix}notify:due"
        for delivery_id, due in await redis.zrange(legacy, 0, -1, withscores=True):
            described = await redis.hget(keys.notify_delivery(delivery_id), "target")
            if described is not None:
                lane = lane_of(self._target(json.loads(described)))
                await redis.zadd(keys.notify_lane(lane), {delivery_id: due}, nx=True)
                await self._due_again(keys=[keys.notify_lane(lane), keys.notify_lanes], args=[delivery_id, due, lane])
            await redis.zrem(legacy, delivery_id)

    async def start(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: another process made it
            await self.store.redis.xgroup_create(self.store.keys.events, GROUP, id="$", mkstream=True)
        await self._adopt_legacy_due()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.send_timeout))
        if self.config.slack_token:
            self._slack = SlackMessages(web_client(self.config, self._http, retries=False), self.store, self.config)
        self._tasks.spawn(self._read_loop())
        self._tasks.spawn(self._send_loop())
        self._tasks.spawn(self._timer_loop())

    async def aclose(self) -> None:
        await self._tasks.aclose()
        leased = dict(self._in_flight)
        await self._sends.aclose()
        with contextlib.suppress(RedisError, OSError):  # what was being sent is due again now, for another notifier
            for delivery_id, lane in leased.items():
                await self._due_again(keys=[self.store.keys.notify_lane(lane), self.store.keys.notify_lanes],
                                      args=[delivery_id, time.time(), lane])  # fmt: skip
        if self._mailer is not None:
            await self._mailer.aclose()
        if self._http is not None:
            await self._http.close()
        await self._reader.aclose()

    # -- reading -------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        keys, backoff = self.store.keys, 0.1
        pending_first = True  # on start, this consumer's own unacknowledged events (a restart), then new ones
        while True:
            try:
                if pending_first:
                    claimed = await self._reader.xautoclaim(
                        keys.events,
                        GROUP,
                        self.consumer,
                        min_idle_time=int(self.lease * 1000),
                        start_id="0-0",
                        count=100,
                    )
                    entries = claimed[1] if claimed else []
                    pending_first = bool(entries)
                    if not entries:
                        continue
                    replies = [(keys.events, entries)]
                else:
                    replies = await self._reader.xreadgroup(
                        GROUP, self.consumer, {keys.events: ">"}, count=100, block=5000
                    )
                    if not replies:
                        pending_first = True  # quiet: look for what dead consumers left behind
                        continue
                backoff = 0.1
                for _, entries in replies:
                    await self._handle_batch(entries)
            except (RedisError, OSError) as error:
                log.warning(
                    "approvals notify: lost Redis while reading events (%s); retrying in %.1f s", error, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # an event it cannot handle stays unacknowledged, and is tried again
                log.exception("approvals notify: unexpected error reading events; retrying in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                pending_first = True

    async def _handle_batch(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Handle events a few at a time (each event's deliveries go out in any order anyway), acknowledging
        each one handled: one that fails stays pending, to be read again, alone."""
        keys = self.store.keys
        for first in range(0, len(entries), READ_AT_ONCE):
            chunk = entries[first : first + READ_AT_ONCE]
            results = await asyncio.gather(
                *(self.handle(AuditEvent.from_entry(event_id, fields)) for event_id, fields in chunk if fields),
                return_exceptions=True,
            )
            handled = iter(results)
            done = [
                event_id for event_id, fields in chunk if not fields or not isinstance(next(handled), BaseException)
            ]
            if done:  # (a trimmed entry claimed back comes without fields: nothing to do for it)
                await self.store.redis.xack(keys.events, GROUP, *done)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def handle(self, event: AuditEvent) -> int:
        """Schedule what `event` calls for; the number of deliveries it made (0 for one seen before)."""
        kind = EVENT_OF.get(event.type)
        if kind is None:
            return 0
        request = await self._request(event.request_id)
        await self._schedule_timers(event, request)
        async with self.store.redis.pipeline(transaction=False) as pipe:  # one round trip for all its targets
            for target in self.config.targets(event.queue, kind):
                delivery_id = hashlib.sha256(f"{event.event_id}|{target.key}".encode()).hexdigest()[:32]
                payload = self.payload(delivery_id, kind, event, request)
                body = json.dumps(payload, separators=(",", ":"), default=str)
                fields = {"target": json.dumps(target.to_json()), "event": kind, "body": body, "attempts": "0"}
                lane = lane_of(target)
                keys = [self.store.keys.notify_delivery(delivery_id), self.store.keys.notify_lane(lane),
                        self.store.keys.notify_lanes, self.store.keys.notify_done(delivery_id)]  # fmt: skip
                args = [delivery_id, time.time(), lane, *[x for pair in fields.items() for x in pair]]
                await self._enqueue(keys=keys, args=args, client=pipe)
            made = sum(int(n) for n in await pipe.execute())
        if made:
            self._due.set()
        return made

    async def _request(self, request_id: str) -> ApprovalRequest | None:
        try:
            return await self.store.get(request_id)
        except RequestNotFound:
            return None

    async def _schedule_timers(self, event: AuditEvent, request: ApprovalRequest | None) -> None:
        timers = self.store.keys.notify_timers
        if event.type in FINAL:
            await self.store.redis.zrem(timers, f"remind:{event.request_id}", f"escalate:{event.request_id}")
        if event.type != "created" or request is None:
            return
        rules = self.config.rules_for(event.queue)
        due = {}
        if rules.remind_after is not None:
            due[f"remind:{event.request_id}"] = request.created_at + rules.remind_after
        if rules.escalate_after is not None:
            due[f"escalate:{event.request_id}"] = request.created_at + rules.escalate_after
        if due:
            await self.store.redis.zadd(timers, due, nx=True)

    def payload(
        self, delivery_id: str, kind: str, event: AuditEvent, request: ApprovalRequest | None
    ) -> dict[str, Any]:
        """The JSON a webhook receives."""
        body: dict[str, Any] = {
            "delivery_id": delivery_id,
            "event": kind,
            "type": event.type,
            "at": event.at,
            "actor": event.actor or None,
            "reason": event.reason,
            "request": {
                "id": event.request_id,
                "queue": event.queue,
                "action": event.action,
                "args": event.args,
                "url": f"{self.config.public_url}/requests/{event.request_id}",
            },
        }
        if event.edited_args is not None:
            body["edited_args"] = event.edited_args
        if request is not None:
            body["request"] |= {
                "status": request.status.value,
                "agent_id": request.agent_id,
                "run_id": request.run_id,
                "requested_by": request.requested_by,
                "created_at": request.created_at,
                "expires_at": request.expires_at,
                "context": request.context,
            }
        return body

    # -- sending -------------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            try:
                await self.send_due()
            except (RedisError, OSError) as error:
                log.warning("approvals notify: lost Redis while sending (%s)", error)
            except Exception:  # whatever one delivery does, sending goes on
                log.exception("approvals notify: unexpected error while sending")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self.poll)
            self._due.clear()

    async def send_due(self) -> int:
        """Lease due deliveries, lane by lane, as slots free up, each sent by a task of its own: how many.

        A receiver has at most `per_target` deliveries in flight here: one that never answers holds
        those, until they time out, and its lane is passed over meanwhile; every other lane flows.
        """
        keys, started = self.store.keys, 0
        now = time.time()
        for lane in await self.store.redis.zrangebyscore(keys.notify_lanes, "-inf", now, start=0, num=500):
            free = self.concurrency - len(self._sends)
            if free <= 0:
                break
            take = min(free, self.per_target - self._busy[lane])
            if take <= 0:
                continue
            ids = await self._lease(keys=[keys.notify_lane(lane), keys.notify_lanes],
                                    args=[now, now + self.lease, take, lane])  # fmt: skip
            for delivery_id in ids:
                if delivery_id in self._in_flight:  # still being sent here (its lease outlived): not twice
                    continue
                self._busy[lane] += 1
                self._in_flight[delivery_id] = lane
                self._sends.spawn(self._send_guarded(lane, delivery_id))
                started += 1
        return started

    async def _send_guarded(self, lane: str, delivery_id: str) -> None:
        try:
            await self._send_one(lane, delivery_id)
        except (RedisError, OSError) as error:  # its lease ends, and it is sent again
            log.warning("approvals notify: lost Redis while sending %s (%s)", delivery_id, error)
        except Exception:
            log.exception("approvals notify: unexpected error sending %s; it is retried when its lease ends",
                          delivery_id)  # fmt: skip
        finally:
            self._in_flight.pop(delivery_id, None)
            self._busy[lane] -= 1
            if not self._busy[lane]:
                del self._busy[lane]
            self._due.set()  # a slot is free: lease more now rather than at the next poll

    async def _send_one(self, lane: str, delivery_id: str) -> None:
        keys, redis = self.store.keys, self.store.redis
        fields: Mapping[str, str] = await redis.hgetall(keys.notify_delivery(delivery_id))
        if "target" not in fields:  # sent by another process meanwhile (or only a stray counter is left)
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.notify_delivery(delivery_id))
                pipe.zrem(keys.notify_lane(lane), delivery_id)
                await pipe.execute()
            return
        target = self._target(json.loads(fields["target"]))
        try:  # one deadline for all of it (a mail server's every reply has its own): well inside the lease
            async with asyncio.timeout(self.send_timeout):
                error = await self._deliver(target, delivery_id, fields)
        except TimeoutError:
            error = f"no answer within {self.send_timeout:g} s"
        channel = target.channel
        if error is None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.notify_delivery(delivery_id))
                pipe.zrem(keys.notify_lane(lane), delivery_id)
                pipe.set(keys.notify_done(delivery_id), "delivered", ex=DONE_FOR)
                pipe.hincrby(keys.notify_counts, f"{channel}:delivered", 1)
                await pipe.execute()
            return
        attempts = int(await self._count_attempt(keys=[keys.notify_delivery(delivery_id)], args=[error]))
        if attempts < 0:  # its lease ran out and another process delivered it meanwhile
            return
        where = _where(target)
        if attempts >= self.max_attempts:
            failure = {"id": delivery_id, "channel": channel, "url": where, "event": fields["event"], "error": error,
                       "attempts": attempts, "at": time.time()}  # fmt: skip
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.notify_delivery(delivery_id))
                pipe.zrem(keys.notify_lane(lane), delivery_id)
                pipe.set(keys.notify_done(delivery_id), "failed", ex=DONE_FOR)
                pipe.lpush(keys.notify_failures, json.dumps(failure))
                pipe.ltrim(keys.notify_failures, 0, 99)
                pipe.hincrby(keys.notify_counts, f"{channel}:failed", 1)
                await pipe.execute()
            log.warning("approvals notify: gave up on %s to %s after %d attempts: %s",
                        fields["event"], where, attempts, error)  # fmt: skip
            return
        # Backoff, or longer if the receiver said when to come back (Slack's Retry-After).
        retry_in = max(min(self.max_retry, self.first_retry * 2 ** (attempts - 1)), getattr(error, "retry_after", 0))
        await redis.hincrby(keys.notify_counts, f"{channel}:retried", 1)
        await self._due_again(keys=[keys.notify_lane(lane), keys.notify_lanes],
                              args=[delivery_id, time.time() + retry_in, lane])  # fmt: skip

    async def _deliver(self, target: Target, delivery_id: str, fields: Mapping[str, str]) -> str | None:
        if isinstance(target, EmailTarget):
            return await self._email(target, json.loads(fields["body"]))
        if isinstance(target, SlackTarget):
            return await self._to_slack(target, json.loads(fields["body"]))
        return await self._post(target, delivery_id, fields["event"], fields["body"])

    def _target(self, described: dict[str, str]) -> Target:
        if described.get("kind") == "email":
            return EmailTarget(described["to"])
        if described.get("kind") == "slack":
            return SlackTarget(described["channel"])
        return WebhookTarget(described["url"], self.config.webhook_secret or "")

    async def _to_slack(self, target: SlackTarget, payload: dict[str, Any]) -> str | None:
        if self._slack is None:
            return "Slack is not configured (SLACK_BOT_TOKEN)"
        return await self._slack.deliver(target.channel_name, payload)

    async def _email(self, target: EmailTarget, payload: dict[str, Any]) -> str | None:
        if self.config.smtp is None:
            return "no mail server is configured (APPROVALS_SMTP_URL)"
        message = email.render(self.config, target.to, payload, await self._links(target, payload))
        if self._mailer is None:
            self._mailer = email.Mailer(self.config.smtp, self.send_timeout)
        return await self._mailer.send(message)

    async def _links(self, target: EmailTarget, payload: dict[str, Any]) -> dict[str, str] | None:
        """Decision links for this recipient, while the request can still be decided (checked as sent)."""
        if payload["event"] not in ("created", "reminder", "escalated"):
            return None
        request = await self._request(payload["request"]["id"])
        if request is None or not request.pending or request.expires_at <= time.time():
            return None
        if self.may_decide is not None and not await self.may_decide(target.to, request):
            return None
        key = await link_key(self.store)
        base = f"{self.config.public_url}/links/"
        return {
            outcome: base + make_link(key, request.id, outcome, target.to, request.args, request.expires_at)
            for outcome in ("approve", "reject")
        }

    async def _post(self, target: WebhookTarget, delivery_id: str, event: str, body: str) -> str | None:
        assert self._http is not None
        return await post_webhook(self._http, target, delivery_id, event, body)

    # -- timers --------------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            try:
                await self.fire_due_timers()
            except (RedisError, OSError) as error:
                log.warning("approvals notify: lost Redis while checking reminders (%s)", error)
            except Exception:
                log.exception("approvals notify: unexpected error while checking reminders")
            await asyncio.sleep(self.poll)

    async def fire_due_timers(self) -> int:
        """Fire the reminders and escalations due now that this process wins; how many it fired."""
        redis, keys = self.store.redis, self.store.keys
        fired = 0
        for member in await redis.zrangebyscore(keys.notify_timers, "-inf", time.time(), start=0, num=100):
            kind, _, request_id = member.partition(":")
            request = await self._request(request_id)
            if request is None or not request.pending:
                await redis.zrem(keys.notify_timers, member)
                continue
            waited = time.time() - request.created_at
            entry = {
                "type": "reminded" if kind == "remind" else "escalated",
                "id": request.id,
                "queue": request.queue,
                "action": request.action,
                "actor": NOTIFY_ACTOR,
                "at": repr(time.time()),
                "args": json.dumps(request.args, separators=(",", ":")),
                "reason": f"still pending after {_minutes(waited)}",
            }
            fields = [x for pair in entry.items() for x in pair]
            fired += int(await self._fire(
                keys=[keys.notify_timers, keys.events, keys.request(request.id)],
                args=[member, self.store.settings.events_maxlen, *fields],
            ))  # fmt: skip
        return fired


async def post_webhook(
    http: aiohttp.ClientSession, target: WebhookTarget, delivery_id: str, event: str, body: str
) -> str | None:
    """POST one delivery, signed; None when the receiver took it (2xx), else what went wrong."""
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "X-Approvals-Event": event,
        "X-Approvals-Delivery": delivery_id,
        "X-Approvals-Signature": "sha256=" + sign(target.secret, raw),
        "User-Agent": "approvals-notify/1",
    }
    try:
        async with http.post(target.url, data=raw, headers=headers, allow_redirects=False) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def lane_of(target: Target) -> str:
    """The lane of a receiver's deliveries: a short hash of the target (its key can be a long URL)."""
    return hashlib.sha256(target.key.encode()).hexdigest()[:16]


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of a webhook's raw body, as in `X-Approvals-Signature: sha256=<hex>`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _where(target: Target) -> str:
    """The address a delivery went to, for the failures list."""
    if isinstance(target, EmailTarget):
        return target.to
    return target.url if isinstance(target, WebhookTarget) else target.channel_name


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"
