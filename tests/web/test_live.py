"""Live updates over server-sent events, fed from the audit stream."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import ClientResponse, web

from approvals import Settings
from tests.redis_server import free_port
from tests.web.conftest import PASSWORD, Site
from web import WebSettings, appkeys, create_app
from web.access.users import Role
from web.http.sse import KEEPALIVE


async def next_event(response: ClientResponse) -> tuple[str, dict, str]:
    """(event, data, id) of the next event, skipping comments."""
    fields: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if not line:
            if "event" in fields:
                return fields["event"], json.loads(fields["data"]), fields["id"]
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value


async def test_created_and_decided_requests_reach_open_browsers(site: Site) -> None:
    await site.login("root")
    response = await site.client.get("/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    await asyncio.wait_for(response.content.readline(), 5)  # ": connected"
    request = await site.store.create("send <b>report</b>", {"to": "x"}, queue="email", requested_by="bot")
    event, data, first_id = await next_event(response)
    assert (event, data["id"], data["queue"]) == ("created", request.id, "email")
    assert f'id="row-{request.id}"' in data["html"]
    assert "send &lt;b&gt;report&lt;/b&gt;" in data["html"]
    assert 'value="approve"' in data["html"]  # root may decide it
    await site.store.approve(request.id, by="root")
    event, data, _ = await next_event(response)
    assert (event, data["id"], data["type"]) == ("decided", request.id, "approved")
    response.close()

    # A browser that reconnects with Last-Event-ID gets what it missed.
    missed = await site.store.create("while away", queue="email")
    again = await site.client.get("/events", headers={"Last-Event-ID": first_id})
    replayed = [await next_event(again) for _ in range(2)]
    assert [(e, d["id"]) for e, d, _ in replayed] == [("decided", request.id), ("created", missed.id)]
    again.close()


async def test_a_stopping_server_ends_its_live_streams_at_once(settings: Settings) -> None:
    """Open streams (queue rows, a run list) end as the server stops, not at their next keep-alive."""
    app = create_app(WebSettings(approvals=settings))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await app[appkeys.USERS].add("vic", PASSWORD, Role.VIEWER)
    headers = {"Authorization": f"Bearer {await app[appkeys.USERS].create_token('vic')}"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as browser:
        streams = [await browser.get(path) for path in ("/events", "/runs/events")]
        for stream in streams:
            assert stream.status == 200 and (await stream.content.readline()).startswith(b":")
        loop = asyncio.get_running_loop()
        stopping = loop.time()
        await runner.cleanup()
        assert loop.time() - stopping < KEEPALIVE / 3  # the shutdown did not wait for a keep-alive
        for stream in streams:
            await asyncio.wait_for(stream.content.read(), 5)  # read to its end: the stream ended
            assert stream.content.at_eof()
