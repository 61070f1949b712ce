"""The `approvals` command: users and tokens against a real Redis, and `approvals demo` end to end."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from approvals import Settings
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url or "", "APPROVALS_PREFIX": settings.prefix}
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_users_and_tokens(settings: Settings) -> None:
    added = run(
        settings,
        "users",
        "add",
        "rita",
        "--role",
        "reviewer",
        "--queues",
        "email,ops",
        "--email",
        "Rita@Example.com",
        "--password-stdin",
        stdin="long enough pw\n",
    )
    assert added.returncode == 0, added.stderr
    assert "rita (reviewer, queues: email, ops, email: Rita@Example.com)" in added.stdout
    taken = run(
        settings, "users", "add", "rita2", "--email", "rita@example.com", "--password-stdin", stdin="long enough pw\n"
    )
    assert taken.returncode == 1 and "another user's address" in taken.stderr
    bad = run(
        settings, "users", "add", "rita3", "--email", "not-an-address", "--password-stdin", stdin="long enough pw\n"
    )
    assert bad.returncode == 1 and "is not an email address" in bad.stderr
    again = run(settings, "users", "add", "rita", "--password-stdin", stdin="long enough pw\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    for queues in (", ", "not a queue!!,email"):
        refused = run(
            settings, "users", "add", "carol", "--queues", queues, "--password-stdin", stdin="long enough pw\n"
        )
        assert refused.returncode == 1
        assert "--queues" in refused.stderr
    short = run(settings, "users", "add", "sam", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "at least 8" in short.stderr
    assert run(settings, "users", "list").stdout == "rita\treviewer\temail,ops\tRita@Example.com\n"

    created = run(settings, "tokens", "create", "rita", "--label", "ci")
    token = created.stdout.strip()
    assert re.fullmatch(r"apt_[0-9a-f]{12}_[A-Za-z0-9_-]+", token)
    assert run(settings, "tokens", "create", "nobody").returncode == 1
    assert run(settings, "tokens", "revoke", token).stdout.strip() == "revoked"
    assert run(settings, "tokens", "revoke", token).returncode == 1
    assert run(settings, "users", "remove", "rita").returncode == 0
    assert run(settings, "users", "list").stdout == ""
    assert run(settings, "users", "remove", "rita").returncode == 1


@dataclass
class Banner:
    url: str
    password: str
    token: str
    redis_url: str


async def read_banner(stdout: asyncio.StreamReader, seen: list[str]) -> Banner:
    """The demo's banner, from its output (the lines before it are kept in `seen`)."""
    found: dict[str, str] = {}
    patterns = {
        "url": r"running at (http://\S+)",
        "password": r"demo\s+with password\s+(\S+)",
        "token": r"API token\s+(apt_\S+)",
        "redis_url": r"export REDIS_URL=(\S+)",
    }
    while len(found) < len(patterns):
        line = (await asyncio.wait_for(stdout.readline(), 60)).decode()
        assert line, f"the demo ended before its banner: {seen}"
        seen.append(line)
        for name, pattern in patterns.items():
            if match := re.search(pattern, line):
                found[name] = match.group(1)
    return Banner(**found)


async def test_the_demo_prints_a_banner_last_and_a_second_terminal_can_use_it() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded default
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web.cli", "demo", "--port", str(port), "--store-port", "0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen: list[str] = []
        banner = await read_banner(process.stdout, seen)
        assert banner.url == f"http://127.0.0.1:{port}/"
        assert not any("WARNING" in line or "INFO" in line for line in seen), seen  # quiet before the banner
        second = {**env, "REDIS_URL": banner.redis_url}

        def approvals(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "web.cli", *args], check=False, input=stdin, capture_output=True,
                text=True, env=second, cwd=ROOT, timeout=60,
            )  # fmt: skip

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # cookies from an IP
            deadline = time.monotonic() + 30
            bearer = {"Authorization": f"Bearer {banner.token}"}
            while True:  # the curl of the banner, until the agents have asked
                async with session.get(f"{banner.url}api/v1/queues", headers=bearer) as response:
                    assert response.status == 200
                    if sum(q["depth"] for q in (await response.json())["queues"]):
                        break
                assert time.monotonic() < deadline, "the demo agents never asked"
                await asyncio.sleep(0.3)
            status = await asyncio.to_thread(approvals, "status")
            assert status.returncode == 0 and "demo-agents" in status.stdout, status.stderr
            added = await asyncio.to_thread(
                approvals, "users", "add", "rita", "--password-stdin", stdin="long enough pw"
            )
            assert added.returncode == 0, added.stderr
            token = (await asyncio.to_thread(approvals, "tokens", "create", "rita")).stdout.split()[0]
            async with session.get(
                f"{banner.url}api/v1/approvals", headers={"Authorization": f"Bearer {token}"}
            ) as mine:
                assert mine.status == 200 and (await mine.json())["total"] >= 1  # rita, added from outside, is in
            async with session.get(f"{banner.url}login") as page:
                csrf = re.search(r'name="login_csrf" value="([^"]+)"', await page.text()).group(1)
            form = {"username": "demo", "password": banner.password, "login_csrf": csrf}
            async with session.post(f"{banner.url}login", data=form) as signed_in:
                assert signed_in.status == 200 and "Pending approvals" in await signed_in.text()
            # Its first queued run is taken by the in-process worker and waits for a person.
            while "No runs here." in (page := await (await session.get(f"{banner.url}runs?state=waiting")).text()):
                assert time.monotonic() < deadline + 10, "the demo's run never waited for approval"
                await asyncio.sleep(0.2)
            assert "demo-agents" in page
            # The demo's emails are caught and listed; one's approve link decides, as demo, from outside.
            assert f"{banner.url}demo/mail" in "".join(seen)
            while not (
                links := re.findall(
                    r'Approve: <a href="([^"]+)"', await (await session.get(f"{banner.url}demo/mail")).text()
                )
            ):
                assert time.monotonic() < deadline + 20, "no email with a decision link reached the demo's mailbox"
                await asyncio.sleep(0.2)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as mail_reader:
                confirm = await (await mail_reader.get(links[0])).text()
                assert "You decide as <strong>demo</strong>" in confirm
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', confirm).group(1)
                async with mail_reader.post(links[0], data={"csrf_token": csrf}) as decided:
                    assert decided.status == 200 and "approved it as <strong>demo</strong>" in await decided.text()
    finally:
        process.terminate()
        await process.wait()


async def test_ops_commands(settings: Settings) -> None:
    from approvals import ApprovalClient
    from web.access.users import Role, UserStore

    async with ApprovalClient(settings, requested_by="bot", heartbeat="agent") as client:
        users = UserStore(client.store)
        await users.add("root", "long enough pw", Role.ADMIN)
        await users.add("vic", "long enough pw", Role.VIEWER)
        first = await client.create("deploy", {"v": 1}, queue="ops")
        second = await client.create("send_email", {"to": "bob"}, queue="email")

        async def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(run, settings, *args)

        status = await cli("status")
        assert status.returncode == 0
        assert re.search(r"^ops\s+1\b", status.stdout, re.MULTILINE)
        assert "coroutine(s) waiting" in status.stdout
        listed = await cli("list")
        assert [line.split()[0] for line in listed.stdout.splitlines()] == [first.id, second.id]
        assert first.id in (await cli("list", "--queue", "ops")).stdout
        assert (await cli("list", "--queue", "bad queue")).returncode == 1
        shown = await cli("show", first.id)
        assert '"action": "deploy"' in shown.stdout
        assert (await cli("show", "0" * 32)).returncode == 3
        refused = await cli("approve", first.id, "--as", "vic")
        assert refused.returncode == 1
        assert "may not decide" in refused.stderr
        assert (await cli("approve", first.id, "--as", "root")).stdout.strip() == "approved by root"
        assert (await cli("reject", first.id, "--as", "root", "--reason", "late")).returncode == 4
        assert (await cli("reject", second.id, "--as", "root")).returncode == 2  # a rejection needs --reason
        assert (await cli("reject", second.id, "--as", "root", "--reason", "no")).returncode == 0
        assert second.id in (await cli("list", "--decided")).stdout
        assert (await client.get(first.id)).decided_by == "root"


async def test_worker_process_runs_queued_runs_and_stops_gracefully(settings: Settings) -> None:
    from approvals import ApprovalClient
    from web.runs.store import RunStore

    env = {**os.environ, "REDIS_URL": settings.redis_url or "", "APPROVALS_PREFIX": settings.prefix}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web.cli", "worker", "--concurrency", "4", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        assert "taking runs" in (await asyncio.wait_for(worker.stdout.readline(), 30)).decode()
        async with ApprovalClient(settings, heartbeat=None) as client:
            runs = RunStore(client.store)
            queued = await runs.submit("renew the certificate", "demo")
            for _ in range(500):
                if (page := await client.store.list_pending()).items:
                    break
                await asyncio.sleep(0.02)
            for _ in range(20):  # heartbeats come every 5 s
                status = await asyncio.to_thread(run, settings, "status")
                if re.search(r"^\S+:\d+\s+1\s+4\s+0$", status.stdout, re.MULTILINE):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"the worker is not in approvals status:\n{status.stdout}")
            assert re.search(r"^\S+:worker\s+worker\s+1$", status.stdout, re.MULTILINE)  # its waiting coroutine
            assert (
                "runs: 0 queued, 1 running, 0 finished, 0 failed, 0 cancelled (1 of the running wait" in status.stdout
            )
            await client.store.approve(page.items[0].id, by="alice")
            for _ in range(500):
                if (await runs.get(queued.id)).finished_at is not None:
                    break
                await asyncio.sleep(0.02)
            assert (await runs.get(queued.id)).result == "approved: Carry out: renew the certificate"
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), 20) == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


def test_serve_and_demo_say_plainly_when_the_port_is_taken(settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for command in (["serve", "--port", port], ["demo", "--port", port, "--store-port", "-1"]):
            said = run(settings, *command)
            assert said.returncode == 1, said.stderr
            assert f"127.0.0.1:{port} is in use" in said.stderr and "Traceback" not in said.stderr
