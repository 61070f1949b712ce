"""Hostile input is rendered inert, and the app answers with security headers."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from tests.web.conftest import PASSWORD, Site, SiteFactory
from web.access.users import Role

PAYLOAD = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


async def test_xss_in_actions_arguments_context_and_reasons_is_escaped(site: Site) -> None:
    request = await site.store.create(
        f"delete {PAYLOAD}",
        {"path": IMG, IMG: "key too"},
        queue="email",
        agent_id="agent",
        context={"task": PAYLOAD, "recent_steps": [{"step": 1, "model_output": IMG, "observations": PAYLOAD}]},
    )
    decided = await site.store.create(f"old {PAYLOAD}", queue="email")
    await site.store.reject(decided.id, by="root", reason=IMG)
    await site.login("root")
    pages = [
        await (await site.client.get("/queue")).text(),
        await (await site.client.get(f"/requests/{request.id}")).text(),
        await (await site.client.get(f"/requests/{decided.id}")).text(),
        await (await site.client.get("/history")).text(),
    ]
    for html in pages:
        assert "<script>alert" not in html
        assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]


async def test_security_headers(site: Site) -> None:
    response = await site.client.get("/login")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_static_assets_are_served_by_the_app(site: Site) -> None:
    for path in ("/static/app.css", "/static/live.js"):
        response = await site.client.get(path)
        assert response.status == 200, path
    login = await (await site.client.get("/login")).text()
    assert "http://" not in login and "https://" not in login  # no CDN


async def test_login_never_bounces_off_site_even_with_control_characters(site: Site) -> None:
    page = await site.client.get("/login")
    token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]
    for next_url in ("/\t/evil.example", "/\n/evil.example", "//evil.example", "https://evil.example/", "/\\evil"):
        form = {"username": "vic", "password": PASSWORD, "login_csrf": token, "next": next_url}
        response = await site.client.post("/login", data=form, allow_redirects=False)
        assert response.headers["Location"] == "/queue", next_url
        page = await site.client.get("/login")
        token = (await page.text()).split('name="login_csrf" value="')[1].split('"')[0]


async def test_login_redirect_keeps_the_whole_query(site: Site) -> None:
    response = await site.client.get("/queue?queue=ops&page=2", allow_redirects=False)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query == {"next": ["/queue?queue=ops&page=2"]}


async def test_a_removed_and_re_added_user_does_not_inherit_old_tokens_or_sessions(site: Site) -> None:
    await site.login("rita")
    old_token = site.tokens["rita"]
    await site.users.remove("rita")
    await site.users.add("rita", PASSWORD, Role.ADMIN)
    assert (await site.client.get("/api/v1/queues", headers={"Authorization": f"Bearer {old_token}"})).status == 401
    assert (await site.client.get("/queue", allow_redirects=False)).status == 303  # the old session is void


async def test_unreadable_bodies_and_odd_parameters_are_400s(site: Site) -> None:
    request = await site.store.create("deploy", queue="email")
    csrf = await site.login("root")
    bearer = site.bearer("root")
    api = "/api/v1/approvals"
    json_type = {"Content-Type": "application/json"}
    checks = [
        site.client.post(
            api, data=b'{"action": "x", "args": {"n": ' + b"9" * 5000 + b"}}", headers={**bearer, **json_type}
        ),
        site.client.post(api, data=b"[" * 20000, headers={**bearer, **json_type}),
        site.client.post(
            api, data=b'{"action": "x"}', headers={**bearer, "Content-Type": "application/json; charset=foo"}
        ),
        site.client.post(
            f"/requests/{request.id}/decide",
            data=b"outcome=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        site.client.post(
            f"/requests/{request.id}/decide", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
        ),
        site.client.get(f"{api}?offset=9223372036854775807", headers=bearer),
        site.client.get("/api/v1/audit?after=%D9%A1%D9%A2", headers=bearer),
        site.client.get("/api/v1/audit?after=%C2%B2-0", headers=bearer),
        site.client.get("/api/v1/audit?before=99999999999999999999999", headers=bearer),
        site.client.get("/events", headers={"Last-Event-ID": "not-an-id"}),
    ]
    for number, call in enumerate(checks):
        response = await call
        assert response.status in (400, 403), (number, response.status, await response.text())
    # Odd values in a readable form are refused on the request's page (POST-redirect-GET).
    for edited in ("[" * 20000, "9" * 5000):
        for outcome in ("edit", "preview"):
            data = {"csrf_token": csrf, "outcome": outcome, "edited_args": edited}
            form = await site.client.post(f"/requests/{request.id}/decide", data=data, allow_redirects=False)
            assert form.status == 303 and form.headers["Location"] == f"/requests/{request.id}#edited-args"
            page = await site.client.get(form.headers["Location"])
            assert page.status == 200 and 'id="edited-args-error"' in await page.text()
    assert (await site.store.get(request.id)).pending


async def test_live_stream_ends_when_the_user_signs_out(make_site: SiteFactory) -> None:
    site = await make_site()
    csrf = await site.login("vic")
    stream = await site.client.get("/events")
    await asyncio.wait_for(stream.content.readline(), 5)
    await site.client.post("/logout", data={"csrf_token": csrf})
    await site.store.create("after logout", queue="email")
    body = await asyncio.wait_for(stream.content.read(), 5)  # the server ends the stream
    assert b"after logout" not in body


async def test_streams_carry_security_headers_too(site: Site) -> None:
    await site.login("vic")
    stream = await site.client.get("/events")
    assert "default-src 'self'" in stream.headers["Content-Security-Policy"]
    stream.close()
