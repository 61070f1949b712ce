"""Typed keys for what the application holds: one place, so every module agrees."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from approvals import ApprovalClient
    from approvals.notify import Notifier
    from approvals.notify.slack import Slack

    from .access.users import User, UserStore
    from .dashboard.feed import AuditFeed
    from .runs.feed import RunFeed
    from .runs.profiles import AgentFactory
    from .runs.store import RunStore
    from .settings import WebSettings

SETTINGS: web.AppKey[WebSettings] = web.AppKey("settings")
CLIENT: web.AppKey[ApprovalClient] = web.AppKey("client")
USERS: web.AppKey[UserStore] = web.AppKey("users")
FEED: web.AppKey[AuditFeed] = web.AppKey("feed")
RUNS_CLIENT: web.AppKey[ApprovalClient] = web.AppKey("runs_client")  # the agents' own: requested_by "agents"
AGENT_FACTORY: web.AppKey[AgentFactory] = web.AppKey("agent_factory")
RUNS: web.AppKey[RunStore] = web.AppKey("runs")
RUN_FEED: web.AppKey[RunFeed] = web.AppKey("run_feed")
NOTIFIER: web.AppKey[Notifier | None] = web.AppKey("notifier")  # None unless notifications are configured
SLACK: web.AppKey[Slack | None] = web.AppKey("slack")  # None unless Slack is configured

# Per request: who is asking (None when anonymous), the CSRF token of their session, how they signed in.
PRINCIPAL: web.RequestKey[User | None] = web.RequestKey("principal")
CSRF: web.RequestKey[str | None] = web.RequestKey("csrf_token")
VIA_SESSION: web.RequestKey[bool] = web.RequestKey("via_session")

__all__ = [
    "AGENT_FACTORY",
    "CLIENT",
    "CSRF",
    "FEED",
    "NOTIFIER",
    "PRINCIPAL",
    "RUNS",
    "RUNS_CLIENT",
    "RUN_FEED",
    "SETTINGS",
    "SLACK",
    "USERS",
    "VIA_SESSION",
    "User",
]
