"""`create_app(settings)`: the aiohttp application, its routes and the resources it owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from approvals import ApprovalClient
from approvals.connections import pubsub_client
from approvals.notify import Notifier

from . import appkeys
from .access import login
from .access.auth import auth_middleware
from .access.users import UserStore
from .api import approvals, metrics, openapi
from .api import runs as runs_api
from .dashboard import bulk, history, ops, queue, request
from .dashboard import runs as runs_pages
from .dashboard.feed import AuditFeed
from .http.render import error_middleware, security_headers, setup_templates
from .notify import links, slack
from .runs.feed import RunFeed
from .runs.profiles import load_profile
from .runs.store import RunStore
from .runs.worker import Worker
from .settings import WebSettings

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: WebSettings | None = None) -> web.Application:
    settings = settings or WebSettings.from_env()
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=settings.max_body)
    app.on_response_prepare.append(security_headers)
    app[appkeys.SETTINGS] = settings
    app[appkeys.AGENT_FACTORY] = load_profile(settings.agent_profile)  # a wrong profile fails at start
    app[openapi.DOCUMENT_KEY] = openapi.document(settings.max_wait)
    setup_templates(app)
    setup_routes(app)
    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(slack.slack_client)
    app.on_shutdown.append(end_streams)
    return app


async def end_streams(app: web.Application) -> None:
    """Live streams end as the server stops, before it waits for its requests to finish."""
    app[appkeys.FEED].end_streams()
    app[appkeys.RUN_FEED].end_streams()


async def resources(app: web.Application) -> AsyncIterator[None]:
    """The approval client (one Pub/Sub connection for every long-poll) and the live audit feed."""
    settings = app[appkeys.SETTINGS]
    client = ApprovalClient(settings.approvals, heartbeat="server")
    await client.start()
    feed = AuditFeed(client.store, pubsub_client(settings.approvals, role="feed"))
    feed.start()
    agents = ApprovalClient(settings.approvals, requested_by="agents", sweep_expired=False, heartbeat="agents")
    await agents.start()
    app[appkeys.CLIENT], app[appkeys.FEED], app[appkeys.USERS] = client, feed, UserStore(client.store)
    run_feed = RunFeed(client.store, pubsub_client(settings.approvals, role="runs"))
    await run_feed.start()
    app[appkeys.RUNS_CLIENT], app[appkeys.RUNS], app[appkeys.RUN_FEED] = agents, RunStore(client.store), run_feed
    notifier = None
    if settings.notify.enabled:  # sends request events out (webhooks), reminds and escalates
        reader = pubsub_client(settings.approvals, role="notify")
        may_decide = links.may_decide_by_email(app[appkeys.USERS])
        notifier = Notifier(client.store, reader, settings.notify, may_decide=may_decide)
        await notifier.start()
    app[appkeys.NOTIFIER] = notifier
    worker, worker_task = None, None
    if settings.approvals.embedded if settings.in_process_worker is None else settings.in_process_worker:
        worker = Worker(app[appkeys.RUNS], agents, app[appkeys.AGENT_FACTORY], feed=run_feed, name="in-process")
        agents.report(worker.details)
        worker_task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        if worker is not None and worker_task is not None:
            worker.stop()
            await worker_task
            await worker.drain(grace=0)
        if notifier is not None:
            await notifier.aclose()
        await agents.aclose()
        await run_feed.aclose()
        await feed.aclose()
        await client.aclose()


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", queue.index)
    router.add_get("/queue", queue.queue_page)
    router.add_post("/queue/decide", bulk.bulk_decide_form)
    router.add_get("/events", queue.events_stream)
    router.add_get("/requests/{id}", request.request_page)
    router.add_post("/requests/{id}/decide", request.decide_form)
    router.add_get("/history", history.history_page)
    router.add_get("/ops", ops.ops_page)
    router.add_get("/login", login.login_page)
    router.add_post("/login", login.login)
    router.add_post("/logout", login.logout)
    router.add_get("/links/{token}", links.link_page)  # decision links from emails
    router.add_post("/links/{token}", links.use_link)
    router.add_post("/slack/actions", slack.actions)  # Slack's interactivity Request URL: the buttons
    router.add_get("/runs", runs_pages.runs_page)
    router.add_post("/runs", runs_pages.start_run_form)
    router.add_get("/runs/events", runs_pages.runs_list_events)
    router.add_get("/runs/{id}", runs_pages.run_page)
    router.add_post("/runs/{id}/cancel", runs_pages.cancel_run_form)
    router.add_get("/runs/{id}/events", runs_pages.run_events_page)
    router.add_static("/static", STATIC)

    router.add_post("/api/v1/approvals", approvals.create)
    router.add_get("/api/v1/approvals", approvals.list_requests)
    router.add_get("/api/v1/approvals/{id}", approvals.get_request)
    router.add_post("/api/v1/approvals/{id}/decision", approvals.decide)
    router.add_post("/api/v1/approvals/{id}/cancel", approvals.cancel)
    router.add_get("/api/v1/approvals/{id}/wait", approvals.wait)
    router.add_get("/api/v1/queues", approvals.queues)
    router.add_get("/api/v1/audit", approvals.audit)
    router.add_get("/api/v1/openapi.json", openapi.openapi)
    router.add_post("/run-agent", runs_api.run_agent)
    router.add_post("/api/v1/runs", runs_api.submit_run)
    router.add_get("/api/v1/runs", runs_api.list_runs)
    router.add_get("/api/v1/runs/{id}", runs_api.get_run)
    router.add_post("/api/v1/runs/{id}/cancel", runs_api.cancel_run)
    router.add_get("/api/v1/runs/{id}/events", runs_api.run_events_api)

    router.add_get("/metrics", metrics.metrics)
    router.add_get("/healthz", metrics.healthz)
    router.add_get("/readyz", metrics.readyz)
