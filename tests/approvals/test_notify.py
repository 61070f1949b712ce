"""The notifier on a real Redis, sending to a webhook receiver on loopback: signed deliveries, retries with
one delivery id, giving up visibly, surviving a restart, and reminders and escalations that fire once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ResponseError

from approvals import ApprovalClient, InvalidSettings, Settings
from approvals.connections import pubsub_client
from approvals.notify import Notifier, NotifyConfig, load_rules
from approvals.notify.config import RulesFile
from approvals.notify.notifier import GROUP
from tests.webhooks import SECRET, Received, Receiver, notify_test, verified

ROOT = Path(__file__).resolve().parents[2]


NotifierFactory = Callable[..., Awaitable[Notifier]]


@pytest.fixture
async def notifier(client: ApprovalClient, settings: Settings) -> AsyncIterator[NotifierFactory]:
    made: list[Notifier] = []

    async def make(config: NotifyConfig, **options: Any) -> Notifier:
        options = {"first_retry": 0.05, "poll": 0.05} | options
        one = Notifier(client.store, pubsub_client(settings, role="notify"), config, **options)
        await one.start()
        made.append(one)
        return one

    yield make
    for one in made:
        await one.aclose()


def webhook(url: str, rules: dict[str, Any] | None = None) -> NotifyConfig:
    return NotifyConfig(webhook_url=url, webhook_secret=SECRET, rules=RulesFile.model_validate(rules or {}))


async def test_every_event_is_delivered_signed_with_the_request_and_a_link(
    client: ApprovalClient, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    hook = receiver("/all")
    await notifier(webhook(hook.url))
    store = client.store
    first = await store.create("refund", {"order": "A-1", "amount": 12.5}, queue="billing", agent_id="support")
    await store.approve(first.id, by="rita", edited_args={"order": "A-1", "amount": 10})
    second = await store.create("restart", {"service": "api"}, queue="ops")
    await store.cancel(second.id, by="root", reason="not needed")
    got = await hook.wait_for(4)
    by_what = {(g.event, g.json["request"]["id"]): g for g in got}  # sent concurrently: in any order
    assert set(by_what) == {
        ("created", first.id),
        ("decided", first.id),
        ("created", second.id),
        ("cancelled", second.id),
    }
    assert all(verified(g) for g in got) and len({g.delivery for g in got}) == 4
    created, decided = by_what["created", first.id].json, by_what["decided", first.id].json
    assert (
        created["request"]["args"] == {"order": "A-1", "amount": 12.5} and created["request"]["agent_id"] == "support"
    )
    assert created["request"]["url"].endswith(f"/requests/{first.id}")
    assert created["delivery_id"] == by_what["created", first.id].delivery
    assert (decided["type"], decided["actor"], decided["edited_args"]) == (
        "approved",
        "rita",
        {"order": "A-1", "amount": 10},
    )
    assert by_what["cancelled", second.id].json["reason"] == "not needed"
    tampered = Received("created", "x", got[0].signature, got[0].body + b" ")
    assert not verified(tampered)


async def test_a_failing_receiver_is_retried_with_one_delivery_id_then_given_up_on_visibly(
    client: ApprovalClient, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    flaky, dead = receiver("/flaky"), receiver("/dead")
    flaky.statuses = [500, 503]  # then 200
    dead.statuses = [500] * 10
    await notifier(NotifyConfig(webhook_secret=SECRET, rules=RulesFile.model_validate(
        {"queues": {"a": {"webhooks": [flaky.url]}, "b": {"webhooks": [dead.url]}}}
    )), max_attempts=3)  # fmt: skip
    await client.store.create("x", queue="a")
    await client.store.create("y", queue="b")
    tries = await flaky.wait_for(3)
    assert len({t.delivery for t in tries}) == 1 and len({t.body for t in tries}) == 1  # the same delivery
    await dead.wait_for(3)
    redis, keys = client.store.redis, client.store.keys
    async with asyncio.timeout(5):
        while not await redis.lrange(keys.notify_failures, 0, -1):
            await asyncio.sleep(0.02)
    [failure] = [json.loads(f) for f in await redis.lrange(keys.notify_failures, 0, -1)]
    assert (failure["url"], failure["event"], failure["error"], failure["attempts"]) == (
        dead.url,
        "created",
        "HTTP 500",
        3,
    )
    counts = await redis.hgetall(keys.notify_counts)
    assert counts == {"webhook:delivered": "1", "webhook:retried": "4", "webhook:failed": "1"}
    await asyncio.sleep(0.3)
    assert len(dead.got) == 3  # no fourth attempt


async def test_a_slow_receiver_never_slows_asking(
    client: ApprovalClient, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    slow = receiver("/slow")
    slow.delay = 3.0
    await notifier(webhook(slow.url), send_timeout=10.0)
    asking = asyncio.ensure_future(client.request_approval("deploy", {"v": 2}, queue="ops", timeout=60))
    async with asyncio.timeout(5):
        while not (pending := (await client.store.list_pending()).items):
            await asyncio.sleep(0.01)
    await client.store.approve(pending[0].id, by="rita")
    decision = await asyncio.wait_for(asking, 1.0)  # decided and woken while the receiver still sleeps
    assert decision.approved and slow.got == []
    assert [g.event for g in await slow.wait_for(2, timeout=15)] == ["created", "decided"]


async def test_a_receiver_that_hangs_holds_up_only_its_own_deliveries(
    client: ApprovalClient, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    hanging, good = receiver("/hanging"), receiver("/good")
    hanging.delay = 5.0  # answers after 5 s, every time
    config = webhook(hanging.url, {"queues": {"a": {"webhooks": [good.url]}}})
    sender = await notifier(config, send_timeout=30.0, concurrency=16)
    for n in range(40):
        await client.store.create("x", {"n": n}, queue="a")
    started = asyncio.get_running_loop().time()
    await good.wait_for(40, timeout=4.0)  # while the hanging receiver holds its slots
    assert asyncio.get_running_loop().time() - started < 4.0
    assert sender.per_target == 4 and hanging.got == []


async def test_an_event_that_fails_is_read_again_alone_and_nothing_is_sent_twice(
    client: ApprovalClient, settings: Settings, receiver: Callable[[str], Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, hook = client.store, receiver("/hook")
    await store.redis.xgroup_create(store.keys.events, GROUP, id="$", mkstream=True)
    made = [await store.create("x", {"i": i}, queue="a") for i in range(5)]  # read as one batch
    real_get, failed = store.get, []

    async def get_failing_once(request_id: str) -> Any:
        if request_id == made[2].id and not failed:
            failed.append(request_id)
            raise RuntimeError("a transient failure, once")
        return await real_get(request_id)

    monkeypatch.setattr(store, "get", get_failing_once)
    sender = Notifier(store, pubsub_client(settings, role="notify"), webhook(hook.url), poll=0.05, lease=0.2)
    await sender.start()
    try:
        await hook.wait_for(5)
        await asyncio.sleep(1.0)  # the failed event is claimed back after its lease (0.2 s), and anything else too
        ids = [g.json["request"]["id"] for g in hook.got]
        assert failed and sorted(ids) == sorted(r.id for r in made)  # each once
        first = next(e for e in (await store.read_audit(limit=10)).events if e.request_id == made[0].id)
        assert await sender.handle(first) == 0  # read again later: done, not made anew
    finally:
        await sender.aclose()


async def test_a_send_that_outlasts_its_lease_is_not_started_again_by_the_same_process(
    client: ApprovalClient, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    slow = receiver("/slow")
    slow.delay = 1.0  # longer than the lease below: the delivery is due again while it is being sent
    await notifier(webhook(slow.url), lease=0.2, send_timeout=5.0)
    await client.store.create("x", queue="a")
    await slow.wait_for(1)
    await asyncio.sleep(1.5)
    assert len(slow.got) == 1


async def test_deliveries_waiting_in_the_due_set_of_earlier_versions_are_sent(
    client: ApprovalClient, settings: Settings, receiver: Callable[[str], Receiver]
) -> None:
    store, hook = client.store, receiver("/legacy")
    body = json.dumps({"delivery_id": "d" * 32, "event": "created", "request": {"id": "r" * 32}})
    await store.redis.hset(store.keys.notify_delivery("d" * 32), mapping={
        "target": json.dumps({"kind": "webhook", "url": hook.url}), "event": "created", "body": body, "attempts": "0",
    })  # fmt: skip
    await store.redis.zadd(f"{store.keys.prefix}notify:due", {"d" * 32: 1.0})
    sender = Notifier(store, pubsub_client(settings, role="notify"), webhook(hook.url), poll=0.05)
    await sender.start()
    try:
        [got] = await hook.wait_for(1)
        assert got.delivery == "d" * 32 and verified(got)
        assert not await store.redis.exists(f"{store.keys.prefix}notify:due")
    finally:
        await sender.aclose()


async def test_what_a_stopped_notifier_left_is_sent_by_the_next(
    client: ApprovalClient, settings: Settings, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    hook = receiver("/after")
    store = client.store
    with pytest.raises(ResponseError, match=r"NOGROUP|no such key"):  # no notifier yet
        await store.redis.xinfo_consumers(store.keys.events, GROUP)
    first = Notifier(store, pubsub_client(settings, role="notify"), webhook(hook.url), poll=3600, lease=0.2)
    await first.start()
    await first.aclose()  # made the group, then went away
    request = await store.create("rotate keys", queue="ops")
    # A consumer reads the event and dies before acknowledging it, having sent nothing.
    read = await store.redis.xreadgroup(GROUP, "dead-consumer", {store.keys.events: ">"}, count=10)
    assert [fields["id"] for _, entries in read for _, fields in entries] == [request.id]
    await asyncio.sleep(0.3)  # older than the next notifier's lease: it is claimed
    await notifier(webhook(hook.url), lease=0.2)
    [got] = await hook.wait_for(1)
    assert (got.event, got.json["request"]["id"]) == ("created", request.id)
    await asyncio.sleep(0.3)
    assert len(hook.got) == 1  # once


async def test_reminders_and_escalations_fire_once_whatever_the_number_of_notifiers(
    client: ApprovalClient, receiver: Callable[[str], Receiver], notifier: NotifierFactory
) -> None:
    team, boss = receiver("/team"), receiver("/boss")
    rules = {"queues": {"ops": {"webhooks": [team.url], "remind_after": 0.3, "escalate_after": 0.6,
                                "escalate_to": {"webhooks": [boss.url]}}}}  # fmt: skip
    config = NotifyConfig(webhook_secret=SECRET, rules=RulesFile.model_validate(rules))
    for _ in range(3):  # three servers sharing one Redis
        await notifier(config)
    store = client.store
    waiting = await store.create("drop table", {"table": "orders"}, queue="ops")
    decided = await store.create("vacuum", queue="ops")
    await store.approve(decided.id, by="rita")  # decided before any reminder: none is sent for it
    await asyncio.sleep(1.5)
    team_events = [(g.event, g.json["request"]["id"]) for g in team.got]
    assert sorted(team_events) == sorted([
        ("created", waiting.id), ("created", decided.id), ("decided", decided.id),
        ("reminder", waiting.id), ("escalated", waiting.id),
    ])  # fmt: skip
    assert [(g.event, g.json["request"]["id"]) for g in boss.got] == [("escalated", waiting.id)]
    reminder = next(g.json for g in team.got if g.event == "reminder")
    assert reminder["actor"] == "system:notify" and reminder["reason"].startswith("still pending after")
    audit = [e.type for e in (await store.read_audit(limit=20)).events if e.request_id == waiting.id]
    assert sorted(audit) == ["created", "escalated", "reminded"]  # in the audit, once each
    assert await store.redis.zcard(store.keys.notify_timers) == 0


def test_rules_files_are_checked_with_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "notify.toml"
    good.write_text(
        '[defaults]\nremind_after = "30m"\n'
        '[queues.payments]\nwebhooks = ["https://hooks.example.com/p"]\nescalate_after = "2h"\n'
        'escalate_to = { webhooks = ["https://hooks.example.com/cfo"] }\n'
    )
    rules = load_rules(good)
    config = NotifyConfig(webhook_secret="x", rules=rules)
    payments = config.rules_for("payments")
    assert (payments.remind_after, payments.escalate_after) == (1800.0, 7200.0)
    assert [t.url for t in config.targets("payments", "escalated")] == [
        "https://hooks.example.com/p",
        "https://hooks.example.com/cfo",
    ]
    assert config.targets("payments", "created")[0].url == "https://hooks.example.com/p" and not config.targets(
        "other", "created"
    )
    assert config.rules_for("other").remind_after == 1800.0

    for text, said in (
        ('[queues.payments]\nremind_after = "soon"\n', "queues.payments.remind_after: must be a positive duration"),
        ('[queues.payments]\nwebhooks = ["ftp://x"]\n', "queues.payments.webhooks: 'ftp://x' is not an http(s) URL"),
        ('[queues.payments]\nevents = ["created", "paid"]\n', "queues.payments.events.1"),
        ("[queues.payments]\nchannel = 3\n", "queues.payments.channel: Extra inputs are not permitted"),
        ("[queues.payments\n", "not valid TOML"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(InvalidSettings, match=r"bad\.toml") as error:
            load_rules(bad)
        assert said in str(error.value)
    with pytest.raises(InvalidSettings, match="APPROVALS_WEBHOOK_SECRET"):
        NotifyConfig.from_env({"APPROVALS_WEBHOOK_URL": "https://hooks.example.com/x"})
    with pytest.raises(InvalidSettings, match=r"missing\.toml"):
        NotifyConfig.from_env({"APPROVALS_NOTIFY_CONFIG": str(tmp_path / "missing.toml")})
    assert not NotifyConfig.from_env({}).enabled


async def test_notify_test_tries_every_target_and_says_what_happened(
    settings: Settings, receiver: Callable[[str], Receiver], tmp_path: Path
) -> None:
    good, bad = receiver("/good"), receiver("/bad")
    bad.statuses = [500]
    rules = tmp_path / "notify.toml"
    rules.write_text(f'[queues.ops]\nwebhooks = ["{good.url}"]\nescalate_to = {{ webhooks = ["{bad.url}"] }}\n')
    code, out = await notify_test(settings, APPROVALS_NOTIFY_CONFIG=str(rules), APPROVALS_WEBHOOK_SECRET=SECRET)
    assert code == 1, out
    assert f"ok     webhook {good.url} (queue ops)" in out
    assert f"FAILED webhook {bad.url} (queue ops, escalations): HTTP 500" in out
    assert "1 of 2 targets took the test message" in out
    [test] = good.got
    assert test.event == "test" and verified(test) and test.json["event"] == "test"

    code, said = await notify_test(settings)
    assert code == 1 and "No notification target is configured" in said
