"""The `approvals` command: run the platform, the demo, and manage users and API tokens."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from approvals import ApprovalClient, ApprovalError
from approvals.connections import pubsub_client
from approvals.validation import queue_name

from ..access.throttle import LoginThrottle
from ..access.users import Role, UserExists, UserStore
from ..app import create_app
from ..runs.feed import RunFeed
from ..runs.profiles import load_profile
from ..runs.store import RunStore
from ..runs.worker import Worker
from ..settings import WebSettings
from . import demo, integrations, notify
from .listen import ensure_port_free
from .ops import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        result: int = args.run(args)
    except ApprovalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="approvals", description="Human approval of AI agents' actions.")
    commands = parser.add_subparsers(required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the dashboard and API (on REDIS_URL, or the embedded store)")
    serve.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    serve.add_argument("--agent", help="agent profile for runs: demo, litellm or module:function")
    serve.set_defaults(run=_serve)
    demo.add_command(commands)

    add_commands(commands)
    integrations.add_commands(commands)
    notify.add_commands(commands)

    worker = commands.add_parser("worker", help="run queued agent runs (any number of workers may share one Redis)")
    worker.add_argument("--concurrency", type=int, default=16, help="runs at once, as coroutines")
    worker.add_argument("--agent", help="agent profile: demo, litellm or module:function")
    worker.add_argument(
        "--visibility-timeout", type=float, default=30.0, help="seconds before a dead worker's runs are taken over"
    )
    worker.add_argument(
        "--grace", type=float, default=10.0, help="seconds a stopping worker lets runs finish before handing them back"
    )
    worker.set_defaults(run=_worker)

    users = commands.add_parser("users", help="manage dashboard users").add_subparsers(required=True, metavar="action")
    add = users.add_parser("add", help="add a user (the password is read from the terminal or --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.REVIEWER.value)
    add.add_argument("--queues", default="*", help="comma-separated queues a reviewer may decide in (default: all)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--email", help="the reviewer's address: notifications with one-click decision links go there")
    add.set_defaults(run=lambda a: _with_users(_add_user, a))
    users.add_parser("list", help="list users").set_defaults(run=lambda a: _with_users(_list_users, a))
    remove = users.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(run=lambda a: _with_users(_remove_user, a))
    unlock = users.add_parser("unlock", help="clear a user's failed sign-ins, wherever they came from")
    unlock.add_argument("name")
    unlock.add_argument("--address", help="also clear this address's failed sign-ins (as the server saw it)")
    unlock.set_defaults(run=lambda a: _with_users(_unlock_user, a))

    tokens = commands.add_parser("tokens", help="manage API tokens").add_subparsers(required=True, metavar="action")
    create = tokens.add_parser("create", help="create a token for a user (printed once)")
    create.add_argument("user")
    create.add_argument("--label", default="")
    create.set_defaults(run=lambda a: _with_users(_create_token, a))
    revoke = tokens.add_parser("revoke", help="revoke a token (the token itself or its id)")
    revoke.add_argument("token")
    revoke.set_defaults(run=lambda a: _with_users(_revoke_token, a))
    return parser


# -- serve and demo --------------------------------------------------------------------------------


def _web_settings(args: argparse.Namespace) -> WebSettings:
    overrides = {"host": args.host, "port": args.port} | ({"agent_profile": args.agent} if args.agent else {})
    return WebSettings.from_env(**overrides)


# A caller who hangs up stops what it asked for: a /run-agent run stops (and withdraws the requests it
# waited for), long polls and live streams end, instead of going on for nobody.
HANDLER_CANCELLATION = True


def _serve(args: argparse.Namespace) -> int:
    settings = _web_settings(args)
    ensure_port_free(args.host, args.port)
    web.run_app(
        create_app(settings),
        host=args.host,
        port=args.port,
        print=_announce(settings),
        handler_cancellation=HANDLER_CANCELLATION,
    )
    return 0


def _announce(settings: WebSettings) -> Callable[[str], None]:
    def announce(_: str) -> None:
        print(f"approvals is running at http://{settings.host}:{settings.port}/ (Ctrl+C to stop)", flush=True)

    return announce


def _worker(args: argparse.Namespace) -> int:
    settings = WebSettings.from_env(**({"agent_profile": args.agent} if args.agent else {}))
    factory = load_profile(settings.agent_profile)

    async def run() -> None:
        async with ApprovalClient(settings.approvals, requested_by="agents", heartbeat="worker") as client:
            feed = RunFeed(client.store, pubsub_client(settings.approvals, role="runs"))
            await feed.start()
            worker = Worker(
                RunStore(client.store), client, factory, feed=feed,
                concurrency=args.concurrency, visibility_timeout=args.visibility_timeout,
            )  # fmt: skip
            client.report(worker.details)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, worker.stop)
            print(
                f"worker {worker.name} taking runs (profile {settings.agent_profile}, concurrency {args.concurrency})",
                flush=True,
            )
            try:
                await worker.run()
                await worker.drain(grace=args.grace)  # running runs finish, or go back to the queue
            finally:
                await feed.aclose()

    asyncio.run(run())
    return 0


# -- users and tokens ------------------------------------------------------------------------------


def _with_users(action: Callable[[UserStore, argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    async def run() -> int:
        settings = WebSettings.from_env()
        if settings.approvals.embedded:
            print(
                "note: REDIS_URL is not set, so this changes the embedded store of this process only", file=sys.stderr
            )
        async with ApprovalClient(settings.approvals, sweep_expired=False, heartbeat=None) as client:
            return await action(UserStore(client.store), args)

    return asyncio.run(run())


async def _add_user(users: UserStore, args: argparse.Namespace) -> int:
    password = (
        sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"Password for {args.name}: ")
    )
    queues = tuple(q.strip() for q in args.queues.split(","))
    if queues != ("*",):
        for queue in queues:
            queue_name(queue, "--queues")
    try:
        user = await users.add(args.name, password, Role(args.role), queues, email=args.email)
    except UserExists as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    email = f", email: {user.email}" if user.email else ""
    print(f"added {user.name} ({user.role.value}, queues: {', '.join(user.queues)}{email})")
    return 0


async def _list_users(users: UserStore, args: Any) -> int:
    for user in await users.all():
        print(f"{user.name}\t{user.role.value}\t{','.join(user.queues)}\t{user.email or '-'}")
    return 0


async def _remove_user(users: UserStore, args: argparse.Namespace) -> int:
    await users.remove(args.name)
    print(f"removed {args.name}")
    return 0


async def _unlock_user(users: UserStore, args: argparse.Namespace) -> int:
    settings = WebSettings.from_env()
    throttle = LoginThrottle(users.redis, users.keys, limit=settings.login_attempts, window=settings.login_window)
    cleared = await throttle.unlock(args.name, args.address)
    print(f"unlocked {args.name}: {cleared} count(s) of failed sign-ins cleared")
    return 0


async def _create_token(users: UserStore, args: argparse.Namespace) -> int:
    token = await users.create_token(args.user, args.label)
    print(token)
    print(
        f"Keep it now: only its hash is stored. Revoke it with: approvals tokens revoke {token.split('_')[1]}",
        file=sys.stderr,
    )
    return 0


async def _revoke_token(users: UserStore, args: argparse.Namespace) -> int:
    try:
        await users.revoke_token(args.token)
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("revoked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
