"""Benchmark: notifications never slow the agents that ask, and a hung receiver holds up nobody else.

    python bench/notify.py [--requests 2000] [--rate 100] [--hang 30]

On a real Redis (REDIS_URL, or a throwaway redis-server), as deployed: this process is the agents,
creating requests paced at `--rate` per second; `approvals notify run` is the notifier, in a process
of its own; the receivers are a third process: a webhook that answers at once, a real SMTP server
(aiosmtpd), and a webhook that hangs for `--hang` seconds per delivery (a dead receiver behind a
firewall; 0: none). The requests are created twice: with no notifier running, then with it sending
every event to all three.

Prints the creation latency both ways, and how long each request's `created` event took to reach the
good webhook and the mail server. Targets: creating is no slower with the notifier busy (p99 within
2 ms of without); every event reaches the good webhook and the mail server, with created -> delivered
p99 <= 1 s, whatever the hung receiver does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis
from aiohttp import web

from approvals import ApprovalClient, Settings
from approvals.notify.mailcatcher import MailCatcher
from bench.dashboard import pct
from bench.waiters import with_redis
from tests.redis_server import free_port

SECRET = "bench-secret"
ARRIVED = "bench:notify:arrived"  # hash: request id -> when the good webhook got its `created` event
MAILED = "bench:notify:mailed"  # hash: request id -> when the mail server got its `created` email
_REQUEST_ID = re.compile(r"/requests/([0-9a-f]{32})")


async def serve_receivers(redis_url: str, port: int, smtp_port: int, hang: float) -> None:
    """The receivers' process: the two webhooks and the mail server, noting arrivals in Redis."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)

    async def good(request: web.Request) -> web.Response:
        body = await request.json()
        if body["event"] == "created":
            await redis.hset(ARRIVED, body["request"]["id"], time.time())
        return web.Response(text="ok")

    async def hung(request: web.Request) -> web.Response:
        await asyncio.sleep(hang)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/good", good)
    app.router.add_post("/hung", hung)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with MailCatcher(port=smtp_port, keep=1_000_000) as mailbox:
        seen = 0
        while True:  # note each new mail's request (the mail holds its dashboard link)
            await mailbox.wait_for(seen + 1, timeout=3600)
            fresh = list(mailbox.mails)[seen:]  # it keeps them all
            seen += len(fresh)
            for mail in fresh:
                if "Approval needed" in mail.subject and (found := _REQUEST_ID.search(mail.text)):
                    await redis.hset(MAILED, found.group(1), mail.at)


async def create_paced(
    client: ApprovalClient, count: int, rate: float, tag: str
) -> tuple[list[float], dict[str, float]]:
    """Create `count` requests at `rate` per second: (latency of each, created_at by id)."""
    latencies: list[float] = []
    created: dict[str, float] = {}

    async def one(n: int) -> None:
        started = time.perf_counter()
        request = await client.create("deploy", {"n": n, "run": tag}, queue="ops", timeout=3600)
        latencies.append(time.perf_counter() - started)
        created[request.id] = request.created_at

    tasks, start = [], time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one(n)))
    await asyncio.gather(*tasks)
    return latencies, created


async def main(count: int, rate: float, hang: float, redis_url: str | None) -> int:
    url, server = with_redis(redis_url)
    prefix = f"bench-notify-{time.time_ns()}:"
    port, smtp_port = free_port(), free_port()
    receivers = subprocess.Popen([sys.executable, __file__, "--serve-receivers", url, str(port), str(smtp_port),
                                  str(hang)])  # fmt: skip
    rules = Path(tempfile.mkdtemp(prefix="bench-notify-")) / "notify.toml"
    hooks = [f"http://127.0.0.1:{port}/good"] + ([f"http://127.0.0.1:{port}/hung"] if hang else [])
    rules.write_text(f"[queues.ops]\nwebhooks = {hooks!r}\nemail = ['oncall@example.com']\n".replace("'", '"'))
    smtp = f"smtp://127.0.0.1:{smtp_port}?starttls=off"
    env = {**os.environ, "REDIS_URL": url, "APPROVALS_PREFIX": prefix, "APPROVALS_NOTIFY_CONFIG": str(rules),
           "APPROVALS_WEBHOOK_SECRET": SECRET, "APPROVALS_SMTP_URL": smtp}  # fmt: skip
    notifier = None
    redis = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await asyncio.sleep(1.0)  # the receivers start
        async with ApprovalClient(Settings(redis_url=url, prefix=prefix), requested_by="bench") as client:
            before, _ = await create_paced(client, count, rate, "without")
            notifier = subprocess.Popen([sys.executable, "-m", "web.cli", "notify", "run"], env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            await asyncio.sleep(2.0)  # it starts, and joins the consumer group at the end of the stream
            after, created = await create_paced(client, count, rate, "with")
            deadline = time.time() + 60
            while time.time() < deadline and (await redis.hlen(ARRIVED) < count or await redis.hlen(MAILED) < count):
                await asyncio.sleep(0.1)
        arrived = {k: float(v) for k, v in (await redis.hgetall(ARRIVED)).items()}
        mailed = {k: float(v) for k, v in (await redis.hgetall(MAILED)).items()}
    finally:
        await redis.delete(ARRIVED, MAILED)
        await redis.aclose()
        for process in (notifier, receivers, server):  # in this order: Redis last
            if process is not None:
                process.terminate()
                process.wait()
    to_webhook = [arrived[i] - at for i, at in created.items() if i in arrived]
    to_mail = [mailed[i] - at for i, at in created.items() if i in mailed]
    hung = f"a third that hangs {hang:g} s per delivery" if hang else "no hung receiver"
    print(f"{count} requests at {rate:g}/s; notifier in its own process; a webhook, a mail server and {hung}")
    print(f"{'':40} {'p50':>9} {'p99':>9}")
    print(f"{'create, no notifier':40} {pct(before, 0.5):>7.2f}ms {pct(before, 0.99):>7.2f}ms")
    print(f"{'create, notifier busy':40} {pct(after, 0.5):>7.2f}ms {pct(after, 0.99):>7.2f}ms")
    for name, values in (("created -> webhook got it", to_webhook), ("created -> mail server got it", to_mail)):
        if values:
            print(f"{name:40} {pct(values, 0.5):>7.1f}ms {pct(values, 0.99):>7.1f}ms")
    print(f"delivered: webhook {len(to_webhook)} of {count}, mail {len(to_mail)} of {count}")
    checks = {
        "creating no slower with the notifier busy (p99 within 2 ms)": pct(after, 0.99) <= pct(before, 0.99) + 2.0,
        "every event reached the webhook and the mail server": len(to_webhook) == count and len(to_mail) == count,
        "created -> delivered p99 <= 1 s": bool(to_webhook and to_mail)
        and max(pct(to_webhook, 0.99), pct(to_mail, 0.99)) <= 1000,
    }
    for what, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--serve-receivers":
        _, _, redis_url, port, smtp_port, hang = sys.argv
        asyncio.run(serve_receivers(redis_url, int(port), int(smtp_port), float(hang)))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="requests created per second")
    parser.add_argument("--hang", type=float, default=30.0, help="seconds the hung webhook takes (0: none)")
    parser.add_argument("--redis-url", default=None, help="default: a throwaway redis-server")
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.requests, options.rate, options.hang, options.redis_url)))
