"""`approvals demo`: the dashboard with demo agents and an in-process worker, on the embedded store.

Two users (`demo`, and `ops` for the runs `demo` starts: nobody approves their own), an API token,
and the embedded store served on a local port, so a second terminal can use the `approvals`
command and the README's curl examples against the running demo. The banner comes last, and a
reminder line now and then keeps the address and password within reach.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from approvals import ApprovalClient
from approvals.connections import embedded_server
from approvals.notify import NotifyConfig
from approvals.notify.config import SmtpServer
from approvals.notify.mailcatcher import MailCatcher
from approvals.tasks import BackgroundTasks

from .. import appkeys
from ..access.users import Role, UnknownUser
from ..app import create_app
from ..notify.mailbox import setup_mailbox
from ..settings import WebSettings
from .listen import ensure_port_free

log = logging.getLogger("approvals.demo")

DEFAULT_STORE_PORT = 6390
REMIND_EVERY = 300.0  # seconds between the one-line reminders of where the demo is and how to sign in
USERS = ("demo", "ops")
DEMO_EMAILS = ("demo@demo.invalid",)  # demo's address: the demo mails go to it (ops has none)


def add_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the dashboard with demo agents, on the embedded store (no Redis server, no API key)",
        description="The dashboard and API, four demo agents that keep asking for approval, and an in-process "
        "worker for agent runs, on the embedded store (nothing is kept after Ctrl+C).",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to serve the dashboard on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="port of the dashboard and API (default 8080)")
    demo.add_argument(
        "--store-port",
        type=int,
        default=DEFAULT_STORE_PORT,
        help=f"serve the embedded store on 127.0.0.1 at this port, for the approvals command in another terminal "
        f"(default {DEFAULT_STORE_PORT}; 0: any free port; -1: do not serve it)",
    )
    demo.add_argument("--agents", type=int, default=4, help="how many demo agents keep asking (default 4)")
    demo.add_argument("--agent", help="agent profile for runs: demo (the default), litellm or module:function")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "in_process_worker": True}
    if args.agent:
        overrides["agent_profile"] = args.agent
    settings = WebSettings.from_env(**overrides)
    ensure_port_free(args.host, args.port)
    logging.getLogger("approvals").setLevel(logging.WARNING)  # housekeeping stays out of the way
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's, for the demo's mail catcher
    if settings.approvals.embedded:
        with _quiet("approvals"):
            embedded_server()  # the banner says what its warning would: the store keeps nothing
    app, demo = demo_app(settings, args.agents, args.store_port if settings.approvals.embedded else -1)
    web.run_app(app, host=args.host, port=args.port, print=demo.banner, handler_cancellation=True)
    return 0


def demo_app(settings: WebSettings, agents: int, store_port: int) -> tuple[web.Application, Demo]:
    """The demo's app: the dashboard, its users, agents and store, and (without a mail server) its mailbox."""
    mailbox = None
    if settings.notify.smtp is None:  # no mail server configured: the demo catches its own mail
        mailbox = MailCatcher()
        settings = replace(settings, notify=_demo_mail(settings, mailbox))
    demo = Demo(settings, agents, store_port, mailbox)
    app = create_app(settings)
    if mailbox is not None:
        setup_mailbox(app, mailbox)
    app.on_startup.append(demo.add_users)
    app.cleanup_ctx.append(demo.serve_store)
    app.cleanup_ctx.append(demo.run_agents)
    return app, demo


def _demo_mail(settings: WebSettings, mailbox: MailCatcher) -> NotifyConfig:
    """Every request event emailed to the demo's users, through the demo's own SMTP server; links to here.

    A reminder after two minutes, so that the demo shows one without waiting long.
    """
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    rules = settings.notify.rules
    if rules.defaults.remind_after is None:
        rules = rules.model_copy(update={"defaults": rules.defaults.model_copy(update={"remind_after": 120.0})})
    return replace(
        settings.notify,
        public_url=settings.notify.public_url
        if os.environ.get("APPROVALS_PUBLIC_URL")
        else f"http://{host}:{settings.port}",
        smtp=SmtpServer.parse(mailbox.url),
        email_from="approvals@demo.invalid",
        notify_email=(*settings.notify.notify_email, *DEMO_EMAILS),
        rules=rules,
    )


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


@dataclass
class Demo:
    settings: WebSettings
    agents: int
    store_port: int
    mailbox: MailCatcher | None = None
    password: str = field(default_factory=lambda: secrets.token_urlsafe(9))
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}/"

    async def add_users(self, app: web.Application) -> None:
        users = app[appkeys.USERS]
        for name in USERS:
            with contextlib.suppress(UnknownUser):  # a Redis that kept them from an earlier run
                await users.remove(name)
            email = f"{name}@demo.invalid" if f"{name}@demo.invalid" in DEMO_EMAILS else None
            await users.add(name, self.password, Role.ADMIN, email=email)
        self.token = await users.create_token("demo", label="demo")

    async def serve_store(self, app: web.Application) -> AsyncIterator[None]:
        """The embedded store on 127.0.0.1, for other terminals (anyone on this machine may connect)."""
        if self.store_port < 0:
            yield
            return
        import fakeredis

        try:
            server = fakeredis.TcpFakeServer(("127.0.0.1", self.store_port))
        except OSError:
            log.warning("approvals: port %d is taken; serving the demo's store on a free port", self.store_port)
            server = fakeredis.TcpFakeServer(("127.0.0.1", 0))
        server.fake_server = embedded_server()  # the very store this process uses
        self.store_port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name="demo-store", daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()

    async def run_agents(self, app: web.Application) -> AsyncIterator[None]:
        from .demo_agents import agent_loop, run_submitter

        tasks = BackgroundTasks()
        if self.mailbox is not None:
            await self.mailbox.start()
        client = ApprovalClient(self.settings.approvals, requested_by="demo-agents", heartbeat="demo-agents")
        async with client:
            for n in range(1, self.agents + 1):
                tasks.spawn(agent_loop(client, f"agent-{n}"))
            tasks.spawn(run_submitter(app[appkeys.RUNS], self.settings.agent_profile))  # the worker runs them
            tasks.spawn(self._remind())
            yield
            await tasks.aclose()
        if self.mailbox is not None:
            await self.mailbox.aclose()

    async def _remind(self) -> None:
        while True:
            await asyncio.sleep(REMIND_EVERY)
            print(f"--- dashboard {self.url} · sign in as demo (or ops) with {self.password} ---", flush=True)

    def banner(self, _: str) -> None:
        """Printed once the dashboard answers: last, after the start-up lines."""
        api = f"{self.url}api/v1/queues"
        lines = [
            f"approvals demo is running at {self.url}  (Ctrl+C stops it; the embedded store keeps nothing)",
            f"  sign in as   demo  with password  {self.password}",
            "               ops   with the same password: a second admin, to approve the runs demo starts",
            f"  API token    {self.token}",
            f'               curl -H "Authorization: Bearer {self.token}" {api}',
        ]
        if self.mailbox is not None:
            lines += [f"  mail         {self.url}demo/mail  the emails reviewers get, with links that decide"]
        if self.store_port >= 0:
            lines += [
                "  in another terminal, the approvals command works on this demo's store:",
                f"               export REDIS_URL=redis://127.0.0.1:{self.store_port}/0",
                "               approvals status      (from a checkout: .venv/bin/approvals status)",
            ]
        rule = "-" * max(len(line) for line in lines)
        print("\n".join(["", rule, *lines, rule, ""]), flush=True)
