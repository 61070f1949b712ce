"""Live updates over server-sent events, fed from the audit stream."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientResponse

from tests.web.conftest import Site


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
