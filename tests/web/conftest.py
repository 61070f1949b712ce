"""Fixtures for the web app: the real app on a real Redis, users of each role, signed-in clients."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, async_playwright

from approvals import ApprovalStore, Settings
from web import WebSettings, appkeys, create_app
from web.access.users import Role, UserStore

PASSWORD = "correct horse battery"


@dataclass
class Site:
    """The running app, its store and user store, and helpers to act as each kind of user."""

    client: TestClient[Any, Any]
    store: ApprovalStore
    users: UserStore
    tokens: dict[str, str]

    async def login(self, name: str) -> str:
        """Sign `client` in as `name`; returns the session's CSRF token."""
        page = await self.client.get("/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', await page.text()).group(1)
        response = await self.client.post(
            "/login", data={"username": name, "password": PASSWORD, "login_csrf": token, "next": "/queue"}
        )
        assert response.status == 200, await response.text()
        return csrf_of(await response.text())

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def web_settings(settings: Settings) -> WebSettings:
    return WebSettings(approvals=settings, login_attempts=5, max_wait=5.0, page_size=5)


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def make_site(web_settings: WebSettings, aiohttp_client: Any) -> SiteFactory:
    # web_settings first: its keys are then deleted after the app (and its worker) has stopped.
    async def make(**overrides: Any) -> Site:
        settings = replace(web_settings, **overrides)
        client = await aiohttp_client(create_app(settings))
        app = client.server.app
        users = app[appkeys.USERS]
        await users.add("root", PASSWORD, Role.ADMIN)
        await users.add("rita", PASSWORD, Role.REVIEWER, ("email",))
        await users.add("vic", PASSWORD, Role.VIEWER)
        await users.add("bot", PASSWORD, Role.VIEWER)
        tokens = {name: await users.create_token(name) for name in ("root", "rita", "vic", "bot")}
        return Site(client, app[appkeys.CLIENT].store, users, tokens)

    return make


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()


CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium through playwright (never a downloaded browser); skipped without it, unless
    REQUIRE_BROWSER=1 (as `make test` sets) makes a missing browser a failure."""
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - a fixture's one-off check
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        await chromium.close()
