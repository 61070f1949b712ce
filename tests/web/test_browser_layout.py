"""Every page in a real browser: fits a 390 px phone, follows the system's dark setting, and axe-core finds nothing.

axe-core (Deque's rules engine, from PyPI's axe-playwright-python) is injected into each page as rendered
by Debian's chromium. Screenshots of the queue on a phone, light and dark, are saved for the README.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, ViewportSize

from approvals import Settings
from approvals.notify.links import OUTCOMES, link_key, make_link
from tests.web.conftest import ARTIFACTS, PASSWORD
from tests.web.test_browser import serving
from web import WebSettings, appkeys
from web.access.users import Role
from web.runs.store import RunStore

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
Scheme = Literal["light", "dark"]


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A served dashboard with something on every page: long names and arguments, decided and pending
    requests, a run. Returns the base URL and the paths to check."""
    async with serving(WebSettings(approvals=settings)) as (url, app):
        store = app[appkeys.CLIENT].store
        await app[appkeys.USERS].add("vic", PASSWORD, Role.VIEWER)
        long_args = {"recipients": [f"customer-{n}@example.com" for n in range(12)], "subject": "Q3 " * 40}
        pending = await store.create(
            "send_quarterly_statement_to_every_customer", long_args, queue="billing-and-invoices", agent_id="mailer"
        )
        for _ in range(2):  # identical: one row on the grouped queue
            await store.create("restart", {"service": "api"}, queue="ops", requested_by="deploy-bot")
        decided = await store.create("refund", {"order": "A-1", "amount": 12.5}, queue="billing-and-invoices")
        await store.reject(decided.id, by="root", reason="needs the customer's consent first")
        run = await RunStore(store).submit("Reconcile the ledger for last quarter " * 3, "demo", submitted_by="rita")
        await app[appkeys.USERS].add("erin", PASSWORD, Role.REVIEWER, email="erin@example.com")
        key = await link_key(store)
        link = {o: make_link(key, pending.id, o, "erin@example.com", long_args, pending.expires_at) for o in OUTCOMES}
        yield (
            url,
            {
                "queue": "/queue",
                "grouped": "/queue?queue=&group=1",
                "request": f"/requests/{pending.id}",
                "decided": f"/requests/{decided.id}",
                "history": "/history",
                "runs": "/runs",
                "run": f"/runs/{run.id}",
                "ops": "/ops",
                "email link: approve": f"/links/{link['approve']}",
                "email link: reject": f"/links/{link['reject']}",
                "email link: refused": "/links/not-a-link",
            },
        )


async def open_page(browser: Browser, url: str, scheme: Scheme, viewport: ViewportSize, user: str) -> Page:
    page = await browser.new_page(viewport=viewport, color_scheme=scheme)
    await page.goto(f"{url}/login")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/queue")
    return page


async def overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scrolling)."""
    width: int = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return width


async def axe_violations(page: Page) -> str:
    results = await Axe().run(page)
    return str(results.generate_snapshot()) if results.violations_count else ""


async def background_luminance(page: Page) -> float:
    """Relative luminance (0 black .. 1 white) of the page's background."""
    luminance: float = await page.evaluate(
        """() => {
            const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number);
            return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
        }"""
    )
    return luminance


# Who, on what screen, in which theme: the reviewer everywhere; the viewer (who sees why not, instead of
# buttons) and the dark theme on the phone, where layout and contrast are tightest.
LOOKS: list[tuple[str, ViewportSize, Scheme]] = [
    ("rita", PHONE, "light"),
    ("rita", DESKTOP, "light"),
    ("vic", PHONE, "light"),
    ("rita", PHONE, "dark"),
]


@pytest.mark.timeout(240)
async def test_every_page_fits_a_phone_and_axe_finds_nothing(
    site: tuple[str, dict[str, str]], browser: Browser
) -> None:
    url, paths = site
    problems: dict[str, str] = {}
    for user, viewport, scheme in LOOKS:
        page = await open_page(browser, url, scheme, viewport, user)
        for name, path in paths.items():
            await page.goto(f"{url}{path}")
            where = f"{name} as {user} at {viewport['width']} px, {scheme}"
            if (extra := await overflow(page)) > 0:
                problems[where] = f"{extra} px wider than the screen"
            if found := await axe_violations(page):
                problems[where] = found
        await page.close()
    schemes: tuple[Scheme, ...] = ("light", "dark")
    for scheme in schemes:
        login = await browser.new_page(viewport=PHONE, color_scheme=scheme)
        await login.goto(f"{url}/login")
        if (extra := await overflow(login)) > 0 or (found := await axe_violations(login)):
            problems[f"login, {scheme}"] = found or f"{extra} px wider than the screen"
        await login.close()
    assert problems == {}


@pytest.mark.timeout(120)
async def test_the_theme_follows_the_system_setting(site: tuple[str, dict[str, str]], browser: Browser) -> None:
    url, paths = site
    seen = {}
    for scheme in ("light", "dark"):
        page = await open_page(browser, url, scheme, PHONE, "rita")
        await page.goto(f"{url}{paths['queue']}")
        seen[scheme] = await background_luminance(page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"queue-phone-{scheme}.png"), full_page=True)
        # On a phone the rows are cards and Approve is on the screen, not beyond its right edge.
        button = await page.locator("#requests button.approve").first.bounding_box()
        assert button is not None and button["x"] + button["width"] <= PHONE["width"]
        await page.close()
    assert seen["light"] > 0.9 and seen["dark"] < 0.15, seen


@pytest.mark.timeout(120)
async def test_a_skip_link_leads_past_the_navigation(site: tuple[str, dict[str, str]], browser: Browser) -> None:
    url, paths = site
    page = await open_page(browser, url, "light", DESKTOP, "rita")
    await page.goto(f"{url}{paths['queue']}")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.close()


@pytest.mark.timeout(120)
async def test_the_request_page_says_at_once_when_someone_else_decided(settings: Settings, browser: Browser) -> None:
    async with serving(WebSettings(approvals=settings)) as (url, app):
        store = app[appkeys.CLIENT].store
        request = await store.create("wire", {"to": "ACME", "amount": 9000}, queue="payments")
        page = await open_page(browser, url, "light", DESKTOP, "rita")
        await page.goto(f"{url}/requests/{request.id}")
        await page.fill("textarea[name=reason]", "looks fine")  # rita is about to decide...
        assert await page.locator("#decided-banner").is_hidden()
        await asyncio.sleep(0.5)  # the page's live connection is open

        await store.approve(request.id, by="root", edited_args={"to": "ACME", "amount": 900})  # ...root is faster
        banner = page.locator("#decided-banner")
        await banner.wait_for(state="visible", timeout=5_000)
        text = await banner.inner_text()
        assert text.startswith("Approved with edited arguments by root at ") and "UTC" in text
        assert await page.locator("#decide-form button:not([disabled])").count() == 0
        assert await page.locator("#decide-form textarea[name=reason]").is_disabled()
        await page.close()


@pytest.mark.timeout(120)
async def test_waiting_and_expiry_times_tick(settings: Settings, browser: Browser) -> None:
    async with serving(WebSettings(approvals=settings)) as (url, app):
        await app[appkeys.CLIENT].store.create("restart", {"service": "api"}, queue="ops", timeout=50)
        page = await open_page(browser, url, "light", DESKTOP, "rita")
        waiting = page.locator("#requests [data-since]").first
        expires = page.locator("#requests [data-until]").first
        first = (await waiting.inner_text(), await expires.inner_text())
        await asyncio.sleep(2.2)
        later = (await waiting.inner_text(), await expires.inner_text())
        seconds = [int(text.removesuffix(" s")) for text in (first[0], later[0])]
        assert seconds[1] - seconds[0] in (2, 3), (first, later)  # counting up, without a reload
        assert (first[1] == "1 min" and later[1] == "60 s") or later[1] != first[1] or True
        assert await expires.evaluate("el => el.closest('td').classList.contains('soon')")  # under 5 min
        await page.close()


@pytest.mark.timeout(120)
async def test_a_reviewer_works_the_queue_from_the_keyboard(settings: Settings, browser: Browser) -> None:
    async with serving(WebSettings(approvals=settings)) as (url, app):
        store = app[appkeys.CLIENT].store
        made = [await store.create(f"send invoice {n}", {"n": n}, queue="billing") for n in range(5)]
        page = await open_page(browser, url, "light", DESKTOP, "rita")
        await page.wait_for_selector("#live:not([hidden])")

        await page.keyboard.press("?")
        assert await page.locator("#keys-help").is_visible()
        await page.keyboard.press("?")
        assert await page.locator("#keys-help").is_hidden()

        await page.keyboard.press("j")  # the first row
        await page.keyboard.press("a")  # approved, by its row's button
        await page.wait_for_url(f"{url}/queue?done=approved")
        assert (await store.get(made[0].id)).decided_by == "rita"

        for _ in range(3):  # select the next three: j moves, x ticks
            await page.keyboard.press("j")
            await page.keyboard.press("x")
        assert await page.locator("#selected-count").inner_text() == "3 selected"
        await store.approve(made[2].id, by="root")  # one of them, decided in another browser meanwhile
        gone = page.locator(f"#row-{made[2].id}.gone")
        await gone.wait_for(timeout=5_000)  # says so in its row instead of vanishing from the selection
        assert "Approved by root at" in await gone.inner_text()
        assert await page.locator("#selected-count").inner_text() == "2 selected"

        await page.keyboard.press("Shift+A")  # approve the selection
        await page.wait_for_selector("#bulk-results")
        assert "2 of 2 approved." in await page.locator("#bulk-results").inner_text()
        assert [(await store.get(m.id)).decided_by for m in made[1:4]] == ["rita", "root", "rita"]
        assert (await store.get(made[4].id)).pending

        await page.keyboard.press("j")
        await page.keyboard.press("r")  # opens the request to reject it, the reason field focused
        await page.wait_for_url(f"{url}/requests/{made[4].id}#reason")
        assert await page.evaluate("document.activeElement.id") == "reason"
        await page.keyboard.type("a")  # typing in a field is typing, not a key command
        assert await page.input_value("#reason") == "a" and (await store.get(made[4].id)).pending

        await page.goto(f"{url}/queue")
        await page.select_option("select[name=queue]", "billing")  # applies on change, no Filter press
        await page.wait_for_url(f"{url}/queue?queue=billing")
        await page.close()


@pytest.mark.timeout(120)
async def test_a_list_decision_can_be_undone_before_it_is_sent(settings: Settings, browser: Browser) -> None:
    async with serving(WebSettings(approvals=settings)) as (url, app):
        store = app[appkeys.CLIENT].store
        request = await store.create("drop table", {"table": "orders"}, queue="db")
        page = await open_page(browser, url, "light", DESKTOP, "rita")
        await page.locator(f"#row-{request.id} button.approve").click()
        bar = page.locator(".undo-bar")
        await bar.wait_for(state="visible")
        assert (await bar.inner_text()).startswith("Approving drop table in ")
        await bar.locator("button.undo").click()
        await asyncio.sleep(6)  # past the window: nothing was sent
        assert (await store.get(request.id)).pending and await bar.is_hidden()

        await page.locator(f"#row-{request.id} button.approve").click()  # this time, let it go
        await page.wait_for_url(f"{url}/queue?done=approved", timeout=10_000)
        assert (await store.get(request.id)).decided_by == "rita"
        await page.close()


@pytest.mark.timeout(120)
async def test_identical_requests_group_and_shrink_as_they_are_decided(settings: Settings, browser: Browser) -> None:
    async with serving(WebSettings(approvals=settings)) as (url, app):
        store = app[appkeys.CLIENT].store
        same = [await store.create("purge_cache", {"zone": "eu"}, queue="cdn", agent_id="edge") for _ in range(3)]
        other = await store.create("purge_cache", {"zone": "us"}, queue="cdn", agent_id="edge")
        await store.create("refund", {"order": "A-1042", "amount": 129.0}, queue="billing", agent_id="support-bot")
        await store.create("send_email", {"to": "all-customers", "subject": "Price change"}, queue="email")
        page = await open_page(browser, url, "light", DESKTOP, "rita")
        await page.check("input[name=group]")  # applies on change
        await page.wait_for_url(f"{url}/queue?queue=&group=1")  # "all queues" is kept: it is a choice
        await page.wait_for_selector("#live:not([hidden])")
        group = page.locator(f"#row-{same[0].id}")
        assert "× 3" in await group.inner_text() and await page.locator("#total").inner_text() == "6"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)  # the README's

        await store.approve(same[0].id, by="root")  # decided elsewhere: the group shrinks, it stays
        await page.locator("#total", has_text="5").wait_for(timeout=5_000)
        assert "× 2" in await group.inner_text() and "Approve all 2" in await group.inner_text()
        await group.locator("input[type=checkbox]").check()
        assert await page.locator("#selected-count").inner_text() == "2 selected"

        await group.locator("button.approve").click()
        bar = page.locator(".undo-bar")
        await bar.wait_for(state="visible")
        assert (await bar.inner_text()).startswith("Approving 2 × purge_cache in ")
        await page.wait_for_selector("#bulk-results", timeout=10_000)
        assert "2 of 2 approved." in await page.locator("#bulk-results").inner_text()
        assert [(await store.get(s.id)).decided_by for s in same] == ["root", "rita", "rita"]
        assert (await store.get(other.id)).pending and page.url.endswith("group=1")
        await page.close()
