"""One-click decision links in emails: signed, bound to one recipient and the request's exact arguments.

A link carries (request id, outcome, recipient address, digest of the arguments, expiry, nonce),
signed with HMAC-SHA256 under a key made once at random and kept in Redis (never in the repository
or the configuration). Whoever opens it sees a confirmation page: a GET never decides, since mail
scanners fetch links. The POST that decides checks the signature, the expiry, the arguments (a request
whose arguments are not the ones emailed cannot be decided by it), the recipient's permissions, and
uses the nonce once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..store import ApprovalStore

OUTCOMES = ("approve", "reject")


@dataclass(frozen=True, slots=True)
class Link:
    request_id: str
    outcome: str  # approve | reject
    email: str  # the recipient it was sent to: whose decision it is
    args_digest: str
    expires_at: float
    nonce: str


async def link_key(store: ApprovalStore) -> bytes:
    """The signing key, made on first use (whoever is first wins; every process then reads the same)."""
    await store.redis.set(store.keys.link_key, secrets.token_hex(32), nx=True)
    key: str = await store.redis.get(store.keys.link_key)
    return key.encode()


def args_digest(args: Any) -> str:
    return hashlib.sha256(json.dumps(args, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def make_link(key: bytes, request_id: str, outcome: str, email: str, args: Any, expires_at: float) -> str:
    payload = {"r": request_id, "o": outcome, "e": email, "h": args_digest(args), "x": expires_at,
               "n": secrets.token_urlsafe(12)}  # fmt: skip
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def read_link(key: bytes, token: str) -> Link | None:
    """The link, if `token` is one this platform signed (not whether it may still be used); else None."""
    body, dot, signature = token.partition(".")
    if not dot or len(token) > 2000 or not token.isascii():
        return None
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    data = claims(token)
    try:
        link = Link(str(data["r"]), str(data["o"]), str(data["e"]), str(data["h"]), float(data["x"]), str(data["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    return link if link.outcome in OUTCOMES else None


def claims(token: str) -> dict[str, Any]:
    """What a token says about itself, signed or not (read_link checks the signature): {} if unreadable."""
    body = token.partition(".")[0][:2000]
    if not body.startswith("eyJ"):  # '{"' in base64: anything else is no object of ours
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
