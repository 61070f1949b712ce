"""What the notifier sends where: environment variables for the basics, one TOML file for per-queue rules.

    APPROVALS_PUBLIC_URL=https://approvals.example.com     # links in messages
    APPROVALS_WEBHOOK_URL=https://hooks.example.com/a       # every event of every queue, signed with
    APPROVALS_WEBHOOK_SECRET=...                            # HMAC-SHA256 of the raw body
    APPROVALS_NOTIFY_CONFIG=/etc/approvals/notify.toml      # per-queue routing, reminders, escalation

    # notify.toml
    [defaults]
    remind_after = "30m"            # remind once, 30 minutes after a request was made, if still pending
    escalate_after = "2h"           # escalate once, 2 hours after, to escalate_to's targets as well

    [queues.payments]
    webhooks = ["https://hooks.example.com/payments"]
    events = ["created", "reminder", "escalated", "decided", "expired", "cancelled"]
    remind_after = "15m"
    escalate_after = "1h"
    escalate_to = { webhooks = ["https://hooks.example.com/cfo"] }

Every mistake is reported at start, with the file, the queue and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InvalidSettings

Event = Literal["created", "reminder", "escalated", "decided", "expired", "cancelled"]
EVENTS: tuple[Event, ...] = get_args(Event)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def duration(value: object) -> float:
    """Seconds from 90, "90s", "15m", "2h" or "1d"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError('must be a positive duration such as 90, "90s", "15m", "2h" or "1d"')
    return float(match.group(1)) * _UNITS[match.group(2)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class Targets(BaseModel):
    """Where messages about a queue go."""

    model_config = ConfigDict(extra="forbid")
    webhooks: list[str] = Field(default_factory=list)

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [_http_url(url) for url in urls]


class QueueRules(Targets):
    """One queue's routing, and when its pending requests remind and escalate."""

    events: list[Event] = Field(default_factory=lambda: list(EVENTS))
    remind_after: float | None = None
    escalate_after: float | None = None
    escalate_to: Targets = Field(default_factory=Targets)

    @field_validator("remind_after", "escalate_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else duration(value)


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    remind_after: float | None = None
    escalate_after: float | None = None
    events: list[Event] = Field(default_factory=lambda: list(EVENTS))

    @field_validator("remind_after", "escalate_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else duration(value)


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: Defaults = Field(default_factory=Defaults)
    queues: dict[str, QueueRules] = Field(default_factory=dict)


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str

    @property
    def key(self) -> str:
        return f"webhook:{self.url}"


@dataclass(frozen=True)
class NotifyConfig:
    """Everything the notifier needs, read once at start."""

    public_url: str = "http://127.0.0.1:8080"
    webhook_url: str | None = None  # every event of every queue
    webhook_secret: str | None = None
    rules: RulesFile = field(default_factory=RulesFile)
    source: str = "environment"  # where the rules came from, for messages

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.rules.queues)

    def rules_for(self, queue: str) -> QueueRules:
        """The queue's own rules, or the defaults' (with no targets of its own)."""
        defaults = self.rules.defaults
        found = self.rules.queues.get(queue)
        if found is None:
            return QueueRules(
                events=list(defaults.events), remind_after=defaults.remind_after, escalate_after=defaults.escalate_after
            )
        updates: dict[str, Any] = {}
        if "remind_after" not in found.model_fields_set:
            updates["remind_after"] = defaults.remind_after
        if "escalate_after" not in found.model_fields_set:
            updates["escalate_after"] = defaults.escalate_after
        if "events" not in found.model_fields_set:
            updates["events"] = list(defaults.events)
        return found.model_copy(update=updates)

    def targets(self, queue: str, event: str) -> list[WebhookTarget]:
        """Where one event of one queue goes (escalations also go to the queue's escalate_to)."""
        rules = self.rules_for(queue)
        urls: list[str] = [self.webhook_url] if self.webhook_url else []
        if event in rules.events:
            urls += rules.webhooks
        if event == "escalated":
            urls += rules.escalate_to.webhooks
        secret = self.webhook_secret or ""
        return [WebhookTarget(url, secret) for url in dict.fromkeys(urls)]

    def every_target(self) -> list[tuple[str, WebhookTarget]]:
        """(where it is configured, target) for every target, once each: what `approvals notify test` tries."""
        found: dict[str, tuple[str, WebhookTarget]] = {}
        secret = self.webhook_secret or ""
        if self.webhook_url:
            found[self.webhook_url] = ("APPROVALS_WEBHOOK_URL", WebhookTarget(self.webhook_url, secret))
        for queue, rules in self.rules.queues.items():
            for url in rules.webhooks:
                found.setdefault(url, (f"queue {queue}", WebhookTarget(url, secret)))
            for url in rules.escalate_to.webhooks:
                found.setdefault(url, (f"queue {queue}, escalations", WebhookTarget(url, secret)))
        return list(found.values())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifyConfig:
        environ = os.environ if environ is None else environ
        webhook = (environ.get("APPROVALS_WEBHOOK_URL") or "").strip() or None
        secret = (environ.get("APPROVALS_WEBHOOK_SECRET") or "").strip() or None
        public = (environ.get("APPROVALS_PUBLIC_URL") or "").strip() or cls.public_url
        for name, url in (("APPROVALS_WEBHOOK_URL", webhook), ("APPROVALS_PUBLIC_URL", public)):
            try:
                if url:
                    _http_url(url)
            except ValueError as error:
                raise InvalidSettings(name, str(error)) from None
        rules, source = RulesFile(), "environment"
        path = (environ.get("APPROVALS_NOTIFY_CONFIG") or "").strip()
        if path:
            rules, source = load_rules(Path(path)), path
        has_webhooks = webhook or any(q.webhooks or q.escalate_to.webhooks for q in rules.queues.values())
        if has_webhooks and not secret:
            raise InvalidSettings(
                "APPROVALS_WEBHOOK_SECRET", "not set: webhooks are signed with it, so that receivers can trust them"
            )
        return cls(
            public_url=public.rstrip("/"), webhook_url=webhook, webhook_secret=secret, rules=rules, source=source
        )


def load_rules(path: Path) -> RulesFile:
    """The TOML file's rules, or InvalidSettings saying what is wrong and where."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidSettings(str(path), f"cannot read it ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidSettings(str(path), f"not valid TOML: {error}") from None
    try:
        return RulesFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise InvalidSettings(str(path), problems) from None
