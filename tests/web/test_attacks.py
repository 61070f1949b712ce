"""Each finding of the security review, replayed as the attack it was; every one must fail now.

1 deep JSON poisoning the API · 2 hijacking a run's idempotency key · 3 approving one's own run ·
4 the Redis password on /ops · 5 bidi overrides · 6 login throttling turned against users ·
7 inexact counters · 8 405 without Allow · 9 authenticated pages cached.
"""

from __future__ import annotations

import asyncio
import html
import json
from dataclasses import replace
from typing import Any

import pytest

from approvals import Settings
from approvals.validation import MAX_DEPTH
from tests.web.conftest import PASSWORD, Site, SiteFactory, csrf_of
from tests.web.metrics_text import value
from tests.web.test_cli import run as cli
from web import appkeys
from web.access.throttle import LoginThrottle
from web.access.users import Role


def nested_text(depth: int) -> str:
    """The JSON text of `nested(depth)`, written out (Python's own encoder gives up near 1,000 levels)."""
    return '{"a":' * depth + "1" + "}" * depth


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep, counting itself: {"a": {"a": ... {"a": 1}}}."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


async def every_read(site: Site, request_id: str) -> None:
    """Every JSON and HTML read that shows a request answers, whatever the request holds."""
    bearer = site.bearer("root")
    for path in (
        "/api/v1/approvals",
        "/api/v1/approvals?status=decided",
        f"/api/v1/approvals/{request_id}",
        f"/api/v1/approvals/{request_id}/wait?timeout=0.1",
        "/api/v1/audit",
        "/api/v1/audit?limit=1",
        "/api/v1/queues",
        "/metrics",
    ):
        response = await site.client.get(path, headers=bearer)
        assert response.status in (200, 202), (path, response.status, await response.text())
    await site.login("root")
    for path in ("/queue", f"/requests/{request_id}", "/history?outcome=all", "/ops"):
        response = await site.client.get(path)
        assert response.status == 200, (path, response.status)


# -- 1 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["args", "context"])
async def test_1_values_nested_past_the_limit_are_refused_at_every_door_and_nothing_is_written(
    site: Site, field: str
) -> None:
    bearer = site.bearer("bot")
    for depth in (MAX_DEPTH + 1, 489, 979):
        body = f'{{"action": "deep", "{field}": {nested_text(depth)}}}'
        headers = bearer | {"Content-Type": "application/json"}
        refused = await site.client.post("/api/v1/approvals", data=body, headers=headers)
        assert refused.status == 400, depth
        assert "levels deep" in (await refused.json())["error"]["message"]
    assert (await site.store.list_pending()).total == 0

    at_limit = await site.client.post(
        "/api/v1/approvals", json={"action": "deep", field: nested(MAX_DEPTH)}, headers=bearer
    )
    assert at_limit.status == 201
    request_id = (await at_limit.json())["id"]
    await every_read(site, request_id)
    decided = await site.client.post(
        f"/api/v1/approvals/{request_id}/decision", json={"outcome": "approve"}, headers=site.bearer("root")
    )
    assert decided.status == 200
    again = await site.client.post(
        f"/api/v1/approvals/{request_id}/decision", json={"outcome": "approve"}, headers=site.bearer("root")
    )
    assert again.status == 409
    await every_read(site, request_id)


async def test_1_edits_nested_past_the_limit_are_refused_by_the_api_the_form_the_client_and_the_cli(
    site: Site,
) -> None:
    request = await site.store.create("deploy", {"v": 1}, queue="email", requested_by="bot")
    too_deep = nested(MAX_DEPTH + 1)
    api = await site.client.post(
        f"/api/v1/approvals/{request.id}/decision",
        json={"outcome": "approve", "edited_args": too_deep},
        headers=site.bearer("root"),
    )
    assert api.status == 400
    csrf = await site.login("root")
    form = await site.client.post(
        f"/requests/{request.id}/decide",
        data={"csrf_token": csrf, "outcome": "edit", "edited_args": json.dumps(too_deep)},
        allow_redirects=False,
    )
    assert form.status == 303  # refused, and shown on the request's page (POST-redirect-GET)
    assert "levels deep" in await (await site.client.get(form.headers["Location"])).text()
    with pytest.raises(Exception, match="levels deep"):
        await site.store.approve(request.id, by="root", edited_args=too_deep)
    refused = await asyncio.to_thread(
        cli, site.store.settings, "approve", request.id, "--as", "root", "--edited-args", json.dumps(too_deep)
    )
    assert refused.returncode == 1 and "levels deep" in refused.stderr
    assert (await site.store.get(request.id)).pending
    await every_read(site, request.id)


async def test_1_a_value_stored_before_the_limit_existed_cannot_break_a_page_or_a_response(site: Site) -> None:
    request = await site.store.create("legacy", {"v": 1}, queue="email", requested_by="bot")
    poison = nested_text(979)
    await site.store.redis.hset(site.store.keys.request(request.id), mapping={"args": poison, "context": poison})
    await every_read(site, request.id)
    shown = await (await site.client.get(f"/api/v1/approvals/{request.id}", headers=site.bearer("root"))).json()
    assert "not shown" in shown["args"]["_unreadable"]
    decided = await site.client.post(
        f"/api/v1/approvals/{request.id}/decision", json={"outcome": "approve"}, headers=site.bearer("root")
    )
    assert decided.status == 200
    await every_read(site, request.id)


async def test_1_too_many_values_are_refused(site: Site) -> None:
    body = {"action": "wide", "args": {"items": list(range(10_001))}}
    response = await site.client.post("/api/v1/approvals", json=body, headers=site.bearer("bot"))
    assert response.status == 400 and "10,000 values" in (await response.json())["error"]["message"]


# -- 2 ---------------------------------------------------------------------------------------------


async def test_2_a_run_id_in_someone_elses_key_claims_nothing(make_site: SiteFactory) -> None:
    from tests.web.test_runs_service import LEDGER_PROFILE

    site = await make_site(agent_profile=LEDGER_PROFILE, in_process_worker=True)
    submitted = await site.client.post("/api/v1/runs", json={"task": "pay the invoice"}, headers=site.bearer("rita"))
    run_id = (await submitted.json())["id"]
    # The viewer asks first, under the key the run will use at its second step, with a misleading context.
    claim = {
        "action": "human_approval",
        "args": {"action": "Carry out: pay the invoice"},
        "idempotency_key": f"{run_id}:2:0",
        "context": {"task": "harmless, please approve"},
    }
    planted = await site.client.post("/api/v1/approvals", json=claim, headers=site.bearer("vic"))
    assert planted.status == 201
    planted_id = (await planted.json())["id"]
    for _ in range(500):
        asked = [r for r in (await site.store.list_pending()).items if r.run_id == run_id]
        if asked:
            break
        await asyncio.sleep(0.02)
    [runs_own] = asked
    assert runs_own.id != planted_id and runs_own.context["task"] == "pay the invoice"
    assert runs_own.idempotency_scope == f"run:{run_id}"
    # The viewer cannot cancel the run's request either: it is not theirs.
    cancel = await site.client.post(f"/api/v1/approvals/{runs_own.id}/cancel", headers=site.bearer("vic"))
    assert cancel.status == 403
    await site.store.approve(runs_own.id, by="root")
    for _ in range(500):
        run = await (await site.client.get(f"/api/v1/runs/{run_id}", headers=site.bearer("vic"))).json()
        if run["status"] != "running":
            break
        await asyncio.sleep(0.02)
    assert run["status"] == "finished"


async def test_2_the_same_key_from_two_principals_is_two_requests(site: Site) -> None:
    body = {"action": "deploy", "args": {"v": 1}, "idempotency_key": "release-7"}
    first = await (await site.client.post("/api/v1/approvals", json=body, headers=site.bearer("bot"))).json()
    second = await (await site.client.post("/api/v1/approvals", json=body, headers=site.bearer("vic"))).json()
    again = await (await site.client.post("/api/v1/approvals", json=body, headers=site.bearer("bot"))).json()
    assert first["id"] != second["id"] and again["id"] == first["id"]
    other_args = await site.client.post("/api/v1/approvals", json=body | {"args": {"v": 2}}, headers=site.bearer("bot"))
    assert other_args.status == 409  # the owner's own reuse for something else is still a conflict


# -- 3 ---------------------------------------------------------------------------------------------


async def test_3_whoever_submitted_a_run_cannot_approve_its_requests_anywhere(make_site: SiteFactory) -> None:
    site = await make_site(in_process_worker=True)
    await site.users.add("rev2", PASSWORD, Role.REVIEWER)
    submitted = await site.client.post("/api/v1/runs", json={"task": "rotate the keys"}, headers=site.bearer("root"))
    run_id = (await submitted.json())["id"]
    for _ in range(500):
        asked = [r for r in (await site.store.list_pending()).items if r.run_id == run_id]
        if asked:
            break
        await asyncio.sleep(0.02)
    [request] = asked
    assert (request.requested_by, request.agent_id) == ("root", "demo-agent")
    api = await site.client.post(
        f"/api/v1/approvals/{request.id}/decision", json={"outcome": "approve"}, headers=site.bearer("root")
    )
    assert api.status == 403
    csrf = await site.login("root")
    form = await site.client.post(f"/requests/{request.id}/decide", data={"csrf_token": csrf, "outcome": "approve"})
    assert form.status == 403
    refused = await asyncio.to_thread(cli, site.store.settings, "approve", request.id, "--as", "root")
    assert refused.returncode == 1 and "cannot decide" in refused.stderr
    assert (await site.store.get(request.id)).pending
    await site.store.approve(request.id, by="rev2")  # another person may


# -- 4 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0?password=s3cret&db=1", "redis://127.0.0.1:6379/0?password=***&db=1"),
        ("rediss://h:6380/0?username=app&Password=s3cret", "rediss://h:6380/0?username=app&Password=***"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("unix:///run/redis.sock?password=s3cret", "unix:///run/redis.sock?password=***"),
    ],
)
def test_4_every_form_of_redis_password_is_masked(url: str, shown: str) -> None:
    assert Settings(redis_url=url).display_url == shown


async def test_4_viewers_never_see_the_redis_password_on_ops(site: Site) -> None:
    url = site.store.settings.redis_url or ""
    secret_url = url.replace("redis://", "redis://default:s3cret-pass@") + "?password=s3cret-pass"
    site.client.app[appkeys.CLIENT].store.settings = replace(site.store.settings, redis_url=secret_url)
    await site.login("vic")
    page = await (await site.client.get("/ops")).text()
    assert "s3cret-pass" not in page and "***" in page


# -- 5 ---------------------------------------------------------------------------------------------


async def test_5_text_direction_tricks_are_refused_in_names_and_shown_in_text(site: Site) -> None:
    bearer = site.bearer("bot")
    for body in (
        {"action": "open report\u202efdp.exe"},
        {"action": "x", "agent_id": "agent\u2067"},
        {"action": "x", "queue": "ops\u200b"},
    ):
        response = await site.client.post("/api/v1/approvals", json=body, headers=bearer)
        assert response.status == 400, body
    made = await site.client.post(
        "/api/v1/approvals",
        json={"action": "open a file", "args": {"path": "report\u202efdp.exe"}, "context": {"task": "x\u2066y"}},
        headers=bearer,
    )
    request_id = (await made.json())["id"]
    await site.store.reject(request_id, by="root", reason="not \u202eok")
    await site.login("root")
    page = await (await site.client.get(f"/requests/{request_id}")).text()
    assert "\u202e" not in page and "\u2066" not in page
    assert "report\\u202efdp.exe" in page and "not \\u202eok" in page and "x\\u2066y" in page
    cli_show = await asyncio.to_thread(cli, site.store.settings, "show", request_id)
    assert "\u202e" not in cli_show.stdout and "\\u202e" in cli_show.stdout


# -- 6 ---------------------------------------------------------------------------------------------


async def sign_in(site: Site, name: str, password: str) -> int:
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]
    form = {"username": name, "password": password, "login_csrf": token}
    response = await site.client.post("/login", data=form, allow_redirects=False)
    if response.status == 303:
        await site.client.post("/logout", data={"csrf_token": csrf_of(await (await site.client.get("/queue")).text())})
    return response.status


async def test_6_successful_sign_ins_never_count_against_an_address(site: Site) -> None:
    for _ in range(20):  # four times the limit of 5, all from one address
        assert await sign_in(site, "vic", PASSWORD) == 303


async def test_6_wrong_passwords_lock_that_address_out_of_that_account_and_an_admin_can_lift_it(site: Site) -> None:
    for _ in range(5):
        assert await sign_in(site, "rita", "wrong password") == 401
    assert await sign_in(site, "rita", PASSWORD) == 429  # this address may not try rita for a while
    assert await sign_in(site, "vic", PASSWORD) == 303  # other accounts from here are fine
    unlocked = await asyncio.to_thread(cli, site.store.settings, "users", "unlock", "rita")
    assert unlocked.returncode == 0, unlocked.stderr
    assert await sign_in(site, "rita", PASSWORD) == 303


async def test_6_a_lock_holds_per_address_and_an_account_guessed_from_everywhere_is_only_slowed(
    site: Site,
) -> None:
    throttle = LoginThrottle(site.store.redis, site.store.keys, limit=3, window=60, slow_down=0.3)
    for _ in range(3):
        assert await throttle.attempt("rita", "10.0.0.1") is None  # counted as failures
    assert await throttle.attempt("rita", "10.0.0.1") is not None  # locked, from there
    assert await throttle.attempt("rita", "10.0.0.2") is None  # the real user, elsewhere, may try
    await throttle.succeeded("rita", "10.0.0.2")
    for n in range(30):  # a botnet: a guess each from many addresses, up to 10 x the limit
        assert await throttle.attempt("rita", f"10.1.{n}.1") is None
    # Past 10 x the limit from everywhere: one checked attempt per 0.3 s, however many come at once.
    burst = await asyncio.gather(*(throttle.attempt("rita", f"10.2.{n}.1") for n in range(50)))
    assert sum(r is None for r in burst) == 1
    await asyncio.sleep(0.35)
    assert await throttle.attempt("rita", "10.0.0.3") is None  # the real user gets the next slot ...
    await throttle.succeeded("rita", "10.0.0.3")  # ... and a correct password resets the account
    assert await throttle.attempt("rita", "10.0.0.4") is None
    assert await throttle.attempt("rita", "10.0.0.4") is None


async def test_6_counts_never_go_below_zero_and_an_admin_can_clear_an_address(site: Site) -> None:
    throttle = LoginThrottle(site.store.redis, site.store.keys, limit=3, window=60)
    await throttle.succeeded("vic", "10.9.9.9")  # nothing counted yet: nothing to give back
    assert await site.store.redis.get(site.store.keys.login_attempts("addr:10.9.9.9")) is None
    for n in range(9):
        await throttle.attempt(f"user{n}", "10.9.9.9")
    assert await throttle.attempt("vic", "10.9.9.9") is not None  # the address is refused
    await throttle.unlock("vic", "10.9.9.9")
    assert await throttle.attempt("vic", "10.9.9.9") is None


async def test_6_behind_a_trusted_proxy_the_client_is_the_forwarded_address(make_site: SiteFactory) -> None:
    site = await make_site(trusted_proxies=("127.0.0.1",))
    throttle_headers = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in (1, 2)]
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]

    async def sign_in_from(headers: dict[str, str], password: str) -> int:
        form = {"username": "rita", "password": password, "login_csrf": token}
        response = await site.client.post("/login", data=form, headers=headers, allow_redirects=False)
        return response.status

    for _ in range(5):
        assert await sign_in_from(throttle_headers[0], "wrong") == 401
    assert await sign_in_from(throttle_headers[0], "wrong") == 429  # that client is locked out of rita
    assert await sign_in_from(throttle_headers[1], PASSWORD) == 303  # another client behind the proxy is not


def test_6_ipv6_clients_count_by_their_64() -> None:
    from aiohttp.test_utils import make_mocked_request

    from web.access.throttle import client_address

    one = make_mocked_request("POST", "/login", headers={"X-Forwarded-For": "2001:db8:1:2:aaaa::1"})
    two = make_mocked_request("POST", "/login", headers={"X-Forwarded-For": "2001:db8:1:2:bbbb::9"})
    for request in (one, two):
        request._transport_peername = ("10.0.0.5", 1234)  # the proxy
    assert client_address(one, ["10.0.0.0/8"]) == client_address(two, ["10.0.0.0/8"]) == "2001:db8:1:2::/64"
    assert client_address(one) == "10.0.0.5"  # an untrusted peer's header means nothing


async def test_6_attempts_sent_at_once_still_cannot_beat_the_limit(site: Site) -> None:
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]
    form = {"username": "root", "password": "wrong", "login_csrf": token}
    statuses = await asyncio.gather(*(site.client.post("/login", data=form) for _ in range(30)))
    assert sum(r.status == 401 for r in statuses) <= 5
    assert sum(r.status == 429 for r in statuses) >= 25


# -- 7, 8, 9 ---------------------------------------------------------------------------------------


async def test_7_counters_are_exact(site: Site) -> None:
    await site.store.redis.hset(site.store.keys.counts, "email:created", 1234567)
    metrics = await (await site.client.get("/metrics", headers=site.bearer("vic"))).text()
    assert value(metrics, "approvals_requests_created_total", queue="email") == 1234567  # every digit


async def test_8_a_wrong_method_says_which_ones_are_allowed(site: Site) -> None:
    response = await site.client.delete("/api/v1/queues", headers=site.bearer("vic"))
    assert response.status == 405 and "GET" in response.headers["Allow"]
    assert (await response.json())["error"]["status"] == 405


async def test_9_signed_in_pages_and_answers_are_not_stored_by_caches(site: Site) -> None:
    login = await site.client.get("/login")
    assert "no-store" not in login.headers.get("Cache-Control", "")
    api = await site.client.get("/api/v1/queues", headers=site.bearer("vic"))
    assert api.headers["Cache-Control"] == "no-store"
    await site.login("vic")
    for path in ("/queue", "/history", "/ops", "/runs"):
        assert (await site.client.get(path)).headers["Cache-Control"] == "no-store", path
    assert "no-store" not in (await site.client.get("/static/app.css")).headers.get("Cache-Control", "")


# -- found by the second review --------------------------------------------------------------------


async def test_1_deep_values_hidden_in_an_argument_schema_are_refused(site: Site) -> None:
    body = '{"action": "x", "args_schema": {"type": "object", "default": ' + nested_text(300) + "}}"
    headers = site.bearer("vic") | {"Content-Type": "application/json"}
    response = await site.client.post("/api/v1/approvals", data=body, headers=headers)
    assert response.status == 400 and "levels deep" in (await response.json())["error"]["message"]
    assert (await site.store.list_pending()).total == 0


async def test_1_a_stored_value_too_deep_to_show_but_not_to_decode_is_shown_as_a_note(site: Site) -> None:
    request = await site.store.create("legacy", {"v": 1}, queue="email", requested_by="bot")
    await site.store.redis.hset(site.store.keys.request(request.id), "args", nested_text(300))
    await every_read(site, request.id)


async def test_1_deep_or_huge_run_results_cannot_break_the_runs_pages(site: Site) -> None:
    from web.runs.store import step_json

    runs = site.client.app[appkeys.RUNS]
    deep = await runs.submit("deep", "demo", submitted_by="bot")
    huge = await runs.submit("huge", "demo", submitted_by="bot")
    for run, answer in ((deep, nested(300)), (huge, ["x" * 1000] * 300)):
        attempt = await runs.started(run.id, "w")
        assert attempt is not None
        step = {"type": "action", "step": 1, "final": True, "output": answer, "model_output": "y" * 50_000}
        assert json.loads(step_json(step))["type"] == "action"  # always an object, whatever it holds
        await runs.add_step(run.id, attempt, step)
        await runs.finish(run.id, runs_status_finished(), attempt=attempt, result=answer)
    for path in ("/api/v1/runs", "/api/v1/runs?state=finished", f"/api/v1/runs/{deep.id}", f"/api/v1/runs/{huge.id}"):
        response = await site.client.get(path, headers=site.bearer("vic"))
        assert response.status == 200, (path, await response.text())
    await site.login("vic")
    for path in (f"/runs/{deep.id}", f"/runs/{huge.id}", "/runs?state=all"):
        assert (await site.client.get(path)).status == 200, path


def runs_status_finished() -> Any:
    from web.runs.store import RunStatus

    return RunStatus.FINISHED


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("rediss://h:6380/0?ssl_password=keypass", "keypass"),
        ("redis://:s3cr/et@db:6379/0", "s3cr/et"),
        ("redis://:s3cr?et@db:6379/0", "et@db"),
    ],
)
def test_4_passphrases_and_passwords_with_unencoded_characters_are_masked(url: str, secret: str) -> None:
    assert secret not in Settings(redis_url=url).display_url


async def test_4_readiness_says_redis_does_not_answer_without_saying_where(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    async def unreachable() -> None:
        raise RedisConnectionError("Error 111 connecting to 10.1.2.3:6379 as user app with password hunter2")

    monkeypatch.setattr(site.client.app[appkeys.CLIENT].store.redis, "ping", unreachable)
    ready = await site.client.get("/readyz")
    text = await ready.text()
    assert ready.status == 503 and "10.1.2.3" not in text and "hunter2" not in text


async def test_odd_inputs_found_by_review_are_4xx_not_500(site: Site) -> None:
    request = await site.store.create("deploy", {"v": 1}, queue="email", requested_by="bot")
    bearer = site.bearer("root")
    schema_with_surrogate = '{"action": "x", "args_schema": {"type": "object", "properties": {"\\ud800": {}}}}'
    made = await site.client.post(
        "/api/v1/approvals", data=schema_with_surrogate, headers=bearer | {"Content-Type": "application/json"}
    )
    assert made.status == 400
    oldest = await site.client.get("/api/v1/audit?before=0-0", headers=bearer)
    assert oldest.status == 200 and (await oldest.json())["events"] == []
    csrf = await site.login("root")
    odd_token = await site.client.post(
        f"/requests/{request.id}/decide", data={"csrf_token": "é" * 10, "outcome": "approve"}
    )
    assert odd_token.status == 403
    preview = await site.client.post(
        f"/requests/{request.id}/decide",
        data={"csrf_token": csrf, "outcome": "preview", "edited_args": '{"a": "\\ud800"}'},
        allow_redirects=False,
    )
    assert preview.status == 303  # refused, and shown on the request's page (POST-redirect-GET)
    assert 'id="edited-args-error"' in await (await site.client.get(preview.headers["Location"])).text()
    assert (await site.store.get(request.id)).pending


@pytest.mark.parametrize("hidden", ["\u2028", "\u0085", "\u3164", "\u034f", "\ufe0f", "\U000e0041"])
async def test_5_other_invisible_characters_are_refused_in_actions_and_names(site: Site, hidden: str) -> None:
    for body in ({"action": f"pay{hidden}"}, {"action": "pay", "agent_id": f"bot{hidden}"}):
        response = await site.client.post("/api/v1/approvals", json=body, headers=site.bearer("bot"))
        assert response.status == 400, (hidden, body)


async def test_5_an_astral_invisible_character_round_trips_through_the_decide_form(site: Site) -> None:
    request = await site.store.create("pay", {"note": "pay\U000e0041"}, queue="email", requested_by="bot")
    csrf = await site.login("root")
    page = await (await site.client.get(f"/requests/{request.id}")).text()
    assert "\\udb40\\udc41" in page and "\U000e0041" not in page
    shown = page.split('id="edited-args"')[1].split(">", 1)[1].split("</textarea>")[0]
    submitted = html.unescape(shown)
    response = await site.client.post(
        f"/requests/{request.id}/decide",
        data={"csrf_token": csrf, "outcome": "approve", "edited_args": submitted},
        allow_redirects=False,
    )
    assert response.status == 303  # the form as shown is the ask: no "you changed the arguments"
    assert (await site.store.get(request.id)).edited_args is None
