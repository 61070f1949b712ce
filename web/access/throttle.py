"""Sign-in throttling that an attacker cannot turn against the people it protects.

Only failed sign-ins count, in three ways over a window (5 minutes by default, `limit` 10):
- per account and address: after `limit` failures that address may not try that account again until
  the window ends. Guessing from one place stops; the real user, elsewhere, is not locked out.
- per address: after 3 x `limit` failures, on any accounts, the address is refused. Successes never
  count, so a busy office behind one address is not refused for signing in.
- per account, from everywhere: after 10 x `limit` failures (guessing from many addresses) the
  account's password is checked at most once every `slow_down` seconds; a correct password still
  signs in, and resets the account.
Addresses are the client's (behind trusted proxies, from X-Forwarded-For), IPv6 ones by their /64.
A success resets its account's counts; `approvals users unlock NAME [--address A]` does so for an
admin. Each attempt is counted before its password is checked (and refunded if it succeeds), so a
burst of guesses sent at once cannot slip under a limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from approvals.keys import Keys

# Give back one count, if the counter still exists (never below zero, never without its expiry).
REFUND = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and tonumber(redis.call('GET', key)) > 0 then redis.call('DECR', key) end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Refusal:
    message: str


def client_address(request: web.Request, trusted_proxies: Iterable[str] = ()) -> str:
    """Who is signing in: the peer, or behind trusted proxies the last address X-Forwarded-For names
    that is not one of them. IPv6 addresses count by their /64 (one host usually holds a whole one)."""
    networks = [ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies]

    def trusted(address: str) -> bool:
        try:
            return any(ipaddress.ip_address(address) in network for network in networks)
        except ValueError:
            return False

    address = request.remote or "unknown"
    if trusted(address):
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        while hops and trusted(address):
            address = hops.pop()
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False)) if parsed.version == 6 else str(parsed)


class LoginThrottle:
    def __init__(self, redis: Redis, keys: Keys, *, limit: int, window: float, slow_down: float = 3.0) -> None:
        self.redis, self.keys = redis, keys
        self.limit, self.window, self.slow_down = limit, window, slow_down
        self._refund = redis.register_script(REFUND)

    def _counters(self, name: str, address: str) -> list[tuple[str, int]]:
        return [
            (self.keys.login_attempts(_pair(name, address)), self.limit),
            (self.keys.login_attempts(_address(address)), 3 * self.limit),
            (self.keys.login_attempts(_account(name)), 10 * self.limit),
        ]

    async def attempt(self, name: str, address: str) -> Refusal | None:
        """Count this attempt (as a failure until `succeeded`); a Refusal if it may not be checked now."""
        counters = self._counters(name, address)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, _ in counters:
                pipe.incr(key)
                pipe.expire(key, int(self.window), nx=True)
            counts = (await pipe.execute())[::2]
        minutes = max(1, round(self.window / 60))
        refusal = None
        if counts[1] > counters[1][1]:
            refusal = Refusal(f"Too many failed sign-ins from your address; try again in {minutes} min")
        elif counts[0] > counters[0][1]:
            refusal = Refusal(f"Too many failed sign-ins for this account from here; try again in {minutes} min")
        elif counts[2] > counters[2][1] and not await self._open_gate(name):
            refusal = Refusal(f"This account is being guessed at; try again in {self.slow_down:g} seconds")
        if refusal is not None:
            await self._refund(keys=[key for key, _ in counters])  # refused attempts are not guesses
        return refusal

    async def _open_gate(self, name: str) -> bool:
        """One checked attempt per `slow_down` seconds on an account under attack from everywhere."""
        gate = self.keys.login_attempts(f"gate:{len(name)}:{name}")
        return bool(await self.redis.set(gate, "1", nx=True, px=int(self.slow_down * 1000)))

    async def succeeded(self, name: str, address: str) -> None:
        """The password was right: this attempt was no failure, and the account starts afresh."""
        pair, address_key, account = (key for key, _ in self._counters(name, address))
        await self.redis.delete(pair, account)
        await self._refund(keys=[address_key])

    async def unlock(self, name: str, address: str | None = None) -> int:
        """Clear every count against `name` (and `address`, if given): the admin's way out."""
        pattern = self.keys.login_attempts(_pair(name, "*"))
        keys = [key async for key in self.redis.scan_iter(match=_glob_escaped(pattern), count=1000)]
        keys.append(self.keys.login_attempts(_account(name)))
        if address is not None:
            keys.append(self.keys.login_attempts(_address(address)))
        cleared: int = await self.redis.delete(*keys)
        return cleared


def _pair(name: str, address: str) -> str:
    return f"pair:{len(name)}:{name}:{address}"


def _account(name: str) -> str:
    return f"user:{len(name)}:{name}"


def _address(address: str) -> str:
    return f"addr:{address}"


def _glob_escaped(pattern: str) -> str:
    """`pattern` whose trailing * is the only wildcard (names and addresses may hold glob characters)."""
    head, star = pattern[:-1], pattern[-1]
    for special in "\\[]?*":
        head = head.replace(special, "\\" + special)
    return head + star
