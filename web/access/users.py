"""Dashboard users, API tokens, browser sessions and login throttling, all kept in Redis.

Passwords are hashed with scrypt; API tokens are stored as their SHA-256 only, so neither can be
read back. Roles: viewer (read), reviewer (decide in named queues), admin (decide anywhere).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from approvals import ApprovalStore
from approvals.errors import ApprovalError, InvalidRequest

FLASH_TTL = 300.0  # seconds a form's error waits for the page it redirected to

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 8


class Role(StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class UserExists(ApprovalError):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name!r} already exists; remove it first or pick another name")
        self.name = name


class UnknownUser(ApprovalError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no user {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    queues: tuple[str, ...]  # queues a reviewer may decide in; ("*",) for all
    generation: str = ""  # when this user was created: tokens and sessions of an earlier one are void
    email: str | None = None  # where notifications with decision links go

    def can_decide(self, queue: str) -> bool:
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.REVIEWER and ("*" in self.queues or queue in self.queues)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    user: str
    csrf_token: str
    generation: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 1024 * 1024, **SCRYPT)
    encode = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash to compare against when the user does not exist, so timing does not tell names apart.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidRequest(field, "use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
    return name


EMAIL_RE = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*[A-Za-z0-9]")


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        raise InvalidRequest("email", f"{email[:80]!r} is not an email address")
    return email


class UserStore:
    def __init__(self, store: ApprovalStore) -> None:
        self.redis = store.redis
        self.keys = store.keys

    # -- users -----------------------------------------------------------------------------------

    async def add(
        self, name: str, password: str, role: Role, queues: tuple[str, ...] = ("*",), email: str | None = None
    ) -> User:
        check_name(name)
        if len(password) < MIN_PASSWORD:
            raise InvalidRequest("password", f"must be at least {MIN_PASSWORD} characters")
        if email is not None:
            email = check_email(email)
        hashed = await asyncio.to_thread(hash_password, password)
        generation = repr(time.time())
        fields = {"password": hashed, "role": role.value, "queues": json.dumps(list(queues)), "created_at": generation}
        if email is not None:
            fields["email"] = email
            if not await self.redis.set(self.keys.user_email(email), name, nx=True):
                raise InvalidRequest("email", f"{email} is another user's address")
        if not await self.redis.hsetnx(self.keys.user(name), "role", role.value):
            if email is not None:
                await self.redis.delete(self.keys.user_email(email))
            raise UserExists(name)
        await self.redis.hset(self.keys.user(name), mapping=fields)
        await self.redis.sadd(self.keys.users, name)
        return User(name, role, queues, generation, email)

    async def get(self, name: str) -> User | None:
        fields = await self.redis.hgetall(self.keys.user(name))
        if not fields:
            return None
        queues = tuple(json.loads(fields.get("queues", '["*"]')))
        return User(name, Role(fields["role"]), queues, fields.get("created_at", ""), fields.get("email") or None)

    async def by_email(self, email: str) -> User | None:
        """The user whose address this is (any case), if any."""
        name = await self.redis.get(self.keys.user_email(email))
        user = await self.get(name) if name else None
        return user if user is not None and (user.email or "").lower() == email.lower() else None

    async def _current(self, name: str, generation: str) -> User | None:
        """The user, if it is still the one a token or session was made for (not removed and re-added)."""
        user = await self.get(name)
        return user if user is not None and hmac.compare_digest(user.generation, generation) else None

    async def all(self) -> list[User]:
        names = sorted(await self.redis.smembers(self.keys.users))
        users = [await self.get(name) for name in names]
        return [u for u in users if u is not None]

    async def remove(self, name: str) -> None:
        email = await self.redis.hget(self.keys.user(name), "email")
        if not await self.redis.delete(self.keys.user(name)):
            raise UnknownUser(name)
        if email:
            await self.redis.delete(self.keys.user_email(email))
        await self.redis.srem(self.keys.users, name)

    async def authenticate(self, name: str, password: str) -> User | None:
        stored = await self.redis.hget(self.keys.user(name), "password") if NAME_RE.fullmatch(name) else None
        ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH)
        return await self.get(name) if ok and stored else None

    # -- API tokens ------------------------------------------------------------------------------

    async def create_token(self, user: str, label: str = "") -> str:
        """A new token for `user`: `apt_<id>_<secret>`. Only its hash is kept; show it once."""
        owner = await self.get(user)
        if owner is None:
            raise UnknownUser(user)
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        fields = {"user": user, "generation": owner.generation, "label": label, "digest": _digest(secret)}
        fields["created_at"] = repr(time.time())
        await self.redis.hset(self.keys.token(token_id), mapping=fields)
        return f"apt_{token_id}_{secret}"

    async def revoke_token(self, token_id: str) -> None:
        token_id = token_id.removeprefix("apt_").split("_")[0]
        if not await self.redis.delete(self.keys.token(token_id)):
            raise LookupError(f"no token with id {token_id!r}")

    async def user_for_token(self, token: str) -> User | None:
        match = re.fullmatch(r"apt_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})", token)
        if match is None:
            return None
        fields = await self.redis.hgetall(self.keys.token(match.group(1)))
        if not fields or not hmac.compare_digest(fields["digest"], _digest(match.group(2))):
            return None
        return await self._current(fields["user"], fields.get("generation", ""))

    # -- sessions --------------------------------------------------------------------------------

    async def create_session(self, user: User, ttl: float) -> Session:
        session = Session(secrets.token_urlsafe(32), user.name, secrets.token_urlsafe(32), user.generation)
        key = self.keys.session(session.session_id)
        fields = {"user": user.name, "csrf": session.csrf_token, "generation": user.generation}
        await self.redis.hset(key, mapping=fields)
        await self.redis.expire(key, int(ttl))
        return session

    async def get_session(self, session_id: str, ttl: float) -> Session | None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{20,100}", session_id):
            return None
        key = self.keys.session(session_id)
        fields = await self.redis.hgetall(key)
        if not fields:
            return None
        await self.redis.expire(key, int(ttl))  # sliding expiry
        return Session(session_id, fields["user"], fields["csrf"], fields.get("generation", ""))

    async def user_for_session(self, session: Session) -> User | None:
        return await self._current(session.user, session.generation)

    async def end_session(self, session_id: str) -> None:
        await self.redis.delete(self.keys.session(session_id))

    async def put_flash(self, session_id: str, name: str, value: dict[str, Any], ttl: float = FLASH_TTL) -> None:
        """Keep `value` for this session's next page (a form's error after POST-redirect-GET)."""
        await self.redis.set(self._flash_key(session_id, name), json.dumps(value), ex=max(1, int(ttl)))

    async def pop_flash(self, session_id: str, name: str) -> dict[str, Any] | None:
        """What `put_flash` kept, once: a reload no longer shows it."""
        raw = await self.redis.getdel(self._flash_key(session_id, name))
        value = json.loads(raw) if raw else None
        return value if isinstance(value, dict) else None

    def _flash_key(self, session_id: str, name: str) -> str:
        return f"{self.keys.session(session_id)}:flash:{name}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
