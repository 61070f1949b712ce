"""A real browser (Debian's chromium, driven by playwright): sign in, watch a request arrive live, approve it.

The coroutine that asked resumes with the approval. A screenshot of the queue page is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from approvals import ApprovalClient, Settings, Status
from approvals.notify import NotifyConfig
from approvals.notify.config import SmtpServer
from approvals.notify.mailcatcher import MailCatcher
from tests.redis_server import free_port
from tests.web.conftest import ARTIFACTS, PASSWORD
from tests.web.test_runs_service import LEDGER_PROFILE
from web import WebSettings, appkeys, create_app
from web.access.users import Role


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[str, web.Application]]:
    async with serving(WebSettings(approvals=settings)) as served:
        yield served


@contextlib.asynccontextmanager
async def serving(settings: WebSettings, port: int | None = None) -> AsyncIterator[tuple[str, web.Application]]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await app[appkeys.USERS].add("rita", PASSWORD, Role.REVIEWER)
    yield f"http://127.0.0.1:{port}", app
    await runner.cleanup()


async def signed_in(browser: Browser, url: str, height: int) -> Page:
    """A page at `url`, after signing in as rita on the login page it leads to."""
    page = await browser.new_page(viewport={"width": 1280, "height": height})
    await page.goto(url)
    await page.fill("input[name=username]", "rita")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(url)
    return page


@pytest.mark.timeout(120)
async def test_reviewer_approves_a_live_request_and_the_agent_resumes(
    server: tuple[str, web.Application], browser: Browser, settings: Settings
) -> None:
    url, _ = server
    page = await signed_in(browser, f"{url}/queue", height=720)
    await page.wait_for_selector("#live:not([hidden])")  # the live connection is open

    async with ApprovalClient(settings, requested_by="deploy-bot") as agent:
        asking = asyncio.create_task(
            agent.request_approval(
                "deploy canary", {"service": "billing", "percent": 5}, queue="ops", agent_id="deployer"
            )
        )
        row = page.locator("tr", has_text="deploy canary")
        await row.wait_for(timeout=10_000)  # appeared without a reload
        await row.locator("button.approve").click()
        decision = await asyncio.wait_for(asking, 10)

    assert (decision.status, decision.decided_by, decision.args) == (
        Status.APPROVED,
        "rita",
        {"service": "billing", "percent": 5},
    )
    await page.wait_for_selector("text=Request approved.")
    assert await page.locator("tr", has_text="deploy canary").count() == 0
    await page.close()


@pytest.mark.timeout(120)
async def test_a_run_page_follows_the_run_live(browser: Browser, settings: Settings) -> None:
    web_settings = WebSettings(approvals=settings, agent_profile=LEDGER_PROFILE, in_process_worker=True)
    async with serving(web_settings) as (url, app):
        page = await signed_in(browser, f"{url}/runs", height=900)
        await page.fill("input[name=task]", "<i>ship</i> the release")
        await page.click("form.start button[type=submit]")
        await page.wait_for_url(f"{url}/runs/*")
        await page.wait_for_selector("#live:not([hidden])")
        await page.locator("#run-status .state.waiting").wait_for(timeout=10_000)  # live, no reload
        assert await page.locator("#steps > li").count() == 1
        assert await page.locator("h1 i").count() == 0  # the task is text, not markup
        waiting = await page.locator("#run-status .waiting-for").inner_text()
        assert (
            waiting.startswith("Step 2 waits for a person to approve Carry out") and "ago." in waiting
        )  # the step after the one shown
        link = page.locator("#run-status .waiting-for a[href^='/requests/']")
        request_id = (await link.get_attribute("href") or "").rsplit("/", 1)[1]
        await asyncio.sleep(1.6)  # the new step's highlight fades
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)  # the README's: a run waiting

        await app[appkeys.CLIENT].store.approve(request_id, by="root")
        await page.locator("#run-status .state.finished").wait_for(timeout=10_000)
        assert await page.locator("#steps > li").count() == 3
        assert "done: <i>ship</i> the release" in await page.locator("#run-status pre").inner_text()
        assert await page.locator("#run-status .status.approved").count() == 1
        await page.wait_for_selector("#live", state="hidden")  # the stream ended with the run
        await page.close()


@pytest.mark.timeout(120)
async def test_editing_the_arguments_turns_approve_into_approve_with_edits(
    server: tuple[str, web.Application], browser: Browser, settings: Settings
) -> None:
    url, app = server
    store = app[appkeys.CLIENT].store
    schema = {
        "type": "object",
        "properties": {"order": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order", "amount"],
        "additionalProperties": False,
    }
    request = await store.create("refund", {"order": "A-1", "amount": 130}, queue="payments", args_schema=schema)
    page = await signed_in(browser, f"{url}/requests/{request.id}", height=1000)
    approve = page.locator("#approve-button")
    assert (await approve.inner_text(), await page.locator("#edit-button").is_visible()) == ("Approve", False)

    await page.fill("#edited-args", '{"order": "A-1", "amount": "lots"}')
    assert await approve.inner_text() == "Approve with edits"
    await approve.click()
    await page.wait_for_selector("text=amount: must be of type number")  # refused, field by field
    assert (await store.get(request.id)).pending

    await page.fill("#edited-args", '{"amount": 130, "order": "A-1"}')  # back to the ask, in another order
    assert await page.locator("#approve-button").inner_text() == "Approve"
    await page.fill("#edited-args", '{"order": "A-1", "amount": 100}')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "edit.png"), full_page=True)
    await page.locator("#approve-button").click()
    await page.wait_for_selector("text=Request approved.")
    stored = await store.get(request.id)
    assert (stored.status, stored.edited_args) == (Status.APPROVED, {"order": "A-1", "amount": 100})
    await page.close()


@pytest.mark.timeout(120)
async def test_a_reviewer_approves_from_an_email_link_and_the_agent_resumes(
    settings: Settings, browser: Browser
) -> None:
    port = free_port()
    async with MailCatcher() as mailbox:
        notify = NotifyConfig(public_url=f"http://127.0.0.1:{port}", smtp=SmtpServer.parse(mailbox.url),
                              notify_email=("erin@example.com",))  # fmt: skip
        async with serving(WebSettings(approvals=settings, notify=notify), port) as (_, app):
            await app[appkeys.USERS].add("erin", PASSWORD, Role.REVIEWER, email="erin@example.com")
            async with ApprovalClient(settings, requested_by="agent-7") as client:
                asking = asyncio.ensure_future(
                    client.request_approval("refund", {"order": "A-17", "amount": 120}, queue="payments", timeout=60)
                )
                [mail] = await mailbox.wait_for(1)
                approve = re.search(r"Approve: (\S+)", mail.text).group(1)
                context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone, not signed in
                page = await context.new_page()
                await page.goto(approve)
                await page.get_by_role("button", name="Approve").click()
                await page.get_by_text("approved it as erin").wait_for()
                await page.screenshot(path=str(ARTIFACTS / "email-link.png"), full_page=True)
                decision = await asyncio.wait_for(asking, 5)
                assert decision.status is Status.APPROVED and decision.decided_by == "erin"
                await page.goto(approve)  # the same link again
                assert "This link cannot decide" in await page.content()
                await context.close()
