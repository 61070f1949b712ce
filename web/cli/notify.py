"""`approvals notify test` and `approvals notify run`: try every notification target; run a notifier alone."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
import uuid
from typing import Any

import aiohttp

from approvals import ApprovalClient
from approvals.connections import pubsub_client
from approvals.notify import Notifier, NotifyConfig, email, slack
from approvals.notify.config import EmailTarget, SlackTarget, Target
from approvals.notify.notifier import post_webhook

from ..access.users import UserStore
from ..notify.links import may_decide_by_email
from ..settings import WebSettings


def add_commands(commands: Any) -> None:
    notify = commands.add_parser("notify", help="notifications: try every target, or run a notifier process")
    actions = notify.add_subparsers(required=True, metavar="action")
    test = actions.add_parser("test", help="send a test message to every configured target and say what happened")
    test.set_defaults(run=_test)
    run = actions.add_parser(
        "run", help="run a notifier on its own (servers run one too when notifications are configured)"
    )
    run.set_defaults(run=_run)


def _test(args: argparse.Namespace) -> int:
    config = WebSettings.from_env().notify
    targets = config.every_target()
    if not targets:
        print("No notification target is configured: set APPROVALS_WEBHOOK_URL (and APPROVALS_WEBHOOK_SECRET),")
        print("APPROVALS_NOTIFY_EMAIL (and APPROVALS_SMTP_URL), or name per-queue targets in the file")
        print("APPROVALS_NOTIFY_CONFIG points to.")
        return 1
    return asyncio.run(_try(config, targets))


async def _try(config: NotifyConfig, targets: list[tuple[str, Target]]) -> int:
    failed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for where, target in targets:
            delivery = uuid.uuid4().hex
            message = "A test from `approvals notify test`: this target is reachable."
            body = json.dumps({"delivery_id": delivery, "event": "test", "at": time.time(), "message": message})
            if isinstance(target, EmailTarget):
                assert config.smtp is not None  # the configuration insists on a server for recipients
                error = await email.send(config.smtp, email.test_message(config, target.to), 10.0)
                what = f"email {target.to} via {config.smtp.hostname}:{config.smtp.port}"
            elif isinstance(target, SlackTarget):
                error = await slack.send_test(config, target.channel_name)
                what = f"slack {target.channel_name}"
            else:
                error = await post_webhook(http, target, delivery, "test", body)
                what = f"webhook {target.url}"
            failed += error is not None
            print(f"{'ok    ' if error is None else 'FAILED'} {what} ({where})" + (f": {error}" if error else ""))
    print(f"{len(targets) - failed} of {len(targets)} targets took the test message (rules: {config.source}).")
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    settings = WebSettings.from_env()
    if not settings.notify.enabled:
        print("No notification target is configured: nothing to run (see `approvals notify test`).")
        return 1

    async def run() -> None:
        async with ApprovalClient(settings.approvals, heartbeat="notifier") as client:
            reader, users = pubsub_client(settings.approvals, role="notify"), UserStore(client.store)
            notifier = Notifier(client.store, reader, settings.notify, may_decide=may_decide_by_email(users))
            await notifier.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(f"approvals notifier running on {settings.approvals.display_url} (Ctrl+C to stop)", flush=True)
            await stop.wait()
            await notifier.aclose()

    asyncio.run(run())
    return 0
