"""Slack messages about requests: Block Kit with Approve / Reject buttons, updated as the request moves on.

Sent with slack_sdk's AsyncWebClient. The message posted about a request is remembered in Redis (per
configured channel: Slack's channel id and ts), so reminders reply in its thread and the outcome replaces
its buttons, whoever decided and wherever. What the buttons do is in web/notify/slack.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from ..errors import InvalidRequest, RequestNotFound
from ..models import ApprovalRequest
from ..store import ApprovalStore
from ..tasks import BackgroundTasks
from .config import NotifyConfig

ARGS_LIMIT = 2500  # characters of arguments shown: a section holds 3000
ASKING = ("created", "reminder", "escalated")
HEADERS = {
    "created": "{action} in {queue} waits for approval",
    "reminder": "Reminder: {action} in {queue} still waits",
    "escalated": "Escalated: {action} in {queue} still waits",
}
DONE = {"approved": "Approved", "rejected": "Rejected", "expired": "Expired undecided", "cancelled": "Cancelled",
        "withdrawn": "Withdrawn"}  # fmt: skip
GONE = ("message_not_found", "cant_update_message", "channel_not_found")  # nothing left to update


class RetryLater(str):
    """An error message that also says when Slack wants to hear from us again (HTTP 429's Retry-After)."""

    retry_after: float

    def __new__(cls, message: str, retry_after: float) -> RetryLater:
        made = super().__new__(cls, message)
        made.retry_after = retry_after
        return made


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended, as its message shows it."""

    status: str  # approved, rejected, expired, cancelled, withdrawn
    by: str
    at: float
    reason: str | None = None

    @classmethod
    def of(cls, request: ApprovalRequest) -> Outcome | None:
        decision = request.decision()
        if decision is None:
            return None
        return cls(decision.status.value, decision.decided_by, decision.decided_at, decision.reason)


@dataclass
class Slack:
    """What Slack's interactivity endpoint (web/notify/slack.py) works with: the Web API client, the
    signature verifier, and the tasks it leaves running."""

    config: NotifyConfig
    web: AsyncWebClient
    session: aiohttp.ClientSession
    verifier: SignatureVerifier
    tasks: BackgroundTasks


def web_client(config: NotifyConfig, session: aiohttp.ClientSession, *, retries: bool = True) -> AsyncWebClient:
    """The Web API client on `session`. Without `retries`, a failed call fails at once: the notifier retries
    on its own schedule, rather than inside a delivery's lease."""
    options: dict[str, Any] = {} if retries else {"retry_handlers": []}
    return AsyncWebClient(token=config.slack_token, base_url=config.slack_api_url, session=session, **options)


def describe(request: ApprovalRequest, public_url: str) -> dict[str, Any]:
    """The request as the notifier's payloads carry it (`payload["request"]`)."""
    return {
        "id": request.id, "queue": request.queue, "action": request.action, "args": request.args,
        "url": f"{public_url}/requests/{request.id}", "agent_id": request.agent_id, "run_id": request.run_id,
        "requested_by": request.requested_by, "expires_at": request.expires_at, "status": request.status.value,
    }  # fmt: skip


# -- Block Kit -------------------------------------------------------------------------------------


def asking_blocks(facts: dict[str, Any], event: str = "created") -> list[dict[str, Any]]:
    """The message while the request waits: what, where, until when, and the two buttons."""
    buttons = [
        {"type": "button", "action_id": "approve", "style": "primary", "value": facts["id"],
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": "reject", "style": "danger", "value": facts["id"],
         "text": {"type": "plain_text", "text": "Reject…"}},
    ]  # fmt: skip
    deadline = facts.get("expires_at")
    fields = _fields(facts) + ([("Decide by", _date(deadline))] if isinstance(deadline, (int, float)) else [])
    return [
        _header(HEADERS.get(event, HEADERS["created"]).format(**facts)),
        _section(fields),
        *_body(facts),
        {"type": "actions", "block_id": "decide", "elements": buttons},
    ]


def outcome_blocks(facts: dict[str, Any], outcome: Outcome) -> list[dict[str, Any]]:
    """The message once the request left pending: who decided, when, why; no buttons."""
    said = f"{DONE.get(outcome.status, outcome.status.capitalize())} by *{_escape(outcome.by)}*"
    said += f" {_date(outcome.at)}"
    if outcome.reason:
        said += "\n>" + _escape(outcome.reason[:1000]).replace("\n", "\n>")
    return [
        _header(f"{facts['action']} in {facts['queue']}: {outcome.status}"),
        _section(_fields(facts)),
        *_body(facts),
        {"type": "section", "text": {"type": "mrkdwn", "text": said}},
    ]


def summary(facts: dict[str, Any], outcome: Outcome | None = None, event: str = "created") -> str:
    """The plain text Slack shows in notifications and screen readers."""
    if outcome is None:
        return HEADERS.get(event, HEADERS["created"]).format(**facts)
    return f"{facts['action']} in {facts['queue']} was {outcome.status} by {outcome.by}"


def _fields(facts: dict[str, Any]) -> list[tuple[str, str]]:
    agent = facts.get("agent_id") or facts.get("requested_by") or "-"
    return [("Action", facts["action"]), ("Queue", facts["queue"]), ("Agent", str(agent))]


def _body(facts: dict[str, Any]) -> list[dict[str, Any]]:
    args = json.dumps(facts.get("args") or {}, indent=2, ensure_ascii=False, default=str)
    if len(args) > ARGS_LIMIT:
        args = args[:ARGS_LIMIT] + "\n… (cut short: the request page shows all)"
    code = _escape(args).replace("```", "`\u200b``")
    link = f"<{facts['url']}|Open the request on the dashboard> · `{facts['id']}`"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Arguments*\n```{code}```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
    ]


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(fields: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_escape(v)[:1900]}"} for k, v in fields]}


def _date(at: float) -> str:
    """A time every reader sees in their own zone (UTC where Slack cannot)."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return f"<!date^{int(at)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- posting and updating --------------------------------------------------------------------------


class SlackMessages:
    """Posts the message about a request, keeps where it is, and updates it as the request moves on."""

    def __init__(self, web: AsyncWebClient, store: ApprovalStore, config: NotifyConfig) -> None:
        self.web, self.store, self.config = web, store, config

    async def deliver(self, channel: str, payload: dict[str, Any]) -> str | None:
        """Send one notifier event to `channel`; None when Slack took it, else what went wrong."""
        return await failure_of(self._deliver(channel, payload))

    async def _deliver(self, channel: str, payload: dict[str, Any]) -> None:
        facts = payload["request"]
        request = await self._request(facts["id"])
        if request is not None:
            facts = describe(request, self.config.public_url)
        if payload["event"] in ASKING:
            await self._ask(channel, payload["event"], facts, request)
            return
        outcome = Outcome.of(request) if request is not None else None
        outcome = outcome or Outcome(payload.get("type") or "decided", payload.get("actor") or "-", payload["at"],
                                     payload.get("reason"))  # fmt: skip
        # A message about the request gets the outcome; if none was ever posted, say it in a new one.
        posted = await self.show_outcome(facts, outcome)
        created_here = "created" in self.config.rules_for(facts["queue"]).events
        if channel not in posted and not created_here:
            reply = await self.web.chat_postMessage(
                channel=channel, text=summary(facts, outcome), blocks=outcome_blocks(facts, outcome)
            )
            await self._remember(facts, channel, reply)

    async def _ask(self, channel: str, event: str, facts: dict[str, Any], request: ApprovalRequest | None) -> None:
        known = await self._message(facts["id"], channel)
        if request is None or not request.pending:
            outcome = Outcome.of(request) if request is not None else None
            if known is None and outcome is not None:  # decided before this went out: say how it ended
                reply = await self.web.chat_postMessage(
                    channel=channel, text=summary(facts, outcome), blocks=outcome_blocks(facts, outcome)
                )
                await self._remember(facts, channel, reply)
            return
        if known is not None:  # created: sent already (a retry); a reminder: in the message's thread
            if event != "created":
                await self.web.chat_postMessage(channel=known["channel"], thread_ts=known["ts"],
                                                text=summary(facts, event=event))  # fmt: skip
            return
        reply = await self.web.chat_postMessage(
            channel=channel, text=summary(facts, event=event), blocks=asking_blocks(facts, event)
        )
        await self._remember(facts, channel, reply)
        after = await self._request(facts["id"])  # decided while we posted: its update may have missed us
        if after is not None and (outcome := Outcome.of(after)) is not None:
            await self._update({"channel": reply["channel"], "ts": reply["ts"]}, facts, outcome)

    async def show_outcome(self, facts: dict[str, Any], outcome: Outcome) -> set[str]:
        """Replace every message about the request with its outcome (again is harmless); the channels updated."""
        stored = await self.store.redis.hgetall(self.store.keys.slack_messages(facts["id"]))
        for where in stored.values():
            await self._update(json.loads(where), facts, outcome)
        return set(stored)

    async def _update(self, where: dict[str, str], facts: dict[str, Any], outcome: Outcome) -> None:
        try:
            await self.web.chat_update(channel=where["channel"], ts=where["ts"], text=summary(facts, outcome),
                                       blocks=outcome_blocks(facts, outcome))  # fmt: skip
        except SlackApiError as error:
            if _data(error).get("error") not in GONE:  # deleted by someone in Slack: nothing to update
                raise

    async def _message(self, request_id: str, channel: str) -> dict[str, str] | None:
        found = await self.store.redis.hget(self.store.keys.slack_messages(request_id), channel)
        return None if found is None else dict(json.loads(found))

    async def _remember(self, facts: dict[str, Any], channel: str, reply: Any) -> None:
        key = self.store.keys.slack_messages(facts["id"])
        deadline = facts.get("expires_at")
        left = deadline - time.time() if isinstance(deadline, (int, float)) else 0.0
        keep = max(0.0, left) + self.store.settings.retention  # as long as the request is kept
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, channel, json.dumps({"channel": reply["channel"], "ts": reply["ts"]}))
            pipe.expire(key, int(keep) + 1)
            await pipe.execute()

    async def _request(self, request_id: str) -> ApprovalRequest | None:
        try:
            return await self.store.get(request_id)
        except (RequestNotFound, InvalidRequest):
            return None


async def failure_of(call: Awaitable[Any]) -> str | None:
    """Await a Slack call; None if it worked, else what went wrong (a RetryLater when rate limited)."""
    try:
        await call
    except SlackApiError as error:
        status = error.response.status_code
        if status == 429:
            after = _seconds(error.response.headers.get("Retry-After"))
            return RetryLater(f"Slack rate limit (HTTP 429): retry after {after:g} s", after)
        said = _data(error).get("error")
        return f"Slack said {said}" if said and status == 200 else f"Slack answered HTTP {status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return None


async def send_test(config: NotifyConfig, channel: str, timeout: float = 10.0) -> str | None:
    """Post a test message to `channel` (for `approvals notify test`); None if Slack took it."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        web = web_client(config, session, retries=False)
        text = "A test from `approvals notify test`: requests will be posted here with Approve / Reject buttons."
        return await failure_of(web.chat_postMessage(channel=channel, text=text))


def _seconds(header: object) -> float:
    try:
        return min(3600.0, max(1.0, float(str(header))))
    except ValueError:
        return 1.0


def _data(error: SlackApiError) -> dict[str, Any]:
    data = error.response.data
    return data if isinstance(data, dict) else {}
