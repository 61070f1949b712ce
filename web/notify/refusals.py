"""Refused decision attempts from outside the dashboard (email links, Slack), noted in the audit.

The audit stream is capped, and these attempts can come from anyone on the internet: unchecked, a flood
of forged links would push real entries out. So each client address gets `LIMIT` audit entries per
`WINDOW`; past that its attempts are refused with a 429 and only logged, until the window ends.
Clicks Slack signed are exempt (people in the workspace, through Slack's own addresses), except exact
replays: whoever captured a signed payload can resend it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from approvals import ApprovalRequest

from .. import appkeys
from ..access.throttle import client_address

log = logging.getLogger("approvals.web")

LIMIT = 30
WINDOW = 600.0


async def note_refused(
    request: web.Request, request_id: str, *, by: str, reason: str, via: str, approval: ApprovalRequest | None = None,
    throttled: bool = True,
) -> bool:  # fmt: skip
    """Add a `refused` audit entry (saying, for attempts anyone could send, from which address); False, and
    nothing written, when that address is past its limit."""
    store = request.app[appkeys.CLIENT].store
    if throttled:
        address = client_address(request, request.app[appkeys.SETTINGS].trusted_proxies)
        key = store.keys.refused_from(address)
        async with store.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(WINDOW), nx=True)
            count, _ = await pipe.execute()
        if count > LIMIT:
            if count == LIMIT + 1:
                log.warning("approvals: %d refused decision attempts from %s; not auditing more for %d min",
                            LIMIT, address, WINDOW // 60)  # fmt: skip
            return False
        reason = f"{reason} (from {address})"
    await store.record_refused(request_id, by=by, reason=reason, request=approval, via=via)
    return True


def too_many() -> web.HTTPTooManyRequests:
    return web.HTTPTooManyRequests(
        text=f"Too many refused attempts from your address; try again in {WINDOW // 60:.0f} minutes",
        headers={"Retry-After": str(int(WINDOW))},
    )
