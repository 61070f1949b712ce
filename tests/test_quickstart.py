"""The README's quick start as a newcomer follows it, from a clean clone of this repository: `make demo`,
sign in with the password it prints, decide one request on its page, and see the agent go on.

It installs the demo's own `.venv` in the clone (about 10 s with a warm package cache).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.redis_server import free_port
from tests.web.test_cli import read_banner

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
async def test_a_newcomer_runs_the_demo_signs_in_decides_and_sees_the_agent_go_on(tmp_path: Path) -> None:
    if shutil.which("make") is None or not (ROOT / ".git").exists():
        pytest.fail("the quick start needs make and a git checkout (both are there in CI)")
    clone = tmp_path / "clone"
    cloning = await asyncio.create_subprocess_exec("git", "clone", "--quiet", str(ROOT), str(clone))
    assert await asyncio.wait_for(cloning.wait(), 60) == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VIRTUAL_ENV")}
    started = time.monotonic()
    demo = await asyncio.create_subprocess_exec(
        "make", "demo", f"DEMO_ARGS=--port {port} --store-port 0", cwd=clone, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        seen: list[str] = []
        banner = await asyncio.wait_for(read_banner(demo.stdout, seen), 240)
        print(f"make demo on a clean clone: the dashboard answered after {time.monotonic() - started:.1f} s")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            await sign_in(browser, banner.url, banner.password)
            request_path, agent = await first_request(browser, banner.url)
            page = await (await browser.get(banner.url + request_path.lstrip("/"))).text()
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert csrf is not None
            decided = await browser.post(
                banner.url + request_path.lstrip("/") + "/decide",
                data={"csrf_token": csrf.group(1), "outcome": "approve"},
                allow_redirects=False,
            )
            assert decided.status == 303, await decided.text()
        line = await asyncio.wait_for(_line_with(demo.stdout, f"{agent} was approved by demo"), 30)
        assert "so it went ahead" in line
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        await demo.wait()


async def sign_in(browser: aiohttp.ClientSession, url: str, password: str) -> None:
    page = await (await browser.get(f"{url}login")).text()
    token = re.search(r'name="login_csrf" value="([^"]+)"', page)
    assert token is not None
    form = {"username": "demo", "password": password, "login_csrf": token.group(1)}
    async with browser.post(f"{url}login", data=form) as signed_in:
        assert signed_in.status == 200 and "Pending approvals" in await signed_in.text()


async def first_request(browser: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    """(path, agent) of a request one of the demo's agents made, once there is one on the queue."""
    deadline = time.monotonic() + 30
    while True:
        queue = await (await browser.get(f"{url}queue")).text()
        for path in re.findall(r'href="(/requests/[0-9a-f]{32})"', queue):
            page = await (await browser.get(url + path.lstrip("/"))).text()
            if agent := re.search(r"\(agent (agent-\d+)\)", page):
                return path, agent.group(1)
        assert time.monotonic() < deadline, "no demo agent asked"
        await asyncio.sleep(0.5)


async def _line_with(stdout: asyncio.StreamReader, text: str) -> str:
    while True:
        line = (await stdout.readline()).decode()
        assert line, f"the demo ended before printing {text!r}"
        if text in line:
            return line
