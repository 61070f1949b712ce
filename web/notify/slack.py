"""Slack's interactivity Request URL: Approve / Reject clicks on request messages, checked, then decided once.

A payload counts only with Slack's signature (SLACK_SIGNING_SECRET) over a timestamp less than five minutes
old, and only the first time: the same payload again is a replay. The clicking Slack user is a reviewer
by the `[slack.users]` mapping, or by the email address Slack says they confirmed, and must be allowed to
decide the request as on the dashboard. Reject asks for a reason in a modal. Every refusal is answered
where only the clicker sees it, and noted in the audit.

A forged or stale payload is refused with a 401 and noted in the audit as an unverified attempt (nothing
in it can be believed, so the entry says what it claims); past a limit per client address it is only
logged, so that nobody on the internet can push real entries out of the capped stream (refusals.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient

from approvals import (
    AlreadyDecided,
    ApprovalRequest,
    ApprovalStore,
    Decision,
    InvalidRequest,
    RequestNotFound,
    SelfDecisionForbidden,
)
from approvals.notify.slack import Outcome, Slack, SlackMessages, describe, web_client
from approvals.tasks import BackgroundTasks

from .. import appkeys
from ..access.auth import already_said, can_decide, why_not_decide
from ..access.users import User, UserStore
from .refusals import note_refused, too_many

log = logging.getLogger("approvals.slack")

SEEN_FOR = 600  # seconds a handled payload is remembered: longer than the five minutes it is valid for
REASON_BLOCK = "reason"


async def slack_client(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the Slack client while the app runs, if Slack is configured (else None)."""
    config = app[appkeys.SETTINGS].notify
    if not config.slack_token or not config.slack_signing_secret:
        app[appkeys.SLACK] = None
        yield
        return
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    verifier = SignatureVerifier(config.slack_signing_secret)
    slack = Slack(config, web_client(config, session), session, verifier, BackgroundTasks())
    app[appkeys.SLACK] = slack
    try:
        yield
    finally:
        await slack.tasks.aclose()
        await session.close()


@dataclass(frozen=True, slots=True)
class Attempt:
    """Someone in Slack trying to decide a request."""

    slack_user: str
    request_id: str
    response_url: str | None = None

    @property
    def actor(self) -> str:
        return f"slack:{self.slack_user}"


async def actions(request: web.Request) -> web.StreamResponse:
    slack = request.app[appkeys.SLACK]
    if slack is None:
        raise web.HTTPNotFound(text="Slack is not configured here (SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)")
    body = await request.read()
    signature = request.headers.get("X-Slack-Signature", "")
    if not _signed(slack.verifier, body, request.headers.get("X-Slack-Request-Timestamp"), signature):
        log.warning("approvals slack: refused a payload with a missing, wrong or stale signature from %s",
                    request.remote)  # fmt: skip
        claims = _claimed(body)  # unverified: only to describe the attempt
        said = "the Slack signature is missing, wrong, or more than five minutes old"
        if not await note_refused(request, claims.request_id, by=f"unverified Slack payload (claims {claims.actor})",
                                  reason=said, via="slack"):  # fmt: skip
            raise too_many()
        raise web.HTTPUnauthorized(text=f"Refused: {said}")
    payload = _payload(body)
    store = request.app[appkeys.CLIENT].store
    team = payload.team.id if payload.team is not None else ""
    if slack.config.slack_team_id and team != slack.config.slack_team_id:  # the app is in another workspace too
        attempt = payload.attempt()
        said = f"from the Slack workspace {team or '(none)'}, not {slack.config.slack_team_id} (SLACK_TEAM_ID)"
        await note_refused(request, attempt.request_id, by=attempt.actor, reason=said, via="slack")
        raise web.HTTPForbidden(text=f"Refused: {said}")
    seen = store.keys.slack_seen(hashlib.sha256(signature.encode()).hexdigest())
    if not await store.redis.set(seen, "1", nx=True, ex=SEEN_FOR):
        attempt = payload.attempt()
        approval = await _request_or_none(store, attempt.request_id)
        said = "replayed: this exact Slack payload was handled before"
        if not await note_refused(request, attempt.request_id, by=attempt.actor, reason=said, approval=approval,
                                  via="slack"):  # fmt: skip
            raise too_many()
        return web.Response(status=409, text="This Slack payload was handled already; a replay decides nothing")
    if payload.type == "block_actions":
        # Slack wants an answer within 3 seconds: the work goes on after this one.
        slack.tasks.spawn(_clicked(slack, request.app[appkeys.USERS], store, payload))
        return web.Response()
    if payload.type == "view_submission" and payload.view is not None and payload.view.callback_id == "reject":
        return await _reject_submitted(slack, request.app[appkeys.USERS], store, payload)
    return web.Response()  # anything else (a modal closed): nothing to do


def _signed(verifier: SignatureVerifier, body: bytes, timestamp: str | None, signature: str) -> bool:
    try:
        return verifier.is_valid(body, timestamp, signature)
    except ValueError:  # a timestamp that is not a number
        return False


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _User(_Loose):
    id: str = Field(default="unknown", max_length=40)


class _Action(_Loose):
    action_id: str = ""
    value: str = Field(default="-", max_length=64)


class _Input(_Loose):
    value: str | None = None


class _State(_Loose):
    values: dict[str, dict[str, _Input]] = Field(default_factory=dict)


class _View(_Loose):
    callback_id: str = ""
    private_metadata: str = Field(default="-", max_length=64)
    state: _State = Field(default_factory=_State)


class _Team(_Loose):
    id: str = Field(default="", max_length=40)


class Interaction(_Loose):
    """The parts of a Slack interaction payload this endpoint reads; any other shape is refused whole."""

    type: str = ""
    user: _User = Field(default_factory=_User)
    team: _Team | None = None
    actions: list[_Action] = Field(default_factory=list, max_length=5)
    response_url: str | None = None
    trigger_id: str | None = None
    view: _View | None = None

    @property
    def action(self) -> _Action:
        return self.actions[0] if self.actions else _Action()

    def attempt(self) -> Attempt:
        if self.type == "view_submission" and self.view is not None:
            return Attempt(self.user.id, self.view.private_metadata or "-")
        return Attempt(self.user.id, self.action.value or "-", self.response_url)

    def reason(self) -> str:
        """The reject modal's reason, as typed."""
        values = self.view.state.values if self.view is not None else {}
        return ((values.get(REASON_BLOCK) or {}).get(REASON_BLOCK) or _Input()).value or ""


def _payload(body: bytes) -> Interaction:
    """The JSON in the form field `payload` (how Slack posts interactions), in the shape Slack sends."""
    try:
        data = json.loads(parse_qs(body.decode(), max_num_fields=20)["payload"][0])
        return Interaction.model_validate(data)
    except (UnicodeDecodeError, ValueError, KeyError, RecursionError):  # pydantic's ValidationError is a ValueError
        raise web.HTTPBadRequest(text="Expected a form with a 'payload' field of JSON, as Slack sends") from None


def _claimed(body: bytes) -> Attempt:
    """Who and what an unsigned body says it is, if it can be read at all: only to describe the attempt."""
    try:
        return _payload(body).attempt()
    except web.HTTPBadRequest:
        return Attempt("unknown", "-")


# -- buttons -----------------------------------------------------------------------------------------


async def _clicked(slack: Slack, users: UserStore, store: ApprovalStore, payload: Interaction) -> None:
    attempt, action = payload.attempt(), payload.action.action_id
    try:
        reviewer, approval = await _allowed(slack, users, store, attempt)
        if action == "approve":
            await _decide(approval, store.approve(approval.id, by=reviewer.name))
            await _show_outcome(slack, store, approval.id)
        elif action == "reject":
            await slack.web.views_open(trigger_id=payload.trigger_id, view=_reason_modal(approval))
    except Refused as refused:
        await _refuse(slack, store, attempt, refused)
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
        log.warning("approvals slack: could not answer %s's %s on %s: %s", attempt.actor, action,
                    attempt.request_id, error)  # fmt: skip
    except Exception:  # nobody awaits this task: say what went wrong rather than lose it
        log.exception("approvals slack: failed to handle %s's %s on %s", attempt.actor, action, attempt.request_id)


async def _reject_submitted(slack: Slack, users: UserStore, store: ApprovalStore, payload: Interaction) -> web.Response:
    attempt, reason = payload.attempt(), payload.reason().strip()
    if not reason:
        errors = {REASON_BLOCK: "Say why, so the agent can act on it"}
        return web.json_response({"response_action": "errors", "errors": errors})
    try:
        reviewer, approval = await _allowed(slack, users, store, attempt)
        await _decide(approval, store.reject(approval.id, by=reviewer.name, reason=reason))
    except Refused as refused:
        await store.record_refused(attempt.request_id, by=attempt.actor, reason=refused.reason,
                                   request=refused.request, via="slack")  # fmt: skip
        return web.json_response({"response_action": "update", "view": _notice(f"Not rejected: {refused.reason}")})
    except InvalidRequest as error:  # a reason too long
        return web.json_response({"response_action": "errors", "errors": {REASON_BLOCK: str(error)}})
    slack.tasks.spawn(_show_outcome(slack, store, approval.id))
    return web.Response()  # closes the modal


class Refused(Exception):
    """A Slack user may not decide this request; `reason` says why, in words they can act on."""

    def __init__(self, reason: str, request: ApprovalRequest | None = None) -> None:
        super().__init__(reason)
        self.reason, self.request = reason, request


async def _allowed(
    slack: Slack, users: UserStore, store: ApprovalStore, attempt: Attempt
) -> tuple[User, ApprovalRequest]:
    """The reviewer behind the Slack user and the request, if they may decide it; else Refused."""
    approval = await _request_or_none(store, attempt.request_id)
    if approval is None:
        raise Refused("there is no such request (retention may have removed it)")
    reviewer = await reviewer_of(slack, users, attempt.slack_user, approval)
    if not can_decide(reviewer, approval):
        decision = approval.decision()
        raise Refused(why_not_decide(reviewer, approval) or already_said(decision), approval)
    return reviewer, approval


async def reviewer_of(slack: Slack, users: UserStore, slack_user: str, approval: ApprovalRequest) -> User:
    """Who a Slack user is here: the `[slack.users]` mapping, else the reviewer with the email address Slack
    says the user confirmed. Unconfirmed addresses do not count: whoever can set one could be anyone."""
    name = slack.config.slack_users.get(slack_user)
    if name is not None:
        mapped = await users.get(name)
        if mapped is None:
            raise Refused(f"your Slack account is mapped to {name!r}, who is not a user here", approval)
        return mapped
    try:
        person = (await slack.web.users_info(user=slack_user)).get("user") or {}
    except SlackApiError as error:
        raise Refused(f"Slack would not say who you are ({error.response.get('error')})", approval) from None
    email = (person.get("profile") or {}).get("email")
    if person.get("deleted") or person.get("is_bot"):
        raise Refused("deactivated accounts and bots do not decide requests", approval)
    if not email:
        raise Refused("Slack shares no email address of yours with this app, and no admin mapped your Slack id "
                      "to a reviewer", approval)  # fmt: skip
    if person.get("is_email_confirmed") is not True:
        raise Refused(f"your Slack address {email} is not confirmed, so it cannot tell who you are; confirm it "
                      "in Slack, or ask an admin to map your Slack id to your reviewer", approval)  # fmt: skip
    found = await users.by_email(email)
    if found is None:
        raise Refused(f"no reviewer here has the address {email}; ask an admin to add it to your user", approval)
    return found


async def _refuse(slack: Slack, store: ApprovalStore, attempt: Attempt, refused: Refused) -> None:
    await store.record_refused(attempt.request_id, by=attempt.actor, reason=refused.reason, request=refused.request,
                               via="slack")  # fmt: skip
    if attempt.response_url:  # only the clicker sees it; the message stays as it is
        text = f"Not done: {refused.reason}."
        hook = AsyncWebhookClient(attempt.response_url, session=slack.session)
        try:
            await hook.send(text=text, response_type="ephemeral", replace_original=False)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("approvals slack: could not tell %s why not (%s)", attempt.actor, error)


async def _request_or_none(store: ApprovalStore, request_id: str) -> ApprovalRequest | None:
    try:
        return await store.get(request_id)
    except (RequestNotFound, InvalidRequest):
        return None


async def _decide(approval: ApprovalRequest, deciding: Awaitable[Decision]) -> Decision:
    """The decision; Refused (with the request, for the audit) if it was decided meanwhile, or is one's own."""
    try:
        return await deciding
    except (AlreadyDecided, SelfDecisionForbidden) as error:
        raise Refused(_said(error), approval) from None


async def _show_outcome(slack: Slack, store: ApprovalStore, request_id: str) -> None:
    """Update the request's messages now; the notifier's "decided" event does it again (the same content)."""
    approval = await store.get(request_id)
    outcome = Outcome.of(approval)
    if outcome is None:
        return
    messages = SlackMessages(slack.web, store, slack.config)
    try:
        await messages.show_outcome(describe(approval, slack.config.public_url), outcome)
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
        log.warning("approvals slack: could not update the message about %s yet (%s)", request_id, error)


def _said(error: AlreadyDecided | SelfDecisionForbidden) -> str:
    if isinstance(error, AlreadyDecided):
        return already_said(error.decision)
    return "you made this request, so someone else must decide it"


# -- modals --------------------------------------------------------------------------------------------


def _reason_modal(approval: ApprovalRequest) -> dict[str, Any]:
    what = f"{approval.action} in {approval.queue}"
    reason = {
        "type": "input", "block_id": REASON_BLOCK,
        "label": {"type": "plain_text", "text": "Why? The agent is told, so it can act on it"},
        "element": {"type": "plain_text_input", "action_id": REASON_BLOCK, "multiline": True, "max_length": 2000},
    }  # fmt: skip
    return {
        "type": "modal", "callback_id": "reject", "private_metadata": approval.id,
        "title": {"type": "plain_text", "text": "Reject request"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": f"Reject {what[:2900]}"}},
            reason,
        ],
    }  # fmt: skip


def _notice(text: str) -> dict[str, Any]:
    return {
        "type": "modal", "title": {"type": "plain_text", "text": "Reject request"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "plain_text", "text": text[:2900]}}],
    }  # fmt: skip
