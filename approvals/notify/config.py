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
from urllib.parse import parse_qsl, unquote, urlsplit

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


_EMAIL = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*[A-Za-z0-9]")


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


class Targets(BaseModel):
    """Where messages about a queue go."""

    model_config = ConfigDict(extra="forbid")
    webhooks: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [_http_url(url) for url in urls]

    @field_validator("email")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        return [_email(address) for address in addresses]


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
    channel = "webhook"

    @property
    def key(self) -> str:
        return f"webhook:{self.url}"

    def to_json(self) -> dict[str, str]:
        return {"kind": "webhook", "url": self.url}


@dataclass(frozen=True)
class EmailTarget:
    to: str
    channel = "email"

    @property
    def key(self) -> str:
        return f"email:{self.to.lower()}"

    def to_json(self) -> dict[str, str]:
        return {"kind": "email", "to": self.to}


Target = WebhookTarget | EmailTarget


@dataclass(frozen=True)
class SmtpServer:
    """Where email goes: `smtp://[user:password@]host[:port][?starttls=require|off]`, or `smtps://` for TLS
    from the first byte. Without `starttls`, STARTTLS is used when the server offers it."""

    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise InvalidSettings("APPROVALS_SMTP_URL", "use smtp://host:port or smtps://host:port")
        query = dict(parse_qsl(parts.query))
        choice = query.get("starttls")
        if choice not in (None, "require", "off"):
            raise InvalidSettings("APPROVALS_SMTP_URL", "starttls must be 'require' or 'off' (or left out)")
        start_tls = None if choice is None else choice == "require"
        tls = parts.scheme == "smtps"
        return cls(
            parts.hostname,
            parts.port or (465 if tls else 25),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            use_tls=tls,
            start_tls=None if tls else start_tls,
        )


@dataclass(frozen=True)
class NotifyConfig:
    """Everything the notifier needs, read once at start."""

    public_url: str = "http://127.0.0.1:8080"
    webhook_url: str | None = None  # every event of every queue
    webhook_secret: str | None = None
    smtp: SmtpServer | None = None
    email_from: str = "approvals@localhost"
    notify_email: tuple[str, ...] = ()  # every event of every queue, by email
    rules: RulesFile = field(default_factory=RulesFile)
    source: str = "environment"  # where the rules came from, for messages

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.rules.queues or self.notify_email)

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

    def targets(self, queue: str, event: str) -> list[Target]:
        """Where one event of one queue goes (escalations also go to the queue's escalate_to)."""
        rules = self.rules_for(queue)
        urls: list[str] = [self.webhook_url] if self.webhook_url else []
        addresses: list[str] = list(self.notify_email)
        if event in rules.events:
            urls += rules.webhooks
            addresses += rules.email
        if event == "escalated":
            urls += rules.escalate_to.webhooks
            addresses += rules.escalate_to.email
        secret = self.webhook_secret or ""
        found: list[Target] = [WebhookTarget(url, secret) for url in dict.fromkeys(urls)]
        return found + [EmailTarget(a) for a in dict.fromkeys(addresses)]

    def every_target(self) -> list[tuple[str, Target]]:
        """(where it is configured, target) for every target, once each: what `approvals notify test` tries."""
        found: dict[str, tuple[str, Target]] = {}
        for address in self.notify_email:
            found[address] = ("APPROVALS_NOTIFY_EMAIL", EmailTarget(address))
        secret = self.webhook_secret or ""
        if self.webhook_url:
            found[self.webhook_url] = ("APPROVALS_WEBHOOK_URL", WebhookTarget(self.webhook_url, secret))
        for queue, rules in self.rules.queues.items():
            for url in rules.webhooks:
                found.setdefault(url, (f"queue {queue}", WebhookTarget(url, secret)))
            for url in rules.escalate_to.webhooks:
                found.setdefault(url, (f"queue {queue}, escalations", WebhookTarget(url, secret)))
            for address in rules.email:
                found.setdefault(address, (f"queue {queue}", EmailTarget(address)))
            for address in rules.escalate_to.email:
                found.setdefault(address, (f"queue {queue}, escalations", EmailTarget(address)))
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
        try:
            notify_email = tuple(
                _email(a) for a in (environ.get("APPROVALS_NOTIFY_EMAIL") or "").split(",") if a.strip()
            )
            email_from = _email(environ.get("APPROVALS_EMAIL_FROM") or "approvals@localhost")
        except ValueError as error:
            raise InvalidSettings("APPROVALS_NOTIFY_EMAIL or APPROVALS_EMAIL_FROM", str(error)) from None
        smtp_url = (environ.get("APPROVALS_SMTP_URL") or "").strip()
        smtp = SmtpServer.parse(smtp_url) if smtp_url else None
        has_email = notify_email or any(q.email or q.escalate_to.email for q in rules.queues.values())
        if has_email and smtp is None:
            raise InvalidSettings(
                "APPROVALS_SMTP_URL", "not set, and email recipients are configured: where is the mail server?"
            )
        return cls(
            public_url=public.rstrip("/"), webhook_url=webhook, webhook_secret=secret, smtp=smtp,
            email_from=email_from, notify_email=notify_email, rules=rules, source=source,
        )  # fmt: skip


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
