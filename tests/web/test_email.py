"""Email through a real SMTP server on loopback (aiosmtpd), and the one-click decision links it carries.

A GET of a link never decides; the POST does, once, as the recipient, while the request still waits with
the arguments emailed. Forged, replayed and expired links, links for decided requests, for people who may
not decide, or whose form lacks its CSRF token are refused: nothing decided, and a `refused` audit entry.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from approvals import ApprovalRequest, AuditEvent, Settings, Status
from approvals.notify import NotifyConfig
from approvals.notify import email as mail
from approvals.notify.config import RulesFile, SmtpServer
from approvals.notify.links import link_key, make_link
from approvals.notify.mailcatcher import CaughtMail, MailCatcher
from tests.web.conftest import PASSWORD, Site, SiteFactory, csrf_of
from tests.webhooks import notify_test
from web import WebSettings, appkeys, create_app
from web.access.users import Role
from web.notify import refusals
from web.notify.mailbox import setup_mailbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def mailbox() -> AsyncIterator[MailCatcher]:
    async with MailCatcher() as catcher:
        yield catcher


@dataclass
class Mailed:
    site: Site
    mailbox: MailCatcher

    async def ask(
        self, action: str = "refund", args: dict[str, object] | None = None, **options: object
    ) -> ApprovalRequest:
        args = {"order": "A-17", "amount": 120} if args is None else args
        return await self.site.store.create(action, args, queue="payments", **options)

    async def links(self, request: ApprovalRequest, to: str = "erin@example.com") -> dict[str, str]:
        """The decision links (as paths of this site) in the email `to` got about `request`."""
        async with asyncio.timeout(10):
            while True:
                for mail in self.mailbox.mails:
                    if to in mail.to and request.id in mail.text:
                        return {o: path(u) for o, u in re.findall(r"(Approve|Reject)[^:]*: (\S+/links/\S+)", mail.text)}
                await asyncio.sleep(0.02)

    async def refusals(self) -> list[AuditEvent]:
        page = await self.site.store.read_audit(limit=100)
        return [e for e in page.events if e.type == "refused"]


def path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.fixture
async def mailed(make_site: SiteFactory, mailbox: MailCatcher) -> Mailed:
    config = NotifyConfig(
        public_url="http://approvals.test",
        smtp=SmtpServer.parse(mailbox.url),
        email_from="approvals@example.com",
        rules=RulesFile.model_validate({"queues": {"payments": {"email": ["erin@example.com", "pat@example.com"]}}}),
    )
    site = await make_site(notify=config)
    await site.users.add("erin", PASSWORD, Role.REVIEWER, ("payments",), email="erin@example.com")
    await site.users.add("pat", PASSWORD, Role.REVIEWER, ("ops",), email="pat@example.com")  # not payments
    return Mailed(site, mailbox)


async def test_each_recipient_gets_the_request_with_links_of_their_own(mailed: Mailed) -> None:
    context = {"task": "Refund order A-17", "step": 3, "customer_tier": "gold", "history": ["long", "list"]}
    request = await mailed.ask(agent_id="support-bot", context=context, timeout=3600)
    mails = await mailed.mailbox.wait_for(2)
    by_to: dict[str, CaughtMail] = {m.to[0]: m for m in mails}
    assert set(by_to) == {"erin@example.com", "pat@example.com"}
    erin = by_to["erin@example.com"]
    assert erin.subject == "[approvals] Approval needed: refund (payments)"
    assert erin.message["From"] == "approvals@example.com" and erin.message["X-Approvals-Delivery"]
    text = erin.text
    assert "Step: 3" in text and "Customer tier: gold" in text and "History" not in text
    for shown in ("Agent: support-bot", "Task: Refund order A-17", '"amount": 120', "Decide by: ",
                  f"http://approvals.test/requests/{request.id}"):  # fmt: skip
        assert shown in text
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(request.expires_at)) in text
    assert set(await mailed.links(request)) == {"Approve", "Reject"}
    # pat reviews another queue: told, but given no links that could only be refused
    assert await mailed.links(request, "pat@example.com") == {} and "/links/" not in by_to["pat@example.com"].html
    assert "http://approvals.test/links/" in erin.html and "&lt;" not in erin.subject


async def test_the_html_part_escapes_what_the_agent_wrote(mailed: Mailed) -> None:
    await mailed.ask("<script>alert(1)</script>", {"note": "<img src=x onerror=alert(1)>"})
    [mail, *_] = await mailed.mailbox.wait_for(1)
    assert "<script>" not in mail.html and "<img" not in mail.html
    assert "&lt;script&gt;" in mail.html and "&lt;img src=x" in mail.html


async def test_opening_a_link_never_decides_and_confirming_decides_once(mailed: Mailed) -> None:
    site, request = mailed.site, await mailed.ask()
    approve = (await mailed.links(request))["Approve"]
    for _ in range(2):  # a mail scanner, then the person
        page = await site.client.get(approve)
        assert page.status == 200
        html = await page.text()
        assert "Approve refund?" in html and "You decide as <strong>erin</strong>" in html
        assert (await site.store.get(request.id)).pending
    done = await site.client.post(approve, data={"csrf_token": csrf_of(html)})
    assert done.status == 200 and "approved it as <strong>erin</strong>" in await done.text()
    decided = await site.store.get(request.id)
    assert (decided.status, decided.decided_by) == (Status.APPROVED, "erin")

    again = await site.client.post(approve, data={"csrf_token": csrf_of(html)})  # replayed
    assert again.status == 409 and "Already approved by erin" in await again.text()
    assert (await site.store.get(request.id)).decided_at == decided.decided_at
    [refused] = await mailed.refusals()
    assert (refused.request_id, refused.actor) == (request.id, "email:erin@example.com")
    assert "Already approved by erin" in (refused.reason or "")


async def test_the_same_link_posted_twice_at_once_decides_once(mailed: Mailed) -> None:
    site, request = mailed.site, await mailed.ask()
    approve = (await mailed.links(request))["Approve"]
    csrf = csrf_of(await (await site.client.get(approve)).text())
    first, second = await asyncio.gather(*(site.client.post(approve, data={"csrf_token": csrf}) for _ in range(2)))
    assert sorted([first.status, second.status]) == [200, 409]
    assert (await site.store.get(request.id)).decided_by == "erin"
    [refused] = await mailed.refusals()
    assert refused.actor == "email:erin@example.com"


async def test_rejecting_asks_why_and_tells_the_agent(mailed: Mailed) -> None:
    site, request = mailed.site, await mailed.ask()
    reject = (await mailed.links(request))["Reject"]
    html = await (await site.client.get(reject)).text()
    assert "Why do you reject it?" in html
    empty = await site.client.post(reject, data={"csrf_token": csrf_of(html), "reason": "  "})
    assert empty.status == 400 and "Say why you reject it" in await empty.text()
    assert (await site.store.get(request.id)).pending and not await mailed.refusals()
    done = await site.client.post(reject, data={"csrf_token": csrf_of(html), "reason": "customer already refunded"})
    assert done.status == 200
    decided = await site.store.get(request.id)
    assert (decided.status, decided.decided_by, decided.reason) == (
        Status.REJECTED,
        "erin",
        "customer already refunded",
    )


async def test_a_post_without_the_pages_csrf_token_decides_nothing(mailed: Mailed) -> None:
    site, request = mailed.site, await mailed.ask()
    approve = (await mailed.links(request))["Approve"]
    no_cookie = await site.client.post(approve, data={"csrf_token": "guessed"})
    assert no_cookie.status == 403 and "form expired" in await no_cookie.text()
    await site.client.get(approve)  # the cookie is set; the form's token is not sent
    wrong = await site.client.post(approve, data={"csrf_token": "guessed"})
    assert wrong.status == 403
    assert (await site.store.get(request.id)).pending


async def test_forged_links_are_refused_and_noted(mailed: Mailed) -> None:
    site, request = mailed.site, await mailed.ask()
    approve = (await mailed.links(request))["Approve"]
    csrf = csrf_of(await (await site.client.get(approve)).text())
    body, _, signature = approve.removeprefix("/links/").partition(".")
    forged_signature = f"/links/{body}.{signature[:-2]}AA"
    other_key = make_link(b"not-the-key", request.id, "approve", "erin@example.com", request.args, request.expires_at)
    for forged in (forged_signature, f"/links/{other_key}", "/links/garbage", "/links/" + "x" * 3000):
        page = await site.client.get(forged)
        assert page.status == 400 and "not a decision link this site made" in await page.text()
        posted = await site.client.post(forged, data={"csrf_token": csrf})
        assert posted.status == 400
    assert (await site.store.get(request.id)).pending
    refusals = await mailed.refusals()
    assert len(refusals) == 4
    assert {r.actor for r in refusals[-2:]} == {"forged email link (claims erin@example.com)"}
    assert all("not a decision link" in (r.reason or "") for r in refusals)
    await site.login("vic")
    ops = await (await site.client.get("/ops")).text()
    assert "Refused decision attempts" in ops and ops.count("forged email link (claims erin@example.com)") == 2
    metrics = await (await site.client.get("/metrics")).text()
    assert 'approvals_refused_attempts_total{via="email"} 4.0' in metrics


async def test_odd_tokens_are_refused_plainly(mailed: Mailed) -> None:
    site, request = mailed.site, await mailed.ask()
    csrf = csrf_of(await (await site.client.get((await mailed.links(request))["Approve"])).text())
    deep = base64.urlsafe_b64encode(b"[" * 1400).decode().rstrip("=")
    for token in ("abc.%C3%A9", "%C3%A9.abc", f"{deep}.x", "eyJ" + "x" * 50 + ".y", "a.b", "x."):
        page = await site.client.get(f"/links/{token}")
        assert page.status == 400 and page.headers["Cache-Control"] == "no-store", token
        posted = await site.client.post(f"/links/{token}", data={"csrf_token": csrf})
        assert posted.status == 400, token
    assert (await site.store.get(request.id)).pending


async def test_a_flood_of_forged_links_cannot_push_real_entries_out_of_the_audit(
    mailed: Mailed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refusals, "LIMIT", 3)
    site, request = mailed.site, await mailed.ask()
    csrf = csrf_of(await (await site.client.get((await mailed.links(request))["Approve"])).text())
    statuses = [(await site.client.post(f"/links/forged{n}", data={"csrf_token": csrf})).status for n in range(5)]
    assert statuses == [400, 400, 400, 429, 429]
    assert len(await mailed.refusals()) == 3
    approve = (await mailed.links(request))["Approve"]  # refused attempts never stop a good link
    assert (await site.client.post(approve, data={"csrf_token": csrf})).status == 200


async def test_links_that_no_longer_fit_the_request_are_refused(mailed: Mailed) -> None:
    site = mailed.site
    key = await link_key(site.store)

    usable = await mailed.ask()
    csrf = csrf_of(await (await site.client.get((await mailed.links(usable))["Approve"])).text())  # the cookie's

    async def attempt(link: str) -> tuple[int, str]:
        seen = await site.client.get(f"/links/{link}")
        posted = await site.client.post(f"/links/{link}", data={"csrf_token": csrf})
        assert seen.status == posted.status  # the page says beforehand what the POST would
        return posted.status, await posted.text()

    asked = await mailed.ask()
    expired = make_link(key, asked.id, "approve", "erin@example.com", asked.args, time.time() - 1)
    assert (await attempt(expired))[0] == 410

    changed = make_link(
        key, asked.id, "approve", "erin@example.com", {"order": "A-17", "amount": 9999}, asked.expires_at
    )
    status, text = await attempt(changed)
    assert status == 409 and "arguments are not the ones this email showed" in text

    not_theirs = make_link(key, asked.id, "approve", "pat@example.com", asked.args, asked.expires_at)
    status, text = await attempt(not_theirs)
    assert status == 403 and "queue &#39;payments&#39;" in text

    stranger = make_link(key, asked.id, "approve", "nobody@example.com", asked.args, asked.expires_at)
    status, text = await attempt(stranger)
    assert status == 403 and "No reviewer has the address nobody@example.com" in text

    own = await mailed.ask(requested_by="erin")
    mine = make_link(key, own.id, "approve", "erin@example.com", own.args, own.expires_at)
    status, text = await attempt(mine)
    assert status == 403 and "You made this request" in text

    await site.store.approve(asked.id, by="root")
    decided = make_link(key, asked.id, "reject", "erin@example.com", asked.args, asked.expires_at)
    status, text = await attempt(decided)
    assert status == 409 and "Already approved by root" in text

    assert (await site.store.get(own.id)).pending and (await site.store.get(asked.id)).decided_by == "root"
    reasons = [r.reason or "" for r in await mailed.refusals()]
    assert len(reasons) == 6 and any("expired" in r for r in reasons) and any("Already approved" in r for r in reasons)


async def test_a_dead_mail_server_is_retried_and_shown_as_failed(make_site: SiteFactory, mailbox: MailCatcher) -> None:
    await mailbox.aclose()  # nothing listens on its port any more
    config = NotifyConfig(smtp=SmtpServer.parse(mailbox.url), notify_email=("erin@example.com",))
    site = await make_site(notify=config)
    notifier = site.client.server.app[appkeys.NOTIFIER]
    notifier.first_retry, notifier.max_attempts = 0.05, 2
    started = time.perf_counter()
    await site.store.create("deploy", {"v": 3}, queue="ops")
    assert time.perf_counter() - started < 1.0
    redis, keys = site.store.redis, site.store.keys
    async with asyncio.timeout(10):
        while (await redis.hgetall(keys.notify_counts)).get("email:failed") != "1":
            await asyncio.sleep(0.05)
    assert (await redis.hgetall(keys.notify_counts))["email:retried"] == "1"
    await site.login("vic")
    ops = await (await site.client.get("/ops")).text()
    assert "<tr><td>email</td><td>0</td><td>1</td><td>1</td></tr>" in ops and "<code>erin@example.com</code>" in ops


async def test_notify_test_sends_a_test_email_and_says_what_happened(settings: Settings, mailbox: MailCatcher) -> None:
    async def try_mail(smtp_url: str) -> tuple[int, str]:
        return await notify_test(settings, APPROVALS_NOTIFY_EMAIL="ops@example.com", APPROVALS_SMTP_URL=smtp_url)

    code, out = await try_mail(mailbox.url)
    assert code == 0 and f"ok     email ops@example.com via 127.0.0.1:{mailbox.port} (APPROVALS_NOTIFY_EMAIL)" in out
    [mail] = mailbox.mails
    assert mail.to == ("ops@example.com",) and "Test message" in mail.subject

    await mailbox.aclose()
    code, out = await try_mail(mailbox.url)
    assert code == 1 and "FAILED email ops@example.com" in out and "0 of 1 targets" in out


async def test_the_demo_mailbox_shows_each_user_only_their_own_mail(
    web_settings: WebSettings, aiohttp_client: Any, mailbox: MailCatcher
) -> None:
    config = NotifyConfig(public_url="http://approvals.test", smtp=SmtpServer.parse(mailbox.url),
                          notify_email=("erin@example.com",))  # fmt: skip
    app = create_app(replace(web_settings, notify=config))
    setup_mailbox(app, mailbox)
    site = Site(await aiohttp_client(app), app[appkeys.CLIENT].store, app[appkeys.USERS], {})
    await site.users.add("erin", PASSWORD, Role.REVIEWER, email="erin@example.com")
    await site.users.add("vic", PASSWORD, Role.VIEWER)
    await site.store.create("fetch", {"url": "https://evil.example/approve"}, queue="ops")
    await mailbox.wait_for(1)
    await site.login("erin")
    page = await (await site.client.get("/demo/mail")).text()
    assert page.count('<a href="http://approvals.test/links/') == 2 and "Approval needed: fetch (ops)" in page
    assert "https://evil.example/approve" in page and '<a href="https://evil' not in page  # shown, not linked
    framed = await site.client.get("/demo/mail/1")  # the mail's own HTML, as a mail client shows it
    assert framed.status == 200 and "script-src" not in framed.headers["Content-Security-Policy"]
    assert framed.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert '<base target="_top">' in await framed.text() and 'src="/demo/mail/1"' in page
    await site.login("vic")  # a viewer must not see, and use, someone else's decision links
    page = await (await site.client.get("/demo/mail")).text()
    assert "/links/" not in page and "You have no email address" in page
    assert (await site.client.get("/demo/mail/1")).status == 404


async def test_mail_goes_through_kept_connections_opened_again_when_the_server_drops_them() -> None:
    async with MailCatcher() as first:
        mailer = mail.Mailer(SmtpServer.parse(first.url), timeout=5.0)
        config = NotifyConfig()
        for n in range(5):
            assert await mailer.send(mail.test_message(config, f"r{n}@example.com")) is None
        assert first.received == 5 and first.connections == 1  # one handshake for all five
        port = first.port
    async with MailCatcher(port=port) as second:  # the server went away and came back: the kept one is dead
        assert await mailer.send(mail.test_message(config, "again@example.com")) is None
        assert second.received == 1 and second.connections == 1
    said = await mailer.send(mail.test_message(config, "nobody@example.com"))  # nothing listens now
    assert said is not None and ("ConnectionRefused" in said or "SMTPConnect" in said), said
    await mailer.aclose()
