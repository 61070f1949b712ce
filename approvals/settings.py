"""Settings of the approval core: one frozen dataclass, read from the environment once and passed in."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from .errors import InvalidSettings

_PREFIX_RE = re.compile(r"[A-Za-z0-9_.:{}-]{1,64}")
_QUEUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

T = TypeVar("T")

# Environment variable -> settings field. REDIS_URL keeps its conventional name.
ENVIRONMENT = {
    "REDIS_URL": "redis_url",
    "APPROVALS_PREFIX": "prefix",
    "APPROVALS_DEFAULT_TIMEOUT": "default_timeout",
    "APPROVALS_DEFAULT_QUEUE": "default_queue",
    "APPROVALS_POOL_SIZE": "pool_size",
    "APPROVALS_RETENTION": "retention",
    "APPROVALS_EVENTS_MAXLEN": "events_maxlen",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """How to reach Redis and how the approval core behaves.

    `redis_url=None` selects the embedded store: an in-process fakeredis server, for one process only.
    To run on Redis Cluster, give `prefix` a hash tag (for example `"{apr}:"`) so every key a script
    touches lands in one slot.
    """

    redis_url: str | None = None
    prefix: str = "apr:"
    default_timeout: float = 3600.0  # seconds a request stays open before it expires (denied)
    default_queue: str = "default"
    pool_size: int = 16  # command connections per process, whatever the number of waiters
    pool_timeout: float | None = None  # seconds to wait for a free command connection (None: as long as it takes)
    health_check_interval: float = 10.0  # Pub/Sub connection PING interval, seconds
    safety_sweep_interval: float = 30.0  # waiters re-read every waited-on request this often
    expiry_sweep_interval: float = 1.0  # how often the sweeper looks for overdue requests
    events_maxlen: int = 100_000  # audit stream length (approximate trim)
    retention: float = 30 * 86400.0  # seconds a decided request is kept

    def __post_init__(self) -> None:
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidSettings("redis_url", "must start with redis://, rediss:// or unix://")
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise InvalidSettings("prefix", "use 1-64 characters from letters, digits and _ . : { } -")
        if not _QUEUE_RE.fullmatch(self.default_queue):
            raise InvalidSettings("default_queue", "use 1-64 letters, digits, '_', '.' or '-', starting alphanumeric")
        if not 1 <= self.pool_size <= 1024:
            raise InvalidSettings("pool_size", "must be between 1 and 1024")
        if self.retention < 1:
            raise InvalidSettings("retention", "must be at least 1 second")
        if self.events_maxlen < 1:
            raise InvalidSettings("events_maxlen", "must be at least 1")
        if self.pool_timeout is not None and not (math.isfinite(self.pool_timeout) and self.pool_timeout > 0):
            raise InvalidSettings("pool_timeout", "must be a positive number of seconds, or None to wait")
        for name in (
            "default_timeout",
            "health_check_interval",
            "safety_sweep_interval",
            "expiry_sweep_interval",
            "retention",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidSettings(name, "must be a positive number of seconds")

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    @property
    def display_url(self) -> str:
        """The Redis URL without its password, for pages, logs and error messages."""
        if self.redis_url is None:
            return "embedded://"
        return masked_url(self.redis_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `REDIS_URL` and `APPROVALS_*` variables; keyword overrides win."""
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for variable, name in ENVIRONMENT.items():
            raw = environ.get(variable, "").strip()
            if raw:
                values[name] = _parse(variable, raw, _CONVERTERS[str(types[name])])
        values.update(overrides)
        return cls(**values)


SECRET_WORDS = ("pass", "pwd", "auth", "token", "secret", "key")  # in a query parameter's name


def masked_url(url: str) -> str:
    """`url` with every password shown as ***: in `user:pass@`, in `:pass@` (unix sockets too), and in
    query parameters such as `?password=`. A URL that cannot be parsed is not shown at all."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in f"{parts.path}{parts.query}{parts.fragment}":
            raise ValueError("an @ outside the host part: a password with characters left unencoded")
        if "@" in netloc:
            credentials, _, host = netloc.rpartition("@")
            user, colon, _ = credentials.partition(":")
            netloc = f"{user}{':***' if colon else ''}@{host}"
        query = [(k, "***" if _secret(k) else v) for k, v in parse_qsl(parts.query, True)]
        shown = f"?{urlencode(query, safe='*')}" if query else ""
        return f"{parts.scheme}://{netloc}{parts.path}{shown}"
    except ValueError:
        return f"{url.split(':', 1)[0]}://(not shown)"


def _secret(parameter: str) -> bool:
    return any(word in parameter.lower() for word in SECRET_WORDS)


def _parse(variable: str, raw: str, convert: Callable[[str], T]) -> T:
    try:
        return convert(raw)
    except ValueError:
        raise InvalidSettings(variable, f"{raw!r} is not a valid value") from None


_CONVERTERS: dict[str, Callable[[str], Any]] = {"str | None": str, "str": str, "float": float, "int": int}
