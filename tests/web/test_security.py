"""Hostile input is rendered inert, and the app answers with security headers."""

from __future__ import annotations

from tests.web.conftest import Site

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
