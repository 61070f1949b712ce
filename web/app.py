"""`create_app(settings)`: the aiohttp application, its routes and the resources it owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from approvals import ApprovalClient
from approvals.connections import pubsub_client

from . import api, appkeys, metrics, openapi, pages, runs
from .auth import auth_middleware
from .live import AuditFeed
from .profiles import load_profile
from .render import error_middleware, security_headers, setup_templates
from .runfeed import RunFeed
from .runstore import RunStore
from .settings import WebSettings
from .users import UserStore
from .worker import Worker

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
    return app


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
        await agents.aclose()
        await run_feed.aclose()
        await feed.aclose()
        await client.aclose()


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", pages.index)
    router.add_get("/queue", pages.queue_page)
    router.add_get("/requests/{id}", pages.request_page)
    router.add_post("/requests/{id}/decide", pages.decide_form)
    router.add_get("/history", pages.history_page)
    router.add_get("/ops", pages.ops_page)
    router.add_get("/events", pages.events_stream)
    router.add_get("/login", pages.login_page)
    router.add_post("/login", pages.login)
    router.add_post("/logout", pages.logout)
    router.add_static("/static", STATIC)

    router.add_post("/api/v1/approvals", api.create)
    router.add_get("/api/v1/approvals", api.list_requests)
    router.add_get("/api/v1/approvals/{id}", api.get_request)
    router.add_post("/api/v1/approvals/{id}/decision", api.decide)
    router.add_post("/api/v1/approvals/{id}/cancel", api.cancel)
    router.add_get("/api/v1/approvals/{id}/wait", api.wait)
    router.add_get("/api/v1/queues", api.queues)
    router.add_get("/api/v1/audit", api.audit)
    router.add_get("/api/v1/openapi.json", openapi.openapi)

    router.add_post("/run-agent", runs.run_agent)
    router.add_post("/api/v1/runs", runs.submit_run)
    router.add_get("/api/v1/runs", runs.list_runs)
    router.add_get("/api/v1/runs/{id}", runs.get_run)
    router.add_post("/api/v1/runs/{id}/cancel", runs.cancel_run)
    router.add_get("/api/v1/runs/{id}/events", runs.run_events_api)
    router.add_get("/runs", runs.runs_page)
    router.add_post("/runs", runs.start_run_form)
    router.add_get("/runs/{id}", runs.run_page)
    router.add_post("/runs/{id}/cancel", runs.cancel_run_form)
    router.add_get("/runs/{id}/events", runs.run_events_page)

    router.add_get("/metrics", metrics.metrics)
    router.add_get("/healthz", metrics.healthz)
    router.add_get("/readyz", metrics.readyz)
