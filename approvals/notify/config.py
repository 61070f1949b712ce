"""What the notifier sends where: environment variables for the basics, one TOML file for per-queue rules.

    APPROVALS_PUBLIC_URL=https://approvals.example.com     # links in messages
    APPROVALS_WEBHOOK_URL=https://hooks.example.com/a       # every event of every queue, signed with
    APPROVALS_WEBHOOK_SECRET=...                            # HMAC-SHA256 of the raw body
    APPROVALS_NOTIFY_CONFIG=/etc/approvals/notify.toml      # per-queue routing, reminders, escalation
    APPROVALS_SMTP_URL=smtp://user:pw@mail.example.com:587  # email (?starttls=require|off; smtps://)
    APPROVALS_EMAIL_FROM=approvals@example.com
    APPROVALS_NOTIFY_EMAIL=oncall@example.com               # every event of every queue, by email
    SLACK_BOT_TOKEN=xoxb-...                                # Slack messages with Approve / Reject buttons,
    SLACK_SIGNING_SECRET=...                                # whose clicks are verified with this secret,
    APPROVALS_SLACK_CHANNEL=#approvals                      # in this channel unless a queue names its own
    SLACK_TEAM_ID=T0123ABCD                                 # optional: only clicks from this workspace

    # notify.toml
    [defaults]
    remind_after = "30m"            # remind once, 30 minutes after a request was made, if still pending
    escalate_after = "2h"           # escalate once, 2 hours after, to escalate_to's targets as well

    [queues.payments]
    webhooks = ["https://hooks.example.com/payments"]
    email = ["erin@example.com"]
    events = ["created", "reminder", "escalated", "decided", "expired", "cancelled"]
    remind_after = "15m"
    escalate_after = "1h"
    escalate_to = { webhooks = ["https://hooks.example.com/cfo"], slack_channel = "#finance-leads" }
    slack_channel = "#payments"

    [slack.users]                   # Slack user id -> reviewer; others are matched by confirmed email
    U012ABC = "alice"

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


_SLACK_CHANNEL = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,31}")
_REVIEWER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # as web.access.users.NAME_RE


def _slack_channel(value: str) -> str:
    value = value.strip()
    if not _SLACK_CHANNEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack channel (a name such as '#payments', or an id such as C0123ABC)")
    return value


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
    slack_channel: str | None = None

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [_http_url(url) for url in urls]

    @field_validator("email")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        return [_email(address) for address in addresses]

    @field_validator("slack_channel")
    @classmethod
    def _channel(cls, channel: str | None) -> str | None:
        return None if channel is None else _slack_channel(channel)


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


class SlackRules(BaseModel):
    """Who is who: Slack user ids mapped to reviewers, ahead of matching by confirmed email."""

    model_config = ConfigDict(extra="forbid")
    users: dict[str, str] = Field(default_factory=dict)

    @field_validator("users")
    @classmethod
    def _users(cls, users: dict[str, str]) -> dict[str, str]:
        for slack_id, name in users.items():
            if not _SLACK_USER.fullmatch(slack_id):
                raise ValueError(f"{slack_id!r} is not a Slack user id (such as U012ABC; see the member's profile)")
            if not _REVIEWER.fullmatch(name):
                raise ValueError(f"{name!r} (for {slack_id}) is not a user name of the dashboard")
        return users


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: Defaults = Field(default_factory=Defaults)
    queues: dict[str, QueueRules] = Field(default_factory=dict)
    slack: SlackRules = Field(default_factory=SlackRules)


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


@dataclass(frozen=True)
class SlackTarget:
    channel_name: str  # as configured: '#payments' or an id
    channel = "slack"

    @property
    def key(self) -> str:
        return f"slack:{self.channel_name}"

    def to_json(self) -> dict[str, str]:
        return {"kind": "slack", "channel": self.channel_name}


Target = WebhookTarget | EmailTarget | SlackTarget


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
    slack_token: str | None = None  # the bot's token (xoxb-...)
    slack_signing_secret: str | None = None  # verifies that button clicks come from Slack
    slack_channel: str | None = None  # every queue's channel, unless the queue names its own
    slack_api_url: str = "https://slack.com/api/"  # SLACK_API_URL: tests point it at a stand-in
    slack_team_id: str | None = None  # SLACK_TEAM_ID: clicks from any other workspace are refused

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.rules.queues or self.notify_email or self.slack_token)

    @property
    def slack_users(self) -> dict[str, str]:
        return self.rules.slack.users

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
        found += [EmailTarget(a) for a in dict.fromkeys(addresses)]
        return found + [SlackTarget(c) for c in self._slack_channels(rules, event)]

    def _slack_channels(self, rules: QueueRules, event: str) -> list[str]:
        if not self.slack_token:
            return []
        channels = []
        if event in rules.events and (rules.slack_channel or self.slack_channel):
            channels.append(rules.slack_channel or self.slack_channel or "")
        if event == "escalated" and rules.escalate_to.slack_channel:
            channels.append(rules.escalate_to.slack_channel)
        return list(dict.fromkeys(channels))

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
        if self.slack_token:
            for where, channel in self._every_slack_channel():
                found.setdefault(f"slack:{channel}", (where, SlackTarget(channel)))
        return list(found.values())

    def _every_slack_channel(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str | None]] = [("APPROVALS_SLACK_CHANNEL", self.slack_channel)]
        for queue, rules in self.rules.queues.items():
            found.append((f"queue {queue}", rules.slack_channel))
            found.append((f"queue {queue}, escalations", rules.escalate_to.slack_channel))
        return [(where, channel) for where, channel in found if channel]

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
        slack = _slack_settings(environ, rules)
        return cls(
            public_url=public.rstrip("/"), webhook_url=webhook, webhook_secret=secret, smtp=smtp,
            email_from=email_from, notify_email=notify_email, rules=rules, source=source, **slack,
        )  # fmt: skip


def _slack_settings(environ: Mapping[str, str], rules: RulesFile) -> dict[str, Any]:
    """Slack's settings, or InvalidSettings for a half-made setup (a channel without a token, and so on)."""
    token = (environ.get("SLACK_BOT_TOKEN") or "").strip() or None
    signing = (environ.get("SLACK_SIGNING_SECRET") or "").strip() or None
    channel = (environ.get("APPROVALS_SLACK_CHANNEL") or "").strip() or None
    api_url = (environ.get("SLACK_API_URL") or "").strip() or NotifyConfig.slack_api_url
    team = (environ.get("SLACK_TEAM_ID") or "").strip() or None
    if team is not None and not re.fullmatch(r"[TE][A-Z0-9]{2,20}", team):
        raise InvalidSettings("SLACK_TEAM_ID", f"{team[:40]!r} is not a Slack workspace id (T0123ABCD)")
    try:
        _http_url(api_url)
        channel = _slack_channel(channel) if channel else None
    except ValueError as error:
        raise InvalidSettings("APPROVALS_SLACK_CHANNEL or SLACK_API_URL", str(error)) from None
    named = [q for q, r in rules.queues.items() if r.slack_channel or r.escalate_to.slack_channel]
    if not token and (channel or named or rules.slack.users or signing):
        where = "APPROVALS_SLACK_CHANNEL" if channel else f"queue {named[0]}" if named else "the Slack settings"
        raise InvalidSettings("SLACK_BOT_TOKEN", f"not set, and {where} asks for Slack: set the bot's xoxb- token")
    if token and not signing:
        raise InvalidSettings(
            "SLACK_SIGNING_SECRET", "not set: without it, button clicks cannot be told from forgeries (the app's "
            "Basic Information page shows it)"
        )  # fmt: skip
    if token and not channel and not named:
        raise InvalidSettings(
            "APPROVALS_SLACK_CHANNEL", "not set, and no queue names a slack_channel: where should messages go?"
        )
    return {"slack_token": token, "slack_signing_secret": signing, "slack_channel": channel,
            "slack_api_url": api_url, "slack_team_id": team}  # fmt: skip


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
