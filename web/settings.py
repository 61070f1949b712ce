"""Settings of the web application, read once from the environment and passed in."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from approvals import Settings
from approvals.errors import InvalidSettings
from approvals.notify import NotifyConfig


@dataclass(frozen=True, slots=True)
class WebSettings:
    approvals: Settings = field(default_factory=Settings)
    host: str = "127.0.0.1"
    port: int = 8080
    session_ttl: float = 12 * 3600.0  # seconds a browser session lives without use
    secure_cookies: bool = False  # set when served over HTTPS
    max_body: int = 256 * 1024  # bytes of a request body; more is refused with 413
    max_wait: float = 60.0  # the longest long-poll wait a client may ask for
    login_attempts: int = 10  # failed logins per address or user name per window
    login_window: float = 300.0
    page_size: int = 50
    agent_profile: str = "demo"  # what POST /run-agent runs: a built-in profile or 'module:function'
    in_process_worker: bool | None = None  # run queued runs in this process too; None: only when embedded
    run_timeout: float | None = None  # default time limit of a queued run, waits for people included
    trusted_proxies: tuple[str, ...] = ()  # addresses (or networks) of proxies whose X-Forwarded-For is believed
    notify: NotifyConfig = field(default_factory=NotifyConfig)  # notifications; off unless configured

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise InvalidSettings("port", "must be between 1 and 65535")
        if self.max_wait <= 0 or self.session_ttl <= 0:
            raise InvalidSettings("max_wait", "timeouts must be positive")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise InvalidSettings("APPROVALS_TRUSTED_PROXIES", f"{proxy!r} is not an address or network") from None
        if self.run_timeout is not None and not 0 < self.run_timeout <= 365 * 86400:
            raise InvalidSettings("run_timeout", "must be a positive number of seconds, at most a year")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WebSettings:
        environ = os.environ if environ is None else environ
        secure = environ.get("APPROVALS_SECURE_COOKIES", "").lower() in ("1", "true", "yes")
        values: dict[str, Any] = {"approvals": Settings.from_env(environ), "secure_cookies": secure}
        values["notify"] = NotifyConfig.from_env(environ)
        if profile := environ.get("APPROVALS_AGENT", "").strip():
            values["agent_profile"] = profile
        if proxies := environ.get("APPROVALS_TRUSTED_PROXIES", "").strip():
            values["trusted_proxies"] = tuple(p.strip() for p in proxies.split(",") if p.strip())
        for variable, name in (("APPROVALS_RUN_TIMEOUT", "run_timeout"), ("APPROVALS_MAX_WAIT", "max_wait")):
            if raw := environ.get(variable, "").strip():
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise InvalidSettings(variable, f"{raw!r} is not a number of seconds") from None
        return cls(**(values | overrides))
