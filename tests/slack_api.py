"""A stand-in for Slack on loopback: the Web API methods we call and a response_url, recording every call.

The real AsyncWebClient is pointed at it with `base_url`; answers are Slack-shaped (`{"ok": true, ...}`),
or what a test queued in `failures`. `payload()` builds what Slack posts to the Request URL, signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from tests.redis_server import free_port

TOKEN = "xoxb-test-token"
SIGNING_SECRET = "slack-signing-secret-for-tests"


@dataclass
class Failure:
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": False, "error": "internal_error"})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SlackApi:
    url: str  # the Web API's base_url
    response_url: str  # where interactions' response_url posts go
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # users.info answers by user id
    failures: list[Failure] = field(default_factory=list)  # the next answers, whatever is asked
    channels: dict[str, str] = field(default_factory=dict)  # name -> id

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.called(method)) < count:
                await asyncio.sleep(0.01)
        return self.called(method)

    async def wait_for_response(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.responses) < count:
                await asyncio.sleep(0.01)
        return self.responses

    def person(self, user_id: str, email: str | None, *, confirmed: bool = True) -> None:
        """What users.info says about `user_id`."""
        profile = {"email": email} if email else {}
        self.users[user_id] = {"id": user_id, "is_email_confirmed": confirmed, "deleted": False, "profile": profile}

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method in ("chat.postMessage", "chat.update"):
            given = args["channel"]
            channel = given if given.startswith("C") else self.channels.setdefault(given, f"C{len(self.channels):08d}")
            ts = args.get("ts") or f"{time.time():.6f}"
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}
        if method == "users.info":
            user = self.users.get(args.get("user", ""))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0001", **args.get("view", {})}}
        return {"ok": True}


async def _arguments(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        args |= await request.json()
    elif request.can_read_body:
        args |= dict(await request.post())
    for name in ("view", "blocks"):  # sent form-encoded as JSON strings
        if isinstance(args.get(name), str):
            args[name] = json.loads(args[name])
    return args


@contextlib.asynccontextmanager
async def slack_api() -> AsyncIterator[SlackApi]:
    port = free_port()
    api = SlackApi(f"http://127.0.0.1:{port}/api/", f"http://127.0.0.1:{port}/respond")

    async def method(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "not_authed"})
        args = await _arguments(request)
        api.calls.append((name, args))
        if api.failures:
            failure = api.failures.pop(0)
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        return web.json_response(api.answer(name, args))

    async def respond(request: web.Request) -> web.Response:
        api.responses.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/api/{method}", method)
    app.router.add_post("/respond", respond)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield api
    await runner.cleanup()


def signed(body: str, *, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: its timestamp, and the signature of both."""
    timestamp = str(int(time.time() if at is None else at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body) or ""
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip


def click(api: SlackApi, user: str, action: str, request_id: str) -> str:
    """The form body of a block_actions payload: `user` clicked `action` (approve | reject)."""
    payload = {
        "type": "block_actions", "user": {"id": user, "team_id": "T0001"}, "team": {"id": "T0001"},
        "trigger_id": f"trigger-{user}", "response_url": api.response_url,
        "actions": [{"action_id": action, "block_id": "decide", "value": request_id, "type": "button",
                     "action_ts": f"{time.time():.6f}"}],  # every click's payload differs, as Slack's do
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


def submit(user: str, request_id: str, reason: str) -> str:
    """The form body of the reject modal's view_submission."""
    view = {"callback_id": "reject", "private_metadata": request_id,
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}}}  # fmt: skip
    payload = {"type": "view_submission", "user": {"id": user}, "team": {"id": "T0001"}, "view": view}
    return urlencode({"payload": json.dumps(payload)})
