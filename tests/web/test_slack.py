"""Slack: request messages with Approve / Reject buttons, and the endpoint their clicks come to.

The real AsyncWebClient talks to a stand-in of Slack's Web API on loopback (tests/slack_api.py); clicks
are posted to /slack/actions signed as Slack signs them, or wrongly.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from approvals import ApprovalRequest, ApprovalStore, AuditEvent, Settings
from approvals.errors import InvalidSettings
from approvals.notify import NotifyConfig, notify_status
from approvals.notify.config import QueueRules, RulesFile, SlackRules, SlackTarget
from approvals.notify.slack import send_test
from tests.conftest import eventually
from tests.slack_api import SIGNING_SECRET, TOKEN, Failure, SlackApi, click, signed, slack_api, submit
from tests.web.conftest import PASSWORD, Site, SiteFactory
from tests.webhooks import notify_test
from web import appkeys
from web.access.users import Role

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api() -> AsyncIterator[SlackApi]:
    async with slack_api() as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk takes a proxy from the environment; the stand-in is reached directly."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


def config(api: SlackApi, **changes: Any) -> NotifyConfig:
    rules = RulesFile(
        queues={"payments": QueueRules(slack_channel="#payments", escalate_to={"slack_channel": "#leads"})},
        slack=SlackRules(users={"UALICE": "alice", "URITA": "rita", "UGHOST": "ghost"}),
    )
    made = NotifyConfig(slack_token=TOKEN, slack_signing_secret=SIGNING_SECRET, slack_channel="#approvals",
                        slack_api_url=api.url, rules=rules)  # fmt: skip
    return replace(made, **changes)


@pytest.fixture
async def site(make_site: SiteFactory, api: SlackApi) -> Site:
    made = await make_site(notify=config(api))
    await made.users.add("alice", PASSWORD, Role.REVIEWER, ("payments",))
    await made.users.add("bob", PASSWORD, Role.REVIEWER, ("payments",), email="bob@example.com")
    notifier = made.client.server.app[appkeys.NOTIFIER]
    assert notifier is not None
    notifier.first_retry = 0.05
    return made


async def asked(site: Site, api: SlackApi, queue: str = "payments", **options: Any) -> ApprovalRequest:
    """A new request, once its message is in Slack."""
    before = len(api.called("chat.postMessage"))
    request = await site.store.create("pay_invoice", {"amount": 120, "to": "ACME <ops>"}, queue=queue,
                                      requested_by=options.pop("requested_by", "agent-7"), **options)  # fmt: skip
    await api.wait_for("chat.postMessage", before + 1)
    return request


async def post(site: Site, body: str, headers: dict[str, str] | None = None) -> Any:
    return await site.client.post("/slack/actions", data=body, headers=headers or signed(body))


async def refusals(store: ApprovalStore) -> list[AuditEvent]:
    return [e for e in (await store.read_audit(limit=100)).events if e.type == "refused"]


async def decided(store: ApprovalStore, request_id: str) -> ApprovalRequest:
    async def done() -> bool:
        return not (await store.get(request_id)).pending

    await eventually(done, timeout=5)
    return await store.get(request_id)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def texts(message: dict[str, Any]) -> str:
    return str(message["blocks"])


async def test_a_request_is_posted_with_both_buttons_to_its_queues_channel(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    [message] = api.called("chat.postMessage")
    assert message["channel"] == "#payments"
    approve, reject = buttons(message)
    assert (approve["action_id"], approve["style"], approve["value"]) == ("approve", "primary", request.id)
    assert (reject["action_id"], reject["style"], reject["value"]) == ("reject", "danger", request.id)
    assert "pay_invoice" in message["text"] and "ACME &lt;ops&gt;" in texts(message)  # mrkdwn escaped
    assert f"http://127.0.0.1:8080/requests/{request.id}" in texts(message) and "agent-7" in texts(message)
    other = await asked(site, api, queue="ops")  # no channel of its own: the default
    assert api.called("chat.postMessage")[-1]["channel"] == "#approvals" and other.queue == "ops"


async def test_a_signed_approve_from_a_mapped_reviewer_decides_once_and_updates_the_message(
    site: Site, api: SlackApi
) -> None:
    request = await asked(site, api)
    body = click(api, "UALICE", "approve", request.id)
    headers = signed(body)
    response = await post(site, body, headers)
    assert response.status == 200
    approved = await decided(site.store, request.id)
    assert (approved.status.value, approved.decided_by) == ("approved", "alice")
    [update, *_] = await api.wait_for("chat.update")
    assert update["channel"] == "C00000000" and "Approved by *alice*" in texts(update) and not buttons(update)

    replayed = await post(site, body, headers)  # the same payload again, inside its five minutes
    assert replayed.status == 409
    again = await post(site, click(api, "UALICE", "approve", request.id))  # a new click on the old message
    assert again.status == 200
    [said] = await api.wait_for_response()
    assert said["response_type"] == "ephemeral" and said["replace_original"] is False
    assert "Already approved by alice" in said["text"]
    assert (await site.store.get(request.id)).decided_at == approved.decided_at  # nothing changed
    reasons = [(e.actor, e.request_id, e.reason) for e in await refusals(site.store)]
    assert (
        "slack:UALICE",
        request.id,
        "replayed: this exact Slack payload was handled before (from 127.0.0.1)",
    ) in reasons
    assert any(r.startswith("Already approved by alice") for _, _, r in reasons) and len(reasons) == 2


async def test_forged_and_stale_payloads_are_refused_and_decide_nothing(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    body = click(api, "UALICE", "approve", request.id)
    for headers in (
        signed(body, secret="not-the-secret"),
        signed(body, at=time.time() - 301),  # older than five minutes
        signed(body, at=time.time() + 301),
        {"Content-Type": "application/x-www-form-urlencoded"},
        {**signed(body), "X-Slack-Request-Timestamp": "soon"},
    ):
        response = await post(site, body, headers)
        assert response.status == 401 and "signature" in await response.text()
    tampered = await post(site, body.replace("UALICE", "URITA"), signed(body))
    assert tampered.status == 401
    assert (await site.store.get(request.id)).pending
    noted = await refusals(site.store)  # what each claimed, marked unverified: nothing in it can be believed
    assert len(noted) == 6 and {e.actor for e in noted} == {
        "unverified Slack payload (claims slack:UALICE)",
        "unverified Slack payload (claims slack:URITA)",
    }
    assert all("signature is missing, wrong, or more than five minutes old" in (e.reason or "") for e in noted)
    metrics = await (await site.client.get("/metrics", headers=site.bearer("vic"))).text()
    assert 'approvals_refused_attempts_total{via="slack"} 6.0' in metrics
    assert not api.called("users.info") and not api.responses


ODD_SHAPES = [
    {"user": "U1"},
    {"type": "block_actions", "actions": {"a": 1}},
    {"type": "block_actions", "actions": [1]},
    {"type": "block_actions", "actions": "x"},
    {"type": "view_submission", "view": "x"},
    {"type": "view_submission", "view": {"callback_id": "reject", "state": []}},
    {"type": "view_submission", "view": {"callback_id": "reject", "state": {"values": {"reason": "x"}}}},
    {"type": "block_actions", "user": {"id": "U" * 500}},
]


async def test_payloads_of_odd_shapes_are_refused_plainly_signed_or_not(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    bodies = [urlencode({"payload": json.dumps(shape)}) for shape in ODD_SHAPES]
    bodies += [urlencode({"payload": "[" * 5000}), "payload=%FF%FE", "not a form"]  # deep: RecursionError
    for body in bodies:
        unsigned = await post(site, body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert unsigned.status == 401, body[:80]
        signed_body = await post(site, body)
        assert signed_body.status == 400, body[:80]
        assert "payload" in await signed_body.text()
    assert (await site.store.get(request.id)).pending
    assert {e.actor for e in await refusals(site.store)} <= {
        "unverified Slack payload (claims slack:unknown)",
        "unverified Slack payload (claims slack:U1)",
    }


async def test_clicks_from_another_workspace_are_refused_when_one_is_named(
    make_site: SiteFactory, api: SlackApi
) -> None:
    site = await make_site(notify=config(api, slack_team_id="T9999"))
    await site.users.add("alice", PASSWORD, Role.REVIEWER, ("payments",))
    request = await asked(site, api)
    refused = await post(site, click(api, "UALICE", "approve", request.id))  # signed, but from T0001
    assert refused.status == 403 and "T0001, not T9999" in await refused.text()
    assert (await site.store.get(request.id)).pending
    [noted] = await refusals(site.store)
    assert noted.actor == "slack:UALICE" and "SLACK_TEAM_ID" in (noted.reason or "")
    with pytest.raises(InvalidSettings, match="SLACK_TEAM_ID"):
        NotifyConfig.from_env({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                               "APPROVALS_SLACK_CHANNEL": "#a", "SLACK_TEAM_ID": "not a team"})  # fmt: skip


async def test_slack_users_are_reviewers_by_confirmed_email_only(site: Site, api: SlackApi) -> None:
    api.person("UNOBODY", "nobody@example.com")
    api.person("UBOBFAKE", "bob@example.com", confirmed=False)
    api.person("UBOB", "BOB@example.com")
    request = await asked(site, api)
    for user, said in (
        ("UNOBODY", "no reviewer here has the address nobody@example.com"),
        ("UBOBFAKE", "your Slack address bob@example.com is not confirmed"),
        ("UMISSING", "Slack would not say who you are (user_not_found)"),
        ("UGHOST", "mapped to 'ghost', who is not a user here"),
    ):
        await post(site, click(api, user, "approve", request.id))
        reply = (await api.wait_for_response(len(api.responses) + 1))[-1]
        assert reply["response_type"] == "ephemeral" and said in reply["text"]
    assert (await site.store.get(request.id)).pending
    assert {e.actor for e in await refusals(site.store)} == {"slack:UNOBODY", "slack:UBOBFAKE", "slack:UMISSING",
                                                            "slack:UGHOST"}  # fmt: skip
    await post(site, click(api, "UBOB", "approve", request.id))
    assert (await decided(site.store, request.id)).decided_by == "bob"


async def test_reviewers_of_other_queues_and_requesters_are_refused(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    await post(site, click(api, "URITA", "approve", request.id))  # rita reviews the queue 'email'
    [reply] = await api.wait_for_response()
    assert "in the queue 'payments'" in reply["text"]
    own = await asked(site, api, requested_by="alice")
    await post(site, click(api, "UALICE", "approve", own.id))
    reply = (await api.wait_for_response(2))[-1]
    assert "You made this request" in reply["text"]
    assert (await site.store.get(request.id)).pending and (await site.store.get(own.id)).pending
    refused = await refusals(site.store)
    assert {(e.actor, e.request_id, e.queue) for e in refused} == {
        ("slack:URITA", request.id, "payments"), ("slack:UALICE", own.id, "payments")
    }  # fmt: skip
    await post(site, click(api, "UALICE", "approve", "0" * 32))
    assert "no such request" in (await api.wait_for_response(3))[-1]["text"]


async def test_reject_asks_for_a_reason_in_a_modal(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    await post(site, click(api, "UALICE", "reject", request.id))
    [opened] = await api.wait_for("views.open")
    assert opened["trigger_id"] == "trigger-UALICE" and opened["view"]["private_metadata"] == request.id
    assert opened["view"]["callback_id"] == "reject" and (await site.store.get(request.id)).pending

    empty = await post(site, submit("UALICE", request.id, "   "))
    assert (await empty.json())["response_action"] == "errors" and (await site.store.get(request.id)).pending
    done = await post(site, submit("UALICE", request.id, "Wrong vendor"))
    assert done.status == 200 and await done.text() == ""  # closes the modal
    rejected = await site.store.get(request.id)
    assert (rejected.status.value, rejected.decided_by, rejected.reason) == ("rejected", "alice", "Wrong vendor")
    update = (await api.wait_for("chat.update"))[-1]
    assert "Rejected by *alice*" in texts(update) and "Wrong vendor" in texts(update)

    late = await post(site, submit("URITA", request.id, "me too"))
    assert (await late.json())["response_action"] == "update"
    assert len(await refusals(site.store)) == 1


async def test_a_decision_made_elsewhere_updates_the_message(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    response = await site.client.post(
        f"/api/v1/approvals/{request.id}/decision", json={"outcome": "reject", "reason": "Not this month"},
        headers=site.bearer("root"),
    )  # fmt: skip
    assert response.status == 200, await response.text()
    [update] = await api.wait_for("chat.update")
    assert "Rejected by *root*" in texts(update) and "Not this month" in texts(update) and not buttons(update)


async def test_reminders_reply_in_the_thread_and_escalations_post_anew(site: Site, api: SlackApi) -> None:
    request = await asked(site, api)
    notifier = site.client.server.app[appkeys.NOTIFIER]
    assert notifier is not None
    for kind in ("remind", "escalate"):
        await site.store.redis.zadd(site.store.keys.notify_timers, {f"{kind}:{request.id}": 0})
    await notifier.fire_due_timers()
    posts = await api.wait_for("chat.postMessage", 4)
    threaded = [p for p in posts if p.get("thread_ts")]
    assert len(threaded) == 2 and all(p["channel"] == "C00000000" for p in threaded)
    [lead] = [p for p in posts if p["channel"] == "#leads"]
    assert buttons(lead) and lead["text"].startswith("Escalated")
    await site.store.approve(request.id, by="root")
    updates = await api.wait_for("chat.update", 2)
    assert {u["channel"] for u in updates} == {"C00000000", "C00000001"}  # both messages show it


async def test_slack_failures_are_retried(site: Site, api: SlackApi) -> None:
    api.failures = [Failure(500), Failure(200, {"ok": False, "error": "fatal_error"}),
                    Failure(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})]  # fmt: skip
    started = time.monotonic()
    await site.store.create("pay_invoice", {"amount": 1}, queue="payments")
    await api.wait_for("chat.postMessage", 4)
    assert time.monotonic() - started >= 1.0  # Slack's Retry-After, not the 0.05 s backoff
    status = await notify_status(site.store)

    async def delivered() -> bool:
        return (await notify_status(site.store)).counts.get(("slack", "delivered")) == 1

    await eventually(delivered)
    assert status.counts[("slack", "retried")] == 3


async def test_a_test_message_goes_to_a_channel(api: SlackApi) -> None:
    assert await send_test(config(api), "#approvals") is None
    assert api.called("chat.postMessage")[-1]["channel"] == "#approvals"
    assert await send_test(config(api, slack_token="xoxb-wrong"), "#approvals") == "Slack said not_authed"


def test_slack_settings_are_checked_at_start(tmp_path: Path) -> None:
    base = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "APPROVALS_SLACK_CHANNEL": "#approvals"}
    made = NotifyConfig.from_env(base)
    assert made.enabled and made.targets("ops", "created") == [SlackTarget("#approvals")]
    assert [where for where, _ in made.every_target()] == ["APPROVALS_SLACK_CHANNEL"]
    rules = tmp_path / "notify.toml"
    rules.write_text('[queues.payments]\nslack_channel = "#payments"\n[slack.users]\nU012ABC = "alice"\n')
    assert NotifyConfig.from_env(base | {"APPROVALS_NOTIFY_CONFIG": str(rules)}).slack_users == {"U012ABC": "alice"}
    for environ, said in (
        ({"APPROVALS_SLACK_CHANNEL": "#approvals"}, "SLACK_BOT_TOKEN: not set, and APPROVALS_SLACK_CHANNEL"),
        ({"APPROVALS_NOTIFY_CONFIG": str(rules)}, "SLACK_BOT_TOKEN: not set, and queue payments"),
        ({"SLACK_BOT_TOKEN": TOKEN, "APPROVALS_SLACK_CHANNEL": "#a"}, "SLACK_SIGNING_SECRET: not set"),
        ({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "x"}, "APPROVALS_SLACK_CHANNEL: not set"),
        (base | {"APPROVALS_SLACK_CHANNEL": "#no spaces"}, "is not a Slack channel"),
    ):
        with pytest.raises(InvalidSettings, match=said):
            NotifyConfig.from_env(environ)
    for text, said in (
        ('[slack.users]\nalice = "alice"\n', "'alice' is not a Slack user id"),
        ('[slack.users]\nU012ABC = "not a name"\n', "'not a name' (for U012ABC) is not a user name"),
        ('[queues.ops]\nslack_channel = "#a b"\n', "queues.ops.slack_channel"),
    ):
        rules.write_text(text)
        with pytest.raises(InvalidSettings, match=str(rules)) as error:
            NotifyConfig.from_env(base | {"APPROVALS_NOTIFY_CONFIG": str(rules)})
        assert said in str(error.value)


async def test_notify_test_posts_to_every_channel_and_says_what_happened(
    api: SlackApi, settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "notify.toml"
    rules.write_text('[queues.payments]\nslack_channel = "#payments"\n')
    code, out = await notify_test(
        settings,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        APPROVALS_SLACK_CHANNEL="#approvals",
        SLACK_API_URL=api.url,
        APPROVALS_NOTIFY_CONFIG=str(rules),
    )
    assert code == 0, out
    assert (
        "ok     slack #approvals (APPROVALS_SLACK_CHANNEL)" in out and "ok     slack #payments (queue payments)" in out
    )
    assert sorted(call["channel"] for call in api.called("chat.postMessage")) == ["#approvals", "#payments"]
