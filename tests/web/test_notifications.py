"""Notifications as the dashboard shows them: failed deliveries on /metrics and the Ops page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from approvals.notify import NotifyConfig, notify_status
from tests.web.conftest import SiteFactory
from tests.webhooks import SECRET, Receiver
from web import appkeys


async def test_failures_show_on_metrics_and_the_ops_page(
    make_site: SiteFactory, receiver: Callable[[str], Receiver]
) -> None:
    dead = receiver("/dead")
    dead.statuses = [500] * 10
    config = NotifyConfig(webhook_url=dead.url, webhook_secret=SECRET)
    site = await make_site(notify=config)
    notifier = site.client.server.app[appkeys.NOTIFIER]
    notifier.first_retry, notifier.max_attempts = 0.05, 2
    await site.store.create("x", queue="ops")
    async with asyncio.timeout(10):
        while not (await notify_status(site.store)).failures:
            await asyncio.sleep(0.05)
    metrics = await (await site.client.get("/metrics", headers=site.bearer("vic"))).text()
    assert 'approvals_notify_deliveries_total{channel="webhook",outcome="failed"} 1.0' in metrics
    assert 'approvals_notify_deliveries_total{channel="webhook",outcome="retried"} 1.0' in metrics
    await site.login("vic")
    ops = await (await site.client.get("/ops")).text()
    assert "Notifications" in ops and f"<code>{dead.url}</code>" in ops and "HTTP 500" in ops
