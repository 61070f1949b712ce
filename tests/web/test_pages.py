"""Reviewer pages through the aiohttp test client: every page, permissions per role, decisions by form."""

from __future__ import annotations

import asyncio
import re
import time

from approvals import Status
from tests.web.conftest import Site
from web import appkeys


async def test_anonymous_visitors_are_sent_to_login(site: Site) -> None:
    for path in ("/", "/queue", "/history", "/ops", "/events"):
        response = await site.client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith(("/login", "/queue"))


async def test_queue_lists_pending_oldest_first_with_filter_and_pages(site: Site) -> None:
    await site.login("vic")
    made = [await site.store.create(f"action-{i}", {"n": i}, queue="email" if i % 2 else "ops") for i in range(7)]
    html = await (await site.client.get("/queue")).text()
    positions = [html.index(f"action-{i}") for i in range(5)]
    assert positions == sorted(positions)  # oldest first, five to a page
    assert "action-5" not in html
    second = await (await site.client.get("/queue?page=2")).text()
    assert "action-5" in second and "action-6" in second
    email = await (await site.client.get("/queue?queue=email")).text()
    assert "action-1" in email and "action-0" not in email
    assert made[0].id in html
    assert (await site.client.get("/queue?queue=bad%20queue")).status == 400
    assert (await site.client.get("/queue?page=zero")).status == 400


async def test_request_page_shows_arguments_and_context(site: Site) -> None:
    await site.login("vic")
    request = await site.store.create(
        "delete_files",
        {"paths": ["/tmp/a"]},
        queue="ops",
        context={
            "task": "clean the disk",
            "step": 2,
            "recent_steps": [{"step": 1, "model_output": "I will list files"}],
        },
    )
    html = await (await site.client.get(f"/requests/{request.id}")).text()
    assert "clean the disk" in html
    assert "I will list files" in html
    assert "&#34;/tmp/a&#34;" in html or "&quot;/tmp/a&quot;" in html
    assert 'value="approve"' not in html  # a viewer cannot decide
    assert (await site.client.get("/requests/" + "0" * 32)).status == 404


async def test_reviewer_approves_by_form_and_the_waiting_agent_resumes(site: Site) -> None:
    client = site.client
    request = await site.store.create("send_email", {"to": "bob"}, queue="email", requested_by="bot")
    waiting = asyncio.create_task(site.client.server.app[appkeys.CLIENT].wait(request.id))
    csrf = await site.login("rita")
    page = await client.get(f"/requests/{request.id}")
    assert 'value="approve"' in await page.text()
    response = await client.post(
        f"/requests/{request.id}/decide", data={"csrf_token": csrf, "outcome": "approve"}, allow_redirects=False
    )
    assert response.status == 303
    decision = await asyncio.wait_for(waiting, 5)
    assert (decision.status, decision.decided_by) == (Status.APPROVED, "rita")
    decided = await (await client.get(f"/requests/{request.id}")).text()
    assert "Approved" in decided and "rita" in decided


async def test_reject_needs_a_reason_and_edits_must_be_json(site: Site) -> None:
    request = await site.store.create("refund", {"amount": 100}, queue="email")
    csrf = await site.login("rita")
    url = f"/requests/{request.id}/decide"
    no_reason = await site.client.post(url, data={"csrf_token": csrf, "outcome": "reject"}, allow_redirects=False)
    assert no_reason.status == 303  # POST-redirect-GET: a reload of the page shows it, never posts again
    assert no_reason.headers["Location"] == f"/requests/{request.id}#reason"
    page = await (await site.client.get(f"/requests/{request.id}")).text()
    error_then_field = re.search(
        r'<textarea name="reason" id="reason"[^>]*aria-invalid="true" aria-describedby="reason-error" autofocus>'
        r'</textarea></label>\s*<p class="error" id="reason-error" role="alert">reason: [^<]*needs a reason',
        page,
    )
    assert error_then_field, "the error sits under its field, which has the focus"
    assert "needs a reason" not in await (await site.client.get(f"/requests/{request.id}")).text()  # shown once
    bad_json = await site.client.post(url, data={"csrf_token": csrf, "outcome": "edit", "edited_args": "{amount: 5"})
    assert bad_json.status == 200 and bad_json.url.path == f"/requests/{request.id}"
    text = await bad_json.text()
    assert "not valid JSON" in text and 'id="edited-args-error"' in text
    assert "{amount: 5" in text  # what was typed is kept, to be corrected
    not_object = await site.client.post(url, data={"csrf_token": csrf, "outcome": "edit", "edited_args": "[1]"})
    assert "must be a JSON object" in await not_object.text()
    preview = await site.client.post(
        url, data={"csrf_token": csrf, "outcome": "preview", "edited_args": '{"amount": 50}'}
    )
    text = await preview.text()
    assert preview.status == 200
    assert "&#34;amount&#34;: 100" in text and "&#34;amount&#34;: 50" in text
    assert (await site.store.get(request.id)).pending  # none of these decided anything
    edit = await site.client.post(url, data={"csrf_token": csrf, "outcome": "edit", "edited_args": '{"amount": 50}'})
    assert edit.status == 200
    stored = await site.store.get(request.id)
    assert (stored.status, stored.edited_args) == (Status.APPROVED, {"amount": 50})
    assert "Arguments were edited" in await edit.text()


async def test_second_decision_by_form_says_who_was_faster(site: Site) -> None:
    request = await site.store.create("deploy", queue="email")
    csrf = await site.login("rita")
    page = await site.client.get(f"/requests/{request.id}")
    assert page.status == 200
    await site.store.approve(request.id, by="root")
    response = await site.client.post(
        f"/requests/{request.id}/decide", data={"csrf_token": csrf, "outcome": "reject", "reason": "x"}
    )
    assert response.status == 409
    assert "already approved by root at" in (await response.text()).lower()


async def test_reviewers_are_limited_to_their_queues_and_not_their_own_requests(site: Site) -> None:
    ops = await site.store.create("restart", queue="ops")
    own = await site.store.create("send", queue="email", requested_by="rita")
    csrf = await site.login("rita")
    ops_page = await (await site.client.get(f"/requests/{ops.id}")).text()
    assert 'value="approve"' not in ops_page
    why = "This request is in the queue &#39;ops&#39; and you decide requests in the queue &#39;email&#39;"
    assert why in ops_page  # said where the Decide form would be, not left to guess
    forbidden = await site.client.post(f"/requests/{ops.id}/decide", data={"csrf_token": csrf, "outcome": "approve"})
    assert forbidden.status == 403
    assert why in await forbidden.text()  # a forged POST gets the same words
    queue = await (await site.client.get("/queue")).text()
    assert "You decide requests in the queue &#39;email&#39;." in queue
    own_page = await (await site.client.get(f"/requests/{own.id}")).text()
    assert "someone else must decide" in own_page
    assert (
        await site.client.post(f"/requests/{own.id}/decide", data={"csrf_token": csrf, "outcome": "approve"})
    ).status == 403
    assert (await site.store.get(ops.id)).pending and (await site.store.get(own.id)).pending


async def test_viewers_are_told_why_they_cannot_decide(site: Site) -> None:
    request = await site.store.create("deploy", queue="email")
    await site.login("vic")
    for path in ("/queue", f"/requests/{request.id}"):
        page = await (await site.client.get(path)).text()
        assert "You are signed in as a viewer: you can follow requests, not decide them." in page
        assert 'value="approve"' not in page
    await site.login("root")
    assert 'id="why-not"' not in await (await site.client.get("/queue")).text()  # admins decide everywhere


async def test_csrf_is_required_on_every_form(site: Site) -> None:
    request = await site.store.create("deploy", queue="email")
    await site.login("rita")
    for data in ({"outcome": "approve"}, {"outcome": "approve", "csrf_token": "forged"}):
        response = await site.client.post(f"/requests/{request.id}/decide", data=data)
        assert response.status == 403
    assert (await site.client.post("/logout", data={})).status == 403
    api = await site.client.post(f"/api/v1/approvals/{request.id}/decision", json={"outcome": "approve"})
    assert api.status == 403  # a session-authenticated API call needs X-CSRF-Token
    assert (await site.store.get(request.id)).pending


async def test_history_search(site: Site) -> None:
    first = await site.store.create("send_email", queue="email", agent_id="mailer")
    second = await site.store.create("restart_db", queue="ops", agent_id="dba")
    await site.store.approve(first.id, by="rita")
    await site.store.reject(second.id, by="root", reason="not now")
    await site.login("vic")
    everything = await (await site.client.get("/history")).text()
    assert "send_email" in everything and "restart_db" in everything
    by_reviewer = await (await site.client.get("/history?reviewer=root")).text()
    assert "restart_db" in by_reviewer and "send_email" not in by_reviewer
    by_agent = await (await site.client.get("/history?agent=mail")).text()
    assert "send_email" in by_agent and "restart_db" not in by_agent
    by_queue = await (await site.client.get("/history?queue=ops&action=restart")).text()
    assert "restart_db" in by_queue and "send_email" not in by_queue


async def test_history_by_run_time_and_order(site: Site) -> None:
    slow = await site.store.create("slow_one", queue="ops", run_id="run-slow")
    await asyncio.sleep(0.3)
    quick = await site.store.create("quick_one", queue="ops", run_id="run-quick")
    await site.store.approve(quick.id, by="rita")
    await site.store.approve(slow.id, by="rita")  # decided last, waited longest
    old = await site.store.create("old_one", queue="ops")
    await site.store.reject(old.id, by="root", reason="stale")
    history_key = site.store.keys.history(None)
    await site.store.redis.zadd(history_key, {old.id: time.time() - 7200}, xx=True)  # decided two hours ago
    await site.store.redis.zadd(site.store.keys.history("ops"), {old.id: time.time() - 7200}, xx=True)
    await site.store.redis.hset(site.store.keys.request(old.id), "decided_at", str(time.time() - 7200))
    await site.login("vic")

    def order(html: str) -> list[str]:
        names = ("slow_one", "quick_one", "old_one")
        return sorted((n for n in names if f">{n}</a>" in html), key=lambda n: html.index(f">{n}</a>"))

    assert order(await (await site.client.get("/history")).text()) == ["slow_one", "quick_one", "old_one"]
    assert order(await (await site.client.get("/history?sort=oldest")).text()) == ["old_one", "quick_one", "slow_one"]
    assert order(await (await site.client.get("/history?sort=slowest")).text())[0] == "slow_one"
    assert order(await (await site.client.get("/history?run=QUICK")).text()) == ["quick_one"]
    assert order(await (await site.client.get("/history?within=3600")).text()) == ["slow_one", "quick_one"]
    page = await (await site.client.get("/history?sort=oldest&within=3600&run=run")).text()
    assert 'value="oldest" selected' in page and 'value="3600" selected' in page and 'value="run"' in page
    for bad in ("sort=sideways", "within=5", "outcome=maybe"):
        response = await site.client.get(f"/history?{bad}")
        assert response.status == 400 and "must be one of" in await response.text()


async def test_ops_page(site: Site) -> None:
    request = await site.store.create("a", queue="email")
    await site.store.approve(request.id, by="root")
    await site.store.create("b", queue="email")
    await site.login("vic")
    html = await (await site.client.get("/ops")).text()
    assert "email" in html
    assert "server" in html  # this server's own heartbeat
    assert "up" in html


async def test_login_logout_and_throttling(site: Site) -> None:
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]
    cookie = page.cookies["apr_login_csrf"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    wrong = await site.client.post("/login", data={"username": "vic", "password": "nope", "login_csrf": token})
    assert wrong.status == 401
    no_csrf = await site.client.post("/login", data={"username": "vic", "password": "x", "login_csrf": "forged"})
    assert no_csrf.status == 403
    csrf = await site.login("vic")
    session = site.client.session.cookie_jar.filter_cookies(site.client.make_url("/"))["apr_session"]
    assert session.value
    assert (await site.client.post("/logout", data={"csrf_token": csrf})).status == 200
    assert (await site.client.get("/queue", allow_redirects=False)).status == 303
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]
    for _ in range(5):
        await site.client.post("/login", data={"username": "root", "password": "nope", "login_csrf": token})
    throttled = await site.client.post(
        "/login", data={"username": "root", "password": "correct horse battery", "login_csrf": token}
    )
    assert throttled.status == 429


async def test_session_cookie_flags(site: Site) -> None:
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]
    response = await site.client.post(
        "/login",
        data={"username": "vic", "password": "correct horse battery", "login_csrf": token},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = response.cookies["apr_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert response.headers["Location"] == "/queue"


async def test_login_never_redirects_off_site(site: Site) -> None:
    page = await site.client.get("/login?next=//evil.example/x")
    assert 'value="/queue"' in await page.text()


async def test_error_pages_share_the_look(site: Site) -> None:
    response = await site.client.get("/no/such/page")
    assert response.status == 404
    assert "Back to the queue" in await response.text()


async def test_bulk_decisions_decide_each_row_once_and_say_what_happened_to_each(site: Site) -> None:
    mine = [await site.store.create(f"send {n}", {"n": n}, queue="email") for n in range(3)]
    elsewhere = await site.store.create("restart", queue="ops")  # rita does not review ops
    await site.store.approve(mine[1].id, by="root")  # decided in another tab a moment ago
    csrf = await site.login("rita")
    queue = await (await site.client.get("/queue")).text()
    assert 'form="bulk-form"' in queue and 'action="/queue/decide"' in queue
    ids = [m.id for m in mine] + [elsewhere.id, mine[0].id]  # a duplicate counts once
    data = [("csrf_token", csrf), ("outcome", "approve")] + [("id", i) for i in ids]
    posted = await site.client.post("/queue/decide", data=data, allow_redirects=False)
    assert posted.status == 303 and posted.headers["Location"] == "/queue"
    page = await (await site.client.get("/queue")).text()
    assert "2 of 4 approved." in page
    assert "Already approved by root at" in page
    assert "This request is in the queue &#39;ops&#39;" in page
    assert [(await site.store.get(m.id)).decided_by for m in mine] == ["rita", "root", "rita"]
    assert (await site.store.get(elsewhere.id)).pending
    assert "2 of 4 approved." not in await (await site.client.get("/queue")).text()  # said once
    audit = await site.store.read_audit(limit=50)
    approvals_by_rita = [e for e in audit.events if e.type == "approved" and e.actor == "rita"]
    assert sorted(e.request_id for e in approvals_by_rita) == sorted([mine[0].id, mine[2].id])  # one entry each


async def test_bulk_reject_needs_one_reason_for_all(site: Site) -> None:
    rows = [await site.store.create(f"delete {n}", queue="email") for n in range(2)]
    csrf = await site.login("rita")
    data = [("csrf_token", csrf), ("outcome", "reject")] + [("id", r.id) for r in rows]
    refused = await (await site.client.post("/queue/decide", data=data)).text()
    assert "A rejection needs a reason the agents can act on" in refused
    assert all([(await site.store.get(r.id)).pending for r in rows])
    data.append(("reason", "not during the freeze"))
    page = await (await site.client.post("/queue/decide", data=data)).text()
    assert "2 of 2 rejected." in page
    assert {(await site.store.get(r.id)).reason for r in rows} == {"not during the freeze"}
    assert (await site.client.post("/queue/decide", data=[("outcome", "approve"), ("id", rows[0].id)])).status == 403


async def test_identical_requests_group_with_a_count_and_approve_together(site: Site) -> None:
    same = [await site.store.create("purge_cache", {"zone": "eu"}, queue="email", agent_id="cdn") for _ in range(3)]
    other_args = await site.store.create("purge_cache", {"zone": "us"}, queue="email", agent_id="cdn")
    other_agent = await site.store.create("purge_cache", {"zone": "eu"}, queue="email", agent_id="web")
    csrf = await site.login("rita")
    page = await (await site.client.get("/queue?group=1")).text()
    rows = re.findall(r'<tr id="row-([0-9a-f]+)"', page)
    assert rows == [same[0].id, other_args.id, other_agent.id]
    assert "5 requests in 3 groups" in page and '× <span class="n">3</span>' in page
    assert f'data-ids="{" ".join(s.id for s in same)}"' in page and 'Approve all <span class="n">3</span>' in page
    assert 'name="group" value="1" checked' in page and 'data-filtered="yes"' in page
    assert len(re.findall(r'<tr id="row-', await (await site.client.get("/queue")).text())) == 5  # not by default

    group_box = re.search(r'name="ids" value="([0-9a-f ]+)"', page)
    assert group_box is not None and group_box.group(1).split() == [s.id for s in same]
    data = [("csrf_token", csrf), ("outcome", "approve"), ("ids", group_box.group(1)), ("back", "group=1")]
    posted = await site.client.post("/queue/decide", data=data, allow_redirects=False)
    assert posted.status == 303 and posted.headers["Location"] == "/queue?group=1"
    assert "3 of 3 approved." in await (await site.client.get("/queue?group=1")).text()
    assert [(await site.store.get(s.id)).decided_by for s in same] == ["rita"] * 3
    assert (await site.store.get(other_args.id)).pending and (await site.store.get(other_agent.id)).pending
    audit = await site.store.read_audit(limit=50)
    assert sorted(e.request_id for e in audit.events if e.type == "approved") == sorted(s.id for s in same)
    too_many = [("csrf_token", csrf), ("outcome", "approve"), ("ids", " ".join(["0" * 32] * 50 + ["1" * 32] * 51))]
    assert (await site.client.post("/queue/decide", data=too_many)).status == 200  # 2 distinct ids, none real
    many = " ".join(f"{n:032x}" for n in range(101))
    refused = await site.client.post(
        "/queue/decide", data=[("csrf_token", csrf), ("outcome", "approve"), ("ids", many)]
    )
    assert refused.status == 400 and "at most 100" in await refused.text()


async def test_viewers_get_no_selection_boxes(site: Site) -> None:
    await site.store.create("send", queue="email")
    await site.login("vic")
    page = await (await site.client.get("/queue")).text()
    assert 'form="bulk-form"' not in page and 'id="bulk-form"' not in page


async def test_the_queue_filters_and_sorts_and_starts_on_my_queues(site: Site) -> None:
    old = await site.store.create("refund", {"n": 1}, queue="email", agent_id="billing-bot", run_id="run-a")
    soon = await site.store.create("refund", {"n": 2}, queue="email", agent_id="other-bot", timeout=60)
    await site.store.create("restart", queue="ops", requested_by="deploy-bot")
    await site.login("rita")  # reviews "email" only

    def rows(page: str) -> list[str]:
        return re.findall(r'<tr id="row-([0-9a-f]+)"', page)

    mine = await (await site.client.get("/queue")).text()
    assert rows(mine) == [old.id, soon.id] and '<option value="mine" selected>my queues</option>' in mine
    everything = await (await site.client.get("/queue?queue=")).text()
    assert len(rows(everything)) == 3
    assert rows(await (await site.client.get("/queue?queue=&agent=BILLING")).text()) == [old.id]
    assert rows(await (await site.client.get("/queue?run=run-a")).text()) == [old.id]
    assert rows(await (await site.client.get("/queue?sort=expiring")).text()) == [soon.id, old.id]
    assert rows(await (await site.client.get("/queue?sort=newest")).text()) == [soon.id, old.id]
    assert rows(await (await site.client.get("/queue?age=300")).text()) == []  # nothing has waited 5 min
    assert (await site.client.get("/queue?sort=sideways")).status == 400
