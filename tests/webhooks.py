"""A webhook receiver on loopback for the notification tests: records what it got, answers as told."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from approvals import Settings
from tests.redis_server import free_port

SECRET = "s3cret-for-tests"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Received:
    event: str
    delivery: str
    signature: str
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A webhook receiver: records every POST; answers with `statuses` in turn (then 200)."""

    url: str
    got: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.got) < count:
                await asyncio.sleep(0.02)
        return self.got


@contextlib.asynccontextmanager
async def receivers() -> AsyncIterator[Callable[[str], Receiver]]:
    """Receivers at paths of one local server: receiver("/a") is its own receiver."""
    receivers: dict[str, Receiver] = {}
    port = free_port()

    async def handle(request: web.Request) -> web.Response:
        me = receivers[request.path]
        if me.delay:
            await asyncio.sleep(me.delay)
        me.got.append(Received(
            request.headers["X-Approvals-Event"], request.headers["X-Approvals-Delivery"],
            request.headers["X-Approvals-Signature"], await request.read(),
        ))  # fmt: skip
        return web.Response(status=me.statuses.pop(0) if me.statuses else 200)

    app = web.Application()
    app.router.add_post("/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    def make(path: str) -> Receiver:
        receivers[path] = Receiver(f"http://127.0.0.1:{port}{path}")
        return receivers[path]

    yield make
    await runner.cleanup()


def verified(received: Received) -> bool:
    """How a receiver checks a delivery (the README's example, in short)."""
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), received.signature.encode())


async def notify_test(settings: Settings, **environment: str) -> tuple[int, str]:
    """Run `approvals notify test` on `settings`' Redis with these variables: (exit code, what it printed).

    Proxies are left out: the receivers are on loopback.
    """
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env |= {"REDIS_URL": settings.redis_url or "", "APPROVALS_PREFIX": settings.prefix, **environment}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web.cli", "notify", "test", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    return process.returncode or 0, out
